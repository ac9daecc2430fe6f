"""Celery configuration, loaded with `config_from_object("celery_config")`.

Tuned for long jobs whose state lives in the database: late acks and a
prefetch of one so a busy worker never sits on queued jobs, JSON only, no
result backend. Task events are off: the job's own states and events are in the
store, and sending Celery's (a Redis publish before each run is handed to a pool
process) cost about a millisecond per job. Flower turns them on by itself (its
`enable_events`, on by default); other consumers can run
`celery -A worker control enable_events`.
"""

import os

from app.core.config import DEFAULT_QUEUE, get_settings

_settings = get_settings()

broker_url = _settings.celery_broker_url or "redis://127.0.0.1:6379/0"
broker_connection_retry_on_startup = True
broker_connection_timeout = 2
broker_transport_options = {
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "socket_keepalive": True,
    "health_check_interval": 10,
}
task_default_queue = DEFAULT_QUEUE
task_acks_late = True
task_ignore_result = True
task_serializer = "json"
accept_content = ["json"]
worker_prefetch_multiplier = 1
worker_concurrency = _settings.worker_concurrency or os.cpu_count()
worker_send_task_events = False
worker_hijack_root_logger = False
enable_utc = True
