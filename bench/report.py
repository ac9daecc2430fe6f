"""Metrics with their targets, percentiles, the printed table and the JSON file."""

from __future__ import annotations

import json
import math
import platform
import sqlite3
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import psutil

Comparison = Literal["<=", ">=", "=="]


@dataclass(frozen=True)
class Target:
    comparison: Comparison
    bound: float

    def met_by(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.comparison == "<=":
            return value <= self.bound
        if self.comparison == ">=":
            return value >= self.bound
        return value == self.bound

    def __str__(self) -> str:
        symbol = {"<=": "≤", ">=": "≥", "==": "="}[self.comparison]
        return f"{symbol} {_number(self.bound)}"


@dataclass
class Metric:
    """One reported number; `target` None means it is reported for information."""

    name: str
    label: str
    value: float
    unit: str
    target: Target | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met_by(self.value)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": None if math.isnan(self.value) else self.value,
            "unit": self.unit,
            "target": None if self.target is None else asdict(self.target),
            "passed": self.passed,
        }


@dataclass
class Section:
    """The metrics and the raw details of one benchmark."""

    name: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(
        self,
        name: str,
        label: str,
        value: float,
        unit: str,
        target: tuple[Comparison, float] | None = None,
    ) -> None:
        self.metrics.append(
            Metric(name, label, float(value), unit, None if target is None else Target(*target))
        )


def percentile(samples: Sequence[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def summary(samples: Sequence[float], *, digits: int = 2) -> dict[str, Any]:
    """min / p50 / p90 / p99 / max / mean of samples, rounded, for the details."""
    if not samples:
        return {"n": 0}
    return {
        "n": len(samples),
        "min": round(min(samples), digits),
        "p50": round(percentile(samples, 50), digits),
        "p90": round(percentile(samples, 90), digits),
        "p99": round(percentile(samples, 99), digits),
        "max": round(max(samples), digits),
        "mean": round(statistics.fmean(samples), digits),
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu_model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": psutil.cpu_count(),
        "cpu": cpu_model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "kedro": _version("kedro"),
        "celery": _version("celery"),
        "uvicorn": _version("uvicorn"),
        "fastapi": _version("fastapi"),
    }


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value else "0"


def table(sections: Iterable[Section]) -> str:
    """The human-readable table: value, target and a pass/miss mark per metric."""
    rows = [("benchmark", "value", "target", "")]
    for section in sections:
        for metric in section.metrics:
            # Ratios get three decimals, so a value just past its bound never reads as on it.
            shown = f"{metric.value:.3f}" if metric.unit == "x" else _number(metric.value)
            value = f"{shown} {metric.unit}".rstrip()
            target = f"{metric.target} {metric.unit}".rstrip() if metric.target else "-"
            mark = {True: "pass", False: "MISS", None: ""}[metric.passed]
            rows.append((metric.label, value, target, mark))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        lines.append(
            "  ".join(
                [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]), row[3]]
            ).rstrip()
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_json(
    path: Path, *, mode: str, seconds: float, sections: Sequence[Section], info: dict[str, Any]
) -> None:
    """Every metric by name (flat, for tools) plus each benchmark's details."""
    document = {
        "mode": mode,
        **info,
        "duration_seconds": round(seconds, 1),
        "metrics": {m.name: m.as_json() for s in sections for m in s.metrics},
        "benchmarks": {
            s.name: {"title": s.title, "seconds": round(s.seconds, 1), "details": s.details}
            for s in sections
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
