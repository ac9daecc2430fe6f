"""The benchmark suite's smoke run works end to end (the numbers are not checked)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import REPO_ROOT

pytestmark = pytest.mark.e2e

METRICS = {
    "dispatch_p50_ms",
    "dispatch_p99_ms",
    "visibility_p50_ms",
    "visibility_p99_ms",
    "e2e_ratio",
    "e2e_api_wall_s",
    "e2e_direct_wall_s",
    "e2e_ratio_tight_polling",
    "post_rps",
    "post_p50_ms",
    "post_p99_ms",
    "get_rps",
    "get_p50_ms",
    "get_p99_ms",
    "relay_mb_s",
    "relay_rss_growth_mb",
    "storm_jobs_per_s",
    "storm_completed",
    "storm_lost",
    "storm_failed",
    "storm_duplicated",
    "anchor_arithmetic_kedro_server_ms",
    "anchor_arithmetic_gateway_ms",
    "anchor_chain_kedro_server_ms",
    "anchor_chain_gateway_ms",
    "ours_get_rps",
    "naive_get_rps",
    "bare_get_rps",
    "get_vs_naive",
    "followers_complete",
    "followers_api_cores",
    "million_metrics_ms",
    "million_list_ms",
    "million_purge_jobs_per_s",
    "million_purge_get_p99_ms",
    "outbox_empty_get_rps",
    "outbox_full_get_rps",
    "outbox_full_get_p99_ms",
    "outbox_get_ratio",
    "outbox_sender_attempts",
}


@pytest.mark.timeout(420)
def test_bench_smoke_runs_every_benchmark_and_writes_every_metric(tmp_path: Path) -> None:
    output = tmp_path / "smoke.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    document = json.loads(output.read_text())
    assert document["mode"] == "smoke"
    assert not document["errors"]
    metrics = document["metrics"]
    assert set(metrics) >= METRICS, sorted(METRICS - set(metrics))
    for name in METRICS:
        assert isinstance(metrics[name]["value"], int | float), (name, metrics[name])
    assert metrics["storm_lost"]["value"] == 0
    assert metrics["storm_duplicated"]["value"] == 0
    for name in ("dispatch", "visibility", "relay", "storm", "get", "outbox", "post"):
        assert "error" not in document["benchmarks"][name]["details"], name
    assert "dispatch latency p50" in completed.stdout  # the table was printed
