"""The HTTP contract, request by request: auth, validation, isolation, idempotency, quotas, deletion.

These run the real FastAPI app over SQLite and the local storage folder, with a publisher that
records what would reach the broker (no worker runs, so jobs stay queued unless a test moves them).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from jobs_fixtures import audio_bytes, embedded_settings
from sqlalchemy import func, select, update

from producer.api import create_app
from shared import job_state, service
from shared.service import open_backend
from shared.tables import Job, JobChunk, Voice


class Stack:
    def __init__(self, data_dir, **overrides) -> None:
        self.published: list[job_state.Dispatch] = []
        self.settings = embedded_settings(data_dir, **overrides)
        self.backend = open_backend(self.settings, self.published.append)
        self.client = TestClient(create_app(self.settings, self.backend))
        self.admin, self.admin_token = service.create_member(self.backend, "admin", admin=True)

    def member(self, name: str) -> dict[str, str]:
        r = self.client.post("/v1/members", json={"name": name}, headers=self.auth(self.admin_token))
        assert r.status_code == 201, r.text
        return self.auth(r.json()["token"])

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def upload(self, headers, audio: bytes | None = None, **fields):
        data = {"transcript": "今天天气很好。", "language": "zh", "name": "me", **fields}
        return self.client.post("/v1/voices", files={"audio": ("ref.wav", audio or audio_bytes(4.0))},
                                data=data, headers=headers)

    def ready_voice(self, headers) -> str:
        """A voice whose enrollment finished (the worker's part, done here through the job transitions)."""
        r = self.upload(headers)
        assert r.status_code == 202, r.text
        voice_id, job_id = r.json()["voice_id"], r.json()["job_id"]
        self.run_to_success(job_id)
        with self.backend.db.write() as session:
            assert service.voice_ready(session, voice_id, f"members/x/voices/{voice_id}/profile", 10)
        return voice_id

    def run_to_success(self, job_id: str, **result) -> None:
        with self.backend.db.write() as session:
            attempt = job_state.claim(session, job_id, "test-worker", 60)
            assert attempt is not None
            assert job_state.finish(session, job_id, attempt, **result)

    def count(self, model, *where) -> int:
        with self.backend.db.read() as session:
            return session.exec(select(func.count()).select_from(model).where(*where)).one()[0]

    def stored(self) -> list[str]:
        return self.backend.storage.list("members/")

    def synth(self, headers, text="今天天气很好。", key=None, **body):
        extra = {"Idempotency-Key": key} if key else {}
        return self.client.post("/v1/syntheses", json={"text": text, **body}, headers={**headers, **extra})


@pytest.fixture
def stack(tmp_data_dir):
    s = Stack(tmp_data_dir)
    yield s
    s.client.close()


# --- authentication ------------------------------------------------------------------------------

def test_missing_token_is_401_with_a_bearer_challenge(stack):
    r = stack.client.get("/v1/jobs")
    assert r.status_code == 401
    assert "Bearer" in r.json()["detail"] and r.headers["www-authenticate"] == "Bearer"


def test_wrong_token_is_401(stack):
    r = stack.client.get("/v1/voices", headers=stack.auth("edy_not-a-real-token"))
    assert r.status_code == 401 and r.json() == {"detail": "invalid API token"}


def test_only_an_admin_creates_members_and_the_token_is_stored_hashed(stack):
    bob = stack.member("bob")
    r = stack.client.post("/v1/members", json={"name": "eve"}, headers=bob)
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert stack.client.get("/v1/members/me", headers=bob).json()["name"] == "bob"
    token = bob["Authorization"].split()[1]
    with stack.backend.db.read() as session:
        stored = session.exec(select(service.ApiToken.token_hash)).scalars().all()
    assert token not in stored and service.hash_token(token) in stored


def test_duplicate_member_name_is_409(stack):
    stack.member("bob")
    r = stack.client.post("/v1/members", json={"name": "bob"}, headers=stack.auth(stack.admin_token))
    assert r.status_code == 409 and "bob" in r.json()["detail"]


# --- voice uploads -------------------------------------------------------------------------------

def test_upload_creates_a_voice_and_a_queued_enrollment_job_published_by_id_only(stack):
    me = stack.member("ann")
    r = stack.upload(me)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["kind"] == "enroll" and body["status"] == "queued"
    assert r.headers["location"] == f"/v1/jobs/{body['job_id']}"
    assert stack.client.get(f"/v1/voices/{body['voice_id']}", headers=me).json()["status"] == "enrolling"
    assert [d.job_id for d in stack.published] == [body["job_id"]]
    assert len(stack.stored()) == 1  # the reference recording


@pytest.mark.parametrize("case, status, words", [
    ("not audio", 415, "not audio we can read"),
    ("too short", 422, "must be 3 to 10 s"),
    ("too long", 422, "must be 3 to 10 s"),
    ("empty transcript", 422, "transcript is empty"),
    ("bad language", 422, "language"),
    ("unknown field", 422, "unknown fields: mood"),
    ("missing audio", 422, "audio"),
])
def test_bad_uploads_are_refused_and_leave_nothing_behind(stack, case, status, words):
    me = stack.member("ann")
    audio = {"not audio": b"this is a diary, not a recording" * 100, "too short": audio_bytes(1.0),
             "too long": audio_bytes(12.0)}.get(case)
    fields = {"empty transcript": {"transcript": "   "}, "bad language": {"language": "klingon"},
              "unknown field": {"mood": "happy"}}.get(case, {})
    if case == "missing audio":
        r = stack.client.post("/v1/voices", data={"transcript": "x", "name": "n"}, headers=me)
    else:
        r = stack.upload(me, audio, **fields)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert stack.count(Voice) == 0 and stack.count(Job) == 0
    assert stack.stored() == [] and stack.published == []


def test_oversized_upload_is_413_and_leaves_nothing_behind(tmp_data_dir):
    stack = Stack(tmp_data_dir, max_upload_bytes=100_000)
    me = stack.member("ann")
    r = stack.upload(me, audio_bytes(6.0))  # ~384 kB of WAV
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert stack.count(Voice) == 0 and stack.stored() == []


def test_upload_larger_than_the_limit_but_within_framing_is_413(tmp_data_dir):
    stack = Stack(tmp_data_dir, max_upload_bytes=200_000)
    me = stack.member("ann")
    r = stack.upload(me, audio_bytes(3.5))  # 224 kB: passes the body cap, not the file cap
    assert r.status_code == 413 and "200000" in r.json()["detail"]
    assert stack.count(Voice) == 0 and stack.stored() == []


# --- syntheses: validation -----------------------------------------------------------------------

@pytest.mark.parametrize("body, status, words", [
    ({"text": ""}, 422, "text"),
    ({"text": " \n\t "}, 422, "text is empty"),
    ({"text": "好" * 1001}, 422, "limit is 1000"),
    ({"mood": "happy"}, 422, "mood: unknown field"),
    ({"top_k": 0}, 422, "top_k"),
    ({"format": "aiff"}, 422, "format"),
    ({"text_lang": "xx"}, 422, "text_lang"),
])
def test_bad_synthesis_requests_are_refused_and_leave_nothing_behind(tmp_data_dir, body, status, words):
    stack = Stack(tmp_data_dir, max_text_chars=1000)
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    before = stack.count(Job)
    r = stack.synth(me, **{"voice_id": voice_id, **body})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert stack.count(Job) == before


def test_unknown_voice_is_404(stack):
    me = stack.member("ann")
    r = stack.synth(me, voice_id="0" * 32)
    assert r.status_code == 404 and r.json() == {"detail": f"voice {'0' * 32} not found"}
    assert stack.synth(me, voice_id="../../etc").status_code == 404


def test_a_voice_still_enrolling_cannot_be_used_yet(stack):
    me = stack.member("ann")
    voice_id = stack.upload(me).json()["voice_id"]
    r = stack.synth(me, voice_id=voice_id)
    assert r.status_code == 409 and "still being enrolled" in r.json()["detail"]


def test_synthesis_is_queued_with_text_in_the_database_only(stack):
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    r = stack.synth(me, text="我的秘密日记。", voice_id=voice_id, seed=7, format="flac")
    assert r.status_code == 202
    job = stack.client.get(f"/v1/jobs/{r.json()['job_id']}", headers=me).json()
    assert job["status"] == "queued" and job["kind"] == "synthesis" and job["queue_position"] == 0
    dispatch = stack.published[-1]
    assert dispatch.job_id == job["job_id"] and "秘密" not in repr(dispatch)
    with stack.backend.db.read() as session:
        row = session.get(Job, job["job_id"])
    assert row.text == "我的秘密日记。" and row.params == {"seed": 7, "text_lang": "zh"} and row.format == "flac"


# --- isolation between members -------------------------------------------------------------------

def test_another_members_voices_and_jobs_answer_404_like_missing_ones(stack):
    ann, bob = stack.member("ann"), stack.member("bob")
    voice_id = stack.ready_voice(ann)
    job_id = stack.synth(ann, voice_id=voice_id).json()["job_id"]
    missing_voice, missing_job = "f" * 32, "e" * 32

    def same_as_missing(method, path, missing_path, **kw):
        theirs = stack.client.request(method, path, headers=bob, **kw)
        none = stack.client.request(method, missing_path, headers=bob, **kw)
        assert theirs.status_code == none.status_code == 404
        assert theirs.json()["detail"].split()[0] == none.json()["detail"].split()[0]

    same_as_missing("GET", f"/v1/voices/{voice_id}", f"/v1/voices/{missing_voice}")
    same_as_missing("DELETE", f"/v1/voices/{voice_id}", f"/v1/voices/{missing_voice}")
    same_as_missing("POST", f"/v1/voices/{voice_id}/finetune", f"/v1/voices/{missing_voice}/finetune")
    same_as_missing("GET", f"/v1/jobs/{job_id}", f"/v1/jobs/{missing_job}")
    same_as_missing("POST", f"/v1/jobs/{job_id}/cancel", f"/v1/jobs/{missing_job}/cancel")
    assert stack.synth(bob, voice_id=voice_id).status_code == 404
    assert stack.client.get("/v1/voices", headers=bob).json() == []
    assert stack.client.get("/v1/jobs", headers=bob).json()["total"] == 0
    # Nothing of ann's changed.
    assert stack.client.get(f"/v1/jobs/{job_id}", headers=ann).json()["status"] == "queued"


# --- idempotency ---------------------------------------------------------------------------------

def test_the_same_idempotency_key_returns_the_same_job(stack):
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    first = stack.synth(me, voice_id=voice_id, key="entry-2026-11-24")
    again = stack.synth(me, voice_id=voice_id, key="entry-2026-11-24")
    assert first.status_code == again.status_code == 202
    assert first.json()["job_id"] == again.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert stack.count(Job, Job.kind == "synthesis") == 1


def test_an_idempotency_key_reused_for_another_request_is_409(stack):
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    stack.synth(me, text="第一篇。", voice_id=voice_id, key="k1")
    r = stack.synth(me, text="第二篇。", voice_id=voice_id, key="k1")
    assert r.status_code == 409 and "different request" in r.json()["detail"]


def test_idempotency_keys_belong_to_one_member(stack):
    ann, bob = stack.member("ann"), stack.member("bob")
    a = stack.synth(ann, voice_id=stack.ready_voice(ann), key="same").json()["job_id"]
    b = stack.synth(bob, voice_id=stack.ready_voice(bob), key="same").json()["job_id"]
    assert a != b


# --- quotas --------------------------------------------------------------------------------------

def test_too_many_queued_jobs_is_429(tmp_data_dir):
    stack = Stack(tmp_data_dir, quota_queued_jobs=3)
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    for i in range(3):
        assert stack.synth(me, text=f"第{i}篇。", voice_id=voice_id).status_code == 202
    r = stack.synth(me, text="再来一篇。", voice_id=voice_id)
    assert r.status_code == 429 and "limit is 3" in r.json()["detail"] and "retry-after" in r.headers
    other = stack.member("bob")
    assert stack.synth(other, voice_id=stack.ready_voice(other)).status_code == 202  # quotas are per member


def test_characters_per_day_quota_is_429(tmp_data_dir):
    stack = Stack(tmp_data_dir, quota_chars_per_day=30)
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    assert stack.synth(me, text="好" * 20, voice_id=voice_id).status_code == 202
    r = stack.synth(me, text="好" * 11, voice_id=voice_id)
    assert r.status_code == 429 and "characters" in r.json()["detail"]
    assert int(r.headers["retry-after"]) > 0
    assert stack.synth(me, text="好" * 10, voice_id=voice_id).status_code == 202


def test_full_storage_is_403(tmp_data_dir):
    stack = Stack(tmp_data_dir, quota_storage_bytes=300_000)
    me = stack.member("ann")
    assert stack.upload(me, audio_bytes(4.0)).status_code == 202  # 256 kB
    r = stack.upload(me, audio_bytes(4.0))
    assert r.status_code == 403 and "storage is full" in r.json()["detail"]
    assert stack.count(Voice) == 1


# --- cancelling, listing, expiry -----------------------------------------------------------------

def test_cancelling_a_queued_job_is_immediate_and_a_finished_one_is_409(stack):
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    job_id = stack.synth(me, voice_id=voice_id).json()["job_id"]
    r = stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=me)
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    again = stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=me)
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_cancelling_a_running_job_sets_the_flag_its_worker_reads(stack):
    me = stack.member("ann")
    job_id = stack.synth(me, voice_id=stack.ready_voice(me)).json()["job_id"]
    with stack.backend.db.write() as session:
        attempt = job_state.claim(session, job_id, "w", 60)
    r = stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=me)
    assert r.json()["status"] == "running" and r.json()["cancel_requested"] is True
    with stack.backend.db.read() as session:
        assert job_state.cancel_wanted(session, job_id, attempt)


