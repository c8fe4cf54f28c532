"""Which reader gives this process's Chinese base readings: g2pW (upstream's default) or pypinyin.

The engine picks it when it loads (``Engine.load`` calls :func:`use_g2pw` with the folders it was
given). A process that never configures it (the frontend parity tool, scripts calling
``engine.text.clean_text`` directly) gets the default from the environment on first use:
``ECHODIARY_G2PW_DIR`` set -> g2pW from that folder, tokenizer from ``ECHODIARY_G2PW_TOKENIZER_DIR``
(default ``$ECHODIARY_MODELS_DIR/chinese-roberta-wwm-ext-large``); unset -> pypinyin.
A folder that does not exist means pypinyin, said once in the log; a folder that exists but is broken
raises :class:`engine.errors.ModelsMissing`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from engine.text.g2pw import G2PWConverter, Switches

log = logging.getLogger(__name__)

PYPINYIN = "pypinyin"
_NOT_SET = object()
_lock = threading.RLock()
_active: object = _NOT_SET  # G2PWConverter, None (pypinyin) or _NOT_SET (environment default)
_warm: dict[tuple[str, str, Switches], G2PWConverter] = {}
_announced: set[str] = set()


def default_tokenizer_dir() -> Path:
    return Path(os.environ.get("ECHODIARY_MODELS_DIR", "./models")) / "chinese-roberta-wwm-ext-large"


def use_g2pw(model_dir: Path | None, tokenizer_dir: Path | None = None,
             switches: Switches | None = None) -> str:  # fmt: skip
    """Read Chinese with the g2pW folder ``model_dir`` (None or absent: pypinyin); returns :func:`reader_id`."""
    global _active
    with _lock:
        if model_dir is None or not Path(model_dir).exists():
            _say_pypinyin(model_dir)
            _active = None
            return PYPINYIN
        tokenizer = Path(tokenizer_dir) if tokenizer_dir is not None else default_tokenizer_dir()
        key = (str(Path(model_dir).resolve()), str(tokenizer.resolve()), switches or Switches())
        if key not in _warm:
            _warm[key] = G2PWConverter(Path(model_dir), tokenizer, switches)
            log.info("Chinese polyphones are read with g2pW from %s (tokenizer %s)", model_dir, tokenizer)
        _active = _warm[key]
        return _warm[key].reader_id


def use_pypinyin() -> None:
    """Read Chinese with pypinyin word by word (upstream with g2pW off)."""
    global _active
    with _lock:
        _active = None


def use_environment() -> None:
    """Forget the configured reader: the next use takes the environment default again."""
    global _active
    with _lock:
        _active = _NOT_SET


def active_reader() -> G2PWConverter | None:
    """The g2pW converter in use, or None for pypinyin."""
    with _lock:
        if _active is _NOT_SET:
            folder = os.environ.get("ECHODIARY_G2PW_DIR")
            tokenizer = os.environ.get("ECHODIARY_G2PW_TOKENIZER_DIR")
            if folder:
                use_g2pw(Path(folder), Path(tokenizer) if tokenizer else None)
            else:
                use_g2pw(None)
        return _active  # type: ignore[return-value]


def reader_id() -> str:
    """Which path reads Chinese: ``pypinyin`` or ``g2pw-<model and tokenizer hash>-<switches>``."""
    reader = active_reader()
    return reader.reader_id if reader is not None else PYPINYIN


def _say_pypinyin(model_dir: Path | None) -> None:
    where = str(model_dir) if model_dir is not None else "(ECHODIARY_G2PW_DIR not set)"
    if where in _announced:
        return
    _announced.add(where)
    log.warning("No g2pW folder at %s: Chinese polyphones are read with pypinyin word by word (upstream "
                "GPT-SoVITS reads them with g2pW). `echodiary models download` fetches it.", where)
