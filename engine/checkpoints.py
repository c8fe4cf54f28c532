"""Read and write GPT-SoVITS's official model files, byte-layout compatible with upstream.

Files handled (MODEL.md section 7, ``manifests/``):

- s1 GPT ``*.ckpt``: ``{"weight": {"model.<key>": fp16}, "config": dict, "info": "GPT-e<N>"}``.
- s2 SoVITS generator ``*.pth``, fine-tuned layout: ``{"weight": fp16 without enc_q.*, "config":
  utils.HParams, "info": "<E>epoch_<S>iteration"}``; v2 files are plain zips (``PK``), v2Pro and
  v2ProPlus files carry ``05`` / ``06`` instead of the first two bytes. The pretrained layout is the
  same with the ``enc_q.*`` posterior encoder kept, written as a plain zip (upstream's trainer opens it
  with a bare ``torch.load``).
- s2 discriminator ``s2D*.pth``: ``{"weight": fp16 state dict}`` (training checkpoints
  ``{"model": ..., "iteration", ...}`` are read too).
- speaker-verification ERes2NetV2 ``*.ckpt``: a bare state dict.

Security: these files are pickles, and a pickle can run arbitrary code when it is loaded. We never
unpickle a file with the general unpickler: every load goes through ``torch.load(...,
weights_only=True)``, which only rebuilds tensors, containers and primitive values, plus an explicit
allow-list that holds exactly one class, our :class:`HParams` stand-in registered under upstream's
name ``utils.HParams`` (the pickled config object of SoVITS files). Anything else in a file (a
``os.system`` reduce, an unknown class) makes the load fail with :class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
import time
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.errors import ModelsMissing

SUPPORTED_SOVITS_VERSIONS = ("v2", "v2Pro", "v2ProPlus")

# The two bytes upstream writes over "PK" (process_ckpt.my_save2) and what they mean.
HEADER_VERSIONS = {
    b"00": "v1",
    b"01": "v2",
    b"02": "v3",
    b"03": "v3-lora",
    b"04": "v4-lora",
    b"05": "v2Pro",
    b"06": "v2ProPlus",
}
VERSION_HEADERS = {"v2Pro": b"05", "v2ProPlus": b"06"}

# md5 of the first 8192 bytes of the released pretrained generators (upstream's
# get_sovits_version_from_path_fast looks these up before anything else).
RELEASED_SOVITS_MD5 = {
    "dc3c97e17592963677a4a1681f30c653": "v1",  # s2G488k.pth
    "6642b37f3dbb1f76882b69937c95a5f3": "v2",  # s2G2333k.pth
    "43797be674a37c1c83ee81081941ed0f": "v3",  # s2Gv3.pth
    "4f26b9476d0c5033e04162c486074374": "v4",  # s2Gv4.pth
    "c7e9fce2223f3db685cdfa1e6368728a": "v2Pro",  # s2Gv2Pro.pth
    "66b313e39455b57ab1b0bc0b239c9d0a": "v2ProPlus",  # s2Gv2ProPlus.pth
}
V1_TEXT_SYMBOLS = 322  # rows of enc_p.text_embedding in v1 files (v2 tables have 732)
UPSTREAM_HPARAMS_NAME = "utils.HParams"


class CheckpointError(ValueError):
    """A model file is not one of the official formats, or is a version EchoDiary cannot use."""


class HParams:
    """Attribute-access config object, a stand-in for upstream's pickled ``utils.HParams``.

    Values live in ``__dict__`` exactly like upstream's class, so a pickle of this object has the
    same shape (``NEWOBJ`` + ``BUILD`` with a dict state) and upstream can read what we write.
    """

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            self[key] = HParams(**value) if isinstance(value, Mapping) else value

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dict__)

    def __len__(self) -> int:
        return len(self.__dict__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HParams) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"HParams({self.__dict__!r})"

    def keys(self):  # noqa: ANN201 - dict-style view, as upstream's class offers
        return self.__dict__.keys()

    def items(self):  # noqa: ANN201
        return self.__dict__.items()

    def values(self):  # noqa: ANN201
        return self.__dict__.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self.__dict__.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() if isinstance(v, HParams) else v for k, v in self.__dict__.items()}


_SAFE_GLOBALS = [(HParams, UPSTREAM_HPARAMS_NAME)]


def plain_config(config: Any) -> dict[str, Any]:
    """A config (HParams or mapping, possibly nested) as plain nested dicts."""
    if isinstance(config, HParams):
        return config.to_dict()
    if isinstance(config, Mapping):
        return {k: plain_config(v) if isinstance(v, HParams | Mapping) else v for k, v in config.items()}
    raise CheckpointError(f"config must be a mapping, got {type(config).__name__}")


# --------------------------------------------------------------------------------------------
# Low level: safe loading and upstream-shaped saving
# --------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise ModelsMissing(f"model file not found: {path}")
    return path.read_bytes()


def _safe_load(data: bytes, path: Path) -> Any:
    """``torch.load`` of a zip whose first two bytes may be a version header, allow-listed."""
    if len(data) < 4 or data[2:4] != b"\x03\x04":
        raise CheckpointError(f"{path}: not a PyTorch zip checkpoint (unexpected first bytes {data[:4]!r})")
    if data[:2] != b"PK":
        data = b"PK" + data[2:]  # upstream overwrote the zip magic with a version tag
    try:
        with torch.serialization.safe_globals(_SAFE_GLOBALS):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refused to load: the file contains objects outside the allow-list of safe types "
            f"(tensors, containers, {UPSTREAM_HPARAMS_NAME}); it may be corrupt or malicious. ({exc})"
        ) from exc
    except (RuntimeError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc})") from exc


class _UpstreamNamesPickler(pickle._Pickler):
    """Pickles our HParams under upstream's global name ``utils.HParams``.

    The C pickler insists that a class's module path resolves to the class itself, and we must not
    put a fake ``utils`` module into ``sys.modules``; the Python pickler lets us write the name.
    """

    def save_global(self, obj: Any, name: str | None = None) -> None:
        if obj is HParams:
            module, _, qualname = UPSTREAM_HPARAMS_NAME.rpartition(".")
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


_PICKLE_MODULE = types.ModuleType("echodiary_checkpoint_pickle")
_PICKLE_MODULE.Pickler = _UpstreamNamesPickler  # type: ignore[attr-defined]


def _serialize(obj: Any, archive_name: str | None) -> bytes:
    """torch.save bytes (pickle protocol 2, as upstream); ``archive_name`` is the zip's top folder.

    torch names the folder after the file it writes (upstream's ``my_save`` writes to
    ``<time.time()>.pth`` first, hence folders like ``1700000000.0``) and ``archive`` for buffers.
    """
    if archive_name is None:
        buffer = io.BytesIO()
        torch.save(obj, buffer, pickle_module=_PICKLE_MODULE, pickle_protocol=2)
        return buffer.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / f"{archive_name}.pth"
        torch.save(obj, tmp_path, pickle_module=_PICKLE_MODULE, pickle_protocol=2)
        return tmp_path.read_bytes()


def _write_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _timestamp_folder() -> str:
    return str(time.time())


def _half_state(weight: Mapping[str, torch.Tensor], skip_enc_q: bool) -> dict[str, torch.Tensor]:
    out = {}
    for key, tensor in weight.items():
        if skip_enc_q and "enc_q" in key:
            continue
        out[key] = tensor.detach().to("cpu").half().contiguous()
    return out


def _tensor_dict(obj: Any, path: Path, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: {what} is not a mapping of names to tensors")
    return dict(obj)


def file_header(path: Path) -> bytes:
    """The first two bytes of a file: ``PK`` for plain zips, ``05``/``06``... for tagged SoVITS files."""
    with open(path, "rb") as f:
        return f.read(2)


# --------------------------------------------------------------------------------------------
# s1: text-to-semantic GPT
# --------------------------------------------------------------------------------------------

T2S_PREFIX = "model."


@dataclass
class T2SCheckpoint:
    weight: dict[str, torch.Tensor]  # as stored: "model."-prefixed keys, float16
    config: dict[str, Any]
    info: str

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Weights under our module names (upstream's keys without the Lightning ``model.`` prefix)."""
        return {k.removeprefix(T2S_PREFIX): v for k, v in self.weight.items()}

    @property
    def max_sec(self) -> int:
        return int(self.config.get("data", {}).get("max_sec", 54))


