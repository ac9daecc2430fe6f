"""Admission: which pending jobs may be published now, decided exactly in the database.

A job under a limit is recorded `pending` and not admitted; the admission pass
admits (and marks as published) the jobs that fit, in one write transaction
serialised across every process: PostgreSQL takes a transaction-level advisory
lock, SQLite has one writer at a time. The pass walks lanes (see `lanes.py`),
not waiting jobs: it costs one index seek per lane with waiting jobs and one per
job it admits, however many jobs wait.

Order: higher `priority` first; at equal priority, users take turns (the user
admitted least recently goes first); then the oldest job.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, text, tuple_, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

from app.schemas.jobs import Job, JobStatus
from app.schemas.limits import Limits
from app.store.jobs import JobRecords
from app.store.lanes import Lane, Occupancy, holding_back, is_limited
from app.store.rows import JOB_COLUMNS, to_job
from app.store.tables import admission_limits, admission_turns, jobs
from app.store.types import EVERYONE, Visibility, utcnow

logger = logging.getLogger(__name__)

ADMISSION_LOCK = 0x6B6564726F  # any constant; the same in every process
LIMITS_ROW = 1
NOT_ADMITTED = "waiting for its turn"

_waiting = and_(jobs.c.status == JobStatus.pending.value, jobs.c.admitted_at.is_(None))
# One index seek per lane (a loose index scan on ix_jobs_waiting), on both databases.
_LANES = """
    WITH RECURSIVE lanes(lane) AS (
        SELECT (SELECT admission_lane FROM jobs {hint}
                WHERE status = 'pending' AND admitted_at IS NULL
                ORDER BY admission_lane LIMIT 1)
        UNION ALL
        SELECT (SELECT j.admission_lane FROM jobs AS j {hint}
                WHERE j.status = 'pending' AND j.admitted_at IS NULL
                  AND j.admission_lane > lanes.lane
                ORDER BY j.admission_lane LIMIT 1)
        FROM lanes WHERE lanes.lane IS NOT NULL
    )
    SELECT lane FROM lanes WHERE lane IS NOT NULL
