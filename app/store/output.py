"""The output log: chunks stored at their logical offsets, capped head and rolling tail."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    select,
    update,
)

from app.schemas.jobs import LogChunk
from app.store.clock import database_now_expression
from app.store.jobs import JobRecords
from app.store.rows import OWNED, owner
from app.store.tables import job_output, jobs
from app.store.types import EVERYONE, OutputBatch, RunProgress, Visibility, utcnow


class OutputLog(JobRecords):
    """Append a run's output and read it back by byte range."""

    def append_output(
        self, *, job_id: str, attempt: int, offset: int, data: bytes, progress: RunProgress
    ) -> None:
        """Store a batch of output at its logical offset, keeping head and tail under the cap."""
        with self._write() as connection:
            self._store_output(
                connection,
                job_id=job_id,
                attempt=attempt,
                batch=OutputBatch(offset, data, progress),
            )

    def _store_output(
        self, connection: Connection, *, job_id: str, attempt: int, batch: OutputBatch
    ) -> None:
        """`append_output` in the caller's transaction."""
        offset, data, progress = batch.offset, batch.data, batch.progress
        pieces = self._capped_pieces(offset, data)
        dropped = len(data) - sum(len(piece) for _, piece in pieces)
        updated = connection.execute(
            _output_statement(connection.dialect.name),
            {
                **owner(job_id, attempt),
                "offset": offset,
                "new_output_bytes": offset + len(data),
                "dropped": dropped,
                "new_completed_nodes": list(progress.completed_nodes),
                "new_running_nodes": list(progress.running_nodes),
                "new_total_nodes": progress.total_nodes,
                "now": utcnow(),
            },
        ).rowcount
        if not updated:
            return
        if pieces:
            connection.execute(
                insert(job_output),
                [
                    {"job_id": job_id, "offset": at, "size": len(piece), "data": piece}
                    for at, piece in pieces
                ],
            )
        self._roll_tail(connection, job_id, end=offset + len(data))

    def _capped_pieces(self, offset: int, data: bytes) -> list[tuple[int, bytes]]:
        pieces = []
        end = offset + len(data)
        if offset < self._head_limit:
            head = data[: self._head_limit - offset]
            pieces.append((offset, head))
            offset += len(head)
            data = data[len(head) :]
        if data:
            keep_from = max(offset, end - self._tail_limit)
            pieces.append((keep_from, data[keep_from - offset :]))
        return [(at, piece) for at, piece in pieces if piece]

    def _roll_tail(self, connection: Connection, job_id: str, *, end: int) -> None:
        """Drop tail chunks that fell out of the last `tail_limit` bytes."""
        keep_from = end - self._tail_limit
        if keep_from <= self._head_limit:
            return
        in_tail = (
            job_output.c.job_id == job_id,
            job_output.c.offset >= self._head_limit,
            job_output.c.offset < keep_from,
        )
        # Whole stale chunks go in one statement; only a chunk straddling `keep_from`
        # is read back, to keep its newer part.
        gone = and_(*in_tail, job_output.c.offset + job_output.c.size <= keep_from)
        dropped = int(
            connection.execute(
                select(func.coalesce(func.sum(job_output.c.size), 0)).where(gone)
            ).scalar_one()
        )
        connection.execute(delete(job_output).where(gone))
        straddling = connection.execute(
            select(job_output.c.offset, job_output.c.size, job_output.c.data).where(*in_tail)
        ).one_or_none()
        if straddling is not None:
            kept = straddling.data[keep_from - straddling.offset :]
            dropped += straddling.size - len(kept)
            connection.execute(
                delete(job_output).where(
                    job_output.c.job_id == job_id, job_output.c.offset == straddling.offset
                )
            )
            connection.execute(
                insert(job_output).values(
                    job_id=job_id, offset=keep_from, size=len(kept), data=kept
                )
            )
        if dropped:
            connection.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(output_dropped_bytes=jobs.c.output_dropped_bytes + dropped)
            )

    def read_output(
        self, *, job_id: str, offset: int, limit: int, visibility: Visibility = EVERYONE
    ) -> LogChunk:
        """Output from `offset` (skipping any dropped gap), cut at UTF-8 character boundaries."""
        job = self.get_job(job_id=job_id, visibility=visibility)
        # Read a little past `limit` to see whether it cuts a character in two.
        start, data, resume_at = self._read_range(job_id, offset=offset, want=limit + 3)
        skip = _leading_continuation_bytes(data)  # never start inside a character
        start, data = start + skip, data[skip:]
        next_offset = None
        unfinished = _incomplete_tail(data)
        if len(data) > limit:
            data = data[: _cut_at_character(data, limit)]
        elif resume_at is not None and unfinished:
            # A dropped gap follows: a character cut by it can never complete; skip it.
            data = data[: len(data) - unfinished]
            next_offset = resume_at
        elif not job.status.is_terminal:
            data = data[: len(data) - unfinished]  # the rest is still coming
        if next_offset is None:
            next_offset = start + len(data)
        complete = job.status.is_terminal and next_offset >= job.output_bytes
        return LogChunk(
            offset=start,
            next_offset=next_offset,
            data=data.decode("utf-8", "replace"),
            complete=complete,
        )

    def _read_range(self, job_id: str, *, offset: int, want: int) -> tuple[int, bytes, int | None]:
        """Up to `want` contiguous bytes from `offset` (or the first kept byte after it), and
        where output resumes if they end at a dropped gap. Bounded in SQL: only the bytes of
        the range leave the database, whatever the size of the log."""
        owned = job_output.c.job_id == job_id
        with self._read() as connection:
            first = connection.execute(
                select(job_output.c.offset)
                .where(owned, job_output.c.offset + job_output.c.size > offset)
                .order_by(job_output.c.offset)
                .limit(1)
            ).scalar_one_or_none()
            if first is None:
                return offset, b"", None
            start = max(offset, first)
            skip = case((job_output.c.offset < start, start - job_output.c.offset), else_=0)
            rows = connection.execute(
                select(
                    (job_output.c.offset + skip).label("offset"),
                    func.substr(job_output.c.data, cast(skip + 1, Integer), want).label("data"),
                )
                .where(
                    owned,
                    job_output.c.offset < start + want,
                    job_output.c.offset + job_output.c.size > start,
                )
                .order_by(job_output.c.offset)
            ).all()
            start, data, resume_at = _contiguous(rows, offset=start, limit=want)
            if resume_at is None and len(data) < want:  # a gap wider than the range?
                resume_at = connection.execute(
                    select(func.min(job_output.c.offset)).where(
                        owned, job_output.c.offset > start + len(data)
                    )
                ).scalar_one_or_none()
        return start, bytes(data), resume_at


