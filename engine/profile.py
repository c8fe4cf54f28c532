"""A voice profile: everything derived once from a reference clip and its transcript.

Workers cache profiles and reuse them for every diary of that voice, so they are plain tensors plus
a little JSON, serialised with safetensors (no pickle: a profile can come from storage shared by
many machines).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from engine.errors import BadReference

FORMAT = "echodiary.voice-profile/1"


@dataclass
class VoiceProfile:
    prompt_semantic: torch.Tensor  # [n] int64, 25 Hz semantic tokens of the reference
    refer_specs: list[torch.Tensor]  # each [1, 1025, frames]: the timbre references (first = main clip)
    prompt_phone_ids: list[int]  # phones of the transcript (v2 table)
    prompt_bert: torch.Tensor  # [1024, len(prompt_phone_ids)]
    sv_embs: list[torch.Tensor] | None = None  # v2Pro/ProPlus: each [1, 20480], one per reference
    prompt_text: str = ""
    prompt_lang: str = "zh"
    model_version: str = "v2"
    model_id: str = ""  # identity of the weights that made it (a profile is only valid for those)
    extra: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> str:
        """A stable id of this voice's content (``to_bytes`` is not byte-stable: metadata order varies)."""
        digest = hashlib.sha256()
        tensors = [self.prompt_semantic.to(torch.int64), torch.tensor(self.prompt_phone_ids), self.prompt_bert.float()]
        tensors += [spec.float() for spec in self.refer_specs] + [emb.float() for emb in self.sv_embs or []]
        for tensor in tensors:
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        fields = [self.prompt_text, self.prompt_lang, self.model_version, self.model_id, sorted(self.extra.items())]
        digest.update(json.dumps(fields, ensure_ascii=False).encode())
        return digest.hexdigest()[:16]

    def to_bytes(self) -> bytes:
        tensors = {
            "prompt_semantic": self.prompt_semantic.to(torch.int64).contiguous(),
            "prompt_phone_ids": torch.tensor(self.prompt_phone_ids, dtype=torch.int64),
            "prompt_bert": self.prompt_bert.float().contiguous(),
        }
        for i, spec in enumerate(self.refer_specs):
            tensors[f"refer_spec.{i}"] = spec.float().contiguous()
        for i, emb in enumerate(self.sv_embs or []):
            tensors[f"sv_emb.{i}"] = emb.float().contiguous()
        meta = {
            "format": FORMAT,
            "prompt_text": self.prompt_text,
            "prompt_lang": self.prompt_lang,
            "model_version": self.model_version,
            "model_id": self.model_id,
            "extra": json.dumps(self.extra, ensure_ascii=False),
        }
        return save_safetensors(tensors, metadata=meta)

    @classmethod
    def from_bytes(cls, data: bytes) -> VoiceProfile:
        try:
            tensors = load_safetensors(data)
            meta = _read_metadata(data)
        except Exception as exc:  # safetensors raises its own error types for garbage
            raise BadReference(f"not a voice profile: {exc}") from exc
        if meta.get("format") != FORMAT:
            raise BadReference(f"not a voice profile (format {meta.get('format')!r}, expected {FORMAT!r})")
        n_refs = sum(1 for k in tensors if k.startswith("refer_spec."))
        n_sv = sum(1 for k in tensors if k.startswith("sv_emb."))
        return cls(
            prompt_semantic=tensors["prompt_semantic"],
            refer_specs=[tensors[f"refer_spec.{i}"] for i in range(n_refs)],
            prompt_phone_ids=tensors["prompt_phone_ids"].tolist(),
            prompt_bert=tensors["prompt_bert"],
            sv_embs=[tensors[f"sv_emb.{i}"] for i in range(n_sv)] or None,
            prompt_text=meta.get("prompt_text", ""),
            prompt_lang=meta.get("prompt_lang", "zh"),
            model_version=meta.get("model_version", "v2"),
            model_id=meta.get("model_id", ""),
            extra=json.loads(meta.get("extra", "{}")),
        )


def _read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (8-byte little-endian header length, then JSON)."""
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    return header.get("__metadata__", {})
