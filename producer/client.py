"""A small Python client for EchoDiary, over HTTP or, with no server configured, in-process.

    from producer.client import connect
    client = connect()                       # reads the same settings as the CLI
    voice = client.upload_voice("me.wav", transcript="...", language="zh", name="me")
    job = client.wait(voice.job_id)
    job = client.wait(client.synthesize("今天...", voice.voice_id).job_id)
    client.download(job.job_id, "today.wav")

:class:`Client` speaks the HTTP API; :class:`EmbeddedClient` calls the same service layer directly
and its jobs run in this process on the embedded executor (:class:`worker.inline.InlineExecutor`),
for the embedded mode. Both return the API's response models.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from contracts import FINISHED
from shared.schemas import (
    FinetuneRequest,
    JobAccepted,
    JobOut,
    JobPage,
    MemberCreated,
    MemberOut,
    SynthesisRequest,
    VoiceCreated,
    VoiceDeleted,
    VoiceDeleteRequested,
    VoiceOut,
    WatermarkReport,
)
from shared.settings import Settings, get_settings

OnUpdate = Callable[[JobOut], None]


class ApiError(Exception):
    """The server said no: ``status`` is the HTTP status, ``detail`` its message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status, self.detail = status, detail


def _audio_bytes(audio: str | Path | bytes) -> tuple[str, bytes]:
    if isinstance(audio, bytes):
        return "audio", audio
    path = Path(audio)
    return path.name, path.read_bytes()


class _Common:
    def job(self, job_id: str) -> JobOut:
        raise NotImplementedError

    def wait(self, job_id: str, on_update: OnUpdate | None = None, poll_s: float = 0.5,
             timeout_s: float | None = None) -> JobOut:
        """Poll until the job has finished; ``on_update`` sees every state read."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if on_update:
                on_update(job)
            if job.status in FINISHED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status} after {timeout_s} s")
            time.sleep(poll_s)


@dataclass(frozen=True)
class StreamedPiece:
    """A piece of a job's audio as it renders: its encoded bytes and the job's progress (0-1)."""

    data: bytes
    progress: float


def _sse_pieces(lines: Iterator[str], job_id: str) -> Iterator[StreamedPiece]:
    """Decode GET /v1/jobs/{id}/audio's server-sent events into pieces, up to ``done``."""
    event = None
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data = json.loads(line[5:])
            if event == "audio":
                yield StreamedPiece(base64.b64decode(data["audio"]), float(data["progress"]))
            elif event == "error":
                raise ApiError(409, f"job {job_id}: {data['detail']}")
            elif event == "done":
                return
    raise ApiError(502, f"the audio stream of job {job_id} ended before its done event")


def raise_for_status(response: httpx.Response) -> None:
    """An :class:`ApiError` with the API's ``detail`` (or the raw body) for any 4xx/5xx answer."""
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ApiError(response.status_code, str(detail))


