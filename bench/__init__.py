"""Benchmarks of the gateway on a real stack: `python -m bench [--smoke]`.

Each benchmark drives real Redis, Celery workers, the uvicorn API on SQLite and
real `kedro run` subprocesses (the harness of `tests/utils/stack.py`), and
reports numbers next to their targets. See `docs/performance.md`.
"""
