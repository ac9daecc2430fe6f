"""How much each benchmark does: the full run (the documented sizes) and the CI smoke run."""

from __future__ import annotations

from dataclasses import dataclass

from bench.harness import StackShape


@dataclass(frozen=True)
class Plan:
    mode: str
    shape: StackShape
    warmup_jobs: int
    dispatch_jobs: int
    visibility_rounds: int
    poll_interval: float
    load_seconds: int
    load_connections: int
    chatty_mb: int
    storm_jobs: int
    storm_clients: int
    storm_poll_interval: float
    anchor_rounds: int
    million_jobs: int
    idle_seconds: float
    followers: int
    follow_seconds: float
    outbox_deliveries: int


# Two workers of one process each: as many kedro runs at once as this 2-core
# machine has cores, and two consumers competing for every message.
SHAPE = StackShape(workers=2, concurrency=1)

FULL = Plan(
    mode="full",
    shape=SHAPE,
    warmup_jobs=2,
    dispatch_jobs=60,
    visibility_rounds=40,
    poll_interval=0.005,
    load_seconds=10,
    load_connections=32,
    chatty_mb=100,
    storm_jobs=1000,
    storm_clients=50,
    storm_poll_interval=1.0,
    anchor_rounds=40,
    million_jobs=1_000_000,
    idle_seconds=10.0,
    followers=1000,
    follow_seconds=10.0,
    outbox_deliveries=10_000,
)

SMOKE = Plan(
    mode="smoke",
    shape=SHAPE,
    warmup_jobs=1,
    dispatch_jobs=4,
    visibility_rounds=2,
    poll_interval=0.005,
    load_seconds=2,
    load_connections=32,
    chatty_mb=5,
    storm_jobs=20,
    storm_clients=5,
    storm_poll_interval=0.25,
    anchor_rounds=3,
    million_jobs=2_000,
    idle_seconds=1.0,
    followers=20,
    follow_seconds=2.0,
    outbox_deliveries=200,
)
