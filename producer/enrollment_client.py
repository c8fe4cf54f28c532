"""Guided enrollment for the Python client: ``enrollment_for(client)`` over HTTP or in-process.

    from producer.client import connect
    from producer.enrollment_client import enrollment_for
    client = connect()
    enroll = enrollment_for(client)
    session = enroll.start("zh-1", "me", accept_notice=True)
    enroll.put_take(session.enrollment_id, "all", "minute.wav")
    enroll.put_consent(session.enrollment_id, "consent.wav")
    job = client.wait(enroll.finish(session.enrollment_id).job_id)

A take refused by a quality gate raises :class:`TakeRefusedError` with the gate messages and report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from producer.client import ApiError, Client, EmbeddedClient, _audio_bytes, raise_for_status
from shared.enrollment_schemas import (
    ConsentOut,
    EnrollmentCreate,
    EnrollmentOut,
    NoticeOut,
    ScriptOut,
    StatementOut,
    StyleDeleted,
    StyleOut,
    TakeOut,
)
from shared.schemas import VoiceCreated

Audio = str | Path | bytes


class TakeRefusedError(ApiError):
    """A take failed a quality gate (422): ``messages`` say what to fix, ``report`` holds the values."""

    def __init__(self, detail: str, messages: list[str], report: dict[str, Any] | None) -> None:
        super().__init__(422, detail)
        self.messages, self.report = messages, report


def _sentence_path(sentence: int | str) -> str:
    return "all" if sentence == "all" else str(int(sentence))


class HttpEnrollment:
    def __init__(self, client: Client) -> None:
        self.client = client

    def scripts(self) -> list[ScriptOut]:
        return [ScriptOut.model_validate(s) for s in self.client._call("GET", "/v1/enrollments/scripts")]

    def script(self, script_id: str) -> ScriptOut:
        return ScriptOut.model_validate(self.client._call("GET", f"/v1/enrollments/scripts/{script_id}"))

    def notice(self, language: str = "zh") -> NoticeOut:
        return NoticeOut.model_validate(self.client._call("GET", "/v1/enrollments/notice",
                                                          params={"language": language}))

    def consent_text(self, language: str = "zh") -> StatementOut:
        return StatementOut.model_validate(self.client._call("GET", "/v1/enrollments/consent-text",
                                                             params={"language": language}))

    def start(self, script_id: str, voice_name: str, accept_notice: bool, language: str | None = None,
              voice_id: str | None = None) -> EnrollmentOut:
        body = EnrollmentCreate(script_id=script_id, voice_name=voice_name, accept_notice=accept_notice,
                                language=language, voice_id=voice_id).model_dump(exclude_none=True)
        return EnrollmentOut.model_validate(self.client._call("POST", "/v1/enrollments", json=body))

    def session(self, enrollment_id: str) -> EnrollmentOut:
        return EnrollmentOut.model_validate(self.client._call("GET", f"/v1/enrollments/{enrollment_id}"))

    def _put(self, path: str, audio: Audio) -> TakeOut:
        filename, data = _audio_bytes(audio)
        response = self.client.http.request("PUT", path, files={"audio": (filename, data)})
        if response.status_code == 422 and "messages" in response.text:
            body = response.json()
            raise TakeRefusedError(body["detail"], body["messages"], body.get("report"))
        raise_for_status(response)
        return TakeOut.model_validate(response.json())

    def put_take(self, enrollment_id: str, sentence: int | str, audio: Audio) -> TakeOut:
        return self._put(f"/v1/enrollments/{enrollment_id}/takes/{_sentence_path(sentence)}", audio)

    def put_consent(self, enrollment_id: str, audio: Audio) -> TakeOut:
        return self._put(f"/v1/enrollments/{enrollment_id}/consent", audio)

    def finish(self, enrollment_id: str) -> VoiceCreated:
        return VoiceCreated.model_validate(self.client._call("POST", f"/v1/enrollments/{enrollment_id}/finish"))

    def consent(self, voice_id: str) -> ConsentOut:
        return ConsentOut.model_validate(self.client._call("GET", f"/v1/voices/{voice_id}/consent"))

    def add_style(self, voice_id: str, name: str, audio: Audio, transcript: str) -> StyleOut:
        filename, data = _audio_bytes(audio)
        response = self.client.http.request("POST", f"/v1/voices/{voice_id}/styles", files={"audio": (filename, data)},
                                            data={"name": name, "transcript": transcript})
        raise_for_status(response)
        return StyleOut.model_validate(response.json())

    def styles(self, voice_id: str) -> list[StyleOut]:
        return [StyleOut.model_validate(s) for s in self.client._call("GET", f"/v1/voices/{voice_id}/styles")]

    def delete_style(self, voice_id: str, name: str) -> StyleDeleted:
        return StyleDeleted.model_validate(self.client._call("DELETE", f"/v1/voices/{voice_id}/styles/{name}"))

    def set_default_style(self, voice_id: str, name: str) -> list[StyleOut]:
        body = {"name": name}
        return [StyleOut.model_validate(s) for s in
                self.client._call("PUT", f"/v1/voices/{voice_id}/styles/default", json=body)]


class EmbeddedEnrollment:
    """The same calls in this process; takes are analysed here, the finish job runs on ``client.wait``."""

    def __init__(self, client: EmbeddedClient) -> None:
        self.client = client

    def _call(self, fn: Any, *args: Any) -> Any:  # noqa: ANN401
        from shared.enrollment import TakeRefused

        try:
            return self.client._guard(fn, *args)
        except ApiError as exc:
            refused = exc.__cause__
            if isinstance(refused, TakeRefused):
                a = refused.assessment
                raise TakeRefusedError(refused.detail, a.messages, a.report) from refused
            raise

    def scripts(self) -> list[ScriptOut]:
        from producer.enrollment_views import script_out
        from worker import enrollment as work

        return [script_out(facts, title) for facts, title in work.all_scripts()]

    def script(self, script_id: str) -> ScriptOut:
        from producer.enrollment_views import script_out
        from worker import enrollment as work

        facts = self._call(work.script_facts, script_id)
        return script_out(facts, work.script_title(script_id))

    def notice(self, language: str = "zh") -> NoticeOut:
        from shared.enrollment import NOTICES

        return NoticeOut(language=language, notice=NOTICES[language])

    def consent_text(self, language: str = "zh") -> StatementOut:
        from worker import enrollment as work

        return StatementOut(language=language, statement=work.consent_statement(self.client.member.name, language))

    def start(self, script_id: str, voice_name: str, accept_notice: bool, language: str | None = None,
              voice_id: str | None = None) -> EnrollmentOut:
        from producer.enrollment_views import session_out
        from shared import enrollment
        from worker import enrollment as work

        facts = self._call(work.script_facts, script_id)
        language = language or facts.message_language
        row = self._call(enrollment.start_session, self.client.backend, self.client.member, facts, voice_name,
                         accept_notice, work.consent_statement(self.client.member.name, language), language,
                         voice_id)
        return session_out(row, [])

    def session(self, enrollment_id: str) -> EnrollmentOut:
        from producer.enrollment_views import session_out
        from shared import enrollment

        return session_out(*self._call(enrollment.get_session, self.client.backend, self.client.member, enrollment_id))

    def _put(self, enrollment_id: str, sentence: int, audio: Audio) -> TakeOut:
        from producer.enrollment_views import take_out
        from shared import enrollment
        from worker import enrollment as work

        _, data = _audio_bytes(audio)
        backend = self.client.backend
        take = self._call(enrollment.add_take, backend, self.client.member, enrollment_id, sentence, data,
                          work.assessor(backend.settings))
        return take_out(take)

    def put_take(self, enrollment_id: str, sentence: int | str, audio: Audio) -> TakeOut:
        from producer.enrollment_views import parse_sentence

        return self._put(enrollment_id, self._call(parse_sentence, _sentence_path(sentence)), audio)

    def put_consent(self, enrollment_id: str, audio: Audio) -> TakeOut:
        from shared.tables import CONSENT_TAKE

        return self._put(enrollment_id, CONSENT_TAKE, audio)

    def finish(self, enrollment_id: str) -> VoiceCreated:
        from shared import enrollment

        row, job = self._call(enrollment.finish_session, self.client.backend, self.client.member, enrollment_id)
        return VoiceCreated(voice_id=row.voice_id or "", job_id=job.id, kind=job.kind, status=job.status)

    def consent(self, voice_id: str) -> ConsentOut:
        from producer.enrollment_views import consent_out
        from shared import enrollment

        voice, state, consent = self._call(enrollment.get_consent, self.client.backend, self.client.member, voice_id)
        return consent_out(self.client.backend, voice, state, consent)

    def add_style(self, voice_id: str, name: str, audio: Audio, transcript: str) -> StyleOut:
        from producer.enrollment_views import style_out
        from shared import styles

        _, data = _audio_bytes(audio)
        self.client._run_jobs()  # the style's job runs on the executor while add_style waits for it
        return style_out(self._call(styles.add_style, self.client.backend, self.client.member, voice_id, name, data,
                                    transcript))

    def styles(self, voice_id: str) -> list[StyleOut]:
        from producer.enrollment_views import style_views
        from shared import styles

        return style_views(self._call(styles.list_styles, self.client.backend, self.client.member, voice_id)[1])

    def delete_style(self, voice_id: str, name: str) -> StyleDeleted:
        from shared import styles

        removed = self._call(styles.delete_style, self.client.backend, self.client.member, voice_id, name)
        return StyleDeleted(voice_id=voice_id, name=name, objects_deleted=removed)

    def set_default_style(self, voice_id: str, name: str) -> list[StyleOut]:
        from shared import styles

        self._call(styles.set_default_style, self.client.backend, self.client.member, voice_id, name)
        return self.styles(voice_id)


def enrollment_for(client: Client | EmbeddedClient) -> HttpEnrollment | EmbeddedEnrollment:
    if isinstance(client, EmbeddedClient):
        return EmbeddedEnrollment(client)
    return HttpEnrollment(client)
