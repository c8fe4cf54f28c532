"""Text frontend: GPT-SoVITS v2 phones from Chinese, English and mixed diary text.

Public API: clean_text, phonemize, phones_to_ids, expand_word_features, split_text, chunk_diary.
"""

from engine.text.cleaner import clean_text
from engine.text.phonemize import phonemize
from engine.text.symbols import expand_word_features, phones_to_ids

__all__ = ["clean_text", "expand_word_features", "phonemize", "phones_to_ids"]
