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
from prometheus_client.registry import Collector

from exporter import __version__
from exporter.kube.reflector import WatchTarget
from exporter.metrics.exposition import escape_label_value, family_header, format_value

# `_created` series would double every counter's series count for no benefit here.
prometheus_client.disable_created_metrics()

# The process and GC series move all the time; their text is rendered again at most this often.
# Everything the exporter itself counts re-renders it at once (see `_changed`).
RENDER_MAX_AGE_SECONDS = 1.0

# Why the HTTP server refused a request or cut a response off (mindx_exporter_http_rejected_total).
HTTP_REJECT_REASONS = ("bad_request", "send_timeout", "stalled_scrape", "too_many_scrapes", "too_many_logins")

RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ExporterMetrics:
    """Implements the reflector's observer and counts parse errors."""

    def __init__(self, render_max_age: float = RENDER_MAX_AGE_SECONDS) -> None:
        self.render_max_age = render_max_age
        self._text: bytes | None = None
        self._rendered_at = 0.0
        self._object_counts: dict[WatchTarget, int] = {}  # set on every watch event; rarely changes
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
        self.shard_ordinal = Gauge(
            "mindx_exporter_shard_ordinal",
            "This process's shard (--shard), 0-based.",
            registry=r,
        )
        self.total_shards = Gauge(
            "mindx_exporter_total_shards",
            "Number of shards the series are split into (--total-shards); 1 when not sharded.",
            registry=r,
        )
        self.total_shards.set(1)
        self.http_rejections = Counter(
            "mindx_exporter_http_rejected",
            "HTTP requests refused or responses cut off, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in HTTP_REJECT_REASONS:
            self.http_rejections.labels(reason)
        self.render_seconds = Histogram(
            "mindx_exporter_scrape_render_seconds",
            "Time to produce a /metrics body.",
            buckets=RENDER_BUCKETS,
            registry=r,
        )

    # --- ReflectorObserver ------------------------------------------------------------------

    def watch_up(self, target: WatchTarget, up: bool) -> None:
        self.watch_up_gauge.labels(target.source, target.namespace).set(1 if up else 0)
        self._changed()

    def listed(self, target: WatchTarget, reason: str, objects: int) -> None:
        self.relists.labels(target.source, target.namespace, reason).inc()
        self.last_sync.labels(target.source, target.namespace).set(time.time())
        self._changed()

    def watch_error(self, target: WatchTarget, reason: str) -> None:
        self.watch_errors.labels(target.source, target.namespace, reason).inc()
        self._changed()

    def set_shard(self, ordinal: int, total: int) -> None:
        self.shard_ordinal.set(ordinal)
        self.total_shards.set(total)
        self._changed()

    # --- sources ----------------------------------------------------------------------------

    def register_target(self, target: WatchTarget) -> None:
        """Create a watch's series at 0 so dashboards and alerts see them before the first event."""
        self.watch_up_gauge.labels(target.source, target.namespace).set(0)
        self.objects.labels(target.source, target.namespace).set(0)
        self._object_counts[target] = 0
        self._changed()

    def set_objects(self, target: WatchTarget, count: int) -> None:
        if self._object_counts.get(target) != count:
            self._object_counts[target] = count
            self.objects.labels(target.source, target.namespace).set(count)
            self._changed()

    def parse_error(self, source: str, reason: str, count: int = 1) -> None:
        self.parse_errors.labels(source, reason).inc(count)
        self._changed()

    # --- HTTP server ------------------------------------------------------------------------

    def http_rejected(self, reason: str) -> None:
        self.http_rejections.labels(reason).inc()
        self._changed()

    # --- scrapes ----------------------------------------------------------------------------

    def observe_render(self, seconds: float) -> None:
        """A scrape's render time: shown like the process series, at most `render_max_age` late."""
        self.render_seconds.observe(seconds)

    def render(self) -> bytes:
        """The text of every series here. Rendering costs as much as serving a cached 2 MB gzip
        body, so scrapes within `render_max_age` of each other share it unless something the
        exporter counts has changed since."""
        now = time.monotonic()
        if self._text is None or now - self._rendered_at >= self.render_max_age:
            self._text = render_registry(self.registry)
            self._rendered_at = now
        return self._text

    def _changed(self) -> None:
        self._text = None


# OpenMetrics types as the 0.0.4 text format names them (as prometheus_client's generate_latest).
_TEXT_TYPE = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_NAME_SUFFIX = {"counter": "_total", "info": "_info"}


def render_registry(registry: Collector) -> bytes:
    """The text format of `registry`, as prometheus_client's generate_latest writes it, in a
    third of its time: that one checks every name against the UTF-8 naming rules, and this text
    is rendered at every scrape. Names here are the exporter's own and the library's, all legacy
    names; `_created` samples are disabled above."""
    lines: list[str] = []
    for metric in registry.collect():
        name = metric.name + _NAME_SUFFIX.get(metric.type, "")
        lines.append(family_header(name, _TEXT_TYPE.get(metric.type, metric.type), metric.documentation))
        for sample in metric.samples:
            if sample.labels:
                pairs = ",".join(
                    f'{label}="{escape_label_value(value)}"' for label, value in sorted(sample.labels.items())
                )
                lines.append(f"{sample.name}{{{pairs}}} {format_value(sample.value)}\n")
            else:
                lines.append(f"{sample.name} {format_value(sample.value)}\n")
    return "".join(lines).encode()
