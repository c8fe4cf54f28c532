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

