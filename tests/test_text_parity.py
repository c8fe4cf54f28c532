"""Parity of the text frontend with upstream GPT-SoVITS v2 goldens (../shared/reference/gpt-sovits)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.text import clean_text, phonemize, phones_to_ids, split_text

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "gpt-sovits"
FRONTEND_GOLDEN = REFERENCE / "frontend_golden_public.jsonl"
SEGMENT_GOLDEN = REFERENCE / "segment_golden_public.jsonl"
MIN_SHARE = 0.95

pytestmark = pytest.mark.skipif(not FRONTEND_GOLDEN.exists(), reason="../shared reference data not present")


def _parity_tool():
    spec = importlib.util.spec_from_file_location("frontend_parity_check", SHARED / "tools" / "frontend_parity_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shares(case: str, fn) -> tuple[float, float, int]:
    tool = _parity_tool()
    _, records = tool.read_golden(str(FRONTEND_GOLDEN))
    n = ok_phones = ok_word2ph = 0
    for rec in records:
        language, expected, _ = tool.expected_for(rec, case, include_lid=False)
        if expected is None:
            continue
        n += 1
        try:
            got_phones, got_word2ph, _ = tool.compare(expected, fn(rec["text"], language))
        except Exception:  # noqa: BLE001 - counted as a mismatch, as the tool does
            got_phones = got_word2ph = False
        ok_phones += got_phones
        ok_word2ph += got_word2ph
    return ok_phones / n, ok_word2ph / n, n


@pytest.mark.parametrize(("case", "fn"), [("clean_text", clean_text), ("zh", phonemize), ("all_zh", phonemize)])
def test_frontend_golden(case, fn):
    phones, word2ph, n = _shares(case, fn)
    assert n > 100
    assert phones >= MIN_SHARE, f"{case}: phones exact {phones:.1%}"
    assert word2ph >= MIN_SHARE, f"{case}: word2ph exact {word2ph:.1%}"


def test_phone_ids_match_golden_ids():
    records = [json.loads(line) for line in FRONTEND_GOLDEN.open(encoding="utf-8")][1:]
    for rec in records[:40]:
        assert phones_to_ids(rec["clean_text"]["phones"]) == rec["clean_text"]["phone_ids"]


def _segment_records() -> list[dict]:
    return [json.loads(line) for line in SEGMENT_GOLDEN.open(encoding="utf-8")][1:]


def test_split_text_golden():
    records = _segment_records()
    equal = sum(split_text(r["text"], r["lang"], r["method"]) == r["segments"] for r in records)
    assert len(records) >= 42
    assert equal / len(records) >= MIN_SHARE, f"segments equal for {equal}/{len(records)}"


def test_phonemize_segments_of_long_texts():
    """Every distinct segment of the long diary texts, read as upstream's preprocess does ('zh')."""
    seen: dict[str, dict] = {}
    for rec in _segment_records():
        for segment, expected in zip(rec["segments"], rec["frontend"], strict=True):
            seen.setdefault(segment, expected)
    ok = sum(phonemize(seg, "zh")[0] == exp["phones"] for seg, exp in seen.items())
    assert ok / len(seen) >= MIN_SHARE, f"phones exact for {ok}/{len(seen)} segments"
