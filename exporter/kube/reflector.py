"""The reflector: LIST then WATCH one resource in one namespace, feeding a sink (client-go's
`tools/cache/reflector.go`, for asyncio).

A relist hands the sink the complete new state in one call, so objects deleted while we were
disconnected disappear and no scrape sees a half-filled cache.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from exporter.kube.client import ApiError, KubeClient
from exporter.kube.listing import list_all
from exporter.logs import event

log = logging.getLogger("exporter.reflector")

K8sObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class WatchTarget:
    """One (resource, namespace) list/watch, with the narrowest selectors the producer allows."""

    source: str
    resource: str  # "configmaps" | "events"
    namespace: str
    label_selector: str = ""
    field_selector: str = ""

    @property
    def path(self) -> str:
        if self.namespace:
            return f"/api/v1/namespaces/{self.namespace}/{self.resource}"
        return f"/api/v1/{self.resource}"

    def selector_params(self) -> dict[str, str]:
        """The LIST/WATCH query parameters that select the target's objects."""
        params = {}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        return params


class ReflectorSink(Protocol):
    """Receives the reflector's view of the objects; must not raise (parsers never do)."""

    def replace(self, objects: list[K8sObject]) -> None: ...

    def upsert(self, obj: K8sObject) -> None: ...

    def delete(self, obj: K8sObject) -> None: ...


