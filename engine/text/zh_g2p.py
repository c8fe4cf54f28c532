"""Chinese g2p: jieba words -> pypinyin readings -> tone sandhi, neutral tone, erhua -> v2 phones.

Upstream's pypinyin branch (`chinese2._g2p` with g2pW off) and `tone_sandhi.ToneSandhi`, rule for rule.
jieba and pypinyin are loaded lazily, once per process.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import cache, lru_cache

from engine.errors import BadText
from engine.text._data import data_text, erhua_words, symbols_v2, word_set
from engine.text.symbols import PUNCTUATION

_SPLIT_AFTER_MARK = re.compile(r"(?<=[!?…,.\-])\s*")
_LATIN = re.compile(r"[a-zA-Z]+")
_SANDHI_PUNCT = "：，；。？！“”‘’':,;.?!"
_MODAL_PARTICLES = "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶"

Word = list[str]  # [word, pos], mutable during the pre-merges


@cache
def _jieba():  # noqa: ANN202 - module objects
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba, jieba.posseg


@cache
def _pinyin():  # noqa: ANN202
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin, Style


@lru_cache(maxsize=65536)
def _readings(word: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """pypinyin (initials, finals with tone digit 1-5) of a whole word, so its phrase table decides."""
    lazy_pinyin, style = _pinyin()
    initials = lazy_pinyin(word, neutral_tone_with_five=True, style=style.INITIALS)
    finals = lazy_pinyin(word, neutral_tone_with_five=True, style=style.FINALS_TONE3)
    return tuple(initials), tuple(finals)


def _finals(word: str) -> list[str]:
    return list(_readings(word)[1])


@lru_cache(maxsize=65536)
def _split_word(word: str) -> tuple[str, str]:
    """Cut a word in two around its shortest jieba search-mode sub-word."""
    jieba, _ = _jieba()
    shortest = sorted(jieba.cut_for_search(word), key=len)[0]
    if word.find(shortest) == 0:
        return shortest, word[len(shortest) :]
    return word[: -len(shortest)], shortest


def _all_tone_three(finals: list[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


def _set_tone(finals: list[str], i: int, tone: str) -> None:
    finals[i] = finals[i][:-1] + tone


# ---- pre-merges of jieba words (tone_sandhi.pre_merge_for_modify) ----


def _merge_bu(seg: list[Word]) -> list[Word]:
    out: list[Word] = []
    last = ""
    for word, pos in seg:
        if last == "不":
            word = last + word
        if word != "不":
            out.append([word, pos])
        last = word
    if last == "不":
        out.append([last, "d"])
    return out


def _merge_yi(seg: list[Word]) -> list[Word]:
    out: list[Word] = []
    for i, (word, pos) in enumerate(seg):
        if 0 < i < len(seg) - 1 and word == "一" and seg[i - 1][0] == seg[i + 1][0] and seg[i - 1][1] == "v" == seg[i + 1][1]:
            # upstream indexes the output list with the input position here
            out[i - 1][0] = out[i - 1][0] + "一" + out[i - 1][0]
        elif i >= 2 and seg[i - 1][0] == "一" and seg[i - 2][0] == word and pos == "v" and seg[i - 2][1] == "v":
            continue
        else:
            out.append([word, pos])
    merged: list[Word] = []
    for word, pos in out:
        if merged and merged[-1][0] == "一":
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def _merge_reduplication(seg: list[Word]) -> list[Word]:
    out: list[Word] = []
    for word, pos in seg:
        if out and word == out[-1][0]:
            out[-1][0] += word
        else:
            out.append([word, pos])
    return out


def _merge_third_tones(seg: list[Word], whole_words: bool) -> list[Word]:
    """Join neighbours that are both all-3rd-tone (or meet at 3rd tones), up to 3 characters."""
    finals = [_finals(word) for word, _ in seg]
    out: list[Word] = []
    merged_last = [False] * len(seg)
    for i, (word, pos) in enumerate(seg):
        if i > 0 and not merged_last[i - 1]:
            if whole_words:
                meets = _all_tone_three(finals[i - 1]) and _all_tone_three(finals[i])
            else:
                meets = finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3"
            prev = seg[i - 1][0]
            is_redup = len(prev) == 2 and prev[0] == prev[1]
            if meets and not is_redup and len(prev) + len(word) <= 3:
                out[-1][0] += word
                merged_last[i] = True
                continue
        out.append([word, pos])
    return out


def _merge_er(seg: list[Word]) -> list[Word]:
    out: list[Word] = []
    for i, (word, pos) in enumerate(seg):
        if i > 0 and word == "儿" and seg[i - 1][0] != "#":
            out[-1][0] += word
        else:
            out.append([word, pos])
    return out


def _pre_merge(seg: list[Word]) -> list[Word]:
    seg = _merge_bu(seg)
    # upstream wraps these three in try/except and carries on with the unmerged words on failure
    for step in (_merge_yi, _merge_reduplication):
        try:
            seg = step(seg)
        except IndexError:
            pass
    for whole in (True, False):
        try:
            seg = _merge_third_tones(seg, whole_words=whole)
        except IndexError:
            pass
    return _merge_er(seg)


# ---- tone changes per word (ToneSandhi.modified_tone) ----


def _bu_sandhi(word: str, finals: list[str]) -> None:
    if len(word) == 3 and word[1] == "不":
        _set_tone(finals, 1, "5")
        return
    for i, ch in enumerate(word):
        if ch == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":
            _set_tone(finals, i, "2")


def _yi_sandhi(word: str, finals: list[str]) -> None:
    if "一" in word and all(ch.isnumeric() for ch in word if ch != "一"):
        return
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
        _set_tone(finals, 1, "5")
    elif word.startswith("第一"):
        _set_tone(finals, 1, "1")
    else:
        for i, ch in enumerate(word):
            if ch == "一" and i + 1 < len(word):
                if finals[i + 1][-1] == "4":
                    _set_tone(finals, i, "2")
                elif word[i + 1] not in _SANDHI_PUNCT:
                    _set_tone(finals, i, "4")


@cache
def _neutral_lists() -> tuple[frozenset[str], frozenset[str]]:
    return word_set("neutral_tone_words.txt"), word_set("never_neutral_words.txt")


def _neutral_sandhi(word: str, pos: str, finals: list[str]) -> list[str]:
    always, never = _neutral_lists()
    for j in range(1, len(word)):
        if word[j] == word[j - 1] and pos[0] in "nva" and word not in never:
            _set_tone(finals, j, "5")
    ge = word.find("个")
    last = word[-1] if word else ""
    if last and last in _MODAL_PARTICLES:
        _set_tone(finals, -1, "5")
    elif last and last in "的地得":
        _set_tone(finals, -1, "5")
    elif len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
        _set_tone(finals, -1, "5")
    elif len(word) > 1 and last in "们子" and pos in {"r", "n"} and word not in never:
        _set_tone(finals, -1, "5")
    elif len(word) > 1 and last in "上下里" and pos in {"s", "l", "f"}:
        _set_tone(finals, -1, "5")
    elif len(word) > 1 and last in "来去" and word[-2] in "上下进出回过起开":
        _set_tone(finals, -1, "5")
    elif (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")) or word == "个":
        _set_tone(finals, ge, "5")
    elif word in always or word[-2:] in always:
        _set_tone(finals, -1, "5")

    first, second = _split_word(word)
    halves = [finals[: len(first)], finals[len(first) :]]
    for half, part in zip(halves, (first, second), strict=True):
        if part in always or part[-2:] in always:
            _set_tone(half, -1, "5")
    return halves[0] + halves[1]


def _three_sandhi(word: str, finals: list[str]) -> list[str]:
    if len(word) == 2 and _all_tone_three(finals):
        _set_tone(finals, 0, "2")
    elif len(word) == 3:
        first, _ = _split_word(word)
        if _all_tone_three(finals):
            if len(first) == 2:  # 蒙古/包
                _set_tone(finals, 0, "2")
                _set_tone(finals, 1, "2")
            elif len(first) == 1:  # 纸/老虎
                _set_tone(finals, 1, "2")
        else:
            halves = [finals[: len(first)], finals[len(first) :]]
            for i, half in enumerate(halves):
                if _all_tone_three(half) and len(half) == 2:  # 所有/人
                    _set_tone(half, 0, "2")
                elif i == 1 and not _all_tone_three(half) and half[0][-1] == "3" and halves[0][-1][-1] == "3":
                    _set_tone(halves[0], -1, "2")  # 好/喜欢
            finals = halves[0] + halves[1]
    elif len(word) == 4:
        halves = [finals[:2], finals[2:]]
        for half in halves:
            if _all_tone_three(half):
                _set_tone(half, 0, "2")
        finals = halves[0] + halves[1]
    return finals


def _erhua(initials: list[str], finals: list[str], word: str, pos: str) -> tuple[list[str], list[str]]:
    must, never = erhua_words()
    if finals and word[len(finals) - 1 : len(finals)] == "儿" and finals[-1] == "er1":
        finals[-1] = "er2"
    if word not in must and (word in never or pos in {"a", "j", "nr"}):
        return initials, finals
    if len(finals) != len(word):
        return initials, finals
    if len(finals) > 1 and word[-1] == "儿" and finals[-1] in {"er2", "er5"} and word[-2:] not in never:
        finals[-1] = "er" + finals[-2][-1]  # 儿 stays a syllable but takes the tone before it
    return initials, finals


# ---- pinyin -> v2 symbols ----

_WITH_INITIAL = {"uei": "ui", "iou": "iu", "uen": "un"}
_NO_INITIAL = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}
_FIRST_LETTER = {"v": "yu", "e": "e", "i": "y", "u": "w"}
_ZERO_INITIAL = {"a": "AA", "e": "EE", "o": "OO"}


def _syllable_symbols(syllable: str) -> tuple[str, str] | None:
    """An opencpop-strict syllable ('shi', 'yan', 'lv') -> (initial symbol, final symbol without tone)."""
    for initial in ("zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x",
                    "r", "z", "c", "s", "y", "w"):  # fmt: skip
        if syllable.startswith(initial) and len(syllable) > len(initial):
            final = syllable[len(initial) :]
            break
    else:
        initial, final = _ZERO_INITIAL.get(syllable[:1], ""), syllable
        return (initial, final) if initial else None
    if initial in ("j", "q", "x", "y") and final.startswith("u"):
        final = "v" + final[1:]  # ju qu xu yu yuan yue yun
    if initial == "y":
        final = {"i": "i", "an": "En", "e": "E"}.get(final, final)
    elif final == "i" and initial in ("zh", "ch", "sh", "r"):
        final = "ir"
    elif final == "i" and initial in ("z", "c", "s"):
        final = "i0"
    return initial, final


@cache
def _valid_symbols() -> frozenset[str]:
    return frozenset(symbols_v2())


def _to_symbols(initial: str, final: str) -> list[str]:
    """One pypinyin syllable (initial, final+tone) -> [initial symbol, final symbol with tone]."""
    tone, bare = final[-1], final[:-1]
    if tone not in "12345":
        raise BadText(f"cannot read the syllable {initial + final!r}")
    if initial:
        pinyin = initial + _WITH_INITIAL.get(bare, bare)
    elif initial + bare in _NO_INITIAL:
        pinyin = _NO_INITIAL[bare]
    elif bare[:1] in _FIRST_LETTER:
        pinyin = _FIRST_LETTER[bare[0]] + bare[1:]
    else:
        pinyin = bare
    parts = _syllable_symbols(pinyin)
    if parts is None or parts[1] + tone not in _valid_symbols() or parts[0] not in _valid_symbols():
        raise BadText(f"cannot read the syllable {initial + final!r}")
    return [parts[0], parts[1] + tone]


# Base readings of a text from g2pW: sentences -> one TONE3 pinyin (or the mark) per character.
BaseReader = Callable[[list[str]], list[list[str]]]
_READING = re.compile(r"[a-z]+[1-5]")


@cache
def _corrections() -> dict[str, tuple[str, ...]]:
    """upstream's g2pW correction table (polyphonic.rep with polyphonic-fix.rep over it)."""
    table = {}
    for line in data_text("g2pw_corrections.txt").splitlines():
        if line and not line.startswith("#"):
            word, _, readings = line.partition("\t")
            table[word] = tuple(readings.split())
    return table