class Client(_Common):
    """The HTTP API of an EchoDiary server."""

    def __init__(self, base_url: str, token: str | None, timeout: float = 30.0,
                 http: httpx.Client | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.http.headers.update(headers)

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:  # noqa: ANN401 - decoded JSON
        response = self.http.request(method, path, **kwargs)
        raise_for_status(response)
        return response.json() if response.content else None

    def health(self) -> dict:
        return self._call("GET", "/healthz")

    def me(self) -> MemberOut:
        return MemberOut.model_validate(self._call("GET", "/v1/members/me"))

    def create_member(self, name: str, admin: bool = False) -> MemberCreated:
        return MemberCreated.model_validate(self._call("POST", "/v1/members", json={"name": name, "admin": admin}))

    def upload_voice(self, audio: str | Path | bytes, transcript: str, language: str, name: str) -> VoiceCreated:
        filename, data = _audio_bytes(audio)
        body = self._call("POST", "/v1/voices", files={"audio": (filename, data)},
                          data={"transcript": transcript, "language": language, "name": name})
        return VoiceCreated.model_validate(body)

    def voices(self) -> list[VoiceOut]:
        return [VoiceOut.model_validate(v) for v in self._call("GET", "/v1/voices")]

    def voice(self, voice_id: str) -> VoiceOut:
        return VoiceOut.model_validate(self._call("GET", f"/v1/voices/{voice_id}"))

    def request_delete_voice(self, voice_id: str) -> VoiceDeleteRequested:
        return VoiceDeleteRequested.model_validate(self._call("DELETE", f"/v1/voices/{voice_id}"))

    def confirm_delete_voice(self, voice_id: str, confirm: str) -> VoiceDeleted:
        return VoiceDeleted.model_validate(self._call("DELETE", f"/v1/voices/{voice_id}",
                                                      params={"confirm": confirm}))

    def finetune(self, voice_id: str, **params: Any) -> JobAccepted:
        body = FinetuneRequest(**params).model_dump()
        return JobAccepted.model_validate(self._call("POST", f"/v1/voices/{voice_id}/finetune", json=body))

    def synthesize(self, text: str, voice_id: str, idempotency_key: str | None = None,
                   **params: Any) -> JobAccepted:
        body = SynthesisRequest(text=text, voice_id=voice_id, **params).model_dump(exclude_none=True)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return JobAccepted.model_validate(self._call("POST", "/v1/syntheses", json=body, headers=headers))

    def job(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._call("GET", f"/v1/jobs/{job_id}"))

    def jobs(self, limit: int = 20, offset: int = 0, status: str | None = None,
             kind: str | None = None) -> JobPage:
        params = {k: v for k, v in dict(limit=limit, offset=offset, status=status, kind=kind).items()
                  if v is not None}
        return JobPage.model_validate(self._call("GET", "/v1/jobs", params=params))

    def cancel(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._call("POST", f"/v1/jobs/{job_id}/cancel"))

    def retry(self, job_id: str) -> JobOut:
        return JobOut.model_validate(self._call("POST", f"/v1/jobs/{job_id}/retry"))

    def detect(self, audio: str | Path | bytes) -> WatermarkReport:
        filename, data = _audio_bytes(audio)
        return WatermarkReport.model_validate(self._call("POST", "/v1/watermark/detect",
                                                         files={"audio": (filename, data)}))

    def stream_audio(self, job_id: str) -> Iterator[bytes]:
        """The job's audio file as its bytes arrive (while it renders, or the stored file when done)."""
        with self.http.stream("GET", f"/v1/jobs/{job_id}/audio", timeout=httpx.Timeout(30, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                raise_for_status(response)
            try:
                yield from response.iter_bytes()
            except httpx.RemoteProtocolError as exc:  # the server breaks the body when the job stops
                raise ApiError(409, f"job {job_id} stopped before its audio was complete: {self.job(job_id).error}") \
                    from exc

    def stream_pieces(self, job_id: str) -> Iterator[StreamedPiece]:
        """The same audio as pieces with the job's progress (server-sent events)."""
        headers = {"Accept": "text/event-stream"}
        with self.http.stream("GET", f"/v1/jobs/{job_id}/audio", headers=headers,
                              timeout=httpx.Timeout(30, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                raise_for_status(response)
            yield from _sse_pieces(response.iter_lines(), job_id)

    def download(self, job_id: str, dest: str | Path | None = None) -> Path:
        job = self.job(job_id)
        if job.result is None:
            raise ApiError(409, f"job {job_id} has no result to download (status {job.status}"
                                f"{', result expired' if job.result_expired else ''})")
        path = Path(dest) if dest else Path(f"{job_id}.{job.result.format}")
        with httpx.stream("GET", job.result.url, timeout=120) as response:  # a presigned link: no token
            if response.status_code >= 400:
                raise ApiError(response.status_code, f"download failed: {response.read()[:200]!r}")
            with path.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        return path


class EmbeddedClient(_Common):
    """The same calls, served in this process: the service layer over SQLite and a local storage
    folder, and the jobs run by the embedded executor that ``echodiary serve`` uses too."""

    def __init__(self, settings: Settings, executor: Any = None) -> None:  # noqa: ANN401 - InlineExecutor
        from worker.inline import InlineExecutor

        self.settings = settings
        self.executor = executor or InlineExecutor(settings)
        self._owns_executor = executor is None
        self.backend = self.executor.backend
        self.member = self._member()

    def _member(self):  # noqa: ANN202 - shared.tables.Member
        from shared import service

        if self.settings.api_token:
            member = service.authenticate(self.backend, self.settings.api_token)
            if member is None:
                raise ApiError(401, "invalid API token (ECHODIARY_API_TOKEN)")
            return member
        # On one's own machine the first member (made on first use) is the one at the keyboard.
        return service.first_member(self.backend) or service.create_member(self.backend, "owner", True)[0]

    def _guard(self, fn: Callable[..., Any], *args: Any) -> Any:  # noqa: ANN401
        from producer.error_status import status_for
        from shared.service import ServiceError

        try:
            return fn(*args)
        except ServiceError as exc:
            raise ApiError(status_for(exc), exc.detail) from exc

    def _run_jobs(self) -> None:
        """Start the executor once this client queues or waits for a job (reads alone need none)."""
        if self._owns_executor:
            self.executor.start()

    def close(self) -> None:
        """Stop the executor this client started (after the job it is running, if any)."""
        if self._owns_executor and self.executor.running:
            self.executor.stop()

    def __enter__(self) -> EmbeddedClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def health(self) -> dict:
        return {"status": "ok", "mode": "embedded"}

    def me(self) -> MemberOut:
        from shared import service

        return service.member_view(self.member)

    def create_member(self, name: str, admin: bool = False) -> MemberCreated:
        from shared import service

        member, token = self._guard(service.create_member, self.backend, name, admin)
        return MemberCreated(**service.member_view(member).model_dump(), token=token)

    def upload_voice(self, audio: str | Path | bytes, transcript: str, language: str, name: str) -> VoiceCreated:
        from shared import service

        _, data = _audio_bytes(audio)
        self._run_jobs()
        voice, job = self._guard(service.create_voice, self.backend, self.member, data, transcript, language, name)
        return VoiceCreated(voice_id=voice.id, job_id=job.id, kind=job.kind, status=job.status)

    def voices(self) -> list[VoiceOut]:
        from shared import service

        return [service.voice_view(v) for v in service.list_voices(self.backend, self.member)]

    def voice(self, voice_id: str) -> VoiceOut:
        from shared import service

        return self._guard(service.voice_details, self.backend, self.member, voice_id)

    def request_delete_voice(self, voice_id: str) -> VoiceDeleteRequested:
        from shared import service
        from shared.schemas import timestamp

        token, expires, n = self._guard(service.request_voice_delete, self.backend, self.member, voice_id)
        return VoiceDeleteRequested(voice_id=voice_id, confirm=token, expires_at=timestamp(expires), jobs=n)

    def confirm_delete_voice(self, voice_id: str, confirm: str) -> VoiceDeleted:
        from shared import service

        n_jobs, n_objects = self._guard(service.confirm_voice_delete, self.backend, self.member, voice_id, confirm)
        return VoiceDeleted(voice_id=voice_id, deleted=True, jobs_deleted=n_jobs, objects_deleted=n_objects)

    def finetune(self, voice_id: str, **params: Any) -> JobAccepted:
        from shared import service

        self._run_jobs()
        job = self._guard(service.start_finetune, self.backend, self.member, voice_id, FinetuneRequest(**params))
        return JobAccepted(job_id=job.id, kind=job.kind, status=job.status)

    def synthesize(self, text: str, voice_id: str, idempotency_key: str | None = None,
                   **params: Any) -> JobAccepted:
        from shared import service

        request = SynthesisRequest(text=text, voice_id=voice_id, **params)
        self._run_jobs()
        job, _ = self._guard(service.create_synthesis, self.backend, self.member, request, idempotency_key)
        return JobAccepted(job_id=job.id, kind=job.kind, status=job.status)

    def job(self, job_id: str) -> JobOut:
        from shared import service

        return self._guard(service.get_job, self.backend, self.member, job_id)

    def wait(self, job_id: str, on_update: OnUpdate | None = None, poll_s: float = 0.2,
             timeout_s: float | None = None) -> JobOut:
        self._run_jobs()  # a job queued by an earlier process is dispatched again when it starts
        return super().wait(job_id, on_update, poll_s, timeout_s)

    def jobs(self, limit: int = 20, offset: int = 0, status: str | None = None,
             kind: str | None = None) -> JobPage:
        from shared import service

        items, total = service.list_jobs(self.backend, self.member, limit, offset, status, kind)
        next_offset = offset + len(items) if offset + len(items) < total else None
        return JobPage(items=items, total=total, limit=limit, offset=offset, next_offset=next_offset)

    def cancel(self, job_id: str) -> JobOut:
        from shared import service

        return self._guard(service.cancel_job, self.backend, self.member, job_id)

    def retry(self, job_id: str) -> JobOut:
        from shared import service

        return self._guard(service.retry_job, self.backend, self.member, job_id)

    def detect(self, audio: str | Path | bytes) -> WatermarkReport:
        from worker import watermark

        _, data = _audio_bytes(audio)
        return self._guard(watermark.report, self.backend, self.member, data)

    def stream_audio(self, job_id: str) -> Iterator[bytes]:
        for piece in self.stream_pieces(job_id):
            yield piece.data

    def stream_pieces(self, job_id: str) -> Iterator[StreamedPiece]:
        from shared import listening

        self._run_jobs()
        audio = self._guard(listening.open_audio, self.backend, self.member, job_id)
        for piece in audio.pieces:
            if piece.end:
                if piece.error:
                    raise ApiError(409, f"job {job_id}: {piece.error}")
                return
            yield StreamedPiece(piece.data, piece.progress)

    def download(self, job_id: str, dest: str | Path | None = None) -> Path:
        from shared.tables import Job

        job = self.job(job_id)
        with self.backend.db.read() as session:
            row = session.get(Job, job_id)
        if job.status != "succeeded" or row is None or not row.result_key:
            raise ApiError(409, f"job {job_id} has no result to download (status {job.status}"
                                f"{', result expired' if job.result_expired else ''})")
        path = Path(dest) if dest else Path(f"{job_id}.{row.format}")
        path.write_bytes(self.backend.storage.get(row.result_key))
        return path


def connect(settings: Settings | None = None) -> Client | EmbeddedClient:
    """The client the settings call for: HTTP in server mode, in-process in the embedded mode."""
    settings = settings or get_settings()
    if settings.embedded:
        return EmbeddedClient(settings)
    return Client(settings.api_url, settings.api_token)
