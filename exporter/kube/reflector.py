"""The reflector: LIST then WATCH one resource in one namespace, feeding a sink (client-go's
`tools/cache/reflector.go`, for asyncio).

A relist hands the sink the new state page by page and then says it is complete, so objects
deleted while we were disconnected disappear, no scrape sees a half-filled cache, and the objects
of one page are let go before the next arrives (a whole list held at once costs more than the
exporter keeps of it).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from exporter.kube.client import KubeClient, WatchEvent
from exporter.kube.errors import DENIED, EXPIRED, NOT_FOUND, STALLED, THROTTLED, KubeError, KubeStatusError
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


class Relist(Protocol):
    """One LIST as it arrives: `add` per page, then `finish` once the list is complete (a list
    that fails or starts again is dropped unfinished)."""

    def add(self, objects: list[K8sObject]) -> None: ...

    def finish(self) -> None: ...


class ReflectorSink(Protocol):
    """Receives the reflector's view of the objects; must not raise (parsers never do)."""

    def relist(self) -> Relist: ...

    def upsert(self, obj: K8sObject) -> None: ...

    def delete(self, obj: K8sObject) -> None: ...


@runtime_checkable
class SteppedSink(Protocol):
    """A sink that can apply a big object in steps (`upsert_steps` yields between them): the
    reflector lets the event loop run after each step."""

    def upsert_steps(self, obj: K8sObject) -> Iterator[None]: ...


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
    # A source whose lists have been answered only 403 Forbidden / 404 Not Found for this long stops
    # holding readiness back (it keeps being retried): RBAC being created with the Deployment has
    # settled within seconds, a Role missing for a minute is missing for good.
    denied_grace: float = 60.0


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
        self.synced = asyncio.Event()  # the first LIST completed
        # Set once the source no longer holds readiness back: it synced, or it has been refused
        # (403/404) for `denied_grace` seconds. Never cleared, like readiness itself.
        self.settled = asyncio.Event()
        # While the API server refuses this source (403/404): one line saying what to do.
        self.denial: str | None = None
        self.resource_version = ""
        self._denied_since: float | None = None
        self._stream_open = False
        self._backoff = Backoff(self.options.backoff_initial, self.options.backoff_max)

    @property
    def blocks_readiness(self) -> bool:
        return not self.settled.is_set()

    async def run(self) -> None:
        """List and watch until cancelled; never returns on errors."""
        relist_reason: str | None = "start"
        while True:
            try:
                if relist_reason is not None:
                    await self._list(relist_reason)
                    relist_reason = None
                await self._watch()
            except KubeError as err:
                self.observer.watch_up(self.target, False)
                self.observer.watch_error(self.target, err.category)
                listing = relist_reason is not None
                if not listing:
                    relist_reason = self._relist_reason(err)
                    if relist_reason == EXPIRED:
                        # The watch's resourceVersion is too old: relist at once.
                        event(log, logging.INFO, "resource version expired, relisting", **self._fields())
                        continue
                # A LIST answered 410 even after restarting its pages falls through: back off, or a
                # server that keeps answering 410 would be hammered in a loop.
                delay = self._backoff.next()
                if isinstance(err, KubeStatusError) and err.retry_after is not None:
                    delay = max(delay, min(err.retry_after, self.options.retry_after_max))
                details: dict[str, Any] = {}
                if isinstance(err, KubeStatusError):
                    details.update(status=err.code, reason=err.reason)
                if err.category in DENIED:
                    delay = self._denied(err, delay)
                    details["fix"] = self.denial
                else:
                    self._denied_since = self.denial = None
                event(
                    log,
                    logging.WARNING,
                    "list/watch failed",
                    category=err.category,
                    error=str(err)[:300],
                    retry_in=round(delay, 3),
                    **details,
                    **self._fields(),
                )
                await asyncio.sleep(delay)

    def _relist_reason(self, err: KubeError) -> str | None:
        """Whether a failed watch can resume from our resourceVersion (None) or needs a relist."""
        if err.category in (EXPIRED, STALLED):
            return err.category
        if isinstance(err, KubeStatusError) and err.in_stream:
            return "error"  # the server reported an error inside the stream: our state may be wrong
        if not self._stream_open and err.category != THROTTLED:
            # The watch could not be opened again (server unreachable, 5xx, …). The server that
            # answers next may hold another resourceVersion history (etcd restore, rebuilt control
            # plane), where resuming from our RV would replay the wrong changes or wait forever:
            # only a relist is safe. (client-go also relists here, except after "connection
            # refused".) A 429 just means "later": resume then.
            return "error"
        return None

    def _denied(self, err: KubeError, delay: float) -> float:
        """The API server refused this source (403/404). After `denied_grace` seconds of refusals the
        source stops holding readiness back; returns the delay before the next attempt, shortened
        so that the attempt deciding it falls when the grace ends."""
        self.denial = denial_text(self.target, err.category)
        now = time.monotonic()
        if self._denied_since is None:
            self._denied_since = now
        if self.settled.is_set():
            return delay
        left = self._denied_since + self.options.denied_grace - now
        if left > 0:
            return min(delay, left)
        self.settled.set()
        event(
            log,
            logging.WARNING,
            "source refused by the API server, no longer blocking readiness",
            fix=self.denial,
            **self._fields(),
        )
        return delay

    def _fields(self) -> dict[str, str]:
        return {
            "source": self.target.source,
            "resource": self.target.resource,
            "namespace": self.target.namespace,
            "resource_version": self.resource_version,
        }

    async def _list(self, reason: str) -> None:
        """A paginated LIST, handed to the sink page by page (`Relist`). A continue token that
        expires restarts the pages (`list_all`) and the sink's relist. Every request is limited to
        `list_timeout`."""
        started = time.monotonic()
        relist = self.sink.relist()

        def restarted(err: KubeError) -> None:
            nonlocal relist
            relist = self.sink.relist()
            self.observer.watch_error(self.target, err.category)
            event(log, logging.INFO, "list expired while paginating, listing again", **self._fields())

        def page(objects: list[K8sObject]) -> None:
            self._safely(relist.add, objects)

        listed = await list_all(
            self.client,
            self.target.path,
            self._selectors(),
            self.options.page_size,
            self.options.list_timeout,
            on_restart=restarted,
            on_page=page,
        )
        self.resource_version = listed.resource_version
        self._denied_since = self.denial = None
        self._safely(lambda _: relist.finish(), None)
        self.observer.listed(self.target, reason, listed.count)
        self.synced.set()
        self.settled.set()
        event(
            log,
            logging.INFO,
            "listed",
            relist_reason=reason,
            objects=listed.count,
            seconds=round(time.monotonic() - started, 3),
            **self._fields(),
        )

    async def _watch(self) -> None:
        params = self._selectors()
        params["allowWatchBookmarks"] = "true"
        params["resourceVersion"] = self.resource_version
        timeout = self.options.watch_timeout
        params["timeoutSeconds"] = str(int(timeout + random.random() * timeout))
        self._stream_open = False

        def opened() -> None:
            self._stream_open = True
            self._denied_since = self.denial = None
            self.observer.watch_up(self.target, True)

        stepped = self.sink if isinstance(self.sink, SteppedSink) else None
        async for watch_event in self.client.watch(
            self.target.path, params, idle_timeout=self.options.stall_timeout, on_open=opened
        ):
            self._backoff.reset()
            if stepped is not None and watch_event[0] in ("ADDED", "MODIFIED"):
                await self._upsert_in_steps(stepped, watch_event[1])
            self._apply(watch_event, applied=stepped is not None)
            # Events already buffered arrive without a suspension: give scrapes and the other
            # watches a turn between two (a burst of big ClusterD shards would hold the loop).
            await asyncio.sleep(0)

    async def _upsert_in_steps(self, sink: SteppedSink, obj: K8sObject) -> None:
        try:
            for _ in sink.upsert_steps(obj):
                await asyncio.sleep(0)
        except Exception:  # as _safely: a bug in one object's handling must not stop the watch
            log.exception("sink failed", extra={"fields": self._fields()})
            self.observer.watch_error(self.target, "sink")

    def _apply(self, watch_event: WatchEvent, applied: bool = False) -> None:
        """Hand one event to the sink (an upsert `applied` already in steps is not) and follow
        its resourceVersion."""
        kind, obj = watch_event
        meta = obj.get("metadata")
        version = meta.get("resourceVersion") if isinstance(meta, dict) else None
        if kind in ("ADDED", "MODIFIED"):
            if not applied:
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


def denial_text(target: WatchTarget, category: str) -> str:
    """What an operator does about a source the API server refuses: one line for the log and /readyz."""
    where = f"in namespace {target.namespace}" if target.namespace else "in all namespaces (a ClusterRole)"
    disable = f"--source.{target.source}.enabled=false"
    if category == NOT_FOUND:
        return (
            f"{target.source}/{target.namespace}: 404 Not Found for {target.resource} {where}: set "
            f"--source.{target.source}.namespace to where the producer runs, or {disable}"
        )
    return (
        f"{target.source}/{target.namespace}: 403 Forbidden: grant the exporter's service account "
        f'"list" and "watch" on {target.resource} {where}, or set {disable}'
    )
