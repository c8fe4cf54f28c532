"""The diary in a real browser: write, read aloud, re-render after an edit, isolation, CSRF, jobs."""

from __future__ import annotations

import pytest
from jobs_fixtures import audio_bytes, wait_until

pytestmark = pytest.mark.browser

# Chunks take a while, so that a reading's stream plays before its job has finished.
SERVER_SETTINGS = {"worker_chunk_delay_s": "0.8"}
SENTENCES = ["Today we walked to the park by the river.", "The ducks were loud and hungry.",
             "We went home before the rain came."]


@pytest.fixture(scope="module")
def writer(web_server, tmp_path_factory):
    """A member with a ready voice (the one-clip CLI upload: enrollment is the wizard's own test)."""
    member = web_server.add_member("Writer")
    clip = tmp_path_factory.mktemp("clip") / "me.wav"
    clip.write_bytes(audio_bytes(4.0))
    made = web_server.cli("voices", "add", str(clip), "-t", "今天天气很好。", "-l", "zh", "--name", "My voice",
                          token=member.token)
    assert made.returncode == 0, made.stderr
    return member


def signed_in(browser_factory, web_server, member, route="diary"):
    page = browser_factory().new_page()
    page.goto(f"{web_server.url}/#/signin")
    page.fill("#signin-token", member.token)
    page.click("form button[type=submit]")
    page.wait_for_url("**/#/diary")
    if route != "diary":
        page.goto(f"{web_server.url}/#/{route}")
    page.locator(f"#main[data-view={route.split('?')[0].split('/')[0]}][data-ready]").wait_for()
    return page


def write_and_read(page, text):
    page.fill("#entry-text", text)
    page.select_option("#entry-language", "en")
    player = page.locator("#reading .player")
    before = player.get_attribute("data-job-id") if player.count() else None
    page.click("#entry-read")
    page.wait_for_function("""before => {
      const p = document.querySelector('#reading .player');
      return p && p.dataset.jobId !== before && p.dataset.jobStatus === 'succeeded';
    }""", arg=before, timeout=240_000)
    return player.get_attribute("data-job-id")


# Every player and download of synthesised audio on a page, not inside a box with the AI-generated label.
UNLABELLED = """() => [...document.querySelectorAll('audio, a[download]')]
  .filter((e) => !e.closest('.ai-labelled')?.querySelector('.ai-label')).map((e) => e.outerHTML)"""


def test_write_an_entry_and_hear_it_read(web_server, writer, browser_factory, screenshot):
    page = signed_in(browser_factory, web_server, writer)
    job_id = write_and_read(page, " ".join(SENTENCES))
    player = page.locator("#reading .player")
    # The audio element (or the streamed AudioContext) really advanced, and the job finished.
    wait_until(lambda: float(player.get_attribute("data-played-seconds") or 0) > 0.2, 60, 0.2, "playback")
    with web_server.client(writer.token) as api:
        job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" and job["progress"]["done"] == job["progress"]["total"] >= 1
    assert page.locator("#reading .ai-label").first.is_visible()
    assert page.locator("#reading a[download]").get_attribute("aria-label").endswith("(AI 生成 / AI-generated)")
    assert page.evaluate(UNLABELLED) == []
    entries = page.locator(".days a:not(#entry-new)")
    page.goto(f"{web_server.url}/#/diary")
    page.locator("#main[data-view=diary][data-ready]").wait_for()
    assert entries.count() == 1
    screenshot(page, "diary")


def test_an_edit_of_one_sentence_synthesises_one_chunk(web_server, writer, browser_factory):
    page = signed_in(browser_factory, web_server, writer)
    first = write_and_read(page, " ".join(SENTENCES))
    edited = " ".join([SENTENCES[0], "The geese were quiet.", SENTENCES[2]])
    second = write_and_read(page, edited)
    assert second != first
    summary = page.locator("#reading-summary")
    assert "1 of 3 sentences changed" in summary.inner_text()
    with web_server.client(writer.token) as api:
        before, after = (api.get(f"/v1/jobs/{j}").json()["progress"] for j in (first, second))
    assert after["total"] == before["total"] and after["reused"] == after["total"] - 1
    summary.get_by_text(f"Rendered 1 of {after['total']} chunks").wait_for()


def test_another_member_sees_none_of_it(web_server, writer, browser_factory, screenshot):
    other = web_server.add_member("Neighbour")
    with web_server.client(writer.token) as api:
        entry = api.get("/v1/entries").json()["entries"][0]
        voice = api.get("/v1/voices").json()[0]
        job = api.get("/v1/jobs").json()["items"][0]
    page = signed_in(browser_factory, web_server, other)
    assert page.locator(".days a:not(#entry-new)").count() == 0
    page.goto(f"{web_server.url}/#/voices")
    page.locator("#main[data-view=voices][data-ready]").wait_for()
    assert page.locator("#voice-list li").count() == 0
    page.goto(f"{web_server.url}/#/jobs")
    page.locator("#main[data-view=jobs][data-ready]").wait_for()
    assert page.locator("#jobs-table tbody tr").count() == 0
    for path in (f"/v1/entries/{entry['id']}", f"/v1/voices/{voice['voice_id']}", f"/v1/jobs/{job['job_id']}"):
        assert page.evaluate("p => fetch(p).then(r => r.status)", path) == 404
    page.goto(f"{web_server.url}/#/diary?entry={entry['id']}")
    page.locator("#main[data-view=diary][data-ready]").wait_for()
    assert page.locator("#main .error").inner_text() != ""
    assert entry["text"] not in page.content()


