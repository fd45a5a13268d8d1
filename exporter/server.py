"""The exporter's HTTP endpoints (aiohttp): /metrics, /healthz, /readyz and a landing page."""

from __future__ import annotations

import asyncio
import fcntl
import html
import logging
import math
import struct
import termios
import time
from collections.abc import Callable, Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from exporter.httpserver import HttpLimits, reset
from exporter.logs import RateLimitedEvent
from exporter.metrics.exposition import CONTENT_TYPE
from exporter.metrics.gzipstream import finish_member
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import GzipBody, MetricsStore
from exporter.webconfig import RESPONSE_HEADERS_KEY

ReadinessCheck = Callable[[], list[str]]  # names of the watches that have not listed yet
# Bodies are sent in copies of about this size: what a scrape holds besides the shared cached body
# (the slice being written, the transport's buffer) is a few slices, however long its client
# takes, and never a reference that keeps a replaced body alive.
WRITE_SLICE = 128 << 10

log = logging.getLogger("exporter.web")


def _accepts_gzip(request: web.Request) -> bool:
    for part in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() == "gzip" and params.replace(" ", "") not in ("q=0", "q=0.0"):
            return True
    return False


class _Send:
    """A /metrics response being sent."""

    __slots__ = ("cut", "deadline", "progress", "transport")

    def __init__(self, transport: asyncio.Transport | None, deadline: float) -> None:
        self.transport = transport
        self.deadline = deadline  # monotonic time by which the client must have it all
        # When the last slice was handed over or acknowledged (or the headers were); infinite
        # while the body is being prepared, which is never a stall.
        self.progress = math.inf
        self.cut = False


class MetricsHandler:
    """Serves the telemetry path.

    At most `limits.max_scrapes` responses are sent at once: a scraper that stops reading holds
    its connection's buffers (a slice or two here, up to the kernel's send buffer) until the send
    deadline (exporter.httpserver) cuts it off, so this bounds what such scrapers can pin. A scrape
    that finds every turn taken cuts off the response that has made no progress for longest, if
    one has made none for `limits.stall_grace` seconds, so clients that stopped reading cannot keep
    Prometheus out; otherwise it waits for a turn, at most `limits.scrape_wait` seconds, then
    gets 503."""

    def __init__(self, store: MetricsStore, metrics: ExporterMetrics, limits: HttpLimits) -> None:
        self.store = store
        self.metrics = metrics
        self.limits = limits
        self._turns = asyncio.Semaphore(limits.max_scrapes)
        self._sending: set[_Send] = set()
        self._watchers: set[asyncio.Task[None]] = set()
        self._refused_log = RateLimitedEvent(log)
        self._cut_log = RateLimitedEvent(log)
        self._too_slow_log = RateLimitedEvent(log)
        # The last gzip ending: concurrent scrapes of the same body and self-metrics text share it.
        self._ending: tuple[GzipBody, bytes, bytes] | None = None

    def _gzip_ending(self, compressed: GzipBody, tail: bytes) -> bytes:
        if self._ending is None or self._ending[0] is not compressed or self._ending[1] is not tail:
            self._ending = (compressed, tail, finish_member(compressed.crc, compressed.length, tail))
        return self._ending[2]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if not await self._take_turn():
            self.metrics.http_rejected("too_many_scrapes")
            limit = self.limits.max_scrapes
            self._refused_log(
                logging.WARNING, "too many scrapes in progress, refusing", limit=limit, remote=request.remote
            )
            text = f"too many scrapes in progress (limit {limit}, --web.max-scrapes), retry later\n"
            return web.Response(status=503, text=text, headers={"Retry-After": "1"})
        send = _Send(request.transport, time.monotonic() + self.limits.send_timeout)
        self._sending.add(send)
        watched = False
        try:
            response = await self._serve(request, send)
            if response.prepared and _unsent(send.transport):
                # The client has not read it all yet: keep the turn until it has (or until the
                # deadline resets it), without holding up this connection's next request.
                watcher = asyncio.create_task(self._watch_delivery(send, request.remote))
                self._watchers.add(watcher)
                watcher.add_done_callback(self._watchers.discard)
                watched = True
            return response
        finally:
            if not watched:
                self._done(send)

    def _done(self, send: _Send) -> None:
        self._sending.discard(send)
        self._turns.release()

    async def _watch_delivery(self, send: _Send, remote: str | None) -> None:
        """Up to 4 MiB of a body fits in the kernel's send buffer of a client that does not read.
        Until the kernel's queue is empty the response keeps its turn and stays under the send
        deadline, which resets the connection and frees that buffer, instead of leaving it to
        the kernel for minutes after a keep-alive close."""
        pause, last = 0.001, -1
        try:
            while (queued := _unsent(send.transport)) > 0:
                now = time.monotonic()
                if now >= send.deadline:
                    if not send.cut and send.transport is not None:
                        send.cut = True
                        self.metrics.http_rejected("send_timeout")
                        self._too_slow_log(
                            logging.WARNING, "client too slow to read the response, closing",
                            path="/metrics", remote=remote, timeout=self.limits.send_timeout,
                        )  # fmt: skip
                        reset(send.transport)
                    return
                if queued < last:
                    send.progress = now
                    pause = 0.001
                last = queued
                await asyncio.sleep(min(pause, send.deadline - now))
                pause = min(pause * 2, 0.1)
        finally:
            self._done(send)

    async def _take_turn(self) -> bool:
        deadline = time.monotonic() + self.limits.scrape_wait
        while True:
            if self._turns.locked():
                self._cut_off_stalled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(min(remaining, self.limits.stall_grace / 4)):
                    await self._turns.acquire()
                return True
            except TimeoutError:
                continue

    def _cut_off_stalled(self) -> None:
        """Reset the connection of the response stalled longest, if it has been for stall_grace;
        its handler then returns (the write fails) and frees the turn."""
        now = time.monotonic()
        stalled = [s for s in self._sending if not s.cut and now - s.progress >= self.limits.stall_grace]
        if not stalled:
            return
        victim = min(stalled, key=lambda s: s.progress)
        victim.cut = True
        self.metrics.http_rejected("stalled_scrape")
        self._cut_log(
            logging.WARNING,
            "scrape stalled while others wait, closing",
            stalled_seconds=round(now - victim.progress, 1),
        )
        if victim.transport is not None:
            reset(victim.transport)

    async def _serve(self, request: web.Request, send: _Send) -> web.StreamResponse:
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
            send.progress = time.monotonic()
            if request.method != "HEAD":
                await _write_in_slices(response, parts, send)
            await response.write_eof()
        except ConnectionError:
            # The scraper went away (e.g. its scrape timeout): nothing to report, nothing to send.
            pass
        return response


