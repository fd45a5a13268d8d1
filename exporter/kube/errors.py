"""What can go wrong talking to the Kubernetes API, as types.

As in aiohttp's `client_exceptions`, each error is also the standard-library exception it is a
kind of (a connection failure is a `ConnectionError`, a stalled stream a `TimeoutError`, a body
that is not what the API promises a `ValueError`). `category` is the value of the `reason` label
of `mindx_exporter_watch_errors_total` and what the reflector decides on (relist, back off, stop
blocking readiness); nothing compares messages or reason strings.
"""

from __future__ import annotations

# Categories the reflector acts on (the others only back off).
EXPIRED = "expired"
STALLED = "stalled"
THROTTLED = "throttled"
FORBIDDEN = "forbidden"
NOT_FOUND = "not_found"
# The API server refuses this source (RBAC, or the namespace or resource does not exist): retrying
# will not help until someone changes the cluster or the exporter's flags.
DENIED = frozenset({FORBIDDEN, NOT_FOUND})


class KubeError(Exception):
    """Any failed LIST or WATCH."""

    category = "error"


class KubeConnectionError(KubeError, ConnectionError):
    """No complete answer: the connection could not be made or broke (also mid-stream, inside an
    event), or a LIST did not finish within its timeout."""

    category = "connection"


class KubeTimeoutError(KubeConnectionError, TimeoutError):
    """A request did not finish in time (the LIST timeout)."""


class KubeStalledError(KubeTimeoutError):
    """A watch stream is open but has sent nothing (no event, no bookmark) for the stall timeout."""

    category = STALLED


class KubeInvalidResponse(KubeError, ValueError):
    """A 200 answer that is not what the API returns: a body that is not JSON or not an object, a
    watch line over the size limit, a watch event without an object."""

    category = "invalid_response"


class KubeStatusError(KubeError):
    """The API server refused the request with an HTTP error status, or ended a watch stream with
    an ERROR event carrying a Status (`in_stream`)."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str = "",
        retry_after: float | None = None,
        *,
        in_stream: bool = False,
    ) -> None:
        super().__init__(f"{code} {reason}: {message}" if message else f"{code} {reason}")
        self.code = code
        self.reason = reason  # the Status' reason (Forbidden, Expired, …) or the HTTP reason phrase
        self.message = message
        self.retry_after = retry_after  # seconds, from the Retry-After header
        self.in_stream = in_stream
        self.category = _status_category(code)


class KubeExpiredError(KubeStatusError):
    """410 Gone / Expired: the resourceVersion or continue token is older than the server's history
    (etcd compaction); only a new LIST from scratch can continue."""

    def __init__(
        self,
        reason: str = "Expired",
        message: str = "",
        retry_after: float | None = None,
        *,
        in_stream: bool = False,
    ) -> None:
        super().__init__(410, reason, message, retry_after, in_stream=in_stream)


def status_error(
    code: int, reason: str, message: str = "", retry_after: float | None = None, *, in_stream: bool = False
) -> KubeStatusError:
    """The error for an HTTP error status or an ERROR event's Status."""
    if code == 410:
        return KubeExpiredError(reason or "Expired", message, retry_after, in_stream=in_stream)
    return KubeStatusError(code, reason, message, retry_after, in_stream=in_stream)


def _status_category(code: int) -> str:
    if code == 410:
        return EXPIRED
    if code == 429:
        return THROTTLED
    if code >= 500:
        return "server_error"
    if code == 401:
        return "unauthorized"
    if code == 403:
        return FORBIDDEN
    if code == 404:
        return NOT_FOUND
    return "client_error"
