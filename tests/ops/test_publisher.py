"""Run messages: the broker's filled-in template is the message Celery itself publishes."""

from __future__ import annotations

import base64
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
import redis

from app.broker.celery_app import RUN_JOB_TASK
from app.broker.publisher import Broker
from app.schemas.jobs import Job, JobCreate
from app.store import JobManager
from tests.utils.stack import RedisServer


@pytest.fixture
def redis_client(redis_server: RedisServer):
    client = redis.Redis(unix_socket_path=str(redis_server.socket_path))
    yield client
    client.close()


def _jobs(manager: JobManager, queue: str, count: int) -> list[Job]:
    request = JobCreate(pipeline_name="arithmetic", queue=queue)
    return [
        manager.create_job(request=request, user_id=None, dispatched=True)[0] for _ in range(count)
    ]


def _read(raw: Any) -> dict[str, Any]:
    """A published message, its body decoded and its task id (its own root unless sent
    from a task) and delivery tag blanked: they differ per message."""
    message: dict[str, Any] = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    headers, properties = message["headers"], message["properties"]
    assert properties["correlation_id"] == headers["id"]
    if headers["root_id"] == headers["id"]:
        headers["root_id"] = "task id"
    uuid.UUID(headers["id"])
    headers["id"] = properties["correlation_id"] = "task id"
    uuid.UUID(message["properties"]["delivery_tag"])
    message["properties"]["delivery_tag"] = "tag"
    return message


@pytest.mark.parametrize("queue", ["default", "gpu.queue-2"])
def test_a_run_message_is_the_one_celery_publishes(
    manager: JobManager, broker: Broker, redis_client: redis.Redis, queue: str
) -> None:
    [job] = _jobs(manager, queue, 1)
    assert broker.publish_many([job]) == []
    ours = _read(redis_client.rpop(queue))
    broker._celery.send_task(
        RUN_JOB_TASK, args=[job.id], queue=queue, argsrepr=repr([job.id]), kwargsrepr="{}"
    )
    celerys = _read(redis_client.rpop(queue))
    assert ours == celerys
    assert ours["body"][0] == [job.id]
    assert ours["properties"]["delivery_info"]["routing_key"] == queue


def test_each_message_of_a_group_has_its_own_ids(
    manager: JobManager, broker: Broker, redis_client: redis.Redis
) -> None:
    jobs = _jobs(manager, "default", 5)
    assert broker.publish_many(jobs) == []
    raw = [json.loads(item) for item in redis_client.lrange("default", 0, -1)]
    bodies = sorted(json.loads(base64.b64decode(message["body"]))[0][0] for message in raw)
    assert bodies == sorted(job.id for job in jobs)
    assert len({message["headers"]["id"] for message in raw}) == 5
    assert len({message["properties"]["delivery_tag"] for message in raw}) == 5
    assert not redis_client.keys("gateway-template*")


def test_after_the_broker_returns_the_next_group_is_sent(
    manager: JobManager, broker: Broker, redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    [first, second] = _jobs(manager, "default", 2)
    assert broker.publish_many([first]) == []
    redis_server.stop()
    assert broker.publish_many([second]) == [second]
    assert broker.seems_down
    redis_server.start()  # a new, empty Redis
    assert broker.publish_many([second]) == []
    assert not broker.seems_down
    [message] = redis_client.lrange("default", 0, -1)
    assert json.loads(base64.b64decode(json.loads(message)["body"]))[0] == [second.id]


def test_an_empty_group_does_not_touch_the_broker(dead_broker: Broker) -> None:
    """A group whose jobs all wait for admission publishes nothing, and so cannot fail."""
    assert dead_broker.publish_many([]) == []
    assert not dead_broker.seems_down


# What Celery shows of the task a worker is running (`current_worker_task`).
_RUNNING_TASK = SimpleNamespace(
    request=SimpleNamespace(
        id="3f6b1e0e-0000-4000-8000-00000000aaaa", root_id="3f6b1e0e-0000-4000-8000-00000000bbbb"
    )
)


def test_a_message_sent_from_a_task_names_it_as_parent_as_celery_does(
    manager: JobManager,
    broker: Broker,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run's end admits the next jobs from inside its task: their messages carry the
    task's lineage, each time, like `send_task`'s (the template itself is made once)."""
    [first, second] = _jobs(manager, "default", 2)
    assert broker.publish_many([first]) == []  # the template, made outside any task
    redis_client.delete("default")
    monkeypatch.setattr(type(broker._celery), "current_worker_task", _RUNNING_TASK)
    assert broker.publish_many([second]) == []
    ours = _read(redis_client.rpop("default"))
    broker._celery.send_task(
        RUN_JOB_TASK,
        args=[second.id],
        queue="default",
        argsrepr=repr([second.id]),
        kwargsrepr="{}",
        add_to_parent=False,  # the stand-in keeps no trail of results
    )
    celerys = _read(redis_client.rpop("default"))
    assert ours["headers"]["parent_id"] == _RUNNING_TASK.request.id
    assert ours["headers"]["root_id"] == _RUNNING_TASK.request.root_id
    assert ours == celerys


def test_with_a_priority_routed_in_each_message_is_sent_by_celery(
    manager: JobManager, broker: Broker, redis_client: redis.Redis
) -> None:
    """A configuration the template cannot follow (a priority puts a message on another
    list) costs speed, not delivery."""
    broker._celery.conf.task_routes = {RUN_JOB_TASK: {"priority": 5}}
    jobs = _jobs(manager, "default", 3)
    assert broker.publish_many(jobs) == []
    assert broker.publish_many(jobs[:1]) == []
    assert not broker.seems_down
    lists = [key for key in redis_client.keys("default*") if redis_client.type(key) == b"list"]
    messages = [json.loads(item) for key in lists for item in redis_client.lrange(key, 0, -1)]
    assert len(messages) == 4
    assert {message["properties"]["priority"] for message in messages} == {5}
