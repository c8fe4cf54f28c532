"""The models folder: upstream's ``GPT_SoVITS/pretrained_models`` layout, so a downloaded folder works as-is.

File names are the ones upstream's ``configs/tts_infer.yaml`` and WebUI use. :func:`find_models`
resolves which files a version needs and says precisely what is missing; :func:`check_models`
opens each file and reports versions, parameter counts and dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ModelsMissing

VERSIONS = ("v2", "v2Pro", "v2ProPlus")
HF_REPO = "lj1995/GPT-SoVITS"  # where upstream publishes the pretrained files

HUBERT_DIR = "chinese-hubert-base"
BERT_DIR = "chinese-roberta-wwm-ext-large"
SV_FILE = "sv/pretrained_eres2netv2w24s4ep4.ckpt"
GPT_FILES = {
    "v2": "gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
    "v2Pro": "s1v3.ckpt",
    "v2ProPlus": "s1v3.ckpt",
}
SOVITS_FILES = {
    "v2": "gsv-v2final-pretrained/s2G2333k.pth",
    "v2Pro": "v2Pro/s2Gv2Pro.pth",
    "v2ProPlus": "v2Pro/s2Gv2ProPlus.pth",
}
DISCRIMINATOR_FILES = {
    "v2": "gsv-v2final-pretrained/s2D2333k.pth",
    "v2Pro": "v2Pro/s2Dv2Pro.pth",
    "v2ProPlus": "v2Pro/s2Dv2ProPlus.pth",
}
G2PW_DIR = "G2PWModel"  # upstream keeps it at GPT_SoVITS/text/G2PWModel
HUBERT_FILES = ("config.json", "pytorch_model.bin")
BERT_FILES = ("config.json", "pytorch_model.bin")


def g2pw_folders(root: Path, g2pw_dir: Path | None = None, tokenizer_dir: Path | None = None) -> tuple[Path, Path]:
    """The g2pW folder and its tokenizer folder: the ones given, else ``<models>/G2PWModel`` and the BERT."""
    return (Path(g2pw_dir) if g2pw_dir else Path(root) / G2PW_DIR,
            Path(tokenizer_dir) if tokenizer_dir else Path(root) / BERT_DIR)  # fmt: skip


@dataclass(frozen=True)
class ModelPaths:
    """Every file one version needs for inference (and, optionally, fine-tuning)."""

    root: Path
    version: str
    gpt: Path
    sovits: Path
    hubert: Path
    bert: Path
    speaker: Path | None  # v2Pro / v2ProPlus only
    discriminator: Path | None = None  # fine-tuning only
    missing: list[str] = field(default_factory=list)


def expected_files(version: str) -> list[str]:
    """Relative paths an inference install of ``version`` needs."""
    if version not in VERSIONS:
        raise ValueError(f"unknown model version {version!r}; EchoDiary supports {', '.join(VERSIONS)}")
    files = [GPT_FILES[version], SOVITS_FILES[version]]
    files += [f"{HUBERT_DIR}/{name}" for name in HUBERT_FILES]
    files += [f"{BERT_DIR}/{name}" for name in BERT_FILES]
    if version != "v2":
        files.append(SV_FILE)
    return files


def _hf_weights_present(folder: Path) -> bool:
    return (folder / "pytorch_model.bin").exists() or (folder / "model.safetensors").exists()


def _missing(root: Path, version: str) -> list[str]:
    missing = []
    for rel in expected_files(version):
        path = root / rel
        if rel.endswith("pytorch_model.bin"):
            if not _hf_weights_present(path.parent):
                missing.append(rel + " (or model.safetensors)")
        elif not path.exists():
            missing.append(rel)
    return missing


def detect_version(root: Path) -> str | None:
    """The best complete version in a folder (v2ProPlus > v2Pro > v2), or None."""
    for version in reversed(VERSIONS):
        if not _missing(root, version):
            return version
    return None


def find_models(root: Path, version: str | None = None) -> ModelPaths:
    """Resolve the files of ``version`` (or the best complete one) under ``root``.

    Raises :class:`ModelsMissing` naming every missing file and where it goes.
    """
    root = Path(root)
    if not root.is_dir():
        raise ModelsMissing(missing_message(root, version or "v2", expected_files(version or "v2")))
    version = version or detect_version(root) or "v2"
    missing = _missing(root, version)
    if missing:
        raise ModelsMissing(missing_message(root, version, missing))
    discriminator = root / DISCRIMINATOR_FILES[version]
    return ModelPaths(
        root=root,
        version=version,
        gpt=root / GPT_FILES[version],
        sovits=root / SOVITS_FILES[version],
        hubert=root / HUBERT_DIR,
        bert=root / BERT_DIR,
        speaker=root / SV_FILE if version != "v2" else None,
        discriminator=discriminator if discriminator.exists() else None,
    )


def missing_message(root: Path, version: str, missing: list[str]) -> str:
    lines = [
        f"The models folder {root} is missing files for GPT-SoVITS {version}:",
        *[f"  - {root / rel}" for rel in missing],
        "Download the official pretrained files (https://huggingface.co/" + HF_REPO + ") into that folder",
        "keeping upstream's GPT_SoVITS/pretrained_models layout, or run `echodiary models download "
        f"{root}` on a machine that is online. Set ECHODIARY_MODELS_DIR to use another folder.",
        f"For a quick try with random weights (noise): `echodiary models init --random {root} --size tiny`.",
    ]
    return "\n".join(lines)


def download_models(root: Path, version: str = "v2", timeout_s: float = 20.0) -> list[Path]:
    """Fetch the official files of ``version`` from the Hugging Face hub into ``root``.

    Only for servers that are online; offline it raises :class:`ModelsMissing` with what to fetch by hand.
    """
    import os

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    root = Path(root)
    wanted = expected_files(version)
    wanted += [f"{HUBERT_DIR}/preprocessor_config.json", f"{BERT_DIR}/tokenizer.json"]
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", str(int(timeout_s)))
    fetched = []
    for rel in wanted:
        if (root / rel).exists():
            continue
        try:
            fetched.append(Path(hf_hub_download(HF_REPO, rel, local_dir=root)))
        except (OSError, HfHubHTTPError, LocalEntryNotFoundError, ValueError) as exc:
            still = _missing(root, version)
            raise ModelsMissing(
                f"Could not download {rel} from {HF_REPO} ({type(exc).__name__}: {exc}).\n"
                + missing_message(root, version, still or [rel])
            ) from exc
    return fetched + download_g2pw(root, timeout_s)


def g2pw_by_hand(root: Path) -> str:
    from engine.text.g2pw import ZIP_URL
    from engine.text.g2pw.folder import DATA_FILES, ONNX_NAMES

    target = Path(root) / G2PW_DIR
    return (f"On a machine that is online, download {ZIP_URL}, unzip it and put its folder G2PWModel_1.1 "
            f"at {target} (renamed), so that {target / ONNX_NAMES[0]} exists next to {', '.join(DATA_FILES)}. "
            "Or point ECHODIARY_G2PW_DIR at such a folder. Until then Chinese polyphones are read with pypinyin.")


def download_g2pw(root: Path, timeout_s: float = 20.0) -> list[Path]:
    """Fetch upstream's G2PWModel_1.1.zip into ``<root>/G2PWModel`` (nothing if that folder exists)."""
    import shutil
    import tempfile
    import urllib.request
    import zipfile

    from engine.text.g2pw import ZIP_URL, check_folder

    root = Path(root)
    target = root / G2PW_DIR
    if target.exists():
        return []
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".g2pw-") as tmp:
        archive = Path(tmp) / "G2PWModel_1.1.zip"
        try:
            with urllib.request.urlopen(ZIP_URL, timeout=timeout_s) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(Path(tmp) / "unzipped")
        except (OSError, zipfile.BadZipFile) as exc:  # URLError and timeouts are OSErrors
            raise ModelsMissing(f"Could not download the g2pW model ({type(exc).__name__}: {exc}).\n"
                                + g2pw_by_hand(root)) from exc
        unzipped = Path(tmp) / "unzipped" / "G2PWModel_1.1"
        if not unzipped.is_dir():
            raise ModelsMissing(f"{ZIP_URL} has no folder G2PWModel_1.1.\n" + g2pw_by_hand(root))
        check_folder(unzipped)
        unzipped.rename(target)
    return [target]


