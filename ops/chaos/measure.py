"""Running one scenario: submit a batch, inject the fault, watch every job to its end, and count.

"Time to recover" is the seconds from the end of the fault until every job it hit (those running
when it ended, and for the poison job the next job of its member's lane) got work done again: a
chunk rendered or the job finished. Jobs that merely wait for a free worker are not "hit"; they
count as "stuck" if still queued or running when the settle time is over. ``lanes_s`` (in the JSON)
also gives, per member with work left, when that member's jobs moved again, and ``drained_s`` when
the whole batch had ended.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from ops.chaos.scenarios import Scenario
from ops.chaos.stack import POISON_MARKER, ChaosStack, Member
from shared.job_state import stopped_message
from shared.tables import FAILED, QUEUED, RUNNING, SUCCEEDED, SYNTHESIS, Job

log = logging.getLogger(__name__)
POLL_S = 0.5
RECOVERY_TARGET_S = 30.0
SENTENCES = 6  # a few chunks per job, so a fault lands mid-job


@dataclass
class Outcome:
    scenario: str
    submitted: int = 0
    succeeded: int = 0
    failed_as_expected: int = 0
    one_result: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    in_flight: int = 0  # jobs running when the fault began
    recovery_s: float | None = None
    drained_s: float | None = None  # from the fault's end until every job of the batch had ended
    lanes_s: dict[str, float | None] = field(default_factory=dict)  # per member with work left
    poison_error: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def expected_poison(self) -> int:
        return 1 if self.poison_error is not None else 0

    def misses(self) -> list[str]:
        """What keeps this scenario from its targets (empty when it met them all)."""
        missed = list(self.problems)
        if self.succeeded != self.submitted - self.expected_poison:
            missed.append(f"{self.submitted - self.expected_poison - self.succeeded} jobs did not succeed")
        if self.failed_as_expected != self.expected_poison:
            missed.append(f"the poison job did not fail with its message (it said: {self.poison_error!r})")
        if self.one_result != self.succeeded:
            missed.append(f"{self.succeeded - self.one_result} succeeded jobs lack exactly one result object")
        for name in ("lost", "duplicated", "stuck"):
            if getattr(self, name):
                missed.append(f"{getattr(self, name)} {name}")
        if self.recovery_s is None or self.recovery_s >= RECOVERY_TARGET_S:
            missed.append(f"recovery {self.recovery_s} s (target < {RECOVERY_TARGET_S:.0f} s)")
        return missed

    def as_dict(self) -> dict:
        return {**asdict(self), "misses": self.misses()}


def diary_text(serial: int) -> str:
    return "".join(f"第{serial}篇第{i}句，今天我们去公园散步。" for i in range(SENTENCES))


def submit_batch(members: list[Member], per_member: int, serial: int, poison: bool) -> tuple[list[str], dict[str, str]]:
    """Submit ``per_member`` syntheses for every member; a poison job first when asked."""
    ids, owner = [], {}
    if poison:
        first = members[0]
        job = first.client.synthesize(f"{POISON_MARKER} 这一篇会让工作进程退出。", first.voice_id, format="wav")
        ids.append(job.job_id)
        owner[job.job_id] = first.member_id
    for _ in range(per_member):
        for member in members:
            serial += 1
            job = member.client.synthesize(diary_text(serial), member.voice_id, format="wav", seed=serial)
            ids.append(job.job_id)
            owner[job.job_id] = member.member_id
    return ids, owner


class Watch:
    """Notes when work got done after the fault ended: per job hit by the fault, and per member."""

    def __init__(self, at_end: dict[str, Job], owner: dict[str, str], hit: set[str], skip: set[str]) -> None:
        self.before = {jid: (row.status, row.progress_done, row.attempt) for jid, row in at_end.items()}
        self.owner = owner
        self.hit = hit
        self.waiting = {owner[jid] for jid, row in at_end.items()
                        if row.status in (QUEUED, RUNNING) and jid not in skip}
        self.recovered: dict[str, float] = {}  # per member
        self.resumed: dict[str, float] = {}  # per job hit

    def _progressed(self, row: Job) -> bool:
        status, done, attempt = self.before.get(row.id, (QUEUED, 0, 0))
        if row.status == SUCCEEDED:
            return status != SUCCEEDED
        if row.status != RUNNING:
            return False
        return row.progress_done > done or (row.attempt > attempt and row.progress_done >= 1)

    def see(self, rows: dict[str, Job], elapsed: float) -> None:
        for row in rows.values():
            if not self._progressed(row):
                continue
            member = self.owner[row.id]
            if member in self.waiting and member not in self.recovered:
                self.recovered[member] = elapsed
            if row.id in self.hit and row.id not in self.resumed:
                self.resumed[row.id] = elapsed

    def recovery_s(self) -> float | None:
        if self.hit - set(self.resumed):
            return None
        return max(self.resumed.values(), default=0.0)


def _hit(rows: dict[str, Job], ids: list[str], owner: dict[str, str], poisoned: set[str]) -> set[str]:
    """The jobs the fault hit: running when it ended; after a poison job, also its lane's next job."""
    hit = {jid for jid, row in rows.items() if row.status == RUNNING}
    for jid in poisoned:
        after = [j for j in ids if owner[j] == owner[jid] and j not in poisoned
                 and rows.get(j) is not None and rows[j].status in (QUEUED, RUNNING)]
        hit.update(after[:1])
    return hit


