"""The soak's verdict trips on growth after the warm-up, and only then (no processes)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bench.soak import MIB, Check, Sample, Tolerance, flatness, verdict

DURATION = 100.0
TIMES = [float(t) for t in range(0, 100, 2)]  # 50 samples, 40 of them after the warm-up


def samples(
    rss: Sequence[float] | None = None,
    fds: Sequence[int] | None = None,
    store: Sequence[float] | None = None,
) -> list[Sample]:
    """A run of one API whose series are as given (flat by default)."""
    return [
        Sample(
            t=t,
            submitted=10 * index,
            finished=10 * index,
            in_store=50,
            unfinished=0,
            store_bytes=int(store[index] if store else 40 * MIB),
            rss={"api": int(rss[index] if rss else 100 * MIB)},
            fds={"api": fds[index] if fds else 25},
        )
        for index, t in enumerate(TIMES)
    ]


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_flat_noisy_series_pass() -> None:
    noisy = [100 * MIB + 8 * MIB * math.sin(index) for index in range(len(TIMES))]
    fds = [25 + index % 3 for index in range(len(TIMES))]
    checks = verdict(samples(rss=noisy, fds=fds), duration=DURATION)
    assert all(check.ok for check in checks), checks


def test_a_steady_leak_after_the_warm_up_fails_the_rss_check() -> None:
    leaking = [100 * MIB + index * 1 * MIB for index in range(len(TIMES))]  # +1 MiB a sample
    checks = by_name(verdict(samples(rss=leaking), duration=DURATION))
    rss = checks["api rss"]
    assert not rss.ok
    assert rss.first is not None and rss.last is not None and rss.last - rss.first > 20 * MIB
    assert checks["api fds"].ok
    assert checks["store size"].ok


def test_growth_within_the_tolerance_passes() -> None:
    slow = [100 * MIB + index * 0.4 * MIB for index in range(len(TIMES))]  # ~12 MiB Q1 -> Q4
    assert by_name(verdict(samples(rss=slow), duration=DURATION))["api rss"].ok


def test_open_files_growing_by_more_than_a_few_fail() -> None:
    growing = [25 + index // 4 for index in range(len(TIMES))]  # +1 every 4 samples
    checks = by_name(verdict(samples(fds=growing), duration=DURATION))
    assert not checks["api fds"].ok
    few = [25 + (index >= 30) * 3 for index in range(len(TIMES))]  # a step of 3, once
    assert by_name(verdict(samples(fds=few), duration=DURATION))["api fds"].ok


def test_a_growing_store_fails() -> None:
    growing = [40 * MIB + index * MIB for index in range(len(TIMES))]
    assert not by_name(verdict(samples(store=growing), duration=DURATION))["store size"].ok


def test_growth_during_the_warm_up_and_after_the_run_is_not_held_against_it() -> None:
    rss = [(60 + 4 * index if index < 10 else 100) * MIB for index in range(len(TIMES))]
    run = samples(rss=rss)
    run.append(
        Sample(
            t=130.0,
            submitted=500,
            finished=500,
            in_store=0,
            unfinished=0,
            store_bytes=400 * MIB,
            rss={"api": 900 * MIB},
            fds={"api": 900},
        )
    )
    assert all(check.ok for check in verdict(run, duration=DURATION))


def test_a_service_down_in_any_sample_fails() -> None:
    run = samples()
    del run[20].rss["api"], run[20].fds["api"]
    run[20].down.append("api")
    assert not by_name(verdict(run, duration=DURATION))["services up"].ok


def test_too_few_samples_after_the_warm_up_is_not_a_pass() -> None:
    check = flatness("api rss", [0.0, 50.0, 99.0], [1.0, 1.0, 1.0], duration=100, kind="rss")
    assert not check.ok
    assert "too few" in check.detail


def test_the_tolerance_is_the_larger_of_its_share_and_its_amount() -> None:
    tolerance = Tolerance(relative=0.15, absolute=20 * MIB)
    assert tolerance.allowed(100 * MIB) == 20 * MIB
    assert tolerance.allowed(400 * MIB) == 60 * MIB