def test_jobs_are_listed_newest_first_in_pages(stack):
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    ids = [stack.synth(me, text=f"第{i}篇。", voice_id=voice_id).json()["job_id"] for i in range(4)]
    page = stack.client.get("/v1/jobs?limit=2&kind=synthesis", headers=me).json()
    assert [j["job_id"] for j in page["items"]] == ids[::-1][:2]
    assert page["total"] == 4 and page["next_offset"] == 2
    last = stack.client.get("/v1/jobs?limit=2&offset=2&kind=synthesis", headers=me).json()
    assert [j["job_id"] for j in last["items"]] == ids[::-1][2:] and last["next_offset"] is None
    assert stack.client.get("/v1/jobs?limit=500", headers=me).status_code == 422


def test_results_link_expires_and_results_are_cleaned_up_after_their_ttl(stack):
    me = stack.member("ann")
    job_id = stack.synth(me, voice_id=stack.ready_voice(me)).json()["job_id"]
    with stack.backend.db.read() as session:
        job = session.get(Job, job_id)
    key = f"members/{job.member_id}/jobs/{job_id}/result.wav"
    stack.backend.storage.put(key, audio_bytes(3.0))
    stack.run_to_success(job_id, result_key=key, result_bytes=1000, duration_s=3.0,
                         expires_at=service.now() + 3600)
    result = stack.client.get(f"/v1/jobs/{job_id}", headers=me).json()["result"]
    link = result["url"].replace(stack.settings.api_url, "")
    assert stack.client.get(link).content == stack.backend.storage.get(key)
    assert stack.client.get(link.replace("sig=", "sig=0")).status_code == 403
    # Past its TTL the result is deleted and the job says so.
    with stack.backend.db.write() as session:
        session.exec(update(Job).where(Job.id == job_id).values(expires_at=service.now() - 1))
    assert service.cleanup_expired(stack.backend) == 1
    view = stack.client.get(f"/v1/jobs/{job_id}", headers=me).json()
    assert view["result"] is None and view["result_expired"] is True
    assert not stack.backend.storage.exists(key)
    assert stack.client.get(link).status_code == 404
    with stack.backend.db.read() as session:
        assert session.get(Job, job_id).text is None  # the diary text went with the audio


