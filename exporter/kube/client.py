"""A small asyncio client for the two Kubernetes API calls the exporter makes: LIST and WATCH.
Every failure is raised as a `KubeError` (exporter.kube.errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from exporter.kube.config import ClusterAccess
from exporter.kube.errors import (
    KubeConnectionError,
    KubeError,
    KubeInvalidResponse,
    KubeStalledError,
    KubeStatusError,
    KubeTimeoutError,
    status_error,
)

# A watch line is one object; ConfigMaps are capped at 1 MiB, so a much longer line is garbage.
MAX_WATCH_LINE = 8 * 1024 * 1024

K8sObject = dict[str, Any]
# A watch event: its type (ADDED, MODIFIED, DELETED, BOOKMARK, or one the API may add) and object.
# ERROR events are raised as the error they carry.
WatchEvent = tuple[str, K8sObject]


class KubeClient:
    def __init__(self, access: ClusterAccess, request_timeout: float = 60.0) -> None:
        self.access = access
        self._request_timeout = request_timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeClient:
        connector = aiohttp.TCPConnector(ssl=self.access.ssl_context, limit=32)
        self._session = aiohttp.ClientSession(
            base_url=None,
            connector=connector,
            headers={"Accept": "application/json", "User-Agent": "mindx-fault-exporter"},
            json_serialize=lambda obj: orjson.dumps(obj).decode(),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        auth = self.access.authorization()
        return {"Authorization": auth} if auth else {}

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("KubeClient used outside 'async with'")
        return self._session

    async def get_json(self, path: str, params: Mapping[str, str], timeout: float | None = None) -> K8sObject:
        """One GET (a LIST page); raises a `KubeError` on any failure, also when the whole response
        has not arrived after `timeout` seconds (default: the client's request timeout)."""
        total = self._request_timeout if timeout is None else timeout
        client_timeout = aiohttp.ClientTimeout(total=total, sock_connect=min(10.0, total))
        try:
            async with self.session.get(
                self.access.host + path, params=params, headers=self._headers(), timeout=client_timeout
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise self._error(resp, body)
        except TimeoutError as err:
            raise KubeTimeoutError(f"no complete answer within {total:g}s") from err
        except aiohttp.ClientError as err:
            raise KubeConnectionError(f"{type(err).__name__}: {err}") from err
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise KubeInvalidResponse("list body is not JSON") from err
        if not isinstance(decoded, dict):
            raise KubeInvalidResponse("list body is not an object")
        return decoded

    async def watch(
        self,
        path: str,
        params: Mapping[str, str],
        idle_timeout: float,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """Yield watch events; ends when the server closes the stream. No line may take longer
        than `idle_timeout` to arrive (bookmarks keep a healthy stream busy). An ERROR event is
        raised as the `KubeStatusError` it carries (`in_stream`; 410 as `KubeExpiredError`)."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=idle_timeout)
        try:
            async with self.session.get(
                self.access.host + path,
                params={**params, "watch": "1"},
                headers=self._headers(),
                timeout=timeout,
            ) as resp:
                if resp.status != 200:
                    raise self._error(resp, await resp.read())
                if on_open is not None:
                    on_open()
                buffer = bytearray()
                async for chunk in resp.content.iter_any():
                    buffer.extend(chunk)
                    if b"\n" in chunk:
                        *lines, tail = buffer.split(b"\n")
                        buffer = bytearray(tail)
                        for line in lines:
                            if line.strip():
                                yield _decode_event(line)
                    if len(buffer) > MAX_WATCH_LINE:
                        raise KubeInvalidResponse(f"watch line exceeds {MAX_WATCH_LINE} bytes")
                if buffer.strip():
                    # The stream ended mid-line: the connection broke, the tail is not an event.
                    raise KubeConnectionError("watch stream ended inside an event")
        except KubeError:
            raise
        except aiohttp.SocketTimeoutError as err:
            raise KubeStalledError(f"no data for {idle_timeout:g}s") from err
        except TimeoutError as err:
            raise KubeTimeoutError(str(err) or "timed out") from err
        except aiohttp.ClientError as err:
            raise KubeConnectionError(f"{type(err).__name__}: {err}") from err

    def _error(self, resp: aiohttp.ClientResponse, body: bytes) -> KubeStatusError:
        if resp.status == 401:
            self.access.invalidate()
        reason, message = resp.reason or "", ""
        try:
            status = orjson.loads(body)
            if isinstance(status, dict):
                reason = str(status.get("reason") or reason)
                message = str(status.get("message") or "")
        except orjson.JSONDecodeError:
            pass
        return status_error(resp.status, reason, message[:200], _retry_after(resp.headers.get("Retry-After")))


def _decode_event(line: bytes | bytearray) -> WatchEvent:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise KubeInvalidResponse("watch line is not JSON") from err
    if not isinstance(event, dict):
        raise KubeInvalidResponse("watch line is not an object")
    kind, obj = event.get("type"), event.get("object")
    if not isinstance(obj, dict):
        raise KubeInvalidResponse("watch event without object")
    if kind == "ERROR":
        # The server ends the stream with a Status: 410 when our resourceVersion was compacted.
        code = obj.get("code")
        raise status_error(
            code if isinstance(code, int) else 500,
            str(obj.get("reason") or "WatchError"),
            str(obj.get("message") or "")[:200],
            in_stream=True,
        )
    return str(kind), obj


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
