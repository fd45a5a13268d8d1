"""The exporter's own health (`mindx_exporter_*`) plus process and Python runtime metrics, kept
in a private prometheus_client registry and appended to every scrape."""

from __future__ import annotations

import platform
import time

import prometheus_client
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.exposition import generate_latest

from exporter import __version__
from exporter.kube.reflector import WatchTarget

# `_created` series would double every counter's series count for no benefit here.
prometheus_client.disable_created_metrics()

RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ExporterMetrics:
    """Implements the reflector's observer and counts parse errors."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        r = self.registry
        build = Gauge(
            "mindx_exporter_build_info", "Exporter version (1).", ["version", "python_version"], registry=r
        )
        build.labels(__version__, platform.python_version()).set(1)
        self.watch_up_gauge = Gauge(
            "mindx_exporter_watch_up",
            "1 while the watch is synced and streaming, else 0.",
            ["source", "namespace"],
            registry=r,
        )
        self.last_sync = Gauge(
            "mindx_exporter_last_sync_timestamp_seconds",
            "Unix time of the last complete list.",
            ["source", "namespace"],
            registry=r,
        )
        self.relists = Counter(
            "mindx_exporter_relists",
            "Full re-lists by reason (start, expired, error, stalled).",
            ["source", "namespace", "reason"],
            registry=r,
        )
        self.watch_errors = Counter(
            "mindx_exporter_watch_errors",
            "Failed or broken list/watch requests by reason.",
            ["source", "namespace", "reason"],
            registry=r,
        )
        self.objects = Gauge(
            "mindx_exporter_objects", "Objects held in the cache.", ["source", "namespace"], registry=r
        )
        self.parse_errors = Counter(
            "mindx_exporter_parse_errors",
            "Values that could not be used, by source and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.render_seconds = Histogram(
            "mindx_exporter_scrape_render_seconds",
            "Time to produce a /metrics body.",
            buckets=RENDER_BUCKETS,
            registry=r,
        )

    # --- ReflectorObserver ------------------------------------------------------------------

    def watch_up(self, target: WatchTarget, up: bool) -> None:
        self.watch_up_gauge.labels(target.source, target.namespace).set(1 if up else 0)

    def listed(self, target: WatchTarget, reason: str, objects: int) -> None:
        self.relists.labels(target.source, target.namespace, reason).inc()
        self.last_sync.labels(target.source, target.namespace).set(time.time())

    def watch_error(self, target: WatchTarget, reason: str) -> None:
        self.watch_errors.labels(target.source, target.namespace, reason).inc()

    # --- sources ----------------------------------------------------------------------------

    def register_target(self, target: WatchTarget) -> None:
        """Create a watch's series at 0 so dashboards and alerts see them before the first event."""
        self.watch_up_gauge.labels(target.source, target.namespace).set(0)
        self.objects.labels(target.source, target.namespace).set(0)

    def set_objects(self, target: WatchTarget, count: int) -> None:
        self.objects.labels(target.source, target.namespace).set(count)

    def parse_error(self, source: str, reason: str, count: int = 1) -> None:
        self.parse_errors.labels(source, reason).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
