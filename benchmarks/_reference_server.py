"""The two reference servers of benchmarks/scale.py, each run as its own process.

``limit``: the exporter's own plain and gzip bodies served from memory by a bare aiohttp handler,
the fastest an aiohttp server can answer a scrape of these bytes.

``obvious``: the same series through a prometheus_client custom collector that builds fresh
metric families at every scrape and serves them with prometheus_client's own exposition
(``generate_latest``, and ``gzip.compress`` when the client accepts gzip, as its HTTP handlers do).

Both print ``listening <port>`` on stdout once they accept scrapes, then serve until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest, gzip_accepted
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (name, type, help, label names, [(label values, value)]) per family, parsed once at start.
ParsedFamily = tuple[str, str, str, tuple[str, ...], list[tuple[tuple[str, ...], float]]]
# Families whose samples do not share one label set (histograms, self-metrics): kept as samples.
RawFamily = tuple[str, str, str, list[tuple[str, dict[str, str], float]]]


def limit_app(plain: bytes, gzipped: bytes) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        if gzip_accepted(request.headers.get("Accept-Encoding", "")):
            headers = {"Content-Type": CONTENT_TYPE, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
            return web.Response(body=gzipped, headers=headers)
        return web.Response(body=plain, headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


class ObviousCollector(Collector):
    """Builds every family anew at each collect(), as a straightforward exporter would."""

    def __init__(self, text: str) -> None:
        self.families: list[ParsedFamily] = []
        self.raw: list[RawFamily] = []
        for family in text_string_to_metric_families(text):
            names = {tuple(sample.labels) for sample in family.samples}
            if family.type in ("gauge", "counter") and len(names) <= 1:
                labelnames = next(iter(names), ())
                samples = [(tuple(s.labels.values()), s.value) for s in family.samples]
                self.families.append((family.name, family.type, family.documentation, labelnames, samples))
            else:
                samples_raw = [(s.name, dict(s.labels), s.value) for s in family.samples]
                self.raw.append((family.name, family.type, family.documentation, samples_raw))

    def series(self) -> int:
        return sum(len(f[4]) for f in self.families) + sum(len(f[3]) for f in self.raw)

    def collect(self) -> Iterator[Metric]:
        for name, kind, documentation, labelnames, samples in self.families:
            family: GaugeMetricFamily | CounterMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(name, documentation, labels=labelnames)
            else:
                family = GaugeMetricFamily(name, documentation, labels=labelnames)
            for values, value in samples:
                family.add_metric(values, value)
            yield family
        for name, kind, documentation, raw_samples in self.raw:
            metric = Metric(name, documentation, kind)
            for sample_name, labels, value in raw_samples:
                metric.add_sample(sample_name, labels, value)
            yield metric


def obvious_app(text: str) -> web.Application:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ObviousCollector(text))

    async def metrics(request: web.Request) -> web.Response:
        output = generate_latest(registry)
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        if gzip_accepted(request.headers.get("Accept-Encoding", "")):
            output = gzip.compress(output)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=output, headers=headers)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    return app


async def serve(app: web.Application) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"listening {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["limit", "obvious"])
    parser.add_argument("--plain", type=Path, required=True, help="the exporter's plain /metrics body")
    parser.add_argument("--gzip", type=Path, help="the exporter's gzip /metrics body (limit mode)")
    args = parser.parse_args()
    if args.mode == "limit":
        if args.gzip is None:
            parser.error("limit mode needs --gzip")
        app = limit_app(args.plain.read_bytes(), args.gzip.read_bytes())
    else:
        app = obvious_app(args.plain.read_text("utf-8"))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