def _contiguous(rows: Sequence[Any], *, offset: int, limit: int) -> tuple[int, bytes, int | None]:
    """Join stored chunks from `offset` (or the first kept byte after it) up to `limit` bytes.

    Also returns where output resumes if the joined run ends at a dropped gap.
    """
    if not rows:
        return offset, b"", None
    start = max(offset, rows[0].offset)
    parts: list[bytes] = []
    position = start
    for row in rows:
        if row.offset > position:
            return start, b"".join(parts), int(row.offset)
        if position - start >= limit:
            break
        piece = row.data[position - row.offset :][: limit - (position - start)]
        parts.append(piece)
        position += len(piece)
    return start, b"".join(parts), None


def _cut_at_character(data: bytes, limit: int) -> int:
    """The longest prefix within `limit` that ends on a character boundary (at least one char)."""
    cut = limit
    while cut > 0 and data[cut] & 0xC0 == 0x80:
        cut -= 1
    if cut == 0:  # a single character wider than `limit`: return it whole
        cut = 1
        while cut < len(data) and data[cut] & 0xC0 == 0x80:
            cut += 1
    return cut


def _leading_continuation_bytes(data: bytes) -> int:
    count = 0
    while count < min(3, len(data)) and data[count] & 0xC0 == 0x80:
        count += 1
    return count


def _incomplete_tail(data: bytes) -> int:
    """How many trailing bytes form an unfinished UTF-8 character."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue
        if byte & 0x80 == 0:
            return 0
        width = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return back if back < width else 0
    return 0


@cache
def _output_statement(dialect: str) -> Any:
    """A batch's bookkeeping on the job's row, at the batch's offset only: a batch sent
    again after an unacknowledged commit (the connection lost mid-commit) is not stored
    twice."""
    return (
        update(jobs)
        .where(*OWNED, jobs.c.output_bytes == bindparam("offset"))
        .values(
            output_bytes=bindparam("new_output_bytes"),
            output_dropped_bytes=jobs.c.output_dropped_bytes + bindparam("dropped"),
            completed_nodes=bindparam("new_completed_nodes", type_=jobs.c.completed_nodes.type),
            running_nodes=bindparam("new_running_nodes", type_=jobs.c.running_nodes.type),
            total_nodes=bindparam("new_total_nodes"),
            heartbeat_at=database_now_expression(dialect),
        )
    )
