"""Quality gates on generated takes: every gate fails on the input it is for, with its message."""

from __future__ import annotations

import json

import numpy as np
import pytest
from enrollment_audio import needs_espeak, padded, with_noise

from engine.enrollment.asr import error_rate
from engine.enrollment.decode import DecodeLimits
from engine.enrollment.espeak import wav_bytes
from engine.enrollment.quality import QualityThresholds, analyse_take

pytest_plugins = ["enrollment_fixtures"]
pytestmark = needs_espeak


def failed(report) -> set[str]:
    return set(report.failed)


def test_a_clean_take_passes_and_the_report_is_json(en_sentence):
    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(samples, rate), "en")
    assert report.passed and report.messages == [], report.to_dict()
    m = report.measurements
    assert m.sample_rate == rate and abs(m.seconds - samples.size / rate) < 1e-3
    assert 0.5 < m.speech_ratio < 0.95 and 0.4 < m.leading_silence < 0.9 and m.snr_db == 99.0
    assert -30 < m.loudness_lufs < -10 and m.peak_dbfs < 0 and m.clipping_ratio == 0
    assert report.gate("words").passed is None and report.gate("words").value == "not checked"
    text = json.dumps(report.to_dict(), allow_nan=False, ensure_ascii=False)
    assert {g["name"] for g in json.loads(text)["gates"]} >= {"snr", "loudness", "clipping", "duration"}


@pytest.mark.parametrize("snr", [5, 10, 15, 20, 25, 30, 35])
def test_estimated_snr_is_within_3_db_of_the_mixed_snr(en_sentence, snr):
    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(with_noise(samples, rate, snr), rate), "en")
    assert abs(report.measurements.snr_db - snr) <= 3.0, report.measurements
    if snr <= 15 or snr >= 25:  # clear of the 20 dB threshold by more than the estimate's tolerance
        assert report.gate("snr").passed is (snr >= 25)


def test_a_noisy_take_is_refused_with_the_snr_message(zh_sentence):
    samples, rate, _ = zh_sentence
    report = analyse_take(wav_bytes(with_noise(samples, rate, 8), rate), "zh")
    assert "snr" in failed(report)
    message = report.gate("snr").message
    assert message.startswith("太吵了：信噪比 ") and "至少需要 20 dB。请换到更安静的房间再录一次" in message
    en = analyse_take(wav_bytes(with_noise(samples, rate, 8), rate), "en").gate("snr").message
    assert en.startswith("Too noisy: signal-to-noise ratio ") and "quieter room" in en


def test_a_clipped_take_is_refused(en_sentence):
    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(np.clip(samples * 8, -1, 1), rate), "zh")
    assert "clipping" in failed(report) and report.measurements.clipping_ratio > 0.01
    assert report.gate("clipping").message.startswith("声音爆音了") and "调低输入音量" in report.gate("clipping").message


def test_a_too_quiet_take_is_refused(en_sentence):
    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(samples * 0.005, rate), "en")
    assert "loudness" in failed(report) and report.measurements.loudness_lufs < -50
    assert report.gate("loudness").message.startswith("Too quiet: loudness")


def test_a_too_short_take_is_refused(en_sentence):
    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(samples[int(0.6 * rate): int(1.8 * rate)], rate), "zh")
    assert "duration" in failed(report)
    assert report.gate("duration").message.startswith("太短了：只有 1.2 秒，至少需要 2.0 秒")


def test_a_too_long_take_is_refused(en_sentence):
    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(samples, rate), "en", QualityThresholds(max_seconds=3.0))
    assert report.gate("duration").passed is False and report.gate("duration").message.startswith("Too long")


def test_silence_is_refused_as_no_speech_and_too_quiet():
    report = analyse_take(wav_bytes(np.zeros(5 * 22050, np.float32), 22050), "zh")
    assert {"speech_ratio", "loudness"} <= failed(report)
    assert report.gate("speech_ratio").message.startswith("几乎没有听到说话声：语音只占 0%")
    assert report.gate("snr").passed is None  # nothing to measure it against