def g2pw_report(root: Path, g2pw_dir: Path | None = None, tokenizer_dir: Path | None = None) -> FileReport:
    """The g2pW folder: usable (with what it holds), absent (pypinyin reads Chinese) or broken."""
    from engine.text.g2pw import G2PWConverter

    folder, tokenizer = g2pw_folders(root, g2pw_dir, tokenizer_dir)
    kind = "g2pW (Chinese polyphones)"
    if not folder.exists():
        return FileReport(str(folder), kind, True, "not found: Chinese polyphones are read with pypinyin. "
                          + g2pw_by_hand(root))  # fmt: skip
    try:
        converter = G2PWConverter(folder, tokenizer)
    except Exception as exc:  # report, don't crash
        return FileReport(str(folder), kind, False, f"unusable: {type(exc).__name__}: {exc}")
    tables = converter.tables
    return FileReport(str(folder), kind, True, f"{len(tables.char_ids)} polyphonic characters, "
                      f"{len(tables.labels)} readings; tokenizer {tokenizer}; reader {converter.reader_id}")


@dataclass(frozen=True)
class FileReport:
    path: str
    kind: str
    ok: bool
    detail: str


def _tensor_summary(weights: dict) -> str:
    import torch

    tensors = [t for t in weights.values() if isinstance(t, torch.Tensor)]
    n_params = sum(t.numel() for t in tensors)
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors})
    return f"{n_params / 1e6:.1f} M parameters, {len(tensors)} tensors, {'/'.join(dtypes)}"