def load_t2s_checkpoint(path: Path) -> T2SCheckpoint:
    path = Path(path)
    obj = _safe_load(_read_bytes(path), path)
    if not isinstance(obj, Mapping) or "weight" not in obj or "config" not in obj:
        raise CheckpointError(f"{path}: not a GPT-SoVITS s1 checkpoint (expected 'weight' and 'config' entries)")
    weight = _tensor_dict(obj["weight"], path, "'weight'")
    if not weight or not all(k.startswith(T2S_PREFIX) for k in weight):
        raise CheckpointError(f"{path}: s1 weights must be stored under the '{T2S_PREFIX}' prefix")
    config = plain_config(obj["config"])
    if "model" not in config:
        raise CheckpointError(f"{path}: s1 config has no 'model' section")
    return T2SCheckpoint(weight=weight, config=config, info=str(obj.get("info", "")))


def save_t2s_checkpoint(path: Path, weight: Mapping[str, torch.Tensor], config: Mapping[str, Any], info: str) -> None:
    """Write an s1 ``.ckpt`` as upstream's ``s1_train.py`` does (fp16, ``model.`` prefix, plain dict)."""
    stored: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, tensor in weight.items():
        name = key if key.startswith(T2S_PREFIX) else T2S_PREFIX + key
        stored[name] = tensor.detach().to("cpu").half().contiguous()
    top = OrderedDict(weight=stored, config=plain_config(config), info=str(info))
    _write_atomic(Path(path), _serialize(top, _timestamp_folder()))