def _unsent(transport: asyncio.Transport | None) -> int:
    """Bytes of this connection's responses the client has not received: in the transport's
    buffer, and in the kernel's send queue (TIOCOUTQ: not yet acknowledged). 0 once closed."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if transport is None or sock is None:
        return 0
    try:
        queued: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, ValueError):  # closed meanwhile
        return 0
    return queued + transport.get_write_buffer_size()


async def _write_in_slices(response: web.StreamResponse, parts: tuple[bytes, ...], send: _Send) -> None:
    """Send the shared, cached parts in slices of about WRITE_SLICE bytes: each `write` waits for
    the socket to drain, so a scrape buffers a slice or two instead of a copy of a body that can
    be 60 MB, and other work runs between slices. Small parts are joined into one slice, large
    ones are cut; a slice is always a copy, so a slow client never keeps a replaced body alive."""
    pending: list[bytes | memoryview] = []
    pending_size = 0
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), WRITE_SLICE):
            piece = view[start : start + WRITE_SLICE]
            pending.append(piece)
            pending_size += len(piece)
            if pending_size >= WRITE_SLICE:
                await response.write(b"".join(pending))
                send.progress = time.monotonic()
                pending.clear()
                pending_size = 0
    if pending:
        await response.write(b"".join(pending))


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
    limits: HttpLimits | None = None,
) -> web.Application:
    # Only GET and HEAD are routed and no handler reads a body (exporter.httpserver).
    app = web.Application(client_max_size=1024, middlewares=middlewares)
    app.on_response_prepare.append(_extra_headers)
    metrics_handler = MetricsHandler(store, metrics, limits or HttpLimits())

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
