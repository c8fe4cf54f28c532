"""The mark itself: code, payload, keys, embedding and detection (no external tools needed)."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from engine.watermark import Keyring, WatermarkKey, detect, embed, load_keyring, pack_payload, unpack_payload
from engine.watermark.detect import FALSE_POSITIVE_RATE
from engine.watermark.ecc import ConvCode
from engine.watermark.embed import cell_signs
from engine.watermark.pattern import DEFAULT_PARAMS, keyed_pattern, resample
from engine.watermark.payload import MESSAGE_BITS, open_sealed, seal
from ops.bench.watermark import synthetic_speech

SR = 32000


@pytest.fixture(scope="module")
def host() -> np.ndarray:
    return synthetic_speech(30.0, seed=3)


@pytest.fixture(scope="module")
def key() -> WatermarkKey:
    return WatermarkKey.generate()


@pytest.fixture(scope="module")
def marked(host: np.ndarray, key: WatermarkKey) -> tuple[np.ndarray, bytes]:
    payload = pack_payload(0x1234_5678_9ABC)
    return embed(host, SR, key, payload), payload


# --- error-correcting code and payload ------------------------------------------------------------

def test_code_has_the_free_distance_of_the_published_code():
    assert ConvCode().free_distance() == 24


def test_code_corrects_noisy_soft_values():
    code = ConvCode()
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, MESSAGE_BITS)
    coded = code.encode(bits)
    assert coded.size == code.coded_length(MESSAGE_BITS) == DEFAULT_PARAMS.n_coded
    # Eb/N0 = 4 dB: about 20 % of the coded bits arrive with the wrong sign, all must be corrected
    amp = math.sqrt(2 * 10 ** 0.4 * MESSAGE_BITS / coded.size)
    soft = (2.0 * coded - 1) * amp + rng.standard_normal(coded.size)
    assert np.mean((soft > 0) != coded.astype(bool)) > 0.1
    np.testing.assert_array_equal(code.decode(soft), bits)


def test_payload_pack_unpack_round_trip_and_bounds():
    for number in (0, 1, 0xDEADBEEF, (1 << 48) - 1):
        assert unpack_payload(pack_payload(number)) == number
        assert len(pack_payload(number)) == 6
    with pytest.raises(ValueError):
        pack_payload(1 << 48)
    with pytest.raises(ValueError):
        pack_payload(-1)
    with pytest.raises(ValueError):
        unpack_payload(b"12345")


def test_sealed_message_opens_only_with_the_right_mac_key_and_bits():
    mac_key, other = WatermarkKey.generate().mac_key, WatermarkKey.generate().mac_key
    bits = seal(b"\x00\x01\x02\x03\x04\x05", mac_key)
    assert bits.size == MESSAGE_BITS
    assert open_sealed(bits, mac_key) == b"\x00\x01\x02\x03\x04\x05"
    assert open_sealed(bits, other) is None
    for i in (0, 20, 47, 60):  # one flipped bit, in the payload or in the MAC
        flipped = bits.copy()
        flipped[i] ^= 1
        assert open_sealed(flipped, mac_key) is None


# --- keys ---------------------------------------------------------------------------------------

def test_keyring_is_made_on_first_use_private_and_stable(tmp_path):
    ring = load_keyring(tmp_path)
    path = tmp_path / "watermark" / "keys.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_keyring(tmp_path)
    assert again.primary_id == ring.primary_id
    assert again.primary.secret == ring.primary.secret
    assert ring.primary.secret.hex() not in ring.primary.id  # the id does not reveal the secret
    assert json.loads(path.read_text())["primary"] == ring.primary_id


def test_rotation_keeps_old_marks_detectable_and_retire_stops_them(tmp_path, host):
    ring = load_keyring(tmp_path)
    old = ring.primary
    clip = host[: 12 * SR]
    old_mark = embed(clip, SR, old, pack_payload(7))
    new = ring.rotate()
    ring = load_keyring(tmp_path)  # rotation is saved
    assert ring.primary_id == new.id != old.id
    assert [k.id for k in ring.active] == [new.id, old.id]
    found = detect(old_mark, SR, ring)
    assert found.mac_ok and found.key_id == old.id and unpack_payload(found.payload) == 7
    new_mark = embed(clip, SR, ring.primary, pack_payload(8))
    found = detect(new_mark, SR, ring)
    assert found.mac_ok and found.key_id == new.id and unpack_payload(found.payload) == 8
    with pytest.raises(ValueError):
        ring.retire(ring.primary_id)
    ring.retire(old.id)
    ring = load_keyring(tmp_path)
    assert [k.id for k in ring.active] == [new.id]
    assert not detect(old_mark, SR, ring).mac_ok


def test_patterns_depend_on_the_key_and_spread_every_bit():
    a, b = keyed_pattern(WatermarkKey.generate()), keyed_pattern(WatermarkKey.generate())
    assert np.mean(a.chip == b.chip) < 0.55
    assert abs(a.pilot.mean() - DEFAULT_PARAMS.pilot_fraction) < 1e-3
    counts = np.bincount(a.role[a.role >= 0], minlength=DEFAULT_PARAMS.n_coded)
    assert counts.min() >= counts.max() - 1  # every coded bit owns the same number of cells
    # each bit's cells are scattered over the block, so an excerpt holds a share of every bit
    frames = [np.unique(np.nonzero(a.role == j)[0]) for j in range(0, DEFAULT_PARAMS.n_coded, 37)]
    assert all(f.max() - f.min() > DEFAULT_PARAMS.block_frames // 2 for f in frames)


# --- embedding and detection ---------------------------------------------------------------------

def test_mark_is_quiet_and_keeps_length_and_peak(host, marked):
    y, _ = marked
    assert y.shape == host.shape
    snr = 10 * np.log10(np.sum(host**2) / np.sum((y - host) ** 2))
    assert 28.0 <= snr <= 36.0
    assert np.max(np.abs(y)) < 1.0
    # nothing is added above the band: the top of the spectrum is untouched
    spec = np.abs(np.fft.rfft(y - host))
    freqs = np.fft.rfftfreq(host.size, 1 / SR)
    assert spec[freqs > 8500].max() < 1e-3 * spec.max()


def test_payload_is_recovered_from_the_whole_file_and_from_any_excerpt(marked, key):
    y, payload = marked
    found = detect(y, SR, key)
    assert found.present and found.mac_ok and found.payload == payload and found.key_id == key.id
    assert found.false_positive_bound < 1e-6
    rng = np.random.default_rng(1)
    for seconds in (15, 10):
        start = int(rng.integers(0, y.size - seconds * SR))  # any sample, not a frame boundary
        found = detect(y[start:start + seconds * SR], SR, key)
        assert found.mac_ok and found.payload == payload, (seconds, start, found)


def test_detection_works_at_other_rates_and_in_stereo(host, key):
    payload = pack_payload(99)
    for rate in (16000, 24000, 44100, 48000):
        x = resample(host[: 15 * SR], SR, rate)
        found = detect(embed(x, rate, key, payload), rate, key)
        assert found.mac_ok and found.payload == payload, rate
    stereo = np.stack([host[: 15 * SR], 0.5 * host[: 15 * SR]], axis=1)
    y = embed(stereo, SR, key, payload)
    assert y.shape == stereo.shape
    assert detect(y, SR, key).payload == payload
    # a rate change after marking (32 kHz -> 44.1 kHz) is absorbed by the detector's resampling
    assert detect(resample(y.mean(axis=1), SR, 44100), 44100, key).payload == payload


def test_speed_search_finds_a_mark_after_a_speed_change(marked, key):
    y, payload = marked
    slower = resample(y[: 20 * SR], int(SR * 0.97), SR)  # played 3 % slower: longer and lower, like sox speed
    assert not detect(slower, SR, key).mac_ok
    found = detect(slower, SR, key, speed_search=True)
    assert found.mac_ok and found.payload == payload and found.speed == pytest.approx(0.97, abs=0.006)
    assert found.z_threshold > detect(y[: 20 * SR], SR, key).z_threshold  # 50 speeds tried: a higher bar


def test_speed_search_does_not_find_marks_in_unmarked_audio(host, key):
    found = detect(resample(host[: 20 * SR], int(SR * 0.97), SR), SR, key, speed_search=True)
    assert not found.present and not found.mac_ok


def test_unmarked_and_wrong_key_audio_is_not_detected(host, marked, key):
    y, _ = marked
    other = WatermarkKey.generate()
    rng = np.random.default_rng(2)
    zs = []
    for _ in range(25):
        seconds = int(rng.choice([3, 6, 12, 30]))
        start = int(rng.integers(0, host.size - seconds * SR + 1))
        for audio, k in ((host, key), (y, other)):
            found = detect(audio[start:start + seconds * SR], SR, k)
            assert not found.present and not found.mac_ok and found.payload is None
            zs.append(found.z)
            assert found.false_positive_bound > FALSE_POSITIVE_RATE
    assert max(zs) < 5.5  # the threshold is ~6.6: the null stays well below it


def test_pilot_statistic_is_standard_under_the_null(host):
    """Z at one alignment, over many keys on unmarked audio: mean 0, variance 1, Hoeffding tail."""
    from engine.watermark.detect import _block_folds, _pilot_z

    folded = _block_folds(resample(host, SR, DEFAULT_PARAMS.rate), DEFAULT_PARAMS).sum(axis=1)
    z = np.array([_pilot_z(folded, keyed_pattern(WatermarkKey.generate()))[0, 0] for _ in range(300)])
    assert abs(z.mean()) < 0.2 and 0.8 < z.std() < 1.2
    assert np.mean(z > 2.5) <= math.exp(-2.5**2 / 2)


def test_threshold_grows_with_the_number_of_alignments_tried(key):
    short = detect(np.zeros(10 * SR), SR, key)
    long = detect(np.zeros(120 * SR), SR, key)  # windows add tests
    two_keys = detect(np.zeros(10 * SR), SR, [key, WatermarkKey.generate()])
    tests = DEFAULT_PARAMS.block_frames * DEFAULT_PARAMS.phases
    assert tests * math.exp(-short.z_threshold**2 / 2) <= FALSE_POSITIVE_RATE
    assert short.z_threshold < two_keys.z_threshold < long.z_threshold


def test_several_keys_are_tried_at_detection(host):
    ring = Keyring.generate()
    first = ring.primary
    ring.keys.append(WatermarkKey.generate())
    second = ring.keys[-1]
    y = embed(host[: 15 * SR], SR, second, pack_payload(5))
    found = detect(y, SR, ring)
    assert found.mac_ok and found.key_id == second.id != first.id


def test_silence_and_tiny_inputs_are_answered_not_crashed(key):
    for x in (np.zeros(SR * 5), np.zeros(10), np.zeros(0)):
        y = embed(x, SR, key, pack_payload(1))
        assert y.shape == x.shape and np.all(np.isfinite(y))
        found = detect(y, SR, key)
        assert not found.present and not found.mac_ok


def test_very_quiet_audio_is_marked_in_proportion_and_never_misread(key):
    # The mark is a relative gain on the host's own spectrum, so a very quiet clip carries it too,
    # at its level: detecting it there is right. What must never happen is a wrong payload, or a
    # detection in the same quiet noise unmarked.
    quiet = 1e-3 * np.random.default_rng(0).standard_normal(SR * 4)
    y = embed(quiet, SR, key, pack_payload(1))
    assert y.shape == quiet.shape and np.all(np.isfinite(y))
    assert np.abs(y - quiet).max() < 1e-3  # the mark scales with the host
    found = detect(y, SR, key)
    assert not found.mac_ok or unpack_payload(found.payload) == 1
    clean = detect(quiet, SR, key)
    assert not clean.present and not clean.mac_ok


def test_cell_signs_carry_the_coded_message(key):
    payload = pack_payload(12345)
    signs = cell_signs(key, payload)
    pattern = keyed_pattern(key)
    coded = DEFAULT_PARAMS.code.encode(seal(payload, key.mac_key))
    data = pattern.role >= 0
    recovered = (signs * pattern.chip)[data] > 0
    np.testing.assert_array_equal(recovered, coded[pattern.role[data]].astype(bool))
    np.testing.assert_array_equal(signs[pattern.pilot], pattern.chip[pattern.pilot])