# --------------------------------------------------------------------------------------------
# s2: SoVITS generator
# --------------------------------------------------------------------------------------------


@dataclass
class SoVITSCheckpoint:
    weight: dict[str, torch.Tensor]  # as stored (float16 in official files)
    config: dict[str, Any]  # plain nested dicts (the file holds a utils.HParams)
    info: str
    version: str  # "v2", "v2Pro" or "v2ProPlus"

    @property
    def has_posterior_encoder(self) -> bool:
        """Pretrained files keep ``enc_q.*`` (needed to fine-tune); fine-tuned files drop it."""
        return any(k.startswith("enc_q.") for k in self.weight)

    def model_config(self) -> dict[str, Any]:
        """``config["model"]`` with ``version`` set from the detected version, as TTS.py does."""
        return {**self.config.get("model", {}), "version": self.version}


def sovits_version_fast(head: bytes, size: int) -> str:
    """Upstream's first guess from the file alone: md5 of the first 8192 bytes, then the two
    header bytes, then (plain zips) the file size. ``head`` holds at least the first 8192 bytes."""
    digest = hashlib.md5(head[:8192]).hexdigest()
    if digest in RELEASED_SOVITS_MD5:
        return RELEASED_SOVITS_MD5[digest]
    tag = head[:2]
    if tag != b"PK":
        if tag not in HEADER_VERSIONS:
            raise CheckpointError(f"unknown SoVITS header bytes {tag!r}")
        return HEADER_VERSIONS[tag]
    if size < 82978 * 1024:
        return "v1"
    if size < 700 * 1024 * 1024:
        return "v2"
    return "v3"