"""
# SQLite's planner, without statistics, prefers ix_jobs_status: a scan of every pending job.
_SQLITE_WAITING = "INDEXED BY ix_jobs_waiting"


class Admission(JobRecords):
    """Limits, the admission pass, and why (and where) a waiting job waits."""

    # --- limits ------------------------------------------------------------------

    def get_limits(self) -> Limits:
        """The limits in force (none stored: no limits)."""
        with self._read() as connection:
            return _limits(connection)

    def set_limits(self, *, limits: Limits, updated_by: str | None = None) -> Limits:
        """Replace the limits; the next admission pass applies them."""
        values = {
            "limits": limits.model_dump(mode="json"),
            "updated_at": utcnow(),
            "updated_by": updated_by,
        }
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(admission_limits).values(id=LIMITS_ROW, **values)
        with self._write() as connection:
            connection.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))
        return limits

    def seed_limits(self, *, limits: Limits) -> bool:
        """Store `limits` unless limits are stored already; whether they were stored."""
        dialect = postgresql if self._engine.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(admission_limits)
            .values(id=LIMITS_ROW, limits=limits.model_dump(mode="json"), updated_at=utcnow())
            .on_conflict_do_nothing()
            .returning(admission_limits.c.id)
        )
        with self._write() as connection:
            return connection.execute(statement).first() is not None

    # --- submit ------------------------------------------------------------------

    def is_limited(
        self,
        *,
        queue: str,
        pipeline: str,
        user_id: str | None,
        concurrency_key: str | None,
        limits: Limits,
    ) -> bool:
        """Whether a job of this lane must wait for admission under `limits`."""
        return is_limited(Lane(queue, pipeline, user_id, concurrency_key), limits)

    def pending_count(self, *, user_id: str | None, at_most: int) -> int:
        """The user's pending jobs, counted up to `at_most` (the cap is all that matters)."""
        owner = jobs.c.user_id.is_(None) if user_id is None else jobs.c.user_id == user_id
        inner = (
            select(jobs.c.id)
            .where(owner, jobs.c.status == JobStatus.pending.value)
            .limit(at_most)
            .subquery()
        )
        with self._read() as connection:
            return int(connection.execute(select(func.count()).select_from(inner)).scalar_one())

    # --- the pass ----------------------------------------------------------------

    def has_waiting(self) -> bool:
        """Whether any job waits for admission (one index probe, no write)."""
        with self._read() as connection:
            return (
                connection.execute(select(jobs.c.id).where(_waiting).limit(1)).first() is not None
            )

    def admit_waiting(self, *, most: int = 200) -> list[Job]:
        """Admit up to `most` waiting jobs that fit the limits, marked as published now.

        The caller publishes them, and marks any it could not publish undispatched."""
        if most <= 0 or not self.has_waiting():
            return []
        admitted: list[Job] = []
        with self._write() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(ADMISSION_LOCK)))
            limits = _limits(connection)
            occupancy = _occupancy(connection)
            # After the occupancy read: no earlier than the end of any job it saw finished.
            now = utcnow()
            lanes = {name: Lane.parse(name) for name in _lane_names(connection)}
            turns = _turns(connection, {lane.user_key for lane in lanes.values()})
            next_turn = (
                connection.execute(
                    select(func.coalesce(func.max(admission_turns.c.turn), 0))
                ).scalar_one()
                + 1
            )
            heads: dict[str, Any] = {}
            while len(admitted) < most:
                free = [n for n, lane in lanes.items() if not holding_back(lane, limits, occupancy)]
                for name in free:
                    if name not in heads:
                        heads[name] = _head(connection, name)
                candidates = [name for name in free if heads[name] is not None]
                if not candidates:
                    break
                name = min(
                    candidates,
                    key=lambda n: (
                        -heads[n].priority,
                        turns.get(lanes[n].user_key, 0),
                        heads[n].created_at,
                        heads[n].id,
                    ),
                )
                lane, head = lanes[name], heads.pop(name)
                row = connection.execute(
                    update(jobs)
                    .where(jobs.c.id == head.id, _waiting, jobs.c.cancel_requested.is_(False))
                    .values(admitted_at=now, dispatched_at=now, dispatch_count=1)
                    .returning(*JOB_COLUMNS)
                ).one_or_none()
                if row is None:
                    continue  # cancelled meanwhile; the lane's next head is read again
                admitted.append(to_job(row._mapping))
                occupancy.add(lane)
                turns[lane.user_key] = next_turn
                next_turn += 1
            _save_turns(connection, turns, {lanes[n].user_key for n in lanes}, admitted)
        for job in admitted:
            logger.info("job %s admitted", job.id, extra={"job_id": job.id})
        return admitted

    # --- why a job waits ---------------------------------------------------------

    def get_job(self, *, job_id: str, visibility: Visibility = EVERYONE) -> Job:
        job = super().get_job(job_id=job_id, visibility=visibility)
        return self._explain([job])[0] if job.status == JobStatus.pending else job

    def list_jobs(
        self,
        *,
        visibility: Visibility = EVERYONE,
        status: JobStatus | None = None,
        pipeline_name: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        items, next_cursor = super().list_jobs(
            visibility=visibility,
            status=status,
            pipeline_name=pipeline_name,
            limit=limit,
            cursor=cursor,
        )
        return self._explain(items), next_cursor

    def waiting_by_reason(self) -> list[tuple[str, str, int]]:
        """(queue, what holds them back, count) of waiting jobs, e.g. ('default', 'pipeline
        train', 12); jobs no limit holds back wait for 'turn'."""
        with self._read() as connection:
            limits = _limits(connection)
            occupancy = _occupancy(connection)
            rows = connection.execute(
                select(jobs.c.admission_lane, func.count())
                .where(_waiting)
                .group_by(jobs.c.admission_lane)
            ).all()
        totals: Counter[tuple[str, str]] = Counter()
        for name, count in rows:
            lane = Lane.parse(name)
            reason = holding_back(lane, limits, occupancy)
            totals[(lane.queue, reason.split(":")[0] if reason else "turn")] += int(count)
        return [(queue, reason, count) for (queue, reason), count in sorted(totals.items())]

    def _explain(self, items: list[Job]) -> list[Job]:
        pending = [job.id for job in items if job.status == JobStatus.pending]
        if not pending:
            return items
        with self._read() as connection:
            rows = connection.execute(
                select(
                    jobs.c.id,
                    jobs.c.admission_lane,
                    jobs.c.priority,
                    jobs.c.created_at,
                    jobs.c.user_id,
                ).where(jobs.c.id.in_(pending), _waiting)
            ).all()
            if not rows:
                return items
            limits = _limits(connection)
            occupancy = _occupancy(connection)
            turns = _turns(connection, None)
            found = {
                row.id: (
                    holding_back(Lane.parse(row.admission_lane), limits, occupancy) or NOT_ADMITTED,
                    _position(connection, row, turns),
                )
                for row in rows
            }
        return [
            job.model_copy(
                update={"waiting_reason": found[job.id][0], "position": found[job.id][1]}
            )
            if job.id in found
            else job
            for job in items
        ]


def _limits(connection: Connection) -> Limits:
    stored = connection.execute(
        select(admission_limits.c.limits).where(admission_limits.c.id == LIMITS_ROW)
    ).scalar_one_or_none()
    return Limits.model_validate(stored) if stored is not None else Limits()


def _occupancy(connection: Connection) -> Occupancy:
    """Counted from running jobs and admitted pending ones (never from waiting jobs), in
    one statement: on PostgreSQL each statement reads its own snapshot, and a job claimed
    (admitted → running) between two reads would be counted by neither."""
    occupancy = Occupancy()
    columns = (jobs.c.queue, jobs.c.pipeline_name, jobs.c.user_id, jobs.c.concurrency_key)
    running = select(*columns).where(jobs.c.status == JobStatus.running.value)
    admitted = select(*columns).where(
        jobs.c.status == JobStatus.pending.value, jobs.c.admitted_at.is_not(None)
    )
    for queue, pipeline, user, key in connection.execute(union_all(running, admitted)):
        occupancy.add(Lane(queue, pipeline, user, key))
    return occupancy


def _lane_names(connection: Connection) -> list[str]:
    hint = _SQLITE_WAITING if connection.dialect.name == "sqlite" else ""
    return list(connection.execute(text(_LANES.format(hint=hint))).scalars())


def _turns(connection: Connection, users: set[str] | None) -> dict[str, int]:
    query = select(admission_turns.c.user_key, admission_turns.c.turn)
    if users is not None:
        query = query.where(admission_turns.c.user_key.in_(users))
    return {user: int(turn) for user, turn in connection.execute(query)}


def _save_turns(
    connection: Connection, turns: dict[str, int], users: set[str], admitted: list[Job]
) -> None:
    served = {(job.user_id if job.user_id is not None else "") for job in admitted}
    for user in served & users:
        changed = connection.execute(
            update(admission_turns)
            .where(admission_turns.c.user_key == user)
            .values(turn=turns[user])
        ).rowcount
        if not changed:
            connection.execute(insert(admission_turns).values(user_key=user, turn=turns[user]))


def _head(connection: Connection, lane: str) -> Any:
    """The lane's next job: highest priority, then oldest."""
    return connection.execute(
        select(jobs.c.id, jobs.c.priority, jobs.c.created_at)
        .where(_waiting, jobs.c.admission_lane == lane)
        .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
        .limit(1)
        .with_hint(jobs, _SQLITE_WAITING, "sqlite")
    ).one_or_none()


def _position(connection: Connection, row: Any, turns: dict[str, int]) -> int:
    """1 + the waiting jobs admission would take first if no limit held any of them back."""
    higher = connection.execute(
        select(func.count()).where(_waiting, jobs.c.priority > row.priority)
    ).scalar_one()
    same = connection.execute(
        select(jobs.c.user_id, func.count(), func.min(jobs.c.created_at))
        .where(_waiting, jobs.c.priority == row.priority)
        .group_by(jobs.c.user_id)
    ).all()
    owner = jobs.c.user_id.is_(None) if row.user_id is None else jobs.c.user_id == row.user_id
    mine_before = connection.execute(
        select(func.count()).where(
            _waiting,
            owner,
            jobs.c.priority == row.priority,
            tuple_(jobs.c.created_at, jobs.c.id) < tuple_(row.created_at, row.id),
        )
    ).scalar_one()
    me = row.user_id or ""
    first = {user or "": oldest for user, _, oldest in same}
    my_place = (turns.get(me, 0), first.get(me, row.created_at))
    ahead = int(higher) + int(mine_before)
    for user, count, oldest in same:
        if (user or "") == me:
            continue
        # Users take turns: each gives one job per round up to this job's round, and
        # one more if it comes first in the turn order (served less recently, or older).
        first_in_turn = (turns.get(user or "", 0), oldest) < my_place
        ahead += min(int(count), int(mine_before) + (1 if first_in_turn else 0))
    return ahead + 1