class ReflectorObserver(Protocol):
    """Where the reflector reports its health (the exporter's self-metrics)."""

    def watch_up(self, target: WatchTarget, up: bool) -> None: ...

    def listed(self, target: WatchTarget, reason: str, objects: int) -> None: ...

    def watch_error(self, target: WatchTarget, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ReflectorOptions:
    page_size: int = 500
    # Server-side watch timeout; randomised per request like client-go so streams don't reconnect in step.
    watch_timeout: float = 300.0
    # A stream with no event and no bookmark for this long is considered dead and restarted.
    stall_timeout: float = 150.0
    backoff_initial: float = 0.8
    backoff_max: float = 30.0
    retry_after_max: float = 300.0
    # One LIST request (page) that has not finished after this many seconds is aborted and retried.
    list_timeout: float = 60.0


class _Relist(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Backoff:
    """Capped exponential backoff with full jitter."""

    def __init__(self, initial: float, maximum: float, rand: Callable[[], float] = random.random) -> None:
        self.initial = initial
        self.maximum = maximum
        self._rand = rand
        self._attempt = 0

    def next(self) -> float:
        ceiling = min(self.maximum, self.initial * (2**self._attempt))
        self._attempt = min(self._attempt + 1, 30)
        return ceiling / 2 + self._rand() * ceiling / 2

    def reset(self) -> None:
        self._attempt = 0


class Reflector:
    def __init__(
        self,
        client: KubeClient,
        target: WatchTarget,
        sink: ReflectorSink,
        observer: ReflectorObserver,
        options: ReflectorOptions | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.sink = sink
        self.observer = observer
        self.options = options or ReflectorOptions()
        self.synced = asyncio.Event()
        self.resource_version = ""
        self._backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)

    async def run(self) -> None:
        """List and watch until cancelled; never returns on errors."""
        relist_reason: str | None = "start"
        while True:
            try:
                if relist_reason is not None:
                    await self._list(relist_reason)
                    relist_reason = None
                await self._watch()
            except _Relist as relist:
                relist_reason = relist.reason
                self.observer.watch_up(self.target, False)
            except ApiError as err:
                self.observer.watch_up(self.target, False)
                if err.expired and relist_reason is None:
                    # The watch's resourceVersion is too old: relist at once.
                    relist_reason = "expired"
                    self.observer.watch_error(self.target, "expired")
                    event(log, logging.INFO, "resource version expired, relisting", **self._fields())
                    continue
                # A LIST answered 410 even unpaginated falls through: back off, or a server that
                # keeps answering 410 would be hammered in a loop.
                if err.reason == "Stalled":
                    relist_reason = "stalled"
                elif err.relist:
                    relist_reason = "error"
                self.observer.watch_error(self.target, "expired" if err.expired else _error_reason(err))
                delay = self._backoff.next()
                if err.retry_after is not None:
                    delay = max(delay, min(err.retry_after, self.options.retry_after_max))
                event(
                    log,
                    logging.WARNING,
                    "list/watch failed",
                    status=err.status,
                    reason=err.reason,
                    error=str(err)[:300],
                    retry_in=round(delay, 3),
                    **self._fields(),
                )
                await asyncio.sleep(delay)

    def _fields(self) -> dict[str, str]:
        return {
            "source": self.target.source,
            "resource": self.target.resource,
            "namespace": self.target.namespace,
            "resource_version": self.resource_version,
        }

    async def _list(self, reason: str) -> None:
        """A paginated LIST; the sink gets the whole result at once. When a continue token expires
        (410: history was compacted while we paginated), the pages are no consistent snapshot; like
        client-go's pager, fall back to one unpaginated LIST, which is one even if compaction keeps
        outrunning pagination. Every request is limited to `list_timeout`."""
        started = time.monotonic()
        path, selectors, timeout = self.target.path, self._selectors(), self.options.list_timeout
        try:
            listed = await list_all(self.client, path, selectors, self.options.page_size, timeout)
        except ApiError as err:
            if not err.expired:
                raise
            self.observer.watch_error(self.target, "expired")
            event(log, logging.INFO, "list expired while paginating, listing unpaginated", **self._fields())
            listed = await list_all(self.client, path, selectors, 0, timeout)
        objects = listed.objects
        self.resource_version = listed.resource_version
        self._safely(self.sink.replace, objects)
        self.observer.listed(self.target, reason, len(objects))
        self.synced.set()
        event(
            log,
            logging.INFO,
            "listed",
            relist_reason=reason,
            objects=len(objects),
            seconds=round(time.monotonic() - started, 3),
            **self._fields(),
        )

    async def _watch(self) -> None:
        params = self._selectors()
        params["allowWatchBookmarks"] = "true"
        params["resourceVersion"] = self.resource_version
        timeout = self.options.watch_timeout
        params["timeoutSeconds"] = str(int(timeout + random.random() * timeout))

        is_open = False

        def opened() -> None:
            nonlocal is_open
            is_open = True
            self.observer.watch_up(self.target, True)

        try:
            async for watch_event in self.client.watch(
                self.target.path, params, idle_timeout=self.options.stall_timeout, on_open=opened
            ):
                self._backoff.reset()
                self._apply(watch_event)
                # Events already buffered arrive without a suspension: give scrapes and the other
                # watches a turn between two (a burst of big ClusterD shards would hold the loop).
                await asyncio.sleep(0)
        except ApiError as err:
            if not is_open and err.status != 429:
                # The watch could not be opened again (server unreachable, 5xx, …). The server that
                # answers next may hold another resourceVersion history (etcd restore, rebuilt
                # control plane), where resuming from our RV would replay the wrong changes or
                # wait forever: only a relist is safe. (client-go also relists here, except after
                # "connection refused".) A 429 just means "later": resume then.
                err.relist = True
            raise

    def _apply(self, watch_event: dict[str, Any]) -> None:
        kind = watch_event.get("type")
        obj = watch_event.get("object")
        if not isinstance(obj, dict):
            raise ApiError(200, "InvalidEvent", "watch event without object")
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Relist("expired")
            raise ApiError(
                code if isinstance(code, int) else 500,
                str(obj.get("reason") or "WatchError"),
                str(obj.get("message") or ""),
                relist=True,
            )
        meta = obj.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if kind in ("ADDED", "MODIFIED"):
            self._safely(self.sink.upsert, obj)
        elif kind == "DELETED":
            self._safely(self.sink.delete, obj)
        elif kind != "BOOKMARK":
            self.observer.watch_error(self.target, "unknown_event")
            return
        if isinstance(version, str) and version:
            self.resource_version = version

    def _safely(self, call: Callable[[Any], None], arg: Any) -> None:
        try:
            call(arg)
        except Exception:  # a bug in one object's handling must not stop the watch
            log.exception("sink failed", extra={"fields": self._fields()})
            self.observer.watch_error(self.target, "sink")

    def _selectors(self) -> dict[str, str]:
        return self.target.selector_params()


def _error_reason(err: ApiError) -> str:
    if err.status == 0:
        return "stalled" if err.reason == "Stalled" else "connection"
    if err.status == 429:
        return "throttled"
    if err.status >= 500:
        return "server_error"
    if err.status in (401, 403):
        return "unauthorized" if err.status == 401 else "forbidden"
    if err.status == 200:
        return "invalid_response"
    return "client_error"
