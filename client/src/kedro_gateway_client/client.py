"""The synchronous client."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from kedro_gateway_client import _calls as calls
from kedro_gateway_client._calls import (
    DEFAULT_URL,
    MAX_LONG_POLL_SECONDS,
    RESUME_SCAN_BYTES,
    AuthScheme,
    Backoff,
    Call,
    RerunFrom,
    ServerFeatures,
    SseDecoder,
)
from kedro_gateway_client.config import resolve_settings
from kedro_gateway_client.errors import (
    ConnectionFailed,
    GatewayError,
    WaitTimeout,
    error_from_response,
)
from kedro_gateway_client.models import (
    Health,
    Job,
    JobCreate,
    JobEventList,
    JobList,
    JobStatus,
    Liveness,
    LogChunk,
    Pipeline,
    PipelineList,
    WorkerList,
)

T = TypeVar("T")
#: How often a broken log stream is reopened (from the last offset) before giving up.
STREAM_RECONNECTS = 5


class GatewayClient:
    """A client of the gateway's v1 API on `httpx.Client`.

    ```python
    with GatewayClient("http://127.0.0.1:8000", api_key="...") as gw:
        job = gw.submit("arithmetic", parameters={"initial_value": 10})
        job = gw.wait(job.id, timeout=600)
    ```

    Every method raises a `GatewayError` subclass on failure (`NotFound`, `Conflict`,
    `ValidationFailed`, `Unauthorized`, `ServerUnavailable`, `ConnectionFailed`, ...).
    `long_poll` forces (True) or forbids (False) `?wait=` on waits; by default it is used
    when the server's OpenAPI document offers it.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        auth_scheme: AuthScheme = "bearer",
        timeout: float = 30.0,
        long_poll: bool | None = None,
        transport: httpx.BaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={**calls.base_headers(api_key, auth_scheme), **(headers or {})},
            timeout=timeout,
            transport=transport,
        )
        self._long_poll = long_poll
        self._features: ServerFeatures | None = None

    @classmethod
    def from_config(
        cls,
        *,
        url: str | None = None,
        api_key: str | None = None,
        profile: str | None = None,
        config_file: str | Path | None = None,
        **kwargs: Any,
    ) -> GatewayClient:
        """A client configured by arguments, environment and config file (see `config`)."""
        s = resolve_settings(url=url, api_key=api_key, profile=profile, config_file=config_file)
        return cls(s.url, api_key=s.api_key, auth_scheme=s.auth_scheme, timeout=s.timeout, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- plumbing ----------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        extra: dict[str, Any] = {} if call.timeout is None else {"timeout": call.timeout}
        try:
            response = self._http.request(
                call.method,
                call.path,
                params=call.params,
                json=call.json,
                headers=call.headers,
                **extra,
            )
        except httpx.HTTPError as exc:
            raise calls.transport_error(exc, f"{self.url}{call.path}") from exc
        return call.parse(calls.checked(response, call.accept))

    def features(self, *, refresh: bool = False) -> ServerFeatures:
        """What the server offers beyond the base contract, read once from `/openapi.json`."""
        if self._features is None or refresh:
            try:
                document = self._send(calls.openapi())
            except (ConnectionFailed, GatewayError):
                document = {}
            self._features = ServerFeatures.from_openapi(document)
        return self._features

    # --- jobs --------------------------------------------------------------------------

    def submit(
        self,
        pipeline: str | JobCreate,
        *,
        parameters: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Job:
        """Record a job and enqueue it; `options` are JobCreate's other fields."""
        request = calls.job_create(pipeline, parameters, options)
        return self._send(calls.submit(request, idempotency_key))

    def get(self, job_id: str, *, wait: float | None = None) -> Job:
        """One job; `wait` asks a server that supports it to hold the answer until it changes."""
        return self._send(calls.get_job(job_id, wait))

    def list_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        pipeline_name: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobList:
        """One page of jobs, newest first."""
        return self._send(
            calls.list_jobs(status=status, pipeline_name=pipeline_name, limit=limit, cursor=cursor)
        )

    def iter_pages(
        self,
        *,
        status: JobStatus | str | None = None,
        pipeline_name: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> Iterator[JobList]:
        """Every page, following `next_cursor`."""
        while True:
            page = self.list_jobs(
                status=status, pipeline_name=pipeline_name, limit=page_size, cursor=cursor
            )
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def iter_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        pipeline_name: str | None = None,
        page_size: int = 100,
        max_items: int | None = None,
    ) -> Iterator[Job]:
        """Jobs one by one across pages, newest first, at most `max_items`."""
        seen = 0
        pages = self.iter_pages(status=status, pipeline_name=pipeline_name, page_size=page_size)
        for page in pages:
            for job in page.items:
                if max_items is not None and seen >= max_items:
                    return
                seen += 1
                yield job

    def cancel(self, job_id: str) -> Job:
        """Cancel a pending or running job; `Conflict` if it already ended."""
        return self._send(calls.cancel(job_id))

    def rerun(self, job_id: str, *, from_: RerunFrom = "start", **changes: Any) -> Job:
        """Run a job again, from its start or from where it failed.

        Uses the server's `POST /jobs/{id}/rerun` when it offers one (and no `changes`
        are asked); otherwise submits a copy of the job, with `from_nodes` set to the
        nodes Kedro's resume hint named when `from_="failure"`.
        """
        features = self.features()
        if features.rerun and not changes:
            return self._send(calls.rerun_on_server(job_id, from_, features.rerun_style))
        job = self.get(job_id)
        output = ""
        if from_ == "failure" and job.is_terminal:
            output = self._tail(job) or calls.output_of_results(job)
        return self.submit(calls.rerun_request(job, from_, output, changes))

    def _tail(self, job: Job) -> str:
        start = max(0, job.output_bytes - RESUME_SCAN_BYTES)
        try:
            return self.logs(job.id, offset=start, limit=RESUME_SCAN_BYTES).data
        except GatewayError:
            return ""

    def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_update: Callable[[Job], None] | None = None,
        backoff: Backoff | None = None,
    ) -> Job:
        """The job once terminal; `WaitTimeout` (holding the last state) after `timeout` s.

        Long-polls with `?wait=` when the server offers it, else polls with backoff.
        `on_update` sees every state read (for progress displays).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        long_poll = self._long_poll if self._long_poll is not None else self.features().long_poll
        delays = backoff or Backoff()
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            hold = (
                MAX_LONG_POLL_SECONDS
                if remaining is None
                else min(MAX_LONG_POLL_SECONDS, max(remaining, 0.0))
            )
            asked = time.monotonic()
            job = self.get(job_id, wait=hold if long_poll and hold >= 1 else None)
            if on_update is not None:
                on_update(job)
            if job.is_terminal:
                return job
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout:g} s", job=job)
            answered_at_once = time.monotonic() - asked < delays.initial
            if not long_poll or answered_at_once:
                delay = delays.next()
                time.sleep(delay if remaining is None else min(delay, remaining))

    # --- output and history ------------------------------------------------------------

    def logs(self, job_id: str, *, offset: int = 0, limit: int | None = None) -> LogChunk:
        """The run's output from byte `offset` (one chunk of at most `limit` bytes)."""
        return self._send(calls.logs(job_id, offset, limit))

    def follow_logs(
        self, job_id: str, *, offset: int = 0, timeout: float | None = None
    ) -> Iterator[LogChunk]:
        """Output chunks as they are written, until the job ends.

        The last chunk has `complete=True` (and may be empty). Streams Server-Sent Events
        (resuming by offset if the stream breaks); falls back to polling by offset when
        the server does not stream. `WaitTimeout` after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        state = {"offset": offset}
        if self.features().sse_logs:
            streamed = yield from self._stream_logs(job_id, state, deadline)
            if streamed:
                return
        yield from self._poll_logs(job_id, state, deadline)

    def _stream_logs(
        self, job_id: str, state: dict[str, int], deadline: float | None
    ) -> Generator[LogChunk, None, bool]:
        failures = 0
        while True:
            path, params, headers = calls.log_stream_request(job_id, state["offset"])
            try:
                with self._http.stream(
                    "GET", path, params=params, headers=headers, timeout=_stream_timeout()
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise error_from_response(response)
                    if not calls.is_event_stream(response):
                        return False
                    decoder = SseDecoder()
                    for line in response.iter_lines():
                        _check_deadline(deadline, job_id)
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        if event.event == "end":
                            end = state["offset"]
                            yield LogChunk(offset=end, next_offset=end, data="", complete=True)
                            return True
                        chunk = calls.chunk_of_event(event, state["offset"])
                        if chunk is not None:
                            state["offset"] = chunk.next_offset
                            failures = 0
                            yield chunk
            except httpx.HTTPError as exc:
                failures += 1
                if failures > STREAM_RECONNECTS:
                    raise calls.transport_error(exc, f"{self.url}{path}") from exc
            _check_deadline(deadline, job_id)
            time.sleep(min(0.2 * 2**failures, 5.0))

    def _poll_logs(
        self, job_id: str, state: dict[str, int], deadline: float | None
    ) -> Iterator[LogChunk]:
        delays = Backoff(initial=0.2, maximum=1.0)
        while True:
            chunk = self.logs(job_id, offset=state["offset"])
            if chunk.data or chunk.complete:
                yield chunk
            if chunk.complete:
                return
            if chunk.next_offset == state["offset"]:
                _check_deadline(deadline, job_id)
                time.sleep(delays.next())
            else:
                delays.reset()
            state["offset"] = chunk.next_offset

    def events(self, job_id: str) -> JobEventList:
        """The job's state transitions, oldest first."""
        return self._send(calls.events(job_id))

    # --- project, workers, health ------------------------------------------------------

    def pipelines(self, *, queue: str | None = None) -> PipelineList:
        return self._send(calls.pipelines(queue))

    def pipeline(self, name: str, *, queue: str | None = None) -> Pipeline:
        return self._send(calls.pipeline(name, queue))

    def workers(self) -> WorkerList:
        return self._send(calls.workers())

    def health(self) -> Health:
        """Readiness; a degraded gateway answers too (`Health.ok` is False then)."""
        return self._send(calls.health())

    def live(self) -> Liveness:
        return self._send(calls.live())


def _stream_timeout() -> httpx.Timeout:
    # The server sends a ping every 15 s on an idle stream.
    return httpx.Timeout(30.0, read=60.0)


def _check_deadline(deadline: float | None, job_id: str) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise WaitTimeout(f"job {job_id} had not ended when the deadline passed")
