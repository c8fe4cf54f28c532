"""The worker path of "more samples, better voice": PostgreSQL, S3 storage and jobs handed to
``run_job`` as a Celery worker would (no in-process assessor), on tiny models and espeak-ng speech.
An enrolled voice takes more samples, then fine-tunes on every clip of its dataset, read from S3."""

from __future__ import annotations

import threading
from pathlib import Path

import jobs_fixtures
import pytest
from enrollment_audio import SPEAKER, needs_espeak
from jobs_fixtures import wait_until
from test_enrollment_api import spoken
from test_enrollment_styles import styled

from engine.enrollment.scripts import get_script
from engine.finetune import unpack
from shared import enrollment, service, styles
from shared.schemas import FinetuneRequest, SynthesisRequest
from shared.settings import Settings
from shared.tables import VoiceConsent
from worker import enrollment as work
from worker.dataset import voice_items
from worker.runner import run_job

pytestmark = needs_espeak
SCRIPT = get_script("en-1")


@pytest.fixture
def backend(fresh_database, s3, tmp_path: Path, tmp_path_factory) -> service.Backend:
    settings = Settings(_env_file=None, data_dir=tmp_path, models_dir=jobs_fixtures.tiny_models(tmp_path_factory),
                        device="cpu", threads=1, database_url=fresh_database, s3_endpoint_url=s3.endpoint_url,
                        s3_access_key=s3.access_key, s3_secret_key=s3.secret_key, s3_bucket=s3.bucket,
                        finetune_min_minutes=0.1)

    def publish(dispatch) -> None:  # noqa: ANN001 - job_state.Dispatch: a worker takes it
        threading.Thread(target=run_job, args=(opened, dispatch.job_id), daemon=True).start()

    opened = service.open_backend(settings, publish)
    return opened


def finished(backend: service.Backend, member, job_id: str) -> object:  # noqa: ANN001
    return wait_until(lambda: (j := service.get_job(backend, member, job_id)).status not in ("queued", "running")
                      and j, 300, 0.2, f"job {job_id}")


def read(backend: service.Backend, member, row, sentences: range) -> None:  # noqa: ANN001
    for i in sentences:
        take = enrollment.add_take(backend, member, row.id, i, spoken(SCRIPT.sentences[i], SPEAKER), None)
        assert take.status == "accepted"


def test_added_takes_join_the_dataset_fine_tuning_reads_every_clip_and_the_voice_goes_whole(backend):
    member, _ = service.create_member(backend, "ann")
    statement = "I am Ann, and I agree that EchoDiary may use my voice."
    row = enrollment.start_session(backend, member, work.script_facts("en-1"), "me", True, statement, "en")
    read(backend, member, row, range(3))
    enrollment.add_take(backend, member, row.id, -2, spoken(statement, SPEAKER), None)
    voice_row, job = enrollment.finish_session(backend, member, row.id)
    assert finished(backend, member, job.id).status == "succeeded"
    voice_id = voice_row.voice_id

    more = enrollment.start_session(backend, member, work.script_facts("en-1"), "-", True, statement, "en",
                                    voice_id)
    read(backend, member, more, range(3, 6))
    _, job = enrollment.finish_session(backend, member, more.id)
    assert finished(backend, member, job.id).status == "succeeded"
    with backend.db.read() as session:
        record = session.get(VoiceConsent, voice_id)
    assert record.dataset_clips == 4

    voice = service.get_voice(backend, member, voice_id)
    items = voice_items(backend.storage, voice, record)
    assert len(items) == 4 and {text for _, text, _ in items} == {SCRIPT.sentences[i] for i in range(6)} - {
        voice.transcript, record.holdout["text"]}  # every clip but the reference and the A/B hold-out
    job = service.start_finetune(backend, member, voice_id, FinetuneRequest(sovits_epochs=1, gpt_epochs=1))
    done = finished(backend, member, job.id)
    assert done.status == "succeeded", done.error
    assert done.progress.total == 4 * 2
    weights = service.get_voice(backend, member, voice_id).finetune_key
    meta, _, _ = unpack(backend.storage.get(weights))
    assert meta["items"] == 4

    # A style, rendered by the fine-tuned voice; then the voice goes, and nothing of it stays in S3.
    text = SCRIPT.sentences[6]
    assert styles.add_style(backend, member, voice_id, "平静", styled(text, SPEAKER), text).status == "ready"
    queued, _ = service.create_synthesis(backend, member, SynthesisRequest(text="Hello there.", voice_id=voice_id,
                                                                           text_lang="en", style="平静"))
    assert queued.params["style"] == "平静" and finished(backend, member, queued.id).status == "succeeded"
    stored = backend.storage.list(f"members/{member.id}/")
    assert any("/styles/" in k for k in stored) and any("/finetune/" in k for k in stored)
    token, _, _ = service.request_voice_delete(backend, member, voice_id)
    _, objects = service.confirm_voice_delete(backend, member, voice_id, token)
    assert objects == len(stored) and backend.storage.list(f"members/{member.id}/") == []


def test_a_dataset_list_may_only_name_clips_of_its_own_voice():
    from worker.dataset import parse_list

    prefix = "members/" + "a" * 32 + "/voices/" + "b" * 32 + "/"
    entries = parse_list(f"{prefix}dataset/000.flac|v|en|Hello | there.\n\n", prefix)
    assert [(e.key, e.language, e.text) for e in entries] == [(prefix + "dataset/000.flac", "en", "Hello | there.")]
    with pytest.raises(ValueError, match="outside the voice's storage"):
        parse_list("members/" + "c" * 32 + "/voices/x/dataset/000.flac|v|en|Hi.\n", prefix)


def test_the_dataset_is_read_one_clip_at_a_time_from_every_list(tmp_path):
    from shared.keys import voice_prefix
    from shared.storage import LocalStorage
    from shared.tables import Voice

    class Reads(LocalStorage):
        """Real local storage that remembers which objects were read."""

        def __init__(self, *args) -> None:  # noqa: ANN002
            super().__init__(*args)
            self.reads: list[str] = []

        def get(self, key: str) -> bytes:
            self.reads.append(key)
            return super().get(key)

    storage = Reads(tmp_path, "http://localhost", b"k" * 32)
    voice = Voice(member_id="a" * 32, name="me", language="en", transcript="")
    folder = voice_prefix(voice.member_id, voice.id) + "dataset/"
    later = folder + "c" * 32 + "/"
    for key in (folder + "000.flac", later + "000.flac", later + "001.flac"):
        storage.put(key, key.encode())
    storage.put(folder + "list.txt", f"{folder}000.flac|v|en|One.\n".encode())
    storage.put(later + "list.txt", f"{later}000.flac|v|en|Two.\n{later}001.flac|v|en|Three.\n".encode())
    record = VoiceConsent(voice_id=voice.id, member_id=voice.member_id, statement="", score=1, threshold=0,
                          model="m", consent_key="", dataset_key=folder + "list.txt")
    items = voice_items(storage, voice, record)
    assert len(items) == 3 and storage.reads == [folder + "list.txt", later + "list.txt"]  # no clip yet
    assert [text for _, text, _ in items] == ["One.", "Two.", "Three."]
    assert storage.reads[2:] == [folder + "000.flac", later + "000.flac", later + "001.flac"]
