"""The export chain piece by piece: what ``export_audio`` does to a whole file, as a stream.

``PieceExporter.push(piece)`` takes the next float samples and returns the encoded bytes ready so
far; ``finish()`` returns the rest. The concatenation is a playable file (WAV with streaming sizes;
FLAC, MP3 and Ogg with their headers as first written), and ``stored_head`` is what the stored file
has at its start instead: ``stored = stored_head + stream[len(stored_head):]``.

Nothing depends on where the pieces were cut: every step sees the audio in fixed blocks of
``BLOCK`` samples counted from the start, so any split gives the same bytes as one push of the
whole. State is bounded by the lead, a block and the look-ahead, never by the file.

Steps and the choices that make them work piece by piece:
* **Lead**: the decisions that today read the whole file are taken once, from the lead, the first
  ``lead_s`` seconds of the diary (``LEAD_S`` = 1 s; the whole audio when shorter; when the lead
  is silent it grows by ``LEAD_S`` up to ``LEAD_MAX_S``): the loudness gain (BS.1770 integrated
  loudness of the lead, one constant gain for the whole job), the explicit cue's level (6 dB under
  the lead's peak) and the mark's strength (``adapted_strength`` on the gained cue and lead). With
  ``lead_s=None`` the lead is the whole audio, which is what ``export_audio`` does by default:
  the same result as before for a file in memory, but nothing comes out before ``finish``.
* **Explicit label**: the cue and its pause are played first, then the diary.
* **Loudness**: ``x * gain`` with the lead's gain. **Peaks**: the streaming look-ahead limiter at
  -1 dBFS (10 ms look-ahead).
* **Watermark**: ``StreamMarker`` with the lead's strength (cells in absolute positions, streaming
  resamplers, overlap-add state carried), then a second limiter at the embedder's 0.999 ceiling in
  place of the whole-file peak normalisation, so no sample exceeds it.
* **Encode**: ``encoders`` (WAV written here, FLAC / MP3 / Ogg Opus through libsndfile, bounded).
"""

from __future__ import annotations

import numpy as np

from engine.errors import EngineError
from engine.exporting.encoders import open_encoder
from engine.exporting.limiter import StreamLimiter
from engine.exporting.marker import StreamMarker
from engine.watermark import labels
from engine.watermark.embed import PEAK_CEILING, adapted_strength, cell_signs
from engine.watermark.keys import Keyring

LEAD_S = 1.0
LEAD_MAX_S = 5.0
MIN_LOUDNESS_S = 0.5  # shorter audio keeps its level (BS.1770 needs 400 ms blocks)
BLOCK = 4096  # 128 ms at 32 kHz: fewer, larger FFT batches; at most this much waits for the next piece
PEAK_DBFS = -1.0


