"""The g2pW polyphone path of the text frontend (engine/text/g2pw), on the tiny official-layout fixture."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from engine.errors import BadText, ModelsMissing
from engine.text import clean_text, reader_id, use_g2pw, use_pypinyin
from engine.text.g2pw import G2PWConverter, Switches
from engine.text.zh_reader import use_environment

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REFERENCE = SHARED / "reference" / "gpt-sovits"
MODELS = REFERENCE / "fixtures" / "models"
G2PW = MODELS / "G2PWModel-tiny"
TOKENIZER = MODELS / "chinese-roberta-tiny"
GOLDENS = ("frontend_g2pw_golden_public.jsonl", "frontend_g2pw_extra_golden_public.jsonl")

pytestmark = pytest.mark.skipif(not G2PW.is_dir(), reason="../shared g2pW fixture not present")


@pytest.fixture(autouse=True)
def _environment_reader_afterwards():
    yield
    use_environment()


@pytest.fixture(scope="module")
def converter() -> G2PWConverter:
    return G2PWConverter(G2PW, TOKENIZER)


def _copy_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "G2PWModel"
    shutil.copytree(G2PW, folder)
    return folder


def test_the_official_folder_is_found_and_read(converter):
    assert len(converter.tables.char_ids) == 3582 and len(converter.tables.labels) == 1305
    assert "一" not in converter.tables.queried and "行" in converter.tables.queried
    assert converter.tables.monophonic["不"] == "ㄅㄨ4"
    assert converter.reader_id.startswith("g2pw-") and converter.reader_id.endswith("-c16d")


@pytest.mark.parametrize("name", ["g2pW.onnx", "POLYPHONIC_CHARS.txt", "MONOPHONIC_CHARS.txt",
                                  "bopomofo_to_pinyin_wo_tune_dict.json", "config.py"])  # fmt: skip
def test_a_folder_missing_a_file_is_refused_naming_it(tmp_path, name):
    folder = _copy_folder(tmp_path)
    (folder / name).unlink()
    with pytest.raises(ModelsMissing) as err:
        G2PWConverter(folder, TOKENIZER)
    assert name in str(err.value) and "G2PWModel_1.1.zip" in str(err.value)


def test_the_lower_case_onnx_name_is_accepted(tmp_path):
    folder = _copy_folder(tmp_path)
    (folder / "g2pW.onnx").rename(folder / "g2pw.onnx")
    assert G2PWConverter(folder, TOKENIZER).tables.labels


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx not installed")
def test_a_graph_with_other_inputs_is_refused(tmp_path):
    import onnx

    folder = _copy_folder(tmp_path)
    model = onnx.load(str(folder / "g2pW.onnx"))
    renamed = "attention_masks"  # upstream's array name, not the graph's
    for node in model.graph.node:
        node.input[:] = [renamed if i == "attention_mask" else i for i in node.input]
    next(i for i in model.graph.input if i.name == "attention_mask").name = renamed
    onnx.save(model, str(folder / "g2pW.onnx"))
    with pytest.raises(ModelsMissing) as err:
        G2PWConverter(folder, TOKENIZER)
    assert "attention_masks" in str(err.value) and "takes exactly" in str(err.value)


def test_a_file_that_is_not_onnx_is_refused(tmp_path):
    folder = _copy_folder(tmp_path)
    (folder / "g2pW.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelsMissing, match="not a readable ONNX model"):
        G2PWConverter(folder, TOKENIZER)


def test_a_missing_folder_reads_with_pypinyin(tmp_path, caplog):
    assert use_g2pw(tmp_path / "nowhere", TOKENIZER) == "pypinyin"
    assert reader_id() == "pypinyin"
    assert "pypinyin" in caplog.text


def test_g2pw_readings_change_the_phones_of_a_polyphone(converter):
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    from engine.text.zh_g2p import _to_symbols

    text = "他跑得比我还快。"
    use_pypinyin()
    off, word2ph, norm = clean_text(text, "zh")
    assert use_g2pw(G2PW, TOKENIZER).startswith("g2pw-")
    on, word2ph_on, norm_on = clean_text(text, "zh")
    assert (norm, word2ph) == (norm_on, word2ph_on) and on != off
    # 还 is polyphonic (and in no word of the correction table): its phones are the model's reading
    i = norm.index("还")
    reading = converter([norm])[0][i]
    at = sum(word2ph[:i])
    assert on[at : at + 2] == _to_symbols(to_initials(reading), to_finals_tone3(reading, neutral_tone_with_five=True))
    assert off[at : at + 2] != on[at : at + 2]


def test_one_converter_call_per_text(converter, monkeypatch):
    import engine.text.cleaner as cleaner

    calls = []

    def counted(sentences):
        calls.append(list(sentences))
        return converter(sentences)

    monkeypatch.setattr(cleaner, "active_reader", lambda: counted)
    clean_text("我们一行人沿着河边慢慢地走，走了好几行字都没写完。", "zh")
    assert calls == [["我们一行人沿着河边慢慢地走,", "走了好几行字都没写完."]]


def test_runs_are_batched_per_text_or_per_shared_model_text():
    sentences = ["好的,", "好的,", "我今天去理发店剪了头发,", "长长的队伍."]
    plain = G2PWConverter(G2PW, TOKENIZER, Switches(dedup=False))
    without = plain(sentences)
    assert plain.runs == 1  # every query of the text in one batch
    dedup = G2PWConverter(G2PW, TOKENIZER)
    assert dedup(sentences) == without  # short sentences: the dedup only saves work
    assert dedup.runs == len(set(sentences))  # one batch-1 run per distinct model text


def test_an_unconvertible_reading_is_bad_text(converter):
    with pytest.raises(BadText, match="no pinyin"):
        converter._pinyin_of("ㄌㄩㄢ2", "孿")


@pytest.mark.parametrize("golden", GOLDENS)
def test_parity_with_upstream_g2pw_goldens(golden):
    spec = importlib.util.spec_from_file_location("parity", SHARED / "tools" / "frontend_parity_check.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    use_g2pw(G2PW, TOKENIZER)
    _, records = tool.read_golden(str(REFERENCE / golden))
    misses = []
    for rec in records:
        try:
            ok = tool.compare(rec["clean_text"], clean_text(rec["text"], "zh"))[0]
        except BadText:
            ok = "error" in rec["clean_text"]
        if not ok:
            misses.append(rec["id"])
    assert not misses


def test_the_correction_table_overrides_the_model_per_jieba_word(converter):
    from pypinyin.contrib.tone_convert import to_finals_tone3, to_initials

    from engine.text.zh_g2p import _corrections, _to_symbols

    use_g2pw(G2PW, TOKENIZER)
    phones, word2ph, norm = clean_text("我们一行人沿着河边慢慢地走。", "zh")
    table_reading = _corrections()["一行"][1]
    at = sum(word2ph[: norm.index("行")])
    assert phones[at : at + 2] == _to_symbols(to_initials(table_reading), to_finals_tone3(table_reading))


def test_models_check_reports_the_g2pw_folder(tmp_path):
    from engine.model_files import g2pw_report

    absent = g2pw_report(tmp_path)
    assert absent.ok and "pypinyin" in absent.detail and "G2PWModel_1.1.zip" in absent.detail
    found = g2pw_report(tmp_path, G2PW, TOKENIZER)
    assert found.ok and "3582 polyphonic characters" in found.detail
    broken = _copy_folder(tmp_path)
    (broken / "MONOPHONIC_CHARS.txt").unlink()
    bad = g2pw_report(tmp_path, broken, TOKENIZER)
    assert not bad.ok and "MONOPHONIC_CHARS.txt" in bad.detail


def test_download_unzips_the_official_zip_into_g2pwmodel(tmp_path, monkeypatch):
    import zipfile

    import engine.text.g2pw as g2pw
    from engine.model_files import download_g2pw

    archive = tmp_path / "G2PWModel_1.1.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in G2PW.iterdir():
            zipped.write(path, f"G2PWModel_1.1/{path.name}")
    monkeypatch.setattr(g2pw, "ZIP_URL", archive.as_uri())
    root = tmp_path / "models"
    assert download_g2pw(root) == [root / "G2PWModel"]
    assert G2PWConverter(root / "G2PWModel", TOKENIZER).tables.labels
    assert download_g2pw(root) == []  # already there


def test_download_offline_says_what_to_put_where(tmp_path, monkeypatch):
    import engine.text.g2pw as g2pw
    from engine.model_files import download_g2pw

    monkeypatch.setattr(g2pw, "ZIP_URL", "http://127.0.0.1:9/G2PWModel_1.1.zip")
    with pytest.raises(ModelsMissing) as err:
        download_g2pw(tmp_path, timeout_s=2)
    message = str(err.value)
    assert "G2PWModel_1.1" in message and str(tmp_path / "G2PWModel") in message and "g2pW.onnx" in message
    assert not (tmp_path / "G2PWModel").exists()