def _pro_variant(weight: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
    named = config.get("model", {}).get("version") or config.get("version")
    if named in ("v2Pro", "v2ProPlus"):
        return named
    # v2ProPlus widens the first upsampling stage to kernel 20 (v2Pro: 16).
    ups0 = weight.get("dec.ups.0.weight_v")
    if ups0 is not None and ups0.shape[-1] == 20:
        return "v2ProPlus"
    return "v2Pro"


def detect_sovits_version(fast: str, weight: Mapping[str, torch.Tensor], config: Mapping[str, Any]) -> str:
    """The version TTS.py ends up using, made robust for files the fast rule misreads.

    Upstream corrects v1/v2 from the text embedding (322 rows = v1, else v2); a small v2 file is thus
    first "v1" by size and then v2. We add one correction upstream lacks: a plain-zip file whose
    weights carry the speaker projection ``sv_emb`` (a v2Pro/ProPlus pretrained file that is not the
    released one) is a Pro model, not v2.
    """
    if fast in ("v1", "v2"):
        emb = weight.get("enc_p.text_embedding.weight")
        if emb is None or "dec.conv_pre.weight" not in weight:
            return "v3"  # no HiFi-GAN decoder: a v3/v4 generator
        fast = "v1" if emb.shape[0] == V1_TEXT_SYMBOLS else "v2"
        if fast == "v2" and "sv_emb.weight" in weight:
            fast = _pro_variant(weight, config)
    return fast


def load_sovits_checkpoint(path: Path) -> SoVITSCheckpoint:
    path = Path(path)
    data = _read_bytes(path)
    fast = sovits_version_fast(data[:8192], len(data)) if data[2:4] == b"\x03\x04" else None
    obj = _safe_load(data, path)
    if not isinstance(obj, Mapping) or "weight" not in obj:
        raise CheckpointError(f"{path}: not a GPT-SoVITS SoVITS checkpoint (no 'weight' entry)")
    weight = _tensor_dict(obj["weight"], path, "'weight'")
    config = plain_config(obj.get("config") or {})
    version = detect_sovits_version(fast or "v2", weight, config)
    if version not in SUPPORTED_SOVITS_VERSIONS:
        raise CheckpointError(
            f"{path}: this is a GPT-SoVITS {version} SoVITS model; EchoDiary supports "
            f"{', '.join(SUPPORTED_SOVITS_VERSIONS)} only. Use a v2, v2Pro or v2ProPlus model file."
        )
    if "model" not in config:
        raise CheckpointError(f"{path}: SoVITS file has no model config ('config'['model'])")
    return SoVITSCheckpoint(weight=weight, config=config, info=str(obj.get("info", "")), version=version)


def save_sovits_checkpoint(
    path: Path,
    weight: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    info: str,
    version: str,
    *,
    pretrained: bool = False,
) -> None:
    """Write a SoVITS generator file in upstream's layout.

    Fine-tuned (default), as ``process_ckpt.savee``: fp16, ``enc_q.*`` dropped, config pickled as
    ``utils.HParams``; v2 as a plain zip named after a timestamp, v2Pro/v2ProPlus with the ``05``/``06``
    header. ``pretrained=True`` keeps ``enc_q.*`` and always writes a plain zip, because upstream's
    trainer reads pretrained files with a bare ``torch.load``.
    """
    if version not in SUPPORTED_SOVITS_VERSIONS:
        raise CheckpointError(f"cannot write SoVITS version {version!r}; supported: {SUPPORTED_SOVITS_VERSIONS}")
    top = OrderedDict(
        weight=_half_state(weight, skip_enc_q=not pretrained),
        config=HParams(**plain_config(config)),
        info=str(info),
    )
    if pretrained or version == "v2":
        data = _serialize(top, _timestamp_folder())
    else:
        data = VERSION_HEADERS[version] + _serialize(top, None)[2:]
    _write_atomic(Path(path), data)


# --------------------------------------------------------------------------------------------
# s2: discriminator, speaker verification
# --------------------------------------------------------------------------------------------


def load_discriminator_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """State dict of a ``s2D*.pth`` (``{"weight": ...}``) or a training ``D_<step>.pth`` (``{"model": ...}``)."""
    path = Path(path)
    obj = _safe_load(_read_bytes(path), path)
    for key in ("weight", "model"):
        if isinstance(obj, Mapping) and key in obj:
            return _tensor_dict(obj[key], path, f"'{key}'")
    raise CheckpointError(f"{path}: not a SoVITS discriminator file (no 'weight' or 'model' entry)")


def save_discriminator_checkpoint(path: Path, weight: Mapping[str, torch.Tensor]) -> None:
    """Write a pretrained-style discriminator: ``{"weight": fp16 state dict}`` in a plain zip."""
    top = OrderedDict(weight=_half_state(weight, skip_enc_q=False))
    _write_atomic(Path(path), _serialize(top, _timestamp_folder()))


def load_sv_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The ERes2NetV2 speaker model: a bare state dict."""
    path = Path(path)
    obj = _safe_load(_read_bytes(path), path)
    return _tensor_dict(obj, path, "the speaker-verification file")


def save_sv_checkpoint(path: Path, weight: Mapping[str, torch.Tensor]) -> None:
    """Write a bare float state dict as the released ``pretrained_eres2netv2w24s4ep4.ckpt`` is."""
    path = Path(path)
    state = OrderedDict((k, v.detach().to("cpu").contiguous()) for k, v in weight.items())
    _write_atomic(path, _serialize(state, path.stem))
