"""A naive job gateway, written the plain way: sqlite3 per request, `subprocess.run`.

The peer `python -m bench` measures the gateway beside (`--only peers`). It is what
one writes in an afternoon: sync endpoints, a new sqlite3 connection per request,
each run a `subprocess.run` of `kedro run` on a thread. With `NAIVE_RUN=0` (as the
benchmark runs it) it records jobs but starts no run, like the gateway's POST load
on a queue nobody serves.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

DB = os.environ.get("NAIVE_DB", "naive.db")
PROJECT = os.environ.get("NAIVE_PROJECT", "examples/demo_project")
RUN = os.environ.get("NAIVE_RUN", "1") == "1"
app = FastAPI()


def connect() -> sqlite3.Connection:
    connection = sqlite3.connect(DB, timeout=30)
    connection.row_factory = sqlite3.Row
    return connection


with connect() as db:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, pipeline_name TEXT, "
        "parameters TEXT, status TEXT, created_at TEXT, started_at TEXT, completed_at TEXT, "
        "exit_code INTEGER, output TEXT)"
    )


class JobIn(BaseModel):
    pipeline_name: str
    parameters: dict[str, Any] = {}


def now() -> str:
    return datetime.now(UTC).isoformat()


def run(job_id: str, job: JobIn) -> None:
    with connect() as c:
        c.execute("UPDATE jobs SET status='running', started_at=? WHERE id=?", (now(), job_id))
    params = ",".join(f"{key}={value}" for key, value in job.parameters.items())
    argv = [sys.executable, "-m", "kedro", "run", "--pipeline", job.pipeline_name]
    done = subprocess.run(
        argv + (["--params", params] if params else []),
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=False,
    )
    with connect() as c:
        c.execute(
            "UPDATE jobs SET status=?, completed_at=?, exit_code=?, output=? WHERE id=?",
            (
                "completed" if done.returncode == 0 else "failed",
                now(),
                done.returncode,
                done.stdout + done.stderr,
                job_id,
            ),
        )


@app.post("/api/v1/jobs", status_code=202)
def submit(job: JobIn) -> dict[str, Any]:
    job_id = str(uuid.uuid4())
    with connect() as c:
        c.execute(
            "INSERT INTO jobs (id, pipeline_name, parameters, status, created_at) "
            "VALUES (?, ?, ?, 'pending', ?)",
            (job_id, job.pipeline_name, json.dumps(job.parameters), now()),
        )
    if RUN:
        threading.Thread(target=run, args=(job_id, job), daemon=True).start()
    return get(job_id)


@app.get("/api/v1/jobs/{job_id}")
def get(job_id: str) -> dict[str, Any]:
    with connect() as c:
        row = c.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
    if row is None:
        raise HTTPException(404, "job not found")
    return {**dict(row), "parameters": json.loads(row["parameters"])}