def test_the_text_of_jobs_that_ended_without_a_result_is_forgotten_after_the_ttl(stack):
    me = stack.member("ann")
    job_id = stack.synth(me, text="不想留下的日记。", voice_id=stack.ready_voice(me)).json()["job_id"]
    stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=me)
    service.cleanup_expired(stack.backend)
    with stack.backend.db.read() as session:
        assert session.get(Job, job_id).text == "不想留下的日记。"  # still within the TTL
    with stack.backend.db.write() as session:
        session.exec(update(Job).where(Job.id == job_id)
                     .values(finished_at=service.now() - stack.settings.result_ttl_s - 1))
    service.cleanup_expired(stack.backend)
    with stack.backend.db.read() as session:
        assert session.get(Job, job_id).text is None


# --- retrying a job that ended without a result --------------------------------------------------

def test_a_failed_or_cancelled_job_is_queued_again_as_a_new_attempt(stack):
    me = stack.member("ann")
    job_id = stack.synth(me, voice_id=stack.ready_voice(me)).json()["job_id"]
    stack.client.post(f"/v1/jobs/{job_id}/cancel", headers=me)
    r = stack.client.post(f"/v1/jobs/{job_id}/retry", headers=me)
    assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["cancel_requested"], r.json()["finished_at"]) == ("queued", False, None)
    assert [d.job_id for d in stack.published].count(job_id) == 2  # handed to the workers again
    with stack.backend.db.write() as session:
        attempt = job_state.claim(session, job_id, "w", 60)
        job_state.record_progress(session, job_id, attempt, 1, 2, 60)
        job_state.fail(session, job_id, attempt, "boom")
    r = stack.client.post(f"/v1/jobs/{job_id}/retry", headers=me)
    assert r.status_code == 202 and r.json()["error"] is None and r.json()["progress"] == {"done": 0, "total": 0, "reused": 0}
    assert stack.count(JobChunk, JobChunk.job_id == job_id) == 0
    with stack.backend.db.write() as session:
        assert job_state.claim(session, job_id, "w", 60) == 2  # a new attempt of the same job


