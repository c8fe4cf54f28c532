"""The official ``G2PWModel`` folder: its data files checked and read, its ONNX graph opened.

The folder is upstream's ``GPT_SoVITS/text/G2PWModel`` (``G2PWModel_1.1.zip``, renamed). Every file is
checked before anything loads, so a broken folder is refused with one message naming what is wrong.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import ModelsMissing

ONNX_NAMES = ("g2pW.onnx", "g2pw.onnx")
DATA_FILES = (
    "config.py",
    "POLYPHONIC_CHARS.txt",
    "MONOPHONIC_CHARS.txt",
    "bopomofo_to_pinyin_wo_tune_dict.json",
    "char_bopomofo_dict.json",  # read by upstream but without effect; required so the folder is whole
)
# name -> ONNX element type, exactly the official graph's inputs
ONNX_INPUTS = {
    "input_ids": "tensor(int64)",
    "token_type_ids": "tensor(int64)",
    "attention_mask": "tensor(int64)",
    "phoneme_mask": "tensor(float)",
    "char_ids": "tensor(int64)",
    "position_ids": "tensor(int64)",
}
ZIP_URL = "https://www.modelscope.cn/models/kamiorinn/g2pw/resolve/master/G2PWModel_1.1.zip"
HOW_TO_GET = (
    f"Get G2PWModel_1.1.zip ({ZIP_URL}), unzip it and rename its folder G2PWModel_1.1 to the g2pW folder "
    "(default <models>/G2PWModel; ECHODIARY_G2PW_DIR points elsewhere), or run `echodiary models download`."
)
# Characters the converter never sends to the model although POLYPHONIC_CHARS lists them (upstream's list).
NOT_QUERIED = frozenset("一不和咋嗲剖差攢倒難奔勁拗肖瘙誒泊听噢")
NOT_MONOPHONIC = frozenset("似攢")


def onnx_file(folder: Path) -> Path | None:
    for name in ONNX_NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def missing_files(folder: Path) -> list[str]:
    """The files of an official folder that ``folder`` lacks (all of them if it is not a folder)."""
    missing = [] if onnx_file(folder) else [ONNX_NAMES[0]]
    return missing + [name for name in DATA_FILES if not (folder / name).is_file()]


def _refuse(folder: Path, problem: str) -> ModelsMissing:
    return ModelsMissing(f"The g2pW folder {folder} cannot be used: {problem}\n{HOW_TO_GET}")


def _config_flags(path: Path) -> dict[str, object]:
    """Literal top-level assignments of config.py, read without executing the file."""
    flags: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                flags[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return flags


def _char_table(path: Path) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").strip().split("\n"):
        char, _, reading = line.partition("\t")
        rows.append((char, reading.strip()))
    return rows


@dataclass
class G2PWTables:
    """What the converter needs from the data files."""

    labels: list[str]  # distinct bopomofo readings, sorted: the model's output classes
    char_ids: dict[str, int]  # index in the sorted list of POLYPHONIC_CHARS characters
    masks: dict[str, np.ndarray]  # float32 1.0 at each candidate label of a character
    queried: frozenset[str]  # characters the model reads
    monophonic: dict[str, str]  # character -> bopomofo reading
    bopomofo_to_pinyin: dict[str, str]  # bopomofo without tone -> pinyin without tone


def read_tables(folder: Path) -> G2PWTables:
    flags = _config_flags(folder / "config.py")
    if flags.get("use_char_phoneme", False):
        raise _refuse(folder, "config.py sets use_char_phoneme, which the official model does not use")
    polyphonic = _char_table(folder / "POLYPHONIC_CHARS.txt")
    labels = sorted({reading for _, reading in polyphonic})
    label_index = {label: i for i, label in enumerate(labels)}
    candidates: dict[str, list[int]] = {}
    for char, reading in polyphonic:
        candidates.setdefault(char, []).append(label_index[reading])
    chars = sorted(candidates)
    masks = {}
    for char in chars:
        mask = np.zeros(len(labels), np.float32) if flags.get("use_mask", True) else np.ones(len(labels), np.float32)
        mask[candidates[char]] = 1.0
        masks[char] = mask
    monophonic = dict(_char_table(folder / "MONOPHONIC_CHARS.txt"))
    for char in NOT_MONOPHONIC:
        monophonic.pop(char, None)
    with open(folder / "bopomofo_to_pinyin_wo_tune_dict.json", encoding="utf-8") as f:
        bopomofo = json.load(f)
    return G2PWTables(labels, {c: i for i, c in enumerate(chars)}, masks, frozenset(chars) - NOT_QUERIED,
                      monophonic, bopomofo)  # fmt: skip


def open_session(path: Path, folder: Path):  # noqa: ANN201 - onnxruntime.InferenceSession
    """The ONNX session, as upstream configures it (CUDA first when this onnxruntime has it)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    # idle threads must not spin between the short runs: on a busy CPU spinning made a text 3x slower
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own error types for unreadable graphs
        raise _refuse(folder, f"{path.name} is not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    found = {i.name: i.type for i in session.get_inputs()}
    if found != ONNX_INPUTS:
        raise _refuse(folder, f"{path.name} has the inputs {found}; the g2pW graph takes exactly {ONNX_INPUTS}")
    if not session.get_outputs():
        raise _refuse(folder, f"{path.name} has no output")
    return session


def check_folder(folder: Path) -> None:
    """Raise :class:`ModelsMissing` naming every missing file of the folder."""
    if not folder.is_dir():
        raise ModelsMissing(f"There is no g2pW folder at {folder}.\n{HOW_TO_GET}")
    missing = missing_files(folder)
    if missing:
        raise _refuse(folder, "missing " + ", ".join(missing))
