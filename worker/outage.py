"""Waiting out an outage: how long to wait before trying a job again when storage or the database
is unreachable, within ``outage_window_s``.

A job that meets an outage is given back to the queue (not failed) and tried again after a delay
that doubles up to ``OUTAGE_RETRY_MAX_S``; only once the delays add up to the whole window does the
job fail. The delays are a function of the retry number alone, so the Celery task (whose message
carries only that number) and the embedded executor follow the same schedule.
"""

from __future__ import annotations

from shared.settings import Settings

OUTAGE_RETRY_MAX_S = 30.0


def backoff_s(retry: int) -> float:
    return min(2.0 ** min(retry, 16), OUTAGE_RETRY_MAX_S)


def retry_delay(settings: Settings, retries: int) -> float | None:
    """Seconds to wait before try number ``retries + 1``, or None when the outage window is spent."""
    waited = sum(backoff_s(i) for i in range(retries))
    left = settings.outage_window_s - waited
    if left <= 0:
        return None
    return min(backoff_s(retries), left)


def gave_up_message(settings: Settings, exc: BaseException) -> str:
    return (f"storage or database unavailable for more than {settings.outage_window_s:.0f} s "
            f"(ECHODIARY_OUTAGE_WINDOW_S): {exc}")