def _poll(stack: ChaosStack, ids: list[str]) -> dict[str, Job] | None:
    try:
        return stack.jobs(ids)
    except Exception as exc:  # the fault may have taken the database away for a moment
        log.debug("poll failed: %s", exc)
        return None


def run_scenario(stack: ChaosStack, scenario: Scenario, per_member: int, serial: int, settle_s: float) -> Outcome:
    outcome = Outcome(scenario.name)
    ids, owner = submit_batch(stack.members, per_member, serial, scenario.poison)
    outcome.submitted = len(ids)
    poisoned = {ids[0]} if scenario.poison else set()
    try:
        scenario.inject(stack, ids)
    except Exception as exc:  # counted below as what it left behind; the next scenario still runs
        outcome.problems.append(f"the fault could not be injected: {exc}")
    ended = time.monotonic()
    rows = None
    while rows is None and time.monotonic() - ended < 60:
        rows = _poll(stack, ids)
        time.sleep(0 if rows else POLL_S)
    rows = rows or {}
    outcome.in_flight = sum(1 for r in rows.values() if r.status == RUNNING)
    watch = Watch(rows, owner, _hit(rows, ids, owner, poisoned), poisoned)
    while time.monotonic() - ended < settle_s:
        rows = _poll(stack, ids) or rows
        watch.see(rows, time.monotonic() - ended)
        if all(r.status not in (QUEUED, RUNNING) for r in rows.values()) and len(rows) == len(ids):
            outcome.drained_s = round(time.monotonic() - ended, 1)
            break
        time.sleep(POLL_S)
    outcome.recovery_s = None if (r := watch.recovery_s()) is None else round(r, 1)
    outcome.lanes_s = {member: round(watch.recovered[member], 1) if member in watch.recovered else None
                       for member in sorted(watch.waiting)}
    _count(stack, outcome, ids, owner, rows, poisoned)
    return outcome


def _count(stack: ChaosStack, outcome: Outcome, ids: list[str], owner: dict[str, str], rows: dict[str, Job],
           poisoned: set[str]) -> None:
    expected_error = stopped_message(SYNTHESIS, stack.settings.job_max_attempts)
    for jid in ids:
        row = rows.get(jid)
        if jid in poisoned:
            outcome.poison_error = (row.error if row is not None else "the job is gone") or ""
            outcome.failed_as_expected += int(row is not None and row.status == FAILED and row.error == expected_error)
            continue
        if row is None:
            outcome.lost += 1
            continue
        if row.status in (QUEUED, RUNNING):
            outcome.stuck += 1
            continue
        if row.status != SUCCEEDED:
            outcome.lost += 1
            outcome.problems.append(f"job {jid} ended {row.status}: {row.error}")
            continue
        objects = stack.job_objects(owner[jid], jid)
        if not objects:
            outcome.lost += 1
            outcome.problems.append(f"job {jid} succeeded but no result object is stored")
            continue
        outcome.succeeded += 1
        outcome.duplicated += int(len(objects) > 1)
        outcome.one_result += int(objects == [row.result_key])