def test_retrying_an_active_or_finished_job_is_409_and_anothers_is_404(stack):
    me, other = stack.member("ann"), stack.member("bob")
    voice_id = stack.ready_voice(me)
    queued = stack.synth(me, voice_id=voice_id).json()["job_id"]
    r = stack.client.post(f"/v1/jobs/{queued}/retry", headers=me)
    assert r.status_code == 409 and "only a failed or cancelled job" in r.json()["detail"]
    stack.run_to_success(queued)
    assert stack.client.post(f"/v1/jobs/{queued}/retry", headers=me).status_code == 409
    failed = stack.synth(me, text="另一篇。", voice_id=voice_id).json()["job_id"]
    stack.client.post(f"/v1/jobs/{failed}/cancel", headers=me)
    assert stack.client.post(f"/v1/jobs/{failed}/retry", headers=other).status_code == 404
    assert stack.client.post(f"/v1/jobs/{'0' * 32}/retry", headers=me).status_code == 404
    with stack.backend.db.write() as session:  # past the TTL the text is gone: nothing left to render
        session.exec(update(Job).where(Job.id == failed).values(text=None))
    r = stack.client.post(f"/v1/jobs/{failed}/retry", headers=me)
    assert r.status_code == 409 and "submit the entry again" in r.json()["detail"]