def _hf_report(folder: Path, kind: str) -> FileReport:
    import json

    import torch

    try:
        config = json.loads((folder / "config.json").read_text())
        if (folder / "model.safetensors").exists():
            from safetensors.torch import load_file

            weights = load_file(str(folder / "model.safetensors"))
        else:
            weights = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        arch = ",".join(config.get("architectures") or [config.get("model_type", "?")])
        size = f"hidden {config.get('hidden_size')}, {config.get('num_hidden_layers')} layers"
        return FileReport(str(folder), kind, True, f"{arch} ({size}); {_tensor_summary(weights)}")
    except Exception as exc:  # report, don't crash: the point is to say what is wrong
        return FileReport(str(folder), kind, False, f"unusable: {type(exc).__name__}: {exc}")


def check_models(root: Path, g2pw_dir: Path | None = None) -> list[FileReport]:
    """Open every model file found under ``root`` and describe it; missing files are reported too.

    The g2pW folder (``g2pw_dir``, default ``<root>/G2PWModel``) is optional: absent, it is reported as ok.
    """
    from engine import checkpoints

    root = Path(root)
    reports: list[FileReport] = []
    seen: set[str] = set()

    def once(rel: str) -> bool:
        if rel in seen:
            return False
        seen.add(rel)
        return True

    for version in VERSIONS:
        for rel, kind in ((GPT_FILES[version], "GPT (s1)"), (SOVITS_FILES[version], f"SoVITS {version}")):
            path = root / rel
            if not path.exists() or not once(rel):
                continue
            try:
                if kind.startswith("GPT"):
                    ckpt = checkpoints.load_t2s_checkpoint(path)
                    detail = f"{ckpt.info}; {_tensor_summary(ckpt.weight)}"
                else:
                    ckpt = checkpoints.load_sovits_checkpoint(path)
                    if ckpt.version != version:
                        kind = f"SoVITS {ckpt.version} (file named as {version})"
                    detail = f"{ckpt.version}, {ckpt.info}; {_tensor_summary(ckpt.weight)}"
                reports.append(FileReport(str(path), kind, True, detail))
            except Exception as exc:
                reports.append(FileReport(str(path), kind, False, f"unusable: {type(exc).__name__}: {exc}"))
    if (root / SV_FILE).exists():
        try:
            detail = _tensor_summary(checkpoints.load_sv_checkpoint(root / SV_FILE))
            reports.append(FileReport(str(root / SV_FILE), "speaker (ERes2NetV2)", True, detail))
        except Exception as exc:
            reports.append(FileReport(str(root / SV_FILE), "speaker (ERes2NetV2)", False,
                                      f"unusable: {type(exc).__name__}: {exc}"))
    for folder, kind in ((root / HUBERT_DIR, "HuBERT"), (root / BERT_DIR, "BERT")):
        if folder.is_dir():
            reports.append(_hf_report(folder, kind))
    reports.append(g2pw_report(root, g2pw_dir))
    best = detect_version(root)
    if best is None:
        for rel in _missing(root, "v2"):
            reports.append(FileReport(str(root / rel), "missing for v2", False, "not found"))
    return reports


