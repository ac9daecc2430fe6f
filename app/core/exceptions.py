"""The gateway's exceptions, mapped to HTTP in one handler (`app/api/errors.py`).

GatewayError
 ├── JobNotFound            404: unknown id, or a job the caller may not see
 ├── PipelineNotFound       404: a pipeline the queue's project does not have
 ├── WebhookNotFound        404: an unknown webhook subscription
 ├── JobConflict            409: the job is terminal, or an idempotency key is reused
 ├── InvalidJobRequest      422: a request that is well-formed but cannot run
 │    ├── InvalidCursor     422: a list cursor this API did not hand out
 │    └── InvalidWebhook    422: a webhook URL the gateway may not call, or no secret to sign
 ├── TooManyRequests        429: a per-caller limit is reached (e.g. log followers)
 │    └── TooManyPendingJobs 429: the caller's pending jobs are at the cap (Retry-After)
 └── BrokerUnavailable      503: a message that must be sent now could not be
"""


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class JobNotFound(GatewayError):
    status_code = 404


class PipelineNotFound(GatewayError):
    status_code = 404


class JobConflict(GatewayError):
    status_code = 409


class InvalidJobRequest(GatewayError):
    status_code = 422


class InvalidCursor(InvalidJobRequest):
    """A cursor this API did not hand out."""


class WebhookNotFound(GatewayError):
    status_code = 404


class InvalidWebhook(InvalidJobRequest):
    """A webhook URL the gateway refuses to call, or a `notify` it cannot sign."""


class TooManyRequests(GatewayError):
    status_code = 429


class BrokerUnavailable(GatewayError):
    status_code = 503


class TooManyPendingJobs(TooManyRequests):
    """The caller has `max_pending_per_user` pending jobs; nothing was recorded."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds
