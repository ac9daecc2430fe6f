"""The asynchronous client: the same calls as `GatewayClient`, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
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
from kedro_gateway_client.client import STREAM_RECONNECTS, _check_deadline, _stream_timeout
from kedro_gateway_client.config import resolve_settings
from kedro_gateway_client.errors import GatewayError, WaitTimeout, error_from_response
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


class AsyncGatewayClient:
    """A client of the gateway's v1 API on `httpx.AsyncClient`; see `GatewayClient`.

    ```python
    async with AsyncGatewayClient("http://127.0.0.1:8000") as gw:
        job = await gw.submit("arithmetic", parameters={"initial_value": 10})
        job = await gw.wait(job.id, timeout=600)
    ```
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        auth_scheme: AuthScheme = "bearer",
        timeout: float = 30.0,
        long_poll: bool | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
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
    ) -> AsyncGatewayClient:
        s = resolve_settings(url=url, api_key=api_key, profile=profile, config_file=config_file)
        return cls(s.url, api_key=s.api_key, auth_scheme=s.auth_scheme, timeout=s.timeout, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        extra: dict[str, Any] = {} if call.timeout is None else {"timeout": call.timeout}
        try:
            response = await self._http.request(
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

    async def features(self, *, refresh: bool = False) -> ServerFeatures:
        if self._features is None or refresh:
            try:
                document = await self._send(calls.openapi())
            except GatewayError:
                document = {}
            self._features = ServerFeatures.from_openapi(document)
        return self._features

    # --- jobs --------------------------------------------------------------------------

    async def submit(
        self,
        pipeline: str | JobCreate,
        *,
        parameters: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        **options: Any,
    ) -> Job:
        request = calls.job_create(pipeline, parameters, options)
        return await self._send(calls.submit(request, idempotency_key))

    async def get(self, job_id: str, *, wait: float | None = None) -> Job:
        return await self._send(calls.get_job(job_id, wait))

    async def list_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        pipeline_name: str | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> JobList:
        return await self._send(
            calls.list_jobs(status=status, pipeline_name=pipeline_name, limit=limit, cursor=cursor)
        )

    async def iter_pages(
        self,
        *,
        status: JobStatus | str | None = None,
        pipeline_name: str | None = None,
        page_size: int = 100,
        cursor: str | None = None,
    ) -> AsyncIterator[JobList]:
        while True:
            page = await self.list_jobs(
                status=status, pipeline_name=pipeline_name, limit=page_size, cursor=cursor
            )
            yield page
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def iter_jobs(
        self,
        *,
        status: JobStatus | str | None = None,
        pipeline_name: str | None = None,
        page_size: int = 100,
        max_items: int | None = None,
    ) -> AsyncIterator[Job]:
        seen = 0
        async for page in self.iter_pages(
            status=status, pipeline_name=pipeline_name, page_size=page_size
        ):
            for job in page.items:
                if max_items is not None and seen >= max_items:
                    return
                seen += 1
                yield job

    async def cancel(self, job_id: str) -> Job:
        return await self._send(calls.cancel(job_id))

    async def rerun(self, job_id: str, *, from_: RerunFrom = "start", **changes: Any) -> Job:
        features = await self.features()
        if features.rerun and not changes:
            return await self._send(calls.rerun_on_server(job_id, from_, features.rerun_style))
        job = await self.get(job_id)
        output = ""
        if from_ == "failure" and job.is_terminal:
            output = await self._tail(job) or calls.output_of_results(job)
        return await self.submit(calls.rerun_request(job, from_, output, changes))

    async def _tail(self, job: Job) -> str:
        start = max(0, job.output_bytes - RESUME_SCAN_BYTES)
        try:
            return (await self.logs(job.id, offset=start, limit=RESUME_SCAN_BYTES)).data
        except GatewayError:
            return ""

    async def wait(
        self,
        job_id: str,
        *,
        timeout: float | None = None,
        on_update: Callable[[Job], None] | None = None,
        backoff: Backoff | None = None,
    ) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._long_poll is not None:
            long_poll = self._long_poll
        else:
            long_poll = (await self.features()).long_poll
        delays = backoff or Backoff()
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            hold = (
                MAX_LONG_POLL_SECONDS
                if remaining is None
                else min(MAX_LONG_POLL_SECONDS, max(remaining, 0.0))
            )
            asked = time.monotonic()
            job = await self.get(job_id, wait=hold if long_poll and hold >= 1 else None)
            if on_update is not None:
                on_update(job)
            if job.is_terminal:
                return job
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout:g} s", job=job)
            if not long_poll or time.monotonic() - asked < delays.initial:
                delay = delays.next()
                await asyncio.sleep(delay if remaining is None else min(delay, remaining))

    # --- output and history ------------------------------------------------------------

    async def logs(self, job_id: str, *, offset: int = 0, limit: int | None = None) -> LogChunk:
        return await self._send(calls.logs(job_id, offset, limit))

    async def follow_logs(
        self, job_id: str, *, offset: int = 0, timeout: float | None = None
    ) -> AsyncIterator[LogChunk]:
        deadline = None if timeout is None else time.monotonic() + timeout
        state = {"offset": offset, "done": 0}
        if (await self.features()).sse_logs:
            async for chunk in self._stream_logs(job_id, state, deadline):
                yield chunk
            if state["done"]:
                return
        async for chunk in self._poll_logs(job_id, state, deadline):
            yield chunk

    async def _stream_logs(
        self, job_id: str, state: dict[str, int], deadline: float | None
    ) -> AsyncIterator[LogChunk]:
        failures = 0
        while True:
            path, params, headers = calls.log_stream_request(job_id, state["offset"])
            try:
                async with self._http.stream(
                    "GET", path, params=params, headers=headers, timeout=_stream_timeout()
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise error_from_response(response)
                    if not calls.is_event_stream(response):
                        return
                    decoder = SseDecoder()
                    async for line in response.aiter_lines():
                        _check_deadline(deadline, job_id)
                        event = decoder.feed(line)
                        if event is None:
                            continue
                        if event.event == "end":
                            end = state["offset"]
                            state["done"] = 1
                            yield LogChunk(offset=end, next_offset=end, data="", complete=True)
                            return
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
            await asyncio.sleep(min(0.2 * 2**failures, 5.0))

    async def _poll_logs(
        self, job_id: str, state: dict[str, int], deadline: float | None
    ) -> AsyncIterator[LogChunk]:
        delays = Backoff(initial=0.2, maximum=1.0)
        while True:
            chunk = await self.logs(job_id, offset=state["offset"])
            if chunk.data or chunk.complete:
                yield chunk
            if chunk.complete:
                return
            if chunk.next_offset == state["offset"]:
                _check_deadline(deadline, job_id)
                await asyncio.sleep(delays.next())
            else:
                delays.reset()
            state["offset"] = chunk.next_offset

    async def events(self, job_id: str) -> JobEventList:
        return await self._send(calls.events(job_id))

    # --- project, workers, health ------------------------------------------------------

    async def pipelines(self, *, queue: str | None = None) -> PipelineList:
        return await self._send(calls.pipelines(queue))

    async def pipeline(self, name: str, *, queue: str | None = None) -> Pipeline:
        return await self._send(calls.pipeline(name, queue))

    async def workers(self) -> WorkerList:
        return await self._send(calls.workers())

    async def health(self) -> Health:
        return await self._send(calls.health())

    async def live(self) -> Liveness:
        return await self._send(calls.live())