def _corrected(word: str, readings: list[str]) -> list[str]:
    """The table's readings for the whole word, else the first reading of each character that is a key."""
    table = _corrections()
    if word in table:
        return list(table[word])
    return [table[ch][0] if ch in table else r for ch, r in zip(word, readings, strict=False)] + readings[len(word):]


def _g2pw_word(word: str, readings: list[str]) -> tuple[list[str], list[str]]:
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    initials, finals = [], []
    for reading in _corrected(word, readings):
        if not reading[:1].isalpha():
            initials.append(reading)
            finals.append(reading)
        elif _READING.fullmatch(reading):
            initials.append(to_initials(reading))
            finals.append(to_finals_tone3(reading, neutral_tone_with_five=True))
        else:  # pypinyin had no reading for the character (upstream fails on it)
            raise BadText(f"cannot read the character(s) in {word!r}")
    return initials, finals


def _pypinyin_word(word: str) -> tuple[list[str], list[str]]:
    initials, finals = (list(x) for x in _readings(word))
    if not all(finals):  # e.g. 噷: pypinyin gives no final (upstream crashes here)
        raise BadText(f"cannot read the character(s) in {word!r}")
    return initials, finals


def _sentence_g2p(sentence: str, base: list[str] | None) -> tuple[list[str], list[int]]:
    """Phones of one sentence; ``base`` is g2pW's reading per character, or None for pypinyin's words."""
    _, posseg = _jieba()
    words = _pre_merge([[w, p] for w, p in posseg.lcut(sentence)])
    phones: list[str] = []
    word2ph: list[int] = []
    end = 0
    for word, pos in words:
        start, end = end, end + len(word)
        if pos == "eng":
            continue
        initials, finals = _pypinyin_word(word) if base is None else _g2pw_word(word, base[start:end])
        _bu_sandhi(word, finals)
        _yi_sandhi(word, finals)
        finals = _neutral_sandhi(word, pos, finals)
        finals = _three_sandhi(word, finals)
        initials, finals = _erhua(initials, finals, word, pos)
        for c, v in zip(initials, finals, strict=True):
            if c == v:
                if c not in PUNCTUATION:
                    raise BadText(f"cannot read {c!r}")
                phones.append(c)
                word2ph.append(1)
            else:
                phones += _to_symbols(c, v)
                word2ph.append(2)
    return phones, word2ph


def g2p_zh(norm_text: str, reader: BaseReader | None = None) -> tuple[list[str], list[int]]:
    """Phones and word2ph (2 per syllable, 1 per mark) of normalised Chinese text.

    ``reader`` (g2pW) gives the base readings of all sentences in one call; None reads with pypinyin.
    """
    sentences = [_LATIN.sub("", s) for s in _SPLIT_AFTER_MARK.split(norm_text) if s.strip()]
    sentences = [s for s in sentences if s]
    bases: list[list[str] | None] = list(reader(sentences)) if reader and sentences else [None] * len(sentences)
    phones: list[str] = []
    word2ph: list[int] = []
    for sentence, base in zip(sentences, bases, strict=True):
        p, w = _sentence_g2p(sentence, base)
        phones += p
        word2ph += w
    return phones, word2ph