FORGED_POST = """async ([withToken]) => {
  const headers = {'Content-Type': 'application/json'};
  if (withToken) headers['X-CSRF-Token'] = (await (await fetch('/v1/sessions/current')).json()).csrf_token;
  const r = await fetch('/v1/entries', {method: 'POST', headers, credentials: 'include',
    body: JSON.stringify({text: 'forged', language: 'en', entry_date: '2026-12-01'})});
  return [r.status, await r.text()];
}"""


def test_a_post_without_the_csrf_token_is_refused(web_server, writer, browser_factory):
    page = signed_in(browser_factory, web_server, writer)
    status, body = page.evaluate(FORGED_POST, [False])
    assert status == 403 and "X-CSRF-Token" in body
    status, _ = page.evaluate(FORGED_POST, [True])
    assert status == 201


def test_a_cross_site_form_post_carries_no_session(web_server, writer, browser_factory):
    page = signed_in(browser_factory, web_server, writer)
    # Another site (localhost is not 127.0.0.1) posts a form at the API: the SameSite=Strict cookie stays home.
    other_site = web_server.url.replace("127.0.0.1", "localhost")
    page.route(f"{other_site}/evil", lambda route: route.fulfill(content_type="text/html", body=(
        f'<form id=f method=post action="{web_server.url}/v1/entries" enctype="text/plain">'
        '<input name=\'{"text":"x","language":"en","entry_date":"2026-12-01","pad":"\' value=\'"}\'></form>')))
    page.goto(f"{other_site}/evil")
    with page.expect_response(f"{web_server.url}/v1/entries") as answer:
        page.evaluate("document.getElementById('f').submit()")
    assert answer.value.status in (401, 403, 422)
    with web_server.client(writer.token) as api:
        assert all(e["text"] != "x" for e in api.get("/v1/entries").json()["entries"])


def test_jobs_page_shows_progress_and_cancels(web_server, writer, browser_factory, screenshot):
    with web_server.client(writer.token) as api:
        voice_id = api.get("/v1/voices").json()[0]["voice_id"]
        long_text = " ".join(f"Sentence number {i} of a long diary." for i in range(40))
        jobs = [api.post("/v1/syntheses", json={"text": long_text, "voice_id": voice_id, "text_lang": "en",
                                                "seed": i}).json()["job_id"] for i in range(2)]
    page = signed_in(browser_factory, web_server, writer, "jobs")
    screenshot(page, "jobs")
    assert page.locator("#jobs-table a[download]").count() >= 1 and page.evaluate(UNLABELLED) == []
    for job_id in reversed(jobs):  # the queued one first, then the running one
        row = page.locator(f"#jobs-table tr[data-job-id='{job_id}']")
        row.locator(".job-cancel").click()
    for job_id in jobs:
        page.locator(f"#jobs-table tr[data-job-id='{job_id}'][data-status=cancelled]").wait_for(timeout=120_000)
    with web_server.client(writer.token) as api:
        assert {api.get(f"/v1/jobs/{j}").json()["status"] for j in jobs} == {"cancelled"}


# When the page's clock first moves, ask the server how far the job is: an answer of "running" came
# after playback had started, so playback started before the job finished.
WATCH_FIRST_SOUND = """() => {
  window.firstSound = null;
  new MutationObserver(async (records) => {
    for (const r of records) {
      const el = r.target;
      if (window.firstSound || !el.matches('#reading .player') || !(+el.dataset.playedSeconds > 0)) continue;
      window.firstSound = {pending: true};
      const job = await (await fetch(`/v1/jobs/${el.dataset.jobId}`)).json();
      window.firstSound = {status: job.status, done: job.progress.done, total: job.progress.total,
                           state: el.dataset.state};
    }
  }).observe(document.body, {subtree: true, attributes: true, attributeFilter: ['data-played-seconds']});
}"""


def test_read_to_me_starts_playing_from_the_job_stream_before_the_job_finishes(web_server, writer,
                                                                               browser_factory):
    page = signed_in(browser_factory, web_server, writer)
    asked = []
    page.on("request", lambda r: asked.append(r.headers.get("accept")) if r.url.endswith("/audio") else None)
    page.evaluate(WATCH_FIRST_SOUND)
    write_and_read(page, "The stream starts here. Then it goes on a while. And it ends in the end.")
    player = page.locator("#reading .player")
    page.wait_for_function("() => window.firstSound && !window.firstSound.pending")
    first = page.evaluate("window.firstSound")
    # the real GET /v1/jobs/{id}/audio (no stand-in): its WAV pieces went into the AudioContext
    assert asked == ["audio/wav"] and first["state"] == "streaming"
    assert first["status"] == "running" and first["done"] < first["total"] == 3, first
    page.wait_for_function("() => document.querySelector('#reading .player').dataset.state === 'done'")
    assert "played while it rendered" in player.inner_text()
    assert player.locator("audio[src]").count() == 1 and player.locator(".ai-label").first.is_visible()
