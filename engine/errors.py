"""Errors the engine raises for bad input, with messages meant for the person who caused them."""

from __future__ import annotations


class EngineError(Exception):
    """Base class: something about the input or the models stops the engine."""


class BadReference(EngineError):
    """The reference recording cannot make a voice (length, silence, unreadable format)."""


class BadText(EngineError):
    """The text cannot be rendered (empty, nothing speakable, too long)."""


class ModelsMissing(EngineError):
    """The models folder lacks files the engine needs; the message says what to put where."""


class Cancelled(EngineError):
    """Rendering stopped between chunks because the caller asked it to."""


class Yielded(Exception):  # noqa: N818 - a stop, not a failure: it is not an EngineError on purpose
    """Rendering stopped between batches to let more urgent work through; the caller resumes it
    later (the chunks already finished are in its chunk cache). The engine never raises it itself:
    a caller's ``should_cancel`` callback does, and the render stream lets it through as it stands."""
