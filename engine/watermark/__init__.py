"""Keyed audio watermark and AI-generated-content labels for everything EchoDiary renders.

The mark is a patchwork of small log-gains in 32 ms x 62.5 Hz cells (312 Hz - 7 kHz at a 16 kHz
detection rate), keyed per server, carrying a 48-bit payload sealed by a 32-bit MAC under a
rate-1/4 convolutional code, with pilot cells for synchronisation and a presence test whose false
positive rate is bounded without calibration. See pattern.py, embed.py and detect.py.
"""

from engine.watermark.detect import Detection, detect
from engine.watermark.embed import embed
from engine.watermark.keys import Keyring, WatermarkKey, load_keyring
from engine.watermark.labels import AigcLabel
from engine.watermark.pattern import DEFAULT_PARAMS, MarkParams
from engine.watermark.payload import pack_payload, unpack_payload

__all__ = [
    "DEFAULT_PARAMS",
    "AigcLabel",
    "Detection",
    "Keyring",
    "MarkParams",
    "WatermarkKey",
    "detect",
    "embed",
    "load_keyring",
    "pack_payload",
    "unpack_payload",
]