class PieceExporter:
    """Export float pieces (mono, or samples x channels) to ``fmt`` as they come."""

    def __init__(self, sample_rate: int, fmt: str, *, loudness_lufs: float | None = None,
                 keyring: Keyring | None = None, payload: bytes | None = None, explicit_label: str = "none",
                 lead_s: float | None = LEAD_S) -> None:
        labels.check_explicit_label(explicit_label)
        if keyring is not None and payload is None:
            raise EngineError("watermarking needs a payload (the job's mark)")
        open_encoder(fmt, sample_rate, 1)  # refuses an unknown format now, not at the first piece
        self.sample_rate, self.fmt = sample_rate, fmt
        self.loudness_lufs, self.keyring, self.payload = loudness_lufs, keyring, payload
        self.explicit_label = explicit_label
        self._lead_step = None if lead_s is None else max(1, int(round(lead_s * sample_rate)))
        self._lead_at = self._lead_step  # the lead length the decision is tried at next
        self._lead: list[np.ndarray] = []
        self._lead_len = 0
        self._channels: int | None = None
        self._blocks: list[np.ndarray] = []  # decided audio not yet a full block
        self._block_len = 0
        self._stages: list[StreamLimiter | StreamMarker] | None = None
        self._gain = 1.0
        self._encoder = None
        self._finished = False

    def push(self, piece: np.ndarray) -> bytes:
        """Encoded bytes for ``piece`` so far (possibly empty: the lead, look-ahead and encoders hold some)."""
        if self._finished:
            raise EngineError("push after finish")
        x = self._as_2d(piece)
        if self._stages is not None:
            return self._queue(x)
        self._lead.append(x)
        self._lead_len += x.shape[0]
        out = b""
        while self._stages is None and self._lead_at is not None and self._lead_len >= self._lead_at:
            out += self._try_decide(final=False)
        return out

    def finish(self) -> bytes:
        """The rest of the file."""
        if self._finished:
            raise EngineError("finish called twice")
        out = self._try_decide(final=True) if self._stages is None else b""
        self._finished = True
        tail = np.concatenate(self._blocks) if self._blocks else np.zeros((0, self._channels or 1))
        self._blocks, self._block_len = [], 0
        out += self._run(tail)
        y = np.zeros((0, self._channels or 1))
        for stage in self._stages:  # flush each stage through the ones after it
            y = np.concatenate([stage.push(y), stage.finish()]) if y.shape[0] else stage.finish()
        return out + self._encoder.push(y) + self._encoder.finish()

    @property
    def stored_head(self) -> bytes:
        """The stored file's first bytes (headers rewritten at close); valid after ``finish``."""
        if not self._finished:
            raise EngineError("the stored head is known only after finish")
        return self._encoder.head

    @property
    def gain(self) -> float:
        """The loudness gain chosen from the lead (1 until it is chosen)."""
        return self._gain

    def _as_2d(self, piece: np.ndarray) -> np.ndarray:
        x = np.asarray(piece, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        if x.ndim != 2:
            raise EngineError(f"audio pieces are samples or samples x channels, not shape {x.shape}")
        if x.shape[0] == 0:
            return x.reshape(0, self._channels or x.shape[1] or 1)
        if self._channels is None:
            self._channels = x.shape[1]
        elif x.shape[1] != self._channels:
            raise EngineError(f"a piece has {x.shape[1]} channels, the first had {self._channels}")
        return x

    def _try_decide(self, *, final: bool) -> bytes:
        """Decide from the first ``_lead_at`` samples (all at the end) if they allow it, then run them."""
        audio = np.concatenate(self._lead) if self._lead else np.zeros((0, self._channels or 1))
        size = audio.shape[0] if final or self._lead_at is None else self._lead_at
        lead = audio[:size]
        gain = self._loudness_gain(lead)
        if gain is None and not final and size + self._lead_step <= LEAD_MAX_S * self.sample_rate:
            self._lead, self._lead_at = [audio], size + self._lead_step  # silent so far: wait for more
            return b""
        self._lead, self._lead_len = [], 0
        self._decide(lead, 1.0 if gain is None else gain)
        return self._queue(audio)

    def _loudness_gain(self, lead: np.ndarray) -> float | None:
        """The gain to the target loudness; 1 without a target or for short audio; None when silent."""
        if self.loudness_lufs is None or lead.shape[0] < int(MIN_LOUDNESS_S * self.sample_rate):
            return 1.0
        import pyloudnorm

        loudness = pyloudnorm.Meter(self.sample_rate).integrated_loudness(lead[:, 0] if lead.shape[1] == 1 else lead)
        return float(10 ** ((self.loudness_lufs - loudness) / 20)) if np.isfinite(loudness) else None

    def _decide(self, lead: np.ndarray, gain: float) -> None:
        channels = self._channels or 1
        self._gain = gain
        cue = np.zeros((0, channels))
        if self.explicit_label != "none" and lead.shape[0]:
            cue = labels.explicit_cue(self.explicit_label, self.sample_rate, float(np.max(np.abs(lead))), channels)
        self._stages = [StreamLimiter(self.sample_rate, 10 ** (PEAK_DBFS / 20))]
        if self.keyring is not None:
            signs = cell_signs(self.keyring.primary, self.payload)
            strength, _ = adapted_strength(np.concatenate([cue, lead]).mean(axis=1) * gain, self.sample_rate, signs)
            self._stages += [StreamMarker(self.sample_rate, signs, strength),
                             StreamLimiter(self.sample_rate, PEAK_CEILING)]
        self._encoder = open_encoder(self.fmt, self.sample_rate, channels)
        self._blocks, self._block_len = [cue], cue.shape[0]

    def _queue(self, x: np.ndarray) -> bytes:
        """Add decided audio; run every full block (fixed blocks: the split never matters)."""
        if x.shape[0]:
            self._blocks.append(x)
            self._block_len += x.shape[0]
        if self._block_len < BLOCK:
            return b""
        audio = np.concatenate(self._blocks)
        full = audio.shape[0] // BLOCK * BLOCK
        rest = audio[full:]
        self._blocks, self._block_len = [rest], rest.shape[0]
        return b"".join(self._run(audio[i:i + BLOCK]) for i in range(0, full, BLOCK))

    def _run(self, block: np.ndarray) -> bytes:
        y = block * self._gain
        for stage in self._stages:
            y = stage.push(y)
        return self._encoder.push(y) if y.shape[0] else b""
