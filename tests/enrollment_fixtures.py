"""Session fixtures for the enrollment tests: espeak-ng takes made once per session (tens of ms each).

Test modules load them with ``pytest_plugins = ["enrollment_fixtures"]``.
"""

from __future__ import annotations

import numpy as np
import pytest
from enrollment_audio import SPEAKER, padded

from engine.enrollment import espeak
from engine.enrollment.scripts import get_script


@pytest.fixture(scope="session")
def en_sentence() -> tuple[np.ndarray, int, str]:
    """One English script sentence read by SPEAKER, with 0.6 s of silence around it."""
    text = get_script("en-1").sentences[0]
    samples, rate = espeak.say(text, SPEAKER)
    return padded(samples, rate), rate, text


@pytest.fixture(scope="session")
def zh_sentence() -> tuple[np.ndarray, int, str]:
    text = get_script("zh-1").sentences[0]
    samples, rate = espeak.say(text, espeak.ZH_VOICE)
    return padded(samples, rate), rate, text


@pytest.fixture(scope="session")
def en_long_take() -> tuple[np.ndarray, int, list[tuple[float, float]]]:
    """The whole en-1 script read by SPEAKER in one take, with each sentence's true span."""
    return espeak.read_with_pauses(get_script("en-1").sentences, SPEAKER, seed=1)


@pytest.fixture(scope="session")
def zh_long_take() -> tuple[np.ndarray, int, list[tuple[float, float]]]:
    return espeak.read_with_pauses(get_script("zh-1").sentences, espeak.ZH_VOICE, seed=2)
