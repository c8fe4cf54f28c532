"""Goldens of ``s2_<version>_golden``: SoVITS extract_latent and decode (with intermediates) per version.

The model is read from the file the golden names, through our own loader; every decode input comes
from the golden (codes, phones, reference spectrograms, speaker vectors). Settings are read from the
golden names (``speed1_25`` = speed 1.25, ``noise05`` = noise scale 0.5, ``list2`` = two references,
``norefer`` = no reference) so a fixture set with other values is recomputed, not looked up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import torch

from engine.checkpoints import load_sovits_checkpoint, sovits_version_fast
from engine.parity import GoldenResult, compare, compare_exact, load_golden
from engine.sovits import SoVITS
from engine.sovits.loading import sovits_from_checkpoint

ATOL = 1e-4  # fixtures/README.md section 3: SoVITS intermediates and waveforms
VERSIONS = ("v2", "v2Pro", "v2ProPlus")
INTERMEDIATES = ("ge_ref_enc", "enc_p_x", "m_p", "logs_p", "z")


def check(folder: Path) -> Iterator[GoldenResult]:
    for version in VERSIONS:
        if (folder / f"s2_{version}_golden.safetensors").exists():
            yield from _check_version(folder, version)


def _check_version(folder: Path, version: str) -> Iterator[GoldenResult]:
    tag = f"s2_{version}"
    golden, meta = load_golden(folder, f"{tag}_golden")
    path = folder / meta.get("file", f"models/s2G_{version}_tiny.pth")
    checkpoint = load_sovits_checkpoint(path)
    yield _version_result(tag, path, checkpoint.version, meta)
    model = sovits_from_checkpoint(checkpoint)
    with torch.inference_mode():
        codes = model.extract_latent(golden["in.ssl"])
        yield compare_exact(f"{tag}.extract_latent.codes", codes, golden["extract_latent.codes"])
        runs = sorted({key.split(".")[1] for key in golden if key.startswith("decode.")})
        for run in runs:
            yield from _check_decode(tag, model, golden, meta, run)


def _version_result(tag: str, path: Path, detected: str, meta: dict) -> GoldenResult:
    expected = meta.get("version")
    data = path.read_bytes()
    fast = sovits_version_fast(data[:8192], len(data))
    upstream_fast = (meta.get("get_sovits_version_from_path_fast") or [None, fast])[1]
    ok = detected == expected and fast == upstream_fast
    note = f"fast={fast} (upstream {upstream_fast}), detected={detected} (upstream {expected})"
    return GoldenResult(f"{tag}.version", ok, 0.0 if ok else float("inf"), "" if ok else note)


def _check_decode(tag: str, model: SoVITS, golden: dict, meta: dict, run: str) -> Iterator[GoldenResult]:
    codes, phones = golden["extract_latent.codes"], golden["in.phones"]
    sv = golden.get("in.sv_emb")
    refer, sv_emb = golden["in.refer_spec"], sv
    if run.startswith("list"):
        count = int(run[len("list") :])
        names = ["in.refer_spec"] + [f"in.refer_spec{i}" for i in range(2, count + 1)]
        refer = [golden[n] for n in names]
        sv_emb = [golden[n.replace("refer_spec", "sv_emb")] for n in names] if sv is not None else None
    elif run == "norefer":
        refer, sv_emb = None, None
    speed = _number_after("speed", run, default=1.0)
    noise_scale = _number_after("noise", run, default=0.0)
    generator = None
    if "seeded" in run:
        generator = torch.Generator().manual_seed(int(meta[f"decode.{run}.torch_manual_seed"]))

    ge = model.timbre(refer, sv_emb)
    prior = model.prior(codes, phones, ge, speed)
    z = model.latent(prior, ge, noise_scale, generator)
    outputs = {
        "wav": model.vocode(z, ge),
        "ge_ref_enc": model.reference_embedding(golden["in.refer_spec"]),
        "enc_p_x": prior.x,
        "m_p": prior.m_p,
        "logs_p": prior.logs_p,
        "z": z,
    }
    prefix = f"decode.{run}."
    for key in sorted(k for k in golden if k.startswith(prefix)):
        what = key[len(prefix) :]
        name = f"{tag}.{key}"
        if what not in outputs:
            yield GoldenResult(name, False, float("inf"), f"no recipe for {what!r}")
            continue
        yield compare(name, outputs[what], golden[key], ATOL)


def _number_after(word: str, run: str, default: float) -> float:
    """``speed1_25`` -> 1.25, ``speed0_8`` -> 0.8, ``noise05`` -> 0.5 (a leading 0 then digits)."""
    match = re.search(rf"{word}(\d+(?:_\d+)?)", run)
    if not match:
        return default
    digits = match.group(1)
    if "_" in digits:
        return float(digits.replace("_", "."))
    if len(digits) > 1 and digits.startswith("0"):
        return float("0." + digits[1:])
    return float(digits)