def init_random(root: Path, size: str = "tiny", version: str = "v2", seed: int = 0) -> list[Path]:
    """Write seeded random models of ``size`` (tiny | full) for ``version`` in the official layout and formats.

    Tiny models run the whole pipeline in seconds (tests, demos); full ones have the released shapes
    (benchmarks). Random weights never learned to speak: they produce noise.
    """
    from engine.checkpoints import save_discriminator_checkpoint, save_sovits_checkpoint, save_t2s_checkpoint
    from engine.features.bert import write_random_bert
    from engine.features.hubert import write_random_hubert
    from engine.features.speaker import write_random_speaker
    from engine.sovits.config import SoVITSConfig
    from engine.sovits.random_weights import random_discriminator_weights, random_sovits_weights
    from engine.t2s import T2SConfig, random_t2s_weights

    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', not {size!r}")
    if version not in VERSIONS:
        raise ValueError(f"unknown model version {version!r}; EchoDiary supports {', '.join(VERSIONS)}")
    root = Path(root)
    written: list[Path] = []

    t2s_config = T2SConfig.tiny() if size == "tiny" else T2SConfig.full()
    gpt = root / GPT_FILES[version]
    gpt.parent.mkdir(parents=True, exist_ok=True)
    save_t2s_checkpoint(gpt, random_t2s_weights(t2s_config, seed), t2s_config.checkpoint_config(), "GPT-e0")
    written.append(gpt)

    s2_config = SoVITSConfig.preset(version, size)
    generator = root / SOVITS_FILES[version]
    generator.parent.mkdir(parents=True, exist_ok=True)
    save_sovits_checkpoint(generator, random_sovits_weights(s2_config, seed + 1), s2_config.checkpoint_config(),
                           "pretrained", version, pretrained=True)  # fmt: skip
    discriminator = root / DISCRIMINATOR_FILES[version]
    save_discriminator_checkpoint(discriminator, random_discriminator_weights(version, size, seed + 2))
    written += [generator, discriminator]

    written.append(write_random_hubert(root / HUBERT_DIR, size, seed + 3))
    written.append(write_random_bert(root / BERT_DIR, size, seed + 4))
    if version != "v2":
        sv = root / SV_FILE
        sv.parent.mkdir(parents=True, exist_ok=True)
        # SoVITS reads 20480-d speaker vectors at every size (a hard-coded width), so even a tiny
        # Pro folder needs the full-width speaker model.
        written.append(write_random_speaker(sv, "full", seed + 5))
    return written
