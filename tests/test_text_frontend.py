"""Behaviour of the text frontend: ids, feature expansion, bad input, English fallback, chunker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from engine.errors import BadText
from engine.text import (
    Chunk,
    chunk_diary,
    clean_text,
    expand_word_features,
    phonemize,
    phones_to_ids,
    split_text,
)
from engine.text._data import symbols_v2

# ---- ids and features ----


def test_phones_to_ids_is_the_table_index():
    table = symbols_v2()
    assert len(table) == 732
    assert phones_to_ids(["_", "a1", "SP", "UNK"]) == [table.index(p) for p in ("_", "a1", "SP", "UNK")]
    phones, _, _ = clean_text("你好，世界。", "zh")
    assert [table[i] for i in phones_to_ids(phones)] == phones


def test_phones_to_ids_rejects_unknown_symbols():
    with pytest.raises(BadText):
        phones_to_ids(["a1", "not-a-phone"])


def test_expand_word_features_repeats_rows_per_phone():
    features = torch.arange(6, dtype=torch.float32).reshape(3, 2)  # 3 tokens, dim 2
    out = expand_word_features(features, [2, 1, 3])
    assert out.shape == (2, 6)
    assert out[0].tolist() == [0, 0, 2, 4, 4, 4]
    assert out[1].tolist() == [1, 1, 3, 5, 5, 5]
    with pytest.raises(ValueError):
        expand_word_features(features, [1, 1])


def test_word2ph_sums_to_phone_count():
    phones, word2ph, norm = phonemize("今天用ChatGPT写了3篇日记。", "zh")
    assert len(word2ph) == 3 and word2ph[1] is None
    english, _, _ = clean_text("ChatGPT", "en")
    assert sum(word2ph[0]) + len(english) + sum(word2ph[2]) == len(phones)
    assert norm == "今天用Chat G P T写了三篇日记."


# ---- bad input ----


@pytest.mark.parametrize("text", ["", "   \n\t ", "🎉🎉🎉", "？！……", "😋，🥺。"])
def test_unreadable_text_is_bad_text(text):
    with pytest.raises(BadText):
        phonemize(text, "zh")
    with pytest.raises(BadText):
        chunk_diary(text)


def test_too_long_text_is_bad_text():
    with pytest.raises(BadText, match="limit"):
        chunk_diary("好" * 101, max_text_chars=100)
    with pytest.raises(BadText, match="limit"):
        phonemize("好" * 101, "zh", max_text_chars=100)


def test_split_text_of_only_punctuation_is_bad_text():
    with pytest.raises(BadText):
        split_text("。。。！！", "zh", "cut5")
    with pytest.raises(BadText):
        split_text("你好。", "zh", "cut9")


def test_unsupported_language_is_bad_text():
    with pytest.raises(BadText):
        phonemize("你好", "fr")


def test_clean_text_of_empty_chinese_is_an_empty_result():
    assert clean_text("", "zh") == ([], [], "")


# ---- English ----


def test_english_unknown_word_uses_the_offline_model():
    phones, word2ph, norm = clean_text("Zorblatic", "en")
    assert word2ph is None and norm == "Zorblatic"
    assert len(phones) >= 4 and all(p in symbols_v2() for p in phones)
    assert phones[0] in ("Z", ",")  # a real pronunciation, not letters spelled out


def test_english_normalisation_reads_numbers_and_acronyms():
    _, _, norm = clean_text("I paid $3.50 for 2 NASA stickers at 10:30.", "en")
    assert norm == "I paid three dollars and fifty cents for two N A S A stickers at ten thirty a.m."
    phones, _, _ = clean_text("OK", "en")
    assert phones == [",", "OW1", "K", "EY1"]


# ---- chunker ----

DIARY = (
    "2024年3月15日，星期五，晴。早上6点40分闹钟响了，我又按了两次才起床。"
    "他笑着说：“今天我们一起去吃饭吧。我请客！”我当然答应了。"
    "Today I spent $1,234.56 on a new MacBook Pro, which felt expensive. 下午有点累。\n"
    "晚上读了3.14159页书，然后就睡了。"
)


def test_chunks_keep_order_and_text():
    chunks = chunk_diary(DIARY)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(isinstance(c, Chunk) and c.text.strip() == c.text for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == DIARY.replace("\n", "").replace(" ", "")


def test_chunks_never_cut_numbers_words_or_quotes():
    chunks = chunk_diary(DIARY, max_chars=20, min_chars=4)
    texts = [c.text for c in chunks]
    for atom in ("1,234.56", "3.14159", "MacBook", "expensive", "“今天我们一起去吃饭吧。我请客！”", "6点40分"):
        assert any(atom in t for t in texts), f"{atom!r} was cut: {texts}"
    assert all(len(t) <= 20 for t in texts)


def test_long_sentences_are_cut_at_commas_within_max_chars():
    text = "我今天写了很长的一句话，" * 12 + "最后结束了。"
    chunks = chunk_diary(text, max_chars=40, min_chars=5)
    assert len(chunks) > 1
    assert all(len(c.text) <= 40 for c in chunks)
    assert "".join(c.text for c in chunks) == text


def test_ids_are_stable_under_edits_of_other_sentences():
    before = chunk_diary(DIARY)
    edited = DIARY.replace("早上6点40分闹钟响了", "早上7点整闹钟就响了")
    after = chunk_diary(edited)
    changed = {c.text for c in before} ^ {c.text for c in after}
    assert changed, "the edit must change some chunk"
    unchanged_before = [c for c in before if "闹钟" not in c.text]
    after_ids = {c.id for c in after}
    assert unchanged_before and all(c.id in after_ids for c in unchanged_before)
    assert [c.id for c in chunk_diary(DIARY)] == [c.id for c in before]  # deterministic


def test_ids_depend_on_text_and_settings_only():
    a = chunk_diary("今天天气很好，我们去公园散步吧。")
    b = chunk_diary("今天天气很好，  我们去公园散步吧。")  # whitespace only
    c = chunk_diary("今天天气很好，我们去公园散步吧。", max_chars=60)
    d = chunk_diary("今天天气很好，我们去公园散步吧。", language="all_zh")
    assert a[0].id == b[0].id
    assert a[0].id != c[0].id and a[0].id != d[0].id


def test_emoji_only_sentences_are_dropped():
    chunks = chunk_diary("今天很开心。\n🎉🎉🎉\n明天继续加油吧！")
    assert [c.text for c in chunks] == ["今天很开心。", "明天继续加油吧！"]


# ---- offline ----

_OFFLINE_SCRIPT = """
import socket, urllib.request
def refuse(*args, **kwargs):
    raise OSError("the text frontend tried to use the network")
socket.socket.connect = refuse
socket.create_connection = refuse
urllib.request.urlopen = refuse
from engine.text import phonemize
print(phonemize("我用ChatGPT写了serendipity日记，Zorblatic！🎉", "zh")[2])
print(phonemize("I love Zorblatic, 今天很好。", "auto")[2])
"""


def test_first_use_downloads_nothing(tmp_path):
    env = {**os.environ, "FTLANG_CACHE": str(tmp_path / "ftlang"), "NLTK_DATA": str(tmp_path / "nltk")}
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Chat G P T" in done.stdout
    assert not (tmp_path / "ftlang").exists() or not any((tmp_path / "ftlang").iterdir())
