"""Which reference a synthesis renders with: a voice's styles as the service layer itself needs them (a
leaf module: :mod:`shared.service` imports it; the style service functions are :mod:`shared.styles`).

Every voice has the implicit style ``ENROLLMENT_STYLE`` (its enrollment reference and profile); a
member may add named styles, each its own reference, and make one of them the default.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from contracts import ENROLLMENT_STYLE

__all__ = ["ENROLLMENT_STYLE", "by_name", "default_style", "ready_styles", "resolve", "style_names"]
from shared.tables import STYLE_READY, Voice, VoiceStyle


def ready_styles(session: Session, voice_id: str) -> list[VoiceStyle]:
    return list(session.exec(select(VoiceStyle).where(VoiceStyle.voice_id == voice_id,
                                                      VoiceStyle.status == STYLE_READY)
                             .order_by(VoiceStyle.created_at)).scalars())


def style_names(styles: list[VoiceStyle]) -> str:
    return ", ".join([ENROLLMENT_STYLE, *(s.name for s in styles)])


def default_style(styles: list[VoiceStyle]) -> VoiceStyle | None:
    return next((s for s in styles if s.is_default), None)


def resolve(session: Session, voice: Voice, name: str | None) -> tuple[VoiceStyle | None, str | None]:
    """(the style a synthesis uses, None for the enrollment reference; why ``name`` is refused, or None)."""
    styles = ready_styles(session, voice.id)
    if name is None:
        return default_style(styles), None
    if name == ENROLLMENT_STYLE:
        return None, None
    chosen = next((s for s in styles if s.name == name), None)
    if chosen is None:
        return None, f"voice {voice.id} has no style {name!r}; its styles: {style_names(styles)}"
    return chosen, None


def by_name(session: Session, voice_id: str, name: str) -> VoiceStyle | None:
    return session.exec(select(VoiceStyle).where(VoiceStyle.voice_id == voice_id,
                                                 VoiceStyle.name == name)).scalars().first()
