"""The exporter's HTTP endpoints (aiohttp): /metrics, /healthz, /readyz and a landing page."""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.metrics.exposition import CONTENT_TYPE
from exporter.metrics.gzipstream import finish_member
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import GzipBody, MetricsStore
from exporter.webconfig import RESPONSE_HEADERS_KEY

ReadinessCheck = Callable[[], list[str]]  # names of the watches that have not listed yet
WRITE_SLICE = 1 << 20


def _accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


class MetricsHandler:
    def __init__(self, store: MetricsStore, metrics: ExporterMetrics) -> None:
        self.store = store
        self.metrics = metrics
        # The last gzip ending: concurrent scrapes of the same body and self-metrics text share it.
        self._ending: tuple[GzipBody, bytes, bytes] | None = None

    def _gzip_ending(self, compressed: GzipBody, tail: bytes) -> bytes:
        if self._ending is None or self._ending[0] is not compressed or self._ending[1] is not tail:
            self._ending = (compressed, tail, finish_member(compressed.crc, compressed.length, tail))
        return self._ending[2]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        headers = {"Content-Type": CONTENT_TYPE}
        parts: tuple[bytes, ...]
        if _accepts_gzip(request):
            compressed = await self.store.gzip()
            self.metrics.observe_render(time.perf_counter() - started)
            parts = (compressed.prefix, self._gzip_ending(compressed, self.metrics.render()))
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        else:
            plain = self.store.plain()
            self.metrics.observe_render(time.perf_counter() - started)
            parts = (*plain.parts, self.metrics.render())
        response = web.StreamResponse(headers=headers)
        response.content_length = sum(len(part) for part in parts)
        try:
            await response.prepare(request)
            if request.method != "HEAD":
                await _write_in_slices(response, parts)
            await response.write_eof()
        except ConnectionError:
            # The scraper went away (e.g. its scrape timeout): nothing to report, nothing to send.
            pass
        return response


async def _write_in_slices(response: web.StreamResponse, parts: tuple[bytes, ...]) -> None:
    """Send the shared, cached parts in slices of about WRITE_SLICE bytes: each `write` waits for
    the socket to drain, so a scrape buffers one slice instead of a copy of a body that can be
    60 MB, and other work runs between slices. Small parts are joined into one slice, large
    ones are cut."""
    pending: list[bytes | memoryview] = []
    pending_size = 0
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), WRITE_SLICE):
            piece = view[start : start + WRITE_SLICE]
            pending.append(piece)
            pending_size += len(piece)
            if pending_size >= WRITE_SLICE:
                await response.write(pending[0] if len(pending) == 1 else b"".join(pending))
                pending.clear()
                pending_size = 0
    if pending:
        await response.write(pending[0] if len(pending) == 1 else b"".join(pending))


async def _extra_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Headers a web config asks for (exporter.webconfig), also on streamed responses."""
    response.headers.update(request.get(RESPONSE_HEADERS_KEY, ()))


def build_app(
    store: MetricsStore,
    metrics: ExporterMetrics,
    not_ready: ReadinessCheck,
    telemetry_path: str = "/metrics",
    middlewares: Iterable[Middleware] = (),
    not_served: ReadinessCheck = list,
) -> web.Application:
    # Only GET and HEAD are routed and no handler reads a body (exporter.httpserver).
    app = web.Application(client_max_size=1024, middlewares=middlewares)
    app.on_response_prepare.append(_extra_headers)
    metrics_handler = MetricsHandler(store, metrics)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        # Sources the API server refuses stop blocking readiness after a while (Reflector.settled);
        # the body names them either way.
        refused = "".join(f"not served: {line}\n" for line in not_served())
        pending = not_ready()
        if pending:
            text = "not ready: waiting for first list of " + ", ".join(pending) + "\n"
            return web.Response(status=503, text=text + refused)
        return web.Response(text="ok\n" + refused)

    async def landing(request: web.Request) -> web.Response:
        path = html.escape(telemetry_path)
        page = (
            "<!doctype html><html><head><title>MindX fault exporter</title></head><body>"
            "<h1>MindX fault exporter</h1><p>MindX DL fault ConfigMaps and Events as Prometheus metrics.</p>"
            f'<ul><li><a href="{path}">{path}</a></li><li><a href="/healthz">/healthz</a></li>'
            '<li><a href="/readyz">/readyz</a></li></ul></body></html>'
        )
        return web.Response(text=page, content_type="text/html")

    app.router.add_get(telemetry_path, metrics_handler.handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if telemetry_path != "/":
        app.router.add_get("/", landing)
    return app


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """`:9847` → (all interfaces, 9847); `127.0.0.1:9847`; `[::1]:9847`."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid listen address {address!r}, expected [host]:port")
    host = host.strip("[]")
    return (host or None), int(port)
