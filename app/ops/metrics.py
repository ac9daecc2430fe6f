"""Prometheus metrics derived at scrape time from the database and the broker.

Job and worker figures come from shared state, not per-process counters, so
they are right with several API processes and workers on other machines. Only
the HTTP request metrics are per API process (label them by instance).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from contextvars import ContextVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from app.broker.publisher import Broker
from app.core.config import DEFAULT_QUEUE, Settings
from app.schemas.jobs import JobStatus
from app.store import JobManager

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)
ALL_PIPELINES = "_all"
# Whether this scrape may name pipelines (set by the endpoint for the caller at hand).
pipeline_names_shown: ContextVar[bool] = ContextVar("pipeline_names_shown", default=True)


def _pipeline_label(name: str) -> str:
    return name if pipeline_names_shown.get() else ALL_PIPELINES


class GatewayCollector(Collector):
    """Jobs, queues and workers, read when Prometheus scrapes."""

    def __init__(self, manager: JobManager, broker: Broker, settings: Settings) -> None:
        self._manager = manager
        self._broker = broker
        self._settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        counts = self._manager.job_counts()
        yield from self._job_metrics(counts)
        yield self._duration_histogram()
        workers = self._manager.list_workers(lost_after=self._settings.worker_lost_after)
        live = GaugeMetricFamily(
            "gateway_workers_live", "Workers with a fresh heartbeat, per queue", labels=["queue"]
        )
        queues = {DEFAULT_QUEUE} | {q for w in workers for q in w.queues}
        queues |= {queue for _, _, queue, _ in counts}
        for queue in sorted(queues):
            live.add_metric([queue], sum(1 for w in workers if w.alive and queue in w.queues))
        yield live
        yield self._queue_depth(queues)
        yield self._waiting()

    def _waiting(self) -> GaugeMetricFamily:
        """Jobs held back by the admission limits: a scaling signal prefetch cannot hide."""
        waiting = GaugeMetricFamily(
            "gateway_jobs_waiting",
            "Pending jobs held back by admission, per queue and by what ('pipeline train', "
            "'user alice', ...; 'turn': no limit, waiting for the next pass)",
            labels=["queue", "reason"],
        )
        for queue, reason, count in self._manager.waiting_by_reason():
            waiting.add_metric([queue, reason], count)
        return waiting

    def _job_metrics(
        self, counts: list[tuple[str, str, str, int]]
    ) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        submitted = CounterMetricFamily(
            "gateway_jobs_submitted",
            "Jobs recorded (as stored; retention purges lower it)",
            labels=["pipeline"],
        )
        finished = CounterMetricFamily(
            "gateway_jobs_finished",
            "Jobs that reached a terminal status",
            labels=["status", "pipeline"],
        )
        current = GaugeMetricFamily(
            "gateway_jobs", "Jobs by current status and queue", labels=["status", "queue"]
        )
        by_pipeline: dict[str, int] = defaultdict(int)
        by_finish: dict[tuple[str, str], int] = defaultdict(int)
        by_status: dict[tuple[str, str], int] = defaultdict(int)
        for status, name, queue, count in counts:
            pipeline = _pipeline_label(name)
            by_pipeline[pipeline] += count
            by_status[(status, queue)] += count
            if JobStatus(status).is_terminal:
                by_finish[(status, pipeline)] += count
        for pipeline, count in sorted(by_pipeline.items()):
            submitted.add_metric([pipeline], count)
        for labels, count in sorted(by_finish.items()):
            finished.add_metric(list(labels), count)
        for status in JobStatus:
            for queue in sorted({q for _, q in by_status} or {DEFAULT_QUEUE}):
                current.add_metric([status.value, queue], by_status.get((status.value, queue), 0))
        yield submitted
        yield finished
        yield current

    def _duration_histogram(self) -> HistogramMetricFamily:
        histogram = HistogramMetricFamily(
            "gateway_job_duration_seconds",
            "Wall time of finished kedro runs",
            labels=["pipeline"],
        )
        merged: dict[str, tuple[list[int], int, float]] = {}
        for name, (cumulative, count, total) in self._manager.duration_buckets(
            DURATION_BUCKETS
        ).items():
            label = _pipeline_label(name)
            before = merged.get(label, ([0] * len(DURATION_BUCKETS), 0, 0.0))
            merged[label] = (
                [a + b for a, b in zip(before[0], cumulative, strict=True)],
                before[1] + count,
                before[2] + total,
            )
        for pipeline, (cumulative, count, total) in sorted(merged.items()):
            buckets = [
                (str(float(b)), c) for b, c in zip(DURATION_BUCKETS, cumulative, strict=True)
            ]
            buckets.append(("+Inf", count))
            histogram.add_metric([pipeline], buckets, sum_value=total)
        return histogram

    def _queue_depth(self, queues: set[str]) -> GaugeMetricFamily:
        depth = GaugeMetricFamily(
            "gateway_queue_depth", "Messages waiting in the broker, per queue", labels=["queue"]
        )
        try:
            for queue, length in sorted(self._broker.queue_depths(queues).items()):
                depth.add_metric([queue], length)
        except Exception as exc:  # the broker being down must not break the scrape
            logger.warning("queue depth unavailable: %s", exc)
        return depth
