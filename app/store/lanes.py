"""Admission lanes: which limits hold a job back follows from four of its fields.

A lane is (queue, pipeline, user, concurrency key). Every limit is on one of those,
so the waiting jobs of a lane are all held back or all free: admission looks at
lanes, not at each waiting job.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from app.schemas.limits import DEFAULT_ENTRY, Limits

NO_USER = ""
DEFAULT_KEY_SLOTS = 1


@dataclass(frozen=True)
class Lane:
    queue: str
    pipeline: str
    user: str | None
    key: str | None

    @classmethod
    def parse(cls, text: str) -> Lane:
        queue, pipeline, user, key = json.loads(text)
        return cls(queue, pipeline, user, key)

    @property
    def user_key(self) -> str:
        """The user as admission counts turns and slots (jobs without a user share one)."""
        return self.user if self.user is not None else NO_USER


def lane_of(queue: str, pipeline: str, user: str | None, key: str | None) -> str:
    return json.dumps([queue, pipeline, user, key], separators=(",", ":"), ensure_ascii=False)


@dataclass
class Occupancy:
    """Admitted jobs (published or running) per queue, pipeline, user and key."""

    queues: Counter[str] = field(default_factory=Counter)
    pipelines: Counter[str] = field(default_factory=Counter)
    users: Counter[str] = field(default_factory=Counter)
    keys: Counter[str] = field(default_factory=Counter)

    def add(self, lane: Lane, count: int = 1) -> None:
        self.queues[lane.queue] += count
        self.pipelines[lane.pipeline] += count
        self.users[lane.user_key] += count
        if lane.key is not None:
            self.keys[lane.key] += count


def slots(lane: Lane, limits: Limits) -> list[tuple[str, int, int]]:
    """The limits on a lane: (what, how many may run, the lane's count key), in order."""
    found = []
    if lane.queue in limits.queues:
        found.append((f"queue {lane.queue}", limits.queues[lane.queue], 0))
    if lane.pipeline in limits.pipelines:
        found.append((f"pipeline {lane.pipeline}", limits.pipelines[lane.pipeline], 1))
    user_slots = limits.users.get(lane.user_key, limits.users.get(DEFAULT_ENTRY))
    if user_slots is not None:
        found.append((f"user {lane.user or 'anonymous'}", user_slots, 2))
    if lane.key is not None:
        key_slots = limits.concurrency_keys.get(
            lane.key, limits.concurrency_keys.get(DEFAULT_ENTRY, DEFAULT_KEY_SLOTS)
        )
        found.append((f"concurrency_key {lane.key}", key_slots, 3))
    return found


def is_limited(lane: Lane, limits: Limits) -> bool:
    """Whether any limit applies (else a job may be published as soon as it is recorded)."""
    return bool(slots(lane, limits))


def holding_back(lane: Lane, limits: Limits, occupancy: Occupancy) -> str | None:
    """The first limit the lane is at, as 'pipeline train: 1 of 1 running'; None if free."""
    counters = (occupancy.queues, occupancy.pipelines, occupancy.users, occupancy.keys)
    names = (lane.queue, lane.pipeline, lane.user_key, lane.key or "")
    for what, most, index in slots(lane, limits):
        running = counters[index][names[index]]
        if running >= most:
            return f"{what}: {running} of {most} running"
    return None