def test_retrying_a_failed_enrollment_makes_its_voice_enrolling_again(stack):
    me = stack.member("ann")
    r = stack.upload(me)
    voice_id, job_id = r.json()["voice_id"], r.json()["job_id"]
    with stack.backend.db.write() as session:
        attempt = job_state.claim(session, job_id, "w", 60)
        job_state.fail(session, job_id, attempt, "no speech found")
        service.voice_failed(session, voice_id, "no speech found")
    assert stack.client.post(f"/v1/jobs/{job_id}/retry", headers=me).status_code == 202
    voice = stack.client.get(f"/v1/voices/{voice_id}", headers=me).json()
    assert voice["status"] == "enrolling"


# --- deleting a voice ----------------------------------------------------------------------------

def test_deleting_a_voice_takes_two_steps_and_removes_everything_made_from_it(stack):
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    job_id = stack.synth(me, voice_id=voice_id).json()["job_id"]
    with stack.backend.db.write() as session:
        attempt = job_state.claim(session, job_id, "w", 60)
        job_state.record_progress(session, job_id, attempt, 1, 3, 60)
    stack.backend.storage.put(f"members/{_member_id(stack, job_id)}/jobs/{job_id}/result.wav", b"x")
    first = stack.client.delete(f"/v1/voices/{voice_id}", headers=me)
    assert first.status_code == 202 and first.json()["jobs"] == 2
    wrong = stack.client.delete(f"/v1/voices/{voice_id}?confirm=nope", headers=me)
    assert wrong.status_code == 409 and "confirmation token" in wrong.json()["detail"]
    done = stack.client.delete(f"/v1/voices/{voice_id}?confirm={first.json()['confirm']}", headers=me)
    assert done.status_code == 200 and done.json()["jobs_deleted"] == 2 and done.json()["objects_deleted"] == 2
    assert stack.client.get(f"/v1/voices/{voice_id}", headers=me).status_code == 404
    assert stack.client.get(f"/v1/jobs/{job_id}", headers=me).status_code == 404
    assert stack.count(Job) == 0 and stack.count(JobChunk) == 0 and stack.count(Voice) == 0
    assert stack.stored() == []
    # The worker that was running the job finds it gone and stops.
    with stack.backend.db.write() as session:
        assert not job_state.record_progress(session, job_id, attempt, 2, 3, 60)


def _member_id(stack, job_id):
    with stack.backend.db.read() as session:
        return session.get(Job, job_id).member_id


# --- fairness: what reaches the broker, and in which order --------------------------------------