def test_music_like_tones_are_refused_as_no_speech():
    rate = 22050
    t = np.arange(6 * rate) / rate
    notes = np.repeat([262, 330, 392, 523], 6 * rate // 4 + 1)[: t.size]
    tones = (0.3 * np.sin(2 * np.pi * notes * t) + 0.1 * np.sin(4 * np.pi * notes * t)).astype(np.float32)
    report = analyse_take(wav_bytes(tones, rate), "en")
    assert "speech_ratio" in failed(report) and report.measurements.speech_ratio < 0.1
    assert "no music" in report.gate("speech_ratio").message


def test_long_silences_at_the_edges_and_inside_are_refused(en_sentence):
    samples, rate, _ = en_sentence
    lead = analyse_take(wav_bytes(padded(samples, rate, lead=4.0), rate), "en")
    assert "leading_silence" in failed(lead) and lead.gate("leading_silence").message.startswith("The silence at the start")
    tail = analyse_take(wav_bytes(padded(samples, rate, tail=4.0), rate), "zh")
    assert "trailing_silence" in failed(tail) and tail.gate("trailing_silence").message.startswith("结尾的静音太长")
    half = samples.size // 2
    gap = np.concatenate([samples[:half], np.zeros(3 * rate, np.float32), samples[half:]])
    inner = analyse_take(wav_bytes(gap, rate), "zh")
    assert "inner_silence" in failed(inner) and inner.measurements.max_inner_silence >= 2.9
    assert inner.gate("inner_silence").message.startswith("中间停顿太长")


def test_a_steady_loud_background_fails_the_noise_floor_gate(en_sentence):
    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(with_noise(samples, rate, 30), rate), "zh",
                          QualityThresholds(max_noise_floor_dbfs=-60.0))
    assert failed(report) == {"noise_floor"} and report.gate("noise_floor").message.startswith("背景噪声太大")


def test_a_low_sample_rate_is_refused(en_sentence):
    import soxr

    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(soxr.resample(samples, rate, 8000).astype(np.float32), 8000), "en")
    assert report.gate("sample_rate").passed is False and report.gate("sample_rate").value == 8000
    assert "16000 Hz" in report.gate("sample_rate").message


def test_bad_bytes_and_bounds_are_refused_before_decoding(en_sentence):
    samples, rate, _ = en_sentence
    junk = analyse_take(b"RIFF not really a wave file" * 10, "zh")
    assert junk.failed == ["format"] and junk.measurements is None
    assert junk.messages[0].startswith("无法读取这个文件") and "0x" not in junk.messages[0]
    data = wav_bytes(samples, rate)
    big = analyse_take(data, "en", limits=DecodeLimits(max_bytes=1000))
    assert big.failed == ["size"] and "too large" in big.messages[0]
    long = analyse_take(data, "en", limits=DecodeLimits(max_seconds=2.0))
    assert long.failed == ["duration"]
    three = analyse_take(wav_bytes(np.stack([samples] * 3, axis=1), rate), "zh")
    assert three.failed == ["channels"] and three.messages[0].startswith("声道太多：3 个")


class FixedTranscriber:
    """A transcriber with a known output: it tests the words gate, not speech recognition."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text

    def transcribe(self, samples, sample_rate, language):
        return self.text


def test_the_words_gate_compares_the_transcript_with_the_sentence(zh_sentence):
    samples, rate, text = zh_sentence
    data = wav_bytes(samples, rate)
    good = analyse_take(data, "zh", expected_text=text, transcriber=FixedTranscriber(text.replace("，", " ")))
    assert good.gate("words").passed is True and good.gate("words").value == 0.0
    bad = analyse_take(data, "zh", expected_text=text, transcriber=FixedTranscriber("我今天不想读这句话"))
    assert bad.gate("words").passed is False and bad.gate("words").message.startswith("读的内容和句子不一致")
    assert bad.measurements.transcript == "我今天不想读这句话"


def test_error_rate_counts_edits_per_expected_token():
    assert error_rate("今天天气很好。", "今天天气很好", "zh") == 0.0
    assert error_rate("今天天气很好", "今天天汽很好啊", "zh") == pytest.approx(2 / 6)
    assert error_rate("The quick brown fox", "the quick fox", "en") == pytest.approx(1 / 4)


@pytest.mark.parametrize("fmt", ["FLAC", "OGG", "MP3"])
def test_compressed_and_stereo_takes_are_decoded(en_sentence, fmt):
    samples, rate, _ = en_sentence
    report = analyse_take(wav_bytes(np.stack([samples, samples], axis=1), rate, fmt), "en")
    assert report.passed, report.to_dict()
    assert report.measurements.format == fmt and report.measurements.channels == 2


def test_no_asr_folder_means_no_transcriber_and_a_wrong_folder_is_an_error(tmp_path):
    from engine.enrollment.asr import load_transcriber

    assert load_transcriber(None) is None and load_transcriber("") is None
    with pytest.raises(ValueError, match="no faster-whisper"):
        load_transcriber(tmp_path)
