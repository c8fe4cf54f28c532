"""The enrollment wizard in a real browser, fed a generated microphone (Chromium's fake capture device).

The fake device loops one WAV file for the whole session, so the file is built as a room that the
page meets at any moment: a few seconds of room tone (white noise at a known level), then script
sentences read by espeak-ng with pauses between them, all clean but one, which is read over loud
noise that starts before it and ends after it. Whichever take meets that sentence is refused for its
noise and re-recorded; the wizard records takes by voice activity, so a take starts at a sentence
and stops after it. Expected levels are computed here from the file itself.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from enrollment_audio import SPEAKER, needs_espeak

from engine.audio import resample
from engine.enrollment import espeak
from engine.enrollment.scripts import get_script

pytestmark = [pytest.mark.browser, needs_espeak]

RATE = 48000  # Chromium's capture rate: no resampling between the file and the page's meters
WINDOW_S = 0.05  # the page's meter window (data-window-ms, checked below)
ROOM_DBFS, LOUD_ROOM_DBFS = -60.0, -25.0  # background noise, and the noise the refused take is read over
SPEECH_PEAK = 0.5  # -6 dBFS: every sentence is scaled to the same peak
ROOM_TONE_S, PAUSE_S, NOISE_MARGIN_S = 4.0, 2.2, 1.0
# Sentences per loop of the file: three in all, so that the noisy one is met whether the wizard takes
# every sentence of the file or (when its turn-around outlasts a pause) every other one.
CLEAN, NOISY = 2, 1
MAX_TAKES = 40
# the few takes of one enrollment are enough to fine-tune on (the page's fine-tune panel is driven below)
SERVER_SETTINGS = {"finetune_min_minutes": "0.1"}


def db(power: float) -> float:
    return 10 * math.log10(max(power, 1e-12))


def noise(seconds: float, dbfs: float, rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(int(seconds * RATE)) * 10 ** (dbfs / 20)).astype(np.float32)


def spoken(text: str) -> np.ndarray:
    samples, rate = espeak.say(text, SPEAKER)
    at_rate = resample(torch.from_numpy(samples)[None], rate, RATE)[0].numpy()
    return (at_rate * SPEECH_PEAK / np.abs(at_rate).max()).astype(np.float32)


def microphone_file(path: Path) -> np.ndarray:
    """room tone | (pause, clean sentence) x CLEAN | pause, loud noise around a sentence | pause."""
    rng = np.random.default_rng(7)
    sentences = [spoken(s) for s in get_script("en-1").sentences[: CLEAN + NOISY]]
    parts = [np.zeros(int(ROOM_TONE_S * RATE), np.float32)]
    for speech in sentences[:CLEAN]:
        parts += [np.zeros(int(PAUSE_S * RATE), np.float32), speech]
    loud = np.concatenate([np.zeros(int(NOISE_MARGIN_S * RATE), np.float32), sentences[CLEAN],
                           np.zeros(int(NOISE_MARGIN_S * RATE), np.float32)])
    parts += [np.zeros(int(PAUSE_S * RATE), np.float32), loud + noise(loud.size / RATE, LOUD_ROOM_DBFS, rng),
              np.zeros(int(PAUSE_S * RATE), np.float32)]
    signal = np.concatenate(parts)
    signal += noise(signal.size / RATE, ROOM_DBFS, rng)
    sf.write(path, signal, RATE, subtype="PCM_16")
    return sf.read(path, dtype="float32")[0]  # as Chromium reads it: 16-bit


def window_levels(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(RMS dBFS, peak dBFS) of consecutive meter windows."""
    size = int(WINDOW_S * RATE)
    frames = signal[: signal.size // size * size].reshape(-1, size)
    rms = 10 * np.log10(np.maximum(np.mean(frames.astype(np.float64) ** 2, axis=1), 1e-12))
    peak = 20 * np.log10(np.maximum(np.abs(frames).max(axis=1), 1e-6))
    return rms, peak


RECORD_METERS = """() => {
  window.meterLog = [];
  new MutationObserver((records) => {
    for (const r of records) {
      const d = r.target.dataset;
      window.meterLog.push({rms: +d.rmsDbfs, peak: +d.peakDbfs, noise: +d.noiseDbfs,
                            snr: d.snrDb === '' ? null : +d.snrDb, windowMs: +d.windowMs});
    }
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-rms-dbfs']});
}"""


class Wizard:
    """Drives the page through its steps and remembers what each take's report said."""

    def __init__(self, page, screenshot) -> None:  # noqa: ANN001 - playwright Page, the harness fixture
        self.page, self.screenshot = page, screenshot
        self.refusals: list[dict] = []
        self.accepted = 0
        self.shots: set[str] = set()

    def step(self) -> str:
        return self.page.locator("#main").get_attribute("data-step") or ""

    def shot(self, name: str) -> None:
        if name not in self.shots:
            self.shots.add(name)
            self.screenshot(self.page, f"enroll-{name}")

    def take(self) -> str:
        """Record until the server accepts the take on screen; returns the step it was on."""
        step = self.step()
        self.page.click("[data-action=record]")
        for _ in range(MAX_TAKES):
            report = self.page.locator(".take-report[data-status]")
            report.wait_for(timeout=60_000)
            if report.get_attribute("data-status") != "refused":
                self.accepted += 1
                self.shot(step)
                return step
            self.refusals.append({
                "step": step, "sentence": self.page.locator("[data-sentence]").get_attribute("data-sentence")
                if step == "take" else None,
                "messages": report.locator(".messages li").all_inner_texts(),
                "gates": [g.get_attribute("data-gate") for g in report.locator("[data-gate]").all()]})
            self.shot("refused")
            report.locator("[data-action=rerecord]").click()
            self.page.locator(".take-report:not([data-status])").wait_for(state="attached")
        raise AssertionError(f"no take accepted after {MAX_TAKES} tries: {self.refusals}")


RECORD_CONSTRAINTS = """() => {
  const ask = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    window.askedFor = constraints;
    const stream = await ask(constraints);
    window.granted = stream.getAudioTracks()[0].getSettings();
    return stream;
  };
}"""


def open_wizard(page, web_server, member) -> None:  # noqa: ANN001 - playwright Page, harness objects
    page.goto(member.invite_link)
    page.wait_for_url("**/#/diary")
    page.goto(f"{web_server.url}/#/enroll")
    page.locator("#main[data-step=guide]").wait_for(timeout=90_000)  # the first call loads the scripts


def test_the_microphone_is_raw_and_a_silent_take_warns(web_server, browser_factory, screenshot, tmp_path):
    quiet = noise(8.0, -75.0, np.random.default_rng(3))
    sf.write(tmp_path / "quiet.wav", quiet, RATE, subtype="PCM_16")
    member = web_server.add_member("Quinn")
    page = browser_factory(tmp_path / "quiet.wav").new_page()
    open_wizard(page, web_server, member)
    page.evaluate(RECORD_CONSTRAINTS)
    page.check("#enroll-accept")
    page.click("[data-action=start]")
    page.click("[data-action=measure]")
    page.locator(".room-result[data-quiet=true]").wait_for()
    audio = page.evaluate("window.askedFor.audio")
    assert audio["echoCancellation"] is audio["noiseSuppression"] is audio["autoGainControl"] is False
    granted = page.evaluate("window.granted")
    assert granted["echoCancellation"] is False and granted["autoGainControl"] is False
    page.click("[data-action=continue]")
    page.click("[data-action=record]")
    page.locator(".take-panel[data-state=quiet-warning] .take-state.warn").wait_for(timeout=15_000)
    screenshot(page, "enroll-silent-warning")
    page.click("[data-action=stop]")
    page.locator(".take-report[data-status=refused] [data-action=rerecord]").wait_for()


def test_the_wizard_enrolls_a_voice_from_the_microphone(web_server, browser_factory, screenshot, tmp_path):
    fed = microphone_file(tmp_path / "microphone.wav")
    member = web_server.add_member("Wren")
    page = browser_factory(tmp_path / "microphone.wav").new_page()
    open_wizard(page, web_server, member)
    assert "own voice" in page.locator(".notice").inner_text() and page.locator(".tips li").count() == 3
    page.click("[data-action=start]")
    page.locator(".guide [role=alert]").get_by_text("tick the box").wait_for()  # the notice must be accepted
    page.check("#enroll-accept")
    page.select_option("#enroll-script", "en-1")
    wizard = Wizard(page, screenshot)
    wizard.shot("guide")
    page.click("[data-action=start]")

    page.locator("#main[data-step=roomtone]").wait_for()
    page.evaluate(RECORD_METERS)
    page.click("[data-action=measure]")
    room = page.locator(".room-result[data-noise-dbfs]")
    room.wait_for()
    assert abs(float(room.get_attribute("data-noise-dbfs")) - ROOM_DBFS) < 3
    wizard.shot("roomtone")
    page.click("[data-action=continue]")

    sentences = len(get_script("en-1").sentences)
    page.locator("#main[data-step=take]").wait_for()
    while wizard.step() == "take":
        wizard.take()
        page.click("[data-action=next]")
        page.locator(".take-report[data-status]").wait_for(state="detached")
    assert wizard.step() == "consent" and wizard.accepted == sentences
    assert "I am Wren" in page.locator(".statement").inner_text()
    wizard.take()
    page.click("[data-action=finish]")
    page.locator("#main[data-step=building] progress").wait_for()
    wizard.shot("building")

    meters = page.evaluate("window.meterLog")
    assert {m["windowMs"] for m in meters} == {WINDOW_S * 1000}
    file_rms, file_peak = window_levels(fed)
    rms = np.array([m["rms"] for m in meters])
    print(f"page/file dB: rms p95 {np.percentile(rms, 95):.1f}/{np.percentile(file_rms, 95):.1f}, "
          f"p10 {np.percentile(rms, 10):.1f}/{np.percentile(file_rms, 10):.1f}, peak "
          f"{max(m['peak'] for m in meters):.1f}/{file_peak.max():.1f}; {len(meters)} readings, "
          f"{wizard.accepted} takes accepted, {len(wizard.refusals)} refused")
    assert rms.max() - rms.min() > 30, "the level meter moves with the speech"
    assert abs(np.percentile(rms, 95) - np.percentile(file_rms, 95)) < 3
    assert abs(np.percentile(rms, 10) - np.percentile(file_rms, 10)) < 3
    assert abs(max(m["peak"] for m in meters) - file_peak.max()) < 3
    assert abs(np.median([m["noise"] for m in meters]) - ROOM_DBFS) < 3
    snrs = [m["snr"] for m in meters if m["snr"] is not None]
    threshold = web_server.client(member.token).get("/v1/enrollments/thresholds").json()["sentence"]["min_snr_db"]
    assert max(snrs) > threshold > min(snrs), "the SNR meter falls below the gate over the noisy sentence"

    noisy = [r for r in wizard.refusals if {"snr", "noise_floor"} & set(r["gates"])]
    assert noisy and all(r["messages"] for r in noisy), wizard.refusals
    assert any("nois" in m.lower() for r in noisy for m in r["messages"])

    page.locator("#main[data-step=result]").wait_for(timeout=600_000)
    check = page.locator(".speaker-check")
    assert check.get_attribute("data-consent") == "verified"
    voices = web_server.client(member.token).get("/v1/voices").json()
    assert [v["status"] for v in voices] == ["ready"]
    for kind in ("recording", "synthesis"):
        page.evaluate(f"document.querySelector('audio[data-ab={kind}]').play()")
        page.locator(f"audio[data-ab={kind}][data-played=true]").wait_for()
    assert page.locator("figure[data-ab=synthesis] .ai-label").is_visible()
    similarity = float(page.locator(".ab").get_attribute("data-similarity"))
    assert -1 <= similarity <= 1
    wizard.shot("result")

    voice_id = voices[0]["voice_id"]
    add_takes_to_the_voice(page, web_server, member, voice_id, wizard)
    add_a_style_to_the_voice(page, web_server, voice_id, wizard)
    fine_tune_from_the_page(page, web_server, member, voice_id, wizard)


def reopen_wizard(page, web_server, voice_id: str, link: str, mode: str) -> None:  # noqa: ANN001
    """From the voice's page into the wizard, through its room tone (measured again until it is quiet)."""
    page.goto(f"{web_server.url}/#/voice/{voice_id}")
    page.locator("#main[data-view=voice][data-ready]").wait_for()
    page.click(link)
    page.locator(f"#main[data-mode={mode}][data-step=guide]").wait_for()
    page.check("#enroll-accept")
    page.select_option("#enroll-script", "en-1")
    if mode == "style":
        page.fill("#enroll-style-name", "gentle")
    page.click("[data-action=start]")
    page.locator("#main[data-step=roomtone]").wait_for()
    for _ in range(10):  # the looping fake microphone may be mid-sentence
        page.click("[data-action=measure]")
        page.locator(".room-result[data-quiet]").wait_for()
        if page.locator(".room-result").get_attribute("data-quiet") == "true":
            break
    page.click("[data-action=continue]")


def add_takes_to_the_voice(page, web_server, member, voice_id: str, wizard: Wizard) -> None:  # noqa: ANN001
    """More takes for the ready voice: no consent step, finished after one sentence; the minutes grow."""
    with web_server.client(member.token) as api:
        before = api.get(f"/v1/voices/{voice_id}/consent").json()["clean_seconds"]
    reopen_wizard(page, web_server, voice_id, "#voice-takes", "takes")
    page.locator("#main[data-step=take]").wait_for()
    assert "takes to “My voice”" in page.locator("#main h1").inner_text()
    wizard.take()
    page.click("[data-action=finish]")
    minutes = page.locator("#main[data-step=updated] .minutes")
    minutes.wait_for(timeout=300_000)
    assert float(minutes.get_attribute("data-before")) == before < float(minutes.get_attribute("data-after"))
    wizard.shot("more-takes")
    with web_server.client(member.token) as api:
        after = api.get(f"/v1/voices/{voice_id}/consent").json()["clean_seconds"]
        assert after == float(minutes.get_attribute("data-after"))
        assert [v["status"] for v in api.get("/v1/voices").json()] == ["ready"]  # the same voice, grown


def add_a_style_to_the_voice(page, web_server, voice_id: str, wizard: Wizard) -> None:  # noqa: ANN001
    """A style read through the wizard: one take, sent with its name and transcript; the voice lists it."""
    reopen_wizard(page, web_server, voice_id, "#voice-style", "style")
    page.locator("#main[data-step=style][data-mode=style]").wait_for()
    wizard.take()
    page.locator("#main[data-step=styled] .styles li[data-style=gentle]").wait_for(timeout=120_000)
    assert "matches the voice's speaker" in page.locator(".take-report").inner_text()
    wizard.shot("styled")
    page.click("[data-action=to-voice]")
    page.locator("#main[data-view=voice][data-ready]").wait_for()
    assert "gentle" in page.locator("#voice-facts").inner_text()
    page.goto(f"{web_server.url}/#/diary")
    page.locator("#main[data-view=diary][data-ready] #entry-style").wait_for()  # the diary offers the style
    assert page.locator("#entry-style option").evaluate_all("os => os.map(o => o.value)") == ["enrollment", "gentle"]


def fine_tune_from_the_page(page, web_server, member, voice_id: str, wizard: Wizard) -> None:  # noqa: ANN001
    """The fine-tune button starts the job and its bar follows the steps; cancelled, the panel says so."""
    page.goto(f"{web_server.url}/#/voice/{voice_id}")
    page.locator("#main[data-view=voice][data-ready]").wait_for()
    page.click("#finetune-start")
    page.wait_for_function("() => +document.querySelector('#finetune progress').value > 0", timeout=120_000)
    status = page.locator("#finetune-status")
    assert "steps" in status.inner_text() or "finished" in status.inner_text()
    wizard.shot("finetune")
    with web_server.client(member.token) as api:
        job = api.get("/v1/jobs?kind=finetune").json()["items"][0]
        api.post(f"/v1/jobs/{job['job_id']}/cancel")
    page.wait_for_function("() => /finished|ended: cancelled/.test(document.querySelector('#finetune-status')"
                           ".textContent)", timeout=120_000)
    assert page.locator("#finetune-start").is_enabled()
