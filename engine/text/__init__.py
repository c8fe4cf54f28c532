"""Text frontend: GPT-SoVITS v2 phones from Chinese, English and mixed diary text.

    clean_text(text, "zh" | "en")          -> (phones, word2ph | None, norm_text)   single language
    phonemize(text, "zh" | "all_zh" | "en" | "auto")
                                           -> (phones, [word2ph | None per segment], norm_text)
    phonemize_segments(text, language)    -> [PhoneSegment(lang, phones, word2ph, norm_text)]
    phones_to_ids(phones)                  -> ids in the v2 symbol table
    expand_word_features(features, word2ph) -> (dim, n_phones) per-phone BERT features
    split_text(text, language, "cut0".."cut5") -> segments, as upstream's non-streaming path
    chunk_diary(text, language, ...)       -> [Chunk(id, text, index)], stable ids for caching
    use_g2pw(model_dir, tokenizer_dir)     -> read Chinese polyphones with g2pW (None: pypinyin)
    reader_id()                            -> "pypinyin" or "g2pw-<hash>-...": which path reads Chinese
"""

from engine.text.chunker import Chunk, check_text, chunk_diary
from engine.text.cleaner import clean_text
from engine.text.phonemize import PhoneSegment, phonemize, phonemize_segments
from engine.text.segment import split_text
from engine.text.symbols import expand_word_features, phones_to_ids
from engine.text.zh_reader import reader_id, use_g2pw, use_pypinyin

__all__ = [
    "Chunk",
    "check_text",
    "chunk_diary",
    "clean_text",
    "expand_word_features",
    "PhoneSegment",
    "phonemize",
    "phonemize_segments",
    "phones_to_ids",
    "reader_id",
    "split_text",
    "use_g2pw",
    "use_pypinyin",
]
