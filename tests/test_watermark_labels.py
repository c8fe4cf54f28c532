"""Export path and labels: AIGC metadata in every format, keyed hash, explicit labels, loudness."""

from __future__ import annotations

import io
import shutil
import struct

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from engine.errors import EngineError
from engine.export import FORMATS, encode, export_audio, limit_peaks, read_label, verify_label
from engine.watermark import AigcLabel, Keyring, detect, metadata, pack_payload, unpack_payload
from engine.watermark.labels import RHYTHM_UNIT_S, rhythm_label
from ops.bench.watermark import synthetic_speech

SR = 32000


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return synthetic_speech(14.0, seed=5)


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.generate()


@pytest.fixture(scope="module")
def exported(speech, keyring) -> dict[str, bytes]:
    return {fmt: export_audio(speech, SR, fmt, loudness_lufs=-20.0, keyring=keyring,
                              payload=pack_payload(0xABCDEF012345), label="job-7f3a")
            for fmt in FORMATS}


def decode(data: bytes) -> tuple[np.ndarray, int]:
    return sf.read(io.BytesIO(data), dtype="float64")


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_carries_mark_label_and_verified_hash(exported, keyring, fmt):
    data = exported[fmt]
    assert metadata.detect_format(data) == fmt
    label = read_label(data)
    assert label is not None
    assert (label.label, label.produce_id, label.content_producer) == ("1", "job-7f3a", "EchoDiary")
    assert label.reserved_code1.startswith(keyring.primary.id + ":")
    assert verify_label(data, keyring)
    audio, rate = decode(data)
    found = detect(audio, rate, keyring)
    assert found.mac_ok and unpack_payload(found.payload) == 0xABCDEF012345


@pytest.mark.parametrize("fmt", FORMATS)
def test_label_json_has_the_seven_fields_once(exported, fmt):
    data = exported[fmt]
    assert data.count(b'{"AIGC":') == 1
    start = data.index(b'{"AIGC":')
    text = data[start:data.index(b"}}", start) + 2].decode()
    fields = AigcLabel.from_json(text).fields()
    assert list(fields) == ["Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator",
                            "PropagateID", "ReservedCode2"]
    assert fields["ContentPropagator"] == "EchoDiary" and fields["PropagateID"] == "job-7f3a"
    # rewriting the label replaces it: still exactly one
    again = metadata.write_label(data, AigcLabel.from_json(text))
    assert again.count(b'{"AIGC":') == 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_propagators_may_rewrite_their_fields_without_breaking_the_hash(exported, keyring, fmt):
    label = read_label(exported[fmt])
    passed_on = metadata.write_label(exported[fmt], AigcLabel(
        **{**label.__dict__, "content_propagator": "SomePlatform", "propagate_id": "share-991"}))
    assert read_label(passed_on).content_propagator == "SomePlatform"
    assert metadata.content_digest(passed_on) == metadata.content_digest(exported[fmt])
    assert verify_label(passed_on, keyring)


@pytest.mark.parametrize("fmt", FORMATS)
def test_keyed_hash_fails_on_tampered_label_or_content(exported, keyring, fmt):
    data = exported[fmt]
    label = read_label(data)
    forged = metadata.write_label(data, AigcLabel(**{**label.__dict__, "produce_id": "job-other"}))
    assert not verify_label(forged, keyring)
    # the same label on different audio (re-encoded louder) does not verify
    audio, rate = decode(data)
    other = metadata.write_label(encode(0.9 * audio, rate, fmt), label)
    assert read_label(other) == label
    assert not verify_label(other, keyring)
    # and no other server's keys verify it
    assert not verify_label(data, Keyring.generate())


def test_tampering_one_sample_breaks_the_wav_hash(exported, keyring):
    data = bytearray(exported["wav"])
    pos = bytes(data).index(b"data") + 8 + 2 * 5000
    value = struct.unpack("<h", data[pos:pos + 2])[0]
    data[pos:pos + 2] = struct.pack("<h", value + 1 if value < 32767 else value - 1)
    assert read_label(bytes(data)) is not None
    assert not verify_label(bytes(data), keyring)


def test_wav_label_keeps_other_info_entries_and_goes_before_the_data(speech):
    plain = encode(speech, SR, "wav")
    buf = io.BytesIO()
    with sf.SoundFile(buf, "w", SR, 1, format="WAV", subtype="PCM_16") as f:
        f.title = "My diary"
        f.write(speech)
    titled = metadata.write_label(buf.getvalue(), AigcLabel(produce_id="j1"))
    assert b"INAM" in titled and b"My diary" in titled
    with sf.SoundFile(io.BytesIO(titled)) as f:
        assert f.title == "My diary"
        np.testing.assert_allclose(f.read(), decode(plain)[0])
    assert titled.index(b"LIST") < titled.index(b"data")
    assert read_label(titled).produce_id == "j1"
    assert struct.unpack("<I", titled[4:8])[0] == len(titled) - 8


def test_files_without_a_label_read_as_none(speech):
    for fmt in FORMATS:
        assert read_label(encode(speech, SR, fmt)) is None
    assert read_label(b"not audio at all") is None


def test_label_values_must_avoid_spaces_quotes_and_backslashes():
    with pytest.raises(ValueError):
        AigcLabel(produce_id="job 1").to_json()
    with pytest.raises(ValueError):
        AigcLabel(produce_id='job"1').to_json()
    assert AigcLabel.from_json(AigcLabel(produce_id="job-1").to_json()).produce_id == "job-1"
    with pytest.raises(ValueError):
        AigcLabel.from_json('{"other": {}}')


