"""The HTTP status each kind of service refusal answers with: one table, for the API and for the
embedded client (which answers as the API would, without importing it)."""

from __future__ import annotations

from shared import service

STATUS_FOR_ERROR: dict[type[service.ServiceError], int] = {
    service.Invalid: 422,
    service.NotFoundError: 404,
    service.Conflict: 409,
    service.Forbidden: 403,
    service.TooLarge: 413,
    service.UnsupportedMedia: 415,
    service.QuotaExceeded: 429,
    service.Unavailable: 503,
}
UNKNOWN_REFUSAL = 400  # a ServiceError kind missing from the table above


def status_for(exc: service.ServiceError) -> int:
    """The status of ``exc``'s kind (a subclass answers as its nearest listed base)."""
    for kind in type(exc).__mro__:
        if kind in STATUS_FOR_ERROR:
            return STATUS_FOR_ERROR[kind]
    return UNKNOWN_REFUSAL