def test_one_members_backlog_waits_in_the_database_while_another_members_entry_goes_ahead(tmp_data_dir):
    stack = Stack(tmp_data_dir, interactive_max_chars=20, member_concurrency=1)
    ann, bob = stack.member("ann"), stack.member("bob")
    ann_voice, bob_voice = stack.ready_voice(ann), stack.ready_voice(bob)
    stack.published.clear()
    long_text = "很长的一天。" * 10
    backlog = [stack.synth(ann, text=long_text + str(i), voice_id=ann_voice).json()["job_id"] for i in range(4)]
    short = stack.synth(bob, text="短的。", voice_id=bob_voice).json()["job_id"]
    # One of ann's long jobs is in the broker; bob's short one went straight in, ahead by priority.
    assert [d.job_id for d in stack.published] == [backlog[0], short]
    assert stack.published[1].priority < stack.published[0].priority
    view = lambda job_id, who: stack.client.get(f"/v1/jobs/{job_id}", headers=who).json()  # noqa: E731
    assert view(short, bob)["queue_position"] == 0
    assert view(backlog[0], ann)["queue_position"] == 1
    assert view(backlog[2], ann)["queue_position"] > view(backlog[1], ann)["queue_position"]
    # Ann's next job is published only once her first has finished.
    stack.run_to_success(backlog[0])
    stack.backend.dispatch(_member_id(stack, backlog[0]))
    assert [d.job_id for d in stack.published] == [backlog[0], short, backlog[1]]


def test_concurrent_dispatchers_respect_the_per_member_limit(tmp_data_dir):
    import threading

    stack = Stack(tmp_data_dir, member_concurrency=2)
    me = stack.member("ann")
    voice_id = stack.ready_voice(me)
    member_id = _member_id(stack, stack.synth(me, voice_id=voice_id).json()["job_id"])
    for i in range(6):
        stack.synth(me, text=f"第{i}篇。", voice_id=voice_id)
    with stack.backend.db.write() as session:  # forget the dispatches, then race to redo them
        session.exec(update(Job).where(Job.kind == "synthesis").values(dispatched_at=None))
    stack.published.clear()
    threads = [threading.Thread(target=stack.backend.dispatch, args=(member_id,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stack.published) == 2 and len({d.job_id for d in stack.published}) == 2


# --- the rest of the surface ---------------------------------------------------------------------

def test_health_and_openapi(stack):
    r = stack.client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok" and r.json()["mode"] == "embedded"
    paths = stack.client.get("/openapi.json").json()["paths"]
    for path in ("/v1/members", "/v1/voices", "/v1/voices/{voice_id}", "/v1/voices/{voice_id}/finetune",
                 "/v1/syntheses", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/jobs/{job_id}/cancel",
                 "/v1/watermark/detect", "/healthz"):
        assert path in paths, path


def test_finetune_needs_an_enrolled_voice_and_runs_one_at_a_time(stack):
    me = stack.member("ann")
    enrolling = stack.upload(me).json()["voice_id"]
    r = stack.client.post(f"/v1/voices/{enrolling}/finetune", headers=me)
    assert r.status_code == 409 and "enrolled" in r.json()["detail"]
    voice_id = stack.ready_voice(me)
    first = stack.client.post(f"/v1/voices/{voice_id}/finetune", json={"gpt_epochs": 3}, headers=me)
    assert first.status_code == 202 and first.json()["kind"] == "finetune"
    second = stack.client.post(f"/v1/voices/{voice_id}/finetune", headers=me)
    assert second.status_code == 409 and "already being fine-tuned" in second.json()["detail"]
    bad = stack.client.post(f"/v1/voices/{voice_id}/finetune", json={"epochs": 3}, headers=me)
    assert bad.status_code == 422


def test_every_kind_of_service_refusal_has_its_own_documented_status():
    from producer.api.errors import ERROR_RESPONSES
    from producer.error_status import UNKNOWN_REFUSAL, status_for

    kinds = [kind for kind in vars(service).values()
             if isinstance(kind, type) and issubclass(kind, service.ServiceError) and kind is not service.ServiceError]
    statuses = {kind: status_for(kind("x") if kind is not service.QuotaExceeded else kind("x", retry_after_s=1))
                for kind in kinds}
    assert len(kinds) >= 7 and UNKNOWN_REFUSAL not in statuses.values()
    assert len(set(statuses.values())) == len(kinds)  # each kind tells the client something different
    assert set(statuses.values()) <= set(ERROR_RESPONSES)