def test_loudness_is_normalised_and_peaks_limited(speech):
    data = export_audio(speech * 0.05, SR, "wav", loudness_lufs=-20.0)
    audio, _ = decode(data)
    assert pyloudnorm.Meter(SR).integrated_loudness(audio) == pytest.approx(-20.0, abs=0.5)
    loud = export_audio(speech * 4, SR, "wav", loudness_lufs=-8.0)
    assert np.max(np.abs(decode(loud)[0])) <= 10 ** (-1 / 20) + 1e-3
    x = np.concatenate([np.zeros(1000), [0.2, 1.5, -2.0, 0.3], np.zeros(1000)])
    assert np.max(np.abs(limit_peaks(x, SR))) <= 10 ** (-1 / 20) + 1e-9


def test_without_a_keyring_nothing_is_marked(speech, keyring):
    data = export_audio(speech, SR, "flac", loudness_lufs=-20.0, label="job-1")
    assert not detect(*decode(data), keyring).present
    label = read_label(data)
    assert label.produce_id == "job-1" and label.reserved_code1 == ""
    assert not verify_label(data, keyring)


def test_ogg_is_opus_at_48k_and_unknown_formats_are_refused(exported):
    with sf.SoundFile(io.BytesIO(exported["ogg"])) as f:
        assert (f.format, f.subtype, f.samplerate) == ("OGG", "OPUS", 48000)
    with pytest.raises(EngineError):
        export_audio(np.zeros(SR), SR, "aiff")
    with pytest.raises(EngineError):
        export_audio(np.zeros(SR), SR, "wav", keyring=Keyring.generate())  # marking needs a payload


def test_rhythm_label_is_short_long_short_short():
    cue = rhythm_label(SR)
    on = np.abs(cue) > 1e-3
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(int), [0]])))
    starts, stops = edges[::2], edges[1::2]
    # zero crossings inside a tone make short gaps: merge bursts closer than 2 ms
    bursts = []
    for a, b in zip(starts, stops, strict=True):
        if bursts and a - bursts[-1][1] < 0.002 * SR:
            bursts[-1][1] = b
        else:
            bursts.append([a, b])
    lengths = [(b - a) / SR / RHYTHM_UNIT_S for a, b in bursts]
    assert [round(v) for v in lengths] == [1, 3, 1, 1]


def test_explicit_rhythm_label_is_prepended_and_marked(speech, keyring):
    plain = decode(export_audio(speech, SR, "wav", loudness_lufs=-20.0))[0]
    labelled = decode(export_audio(speech, SR, "wav", loudness_lufs=-20.0, keyring=keyring,
                                   payload=pack_payload(3), explicit_label="rhythm"))[0]
    extra = labelled.size - plain.size
    assert extra == rhythm_label(SR).size + int(0.4 * SR)
    spec = np.abs(np.fft.rfft(labelled[: int(0.1 * SR)]))
    assert np.argmax(spec) * SR / int(0.1 * SR) == pytest.approx(1000, abs=20)
    assert detect(labelled, SR, keyring).payload == pack_payload(3)
    with pytest.raises(EngineError):
        export_audio(speech, SR, "wav", explicit_label="jingle")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="the spoken notice needs espeak-ng (apt)")
def test_spoken_notice_is_prepended(speech):
    plain = decode(export_audio(speech, SR, "wav"))[0]
    noticed = decode(export_audio(speech, SR, "wav", explicit_label="notice"))[0]
    extra = (noticed.size - plain.size) / SR
    assert 2.0 < extra < 8.0
    head = noticed[: int((extra - 0.4) * SR)]
    assert np.sqrt(np.mean(head**2)) > 0.01  # speech, not silence


# --- C2PA ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def c2pa_signer(tmp_path_factory):
    from engine.watermark.c2pa import load_signer

    folder = tmp_path_factory.mktemp("data")
    signer = load_signer(folder)
    assert load_signer(folder) == signer  # made once, then read back
    return signer


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_c2pa_manifest_is_valid_and_keeps_mark_and_label(speech, keyring, c2pa_signer, fmt):
    from engine.watermark import c2pa

    data = export_audio(speech, SR, fmt, loudness_lufs=-20.0, keyring=keyring, payload=pack_payload(77),
                        label="job-c2pa", c2pa_signer=c2pa_signer)
    manifest = c2pa.read(data)
    assert manifest["validation_state"] == "Valid"
    assert manifest["status"] == ["signingCredential.untrusted"]  # our private CA is in no trust list
    assert manifest["actions"] == ["c2pa.created", "c2pa.watermarked"]
    assert manifest["aigc"] == read_label(data).fields()
    assert verify_label(data, keyring)
    assert detect(*decode(data), keyring).payload == pack_payload(77)
    # a metadata edit after signing breaks the manifest's hash (so the label is written first)
    edited = metadata.write_label(data, AigcLabel(produce_id="job-other"))
    assert c2pa.read(edited)["validation_state"] != "Valid"


def test_c2pa_is_absent_from_ogg_and_unsigned_files(speech, keyring, c2pa_signer):
    from engine.watermark import c2pa

    ogg = export_audio(speech, SR, "ogg", keyring=keyring, payload=pack_payload(1), c2pa_signer=c2pa_signer)
    assert c2pa.read(ogg) is None
    assert c2pa.read(encode(speech, SR, "wav")) is None
    with pytest.raises(EngineError):
        c2pa.sign(ogg, c2pa_signer)
