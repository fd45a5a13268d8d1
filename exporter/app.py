"""Wiring: cluster access → one reflector per enabled source → handler → store → HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from exporter.autoshard import StatefulSetPod, follow_replicas, get_replicas
from exporter.gcschedule import GcSchedule
from exporter.handlers.base import HandlerOptions, SourceHandler
from exporter.handlers.history import FaultHistory
from exporter.handlers.joins import JoinState
from exporter.httpserver import HttpLimits, server_middlewares
from exporter.kube.client import KubeClient
from exporter.kube.config import ClusterAccess
from exporter.kube.errors import KubeError
from exporter.kube.reflector import Reflector, ReflectorOptions, WatchTarget
from exporter.logs import event
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES, joins_of, watch_target
from exporter.server import build_app, parse_listen_address
from exporter.sharding import Shard
from exporter.sources.base import Source
from exporter.webconfig import WebConfig

log = logging.getLogger("exporter")

DEFAULT_LISTEN_ADDRESS = ":9847"
TICK_INTERVAL = 5.0  # how often time-based handler state (stale ClusterD shards) is re-checked


async def _every(seconds: float, call: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        call()


def split_namespaces(value: str) -> list[str]:
    """`--source.<name>.namespace`: one namespace or a comma-separated list (spaces, empties and
    repeats ignored). `""` alone is every namespace (a cluster-wide watch), as the API has it."""
    names = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    return names or [""]


@dataclass(frozen=True)
class SourceSelection:
    """Which sources run, and in which namespaces (`--source.<name>.enabled/namespace`). A source
    not named in `enabled` runs if it is enabled by default; one reflector per namespace."""

    enabled: dict[str, bool] = field(default_factory=dict)
    namespaces: dict[str, str] = field(default_factory=dict)

    def targets(self) -> list[tuple[Source[Any], WatchTarget]]:
        return [
            (source, watch_target(source, namespace))
            for source in SOURCES
            if self.enabled.get(source.name, source.enabled_by_default)
            for namespace in split_namespaces(self.namespaces.get(source.name, source.namespace))
        ]


@dataclass(frozen=True)
class ExporterConfig:
    listen_address: str = DEFAULT_LISTEN_ADDRESS
    telemetry_path: str = "/metrics"
    sources: SourceSelection = field(default_factory=SourceSelection)
    reflector: ReflectorOptions = field(default_factory=ReflectorOptions)
    web_config: WebConfig | None = None  # --web.config.file: TLS and basic auth
    http: HttpLimits = field(default_factory=HttpLimits)
    handlers: HandlerOptions = field(default_factory=HandlerOptions)
    # Automatic sharding (--pod/--pod-namespace): the shard and the number of shards come from
    # this StatefulSet pod's ordinal and its StatefulSet's replicas, and follow scaling.
    autoshard: StatefulSetPod | None = None


@dataclass
class _Pipeline:
    """What one shard setting runs: the store it writes, its reflectors, the objects that write
    into the store, and the tasks to stop."""

    store: MetricsStore
    reflectors: list[Reflector]
    writers: list[SourceHandler | JoinState | FaultHistory]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def retarget(self, store: MetricsStore) -> None:
        """Write into `store` from now on (after it adopted this pipeline's blocks)."""
        self.store = store
        for writer in self.writers:
            writer.store = store


class AutoshardError(Exception):
    """Automatic sharding cannot read the pod's StatefulSet at start."""


class ListenError(Exception):
    """The HTTP server cannot listen on the configured address (in use, not local, no permission)."""


class Exporter:
    """The running exporter. `async with Exporter(...)` starts the watches and the HTTP server."""

    def __init__(self, access: ClusterAccess, config: ExporterConfig) -> None:
        self.access = access
        self.config = config
        self.store = MetricsStore(ALL_FAMILIES)
        self.metrics = ExporterMetrics()
        shard = config.handlers.shard
        self.metrics.set_shard(shard.ordinal, shard.total)
        self._options = config.handlers
        self._pipeline = _Pipeline(self.store, [], [], [])
        self._client = KubeClient(access)
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._watching = False  # the server listens before the watches exist: not ready until then
        self._gc = GcSchedule()

    @property
    def reflectors(self) -> list[Reflector]:
        return self._pipeline.reflectors

    def not_ready(self) -> list[str]:
        if not self._watching:
            return ["watches not started"]
        return [f"{r.target.source}/{r.target.namespace}" for r in self.reflectors if r.blocks_readiness]

    def not_served(self) -> list[str]:
        """Sources the API server refuses (403/404), each with what to do about it."""
        return [r.denial for r in self.reflectors if r.denial]

    async def __aenter__(self) -> Exporter:
        await self._listen()  # first: a busy port fails before any watch starts
        try:
            await self._client.__aenter__()
        except BaseException:
            await self._runner_cleanup()
            raise
        if self.config.autoshard is not None:
            try:
                await self._start_autoshard(self.config.autoshard)
            except BaseException:
                await self._runner_cleanup()
                await self._client.__aexit__()
                raise
        # No garbage collection while the first lists build the cache: everything they build
        # lives, and at 20,000 nodes the collector scanned it over and over, 2.5 s of the start.
        self._gc.pause()
        self._pipeline = self._start_pipeline(self.store, self._options, register=True)
        first_lists = asyncio.gather(*(r.settled.wait() for r in self.reflectors))
        self._tasks.append(asyncio.create_task(self._gc.run(first_lists), name="gc schedule"))
        self._watching = True
        web_config = self.config.web_config
        event(
            log,
            logging.INFO,
            "exporter started",
            listen=self.config.listen_address,
            port=self.port,
            cluster=self.access.description,
            sources=[f"{r.target.source}/{r.target.namespace}" for r in self.reflectors],
            **(web_config.summary() if web_config is not None else {"tls": False}),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._pipeline.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._gc.close()
        await self._runner_cleanup()
        await self._client.__aexit__()

    async def _listen(self) -> None:
        web_config, path = self.config.web_config, self.config.telemetry_path
        http, rejected = self.config.http, self.metrics.http_rejected
        middlewares = server_middlewares(http, web_config, path, rejected)
        app = build_app(self.store, self.metrics, self.not_ready, path, middlewares, self.not_served, http)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, **http.runner_kwargs(rejected)
        )
        await self._runner.setup()
        host, port = parse_listen_address(self.config.listen_address)
        ssl_context = web_config.ssl_context() if web_config is not None else None
        site = web.TCPSite(self._runner, host, port, reuse_address=True, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as err:
            await self._runner_cleanup()
            reason = os.strerror(err.errno) if err.errno and err.errno > 0 else err.strerror or str(err)
            fix = "stop what uses it or choose" if err.errno == errno.EADDRINUSE else "choose"
            raise ListenError(
                f"cannot listen on {self.config.listen_address}: {reason}; "
                f"{fix} another address with --web.listen-address"
            ) from None
        self.port = self._runner.addresses[0][1]

    async def _runner_cleanup(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _start_pipeline(self, store: MetricsStore, options: HandlerOptions, register: bool) -> _Pipeline:
        """One reflector and handler per enabled source, their joins and fault history, writing
        into `store` with `options` (its shard among them), started."""
        pipeline = _Pipeline(store, [], [], [])
        handlers: list[tuple[Source[Any], SourceHandler]] = []
        for source, target in self.config.sources.targets():
            handler = source.handler(source, target, store, self.metrics, options)
            handlers.append((source, handler))
            pipeline.writers.append(handler)
            if register:
                self.metrics.register_target(target)
            pipeline.reflectors.append(
                Reflector(self._client, target, handler, self.metrics, self.config.reflector)
            )
            tick = getattr(handler, "tick", None)
            if tick is not None:
                pipeline.tasks.append(
                    asyncio.create_task(_every(TICK_INTERVAL, tick), name=f"tick {source.name}")
                )
        pipeline.writers += self._wire_joins(handlers, store, options)
        pipeline.writers += self._wire_history(handlers, store, options)
        pipeline.tasks += [
            asyncio.create_task(r.run(), name=f"reflector {r.target.source}") for r in pipeline.reflectors
        ]
        return pipeline

    def _wire_history(
        self, handlers: list[tuple[Source[Any], SourceHandler]], store: MetricsStore, options: HandlerOptions
    ) -> list[FaultHistory]:
        """Fault history for every watched source whose records describe chips."""
        histories = []
        for source, handler in handlers:
            if source.chip_views is not None:
                history = FaultHistory(source.name, store, options.shard)
                handler.listen(history.listener(source.chip_views))
                histories.append(history)
        return histories

    def _wire_joins(
        self, handlers: list[tuple[Source[Any], SourceHandler]], store: MetricsStore, options: HandlerOptions
    ) -> list[JoinState]:
        """Every join the watched sources feed, unless a watched source computes it itself (the
        sources' `feeds` and `supersedes` declarations)."""
        watched = tuple(source for source, _ in handlers)
        superseded = {join.name for source in watched for join in source.supersedes}
        states = []
        for join in joins_of(watched):
            if join.name in superseded:
                continue
            state = JoinState(join, store, options.shard)
            states.append(state)
            for source, handler in handlers:
                for feed in source.feeds:
                    if feed.join.name == join.name:
                        handler.listen(state.listener(feed))
        return states

    # --- automatic sharding -------------------------------------------------------------------

    async def _start_autoshard(self, pod: StatefulSetPod) -> None:
        """Shard `pod.ordinal` of the StatefulSet's replicas, followed as it is scaled."""
        try:
            replicas, version = await get_replicas(self._client, pod)
        except (KubeError, ValueError) as err:
            raise AutoshardError(
                f"cannot read statefulset {pod.namespace}/{pod.statefulset} for automatic sharding: {err}; "
                "grant get and watch on it (deploy/kubernetes/overlays/sharded) or use --shard/--total-shards"
            ) from None
        self._options = replace(self._options, shard=self._shard_of(pod, replicas))
        self.metrics.set_shard(self._options.shard.ordinal, self._options.shard.total)
        self._tasks.append(
            asyncio.create_task(
                follow_replicas(self._client, pod, replicas, version, self._rescale), name="statefulset watch"
            )
        )

    def _shard_of(self, pod: StatefulSetPod, replicas: int) -> Shard:
        if pod.ordinal < replicas:
            return Shard(pod.ordinal, replicas)
        # Scaled below this pod: it is about to be deleted; keep serving its part until then.
        return self._options.shard

    async def _rescale(self, replicas: int) -> None:
        pod = self.config.autoshard
        assert pod is not None
        shard = self._shard_of(pod, replicas)
        if shard != self._options.shard:
            await self.reshard(shard)

    async def reshard(self, shard: Shard) -> None:
        """Serve `shard` from now on: a second pipeline lists everything and renders the new part
        into a store of its own while the old one keeps serving; once every source has listed, the
        new blocks replace the old ones in one step and the old pipeline stops."""
        event(log, logging.INFO, "re-sharding", shard=shard.ordinal, total_shards=shard.total)
        options = replace(self._options, shard=shard)
        staging = MetricsStore(ALL_FAMILIES)
        new = self._start_pipeline(staging, options, register=False)
        try:
            await asyncio.gather(*(r.settled.wait() for r in new.reflectors))
        except BaseException:
            await new.stop()
            raise
        old, self._pipeline, self._options = self._pipeline, new, options
        await old.stop()
        self.store.adopt(staging)
        new.retarget(self.store)
        self.metrics.set_shard(shard.ordinal, shard.total)
        event(log, logging.INFO, "re-sharded", shard=shard.ordinal, total_shards=shard.total)

    async def wait_ready(self, timeout: float) -> None:
        await asyncio.wait_for(asyncio.gather(*(r.settled.wait() for r in self.reflectors)), timeout)
