"""Leases: a duty one process at a time performs, elected through the database.

A lease is a row (name, holder, expires_at). Taking it is a compare-and-set: it
succeeds when nobody holds it, its holder is the caller (a renewal), or it has
expired. A holder that dies simply stops renewing, and another takes over once
the lease expires.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, or_, update
from sqlalchemy.exc import IntegrityError

from app.store.base import StoreBase
from app.store.types import utcnow
from app.store.webhook_tables import leases


class Leases(StoreBase):
    """Acquire, renew and release named leases."""

    def acquire_lease(self, *, name: str, holder: str, ttl: timedelta) -> bool:
        """Take or renew `name` for `ttl`; False while another holder's lease is live."""
        now = utcnow()
        with self._write() as connection:
            taken = connection.execute(
                update(leases)
                .where(
                    leases.c.name == name,
                    or_(leases.c.holder == holder, leases.c.expires_at <= now),
                )
                .values(holder=holder, expires_at=now + ttl)
            ).rowcount
        if taken:
            return True
        try:  # never held yet: the first insert wins, a racing one hits the primary key
            with self._write() as connection:
                connection.execute(
                    insert(leases).values(name=name, holder=holder, expires_at=now + ttl)
                )
        except IntegrityError:
            return False
        return True

    def release_lease(self, *, name: str, holder: str) -> None:
        """Give `name` up at once (on shutdown), if `holder` still holds it."""
        with self._write() as connection:
            connection.execute(
                update(leases)
                .where(leases.c.name == name, leases.c.holder == holder)
                .values(expires_at=utcnow())
            )
