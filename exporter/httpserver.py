"""Limits of the exporter's HTTP server: what a client may send, how long it may take, and what
the server logs about clients that break the rules.

aiohttp knobs used (AppRunner passes them to every connection's RequestHandler):

* `max_line_size` / `max_field_size` / `max_headers`: the request line, each header and the
  number of headers are bounded; larger requests get 400 and the connection is closed.
* `keepalive_timeout`: since aiohttp 3.14.4 this timer runs from the moment a connection is
  accepted and again after every response, and closes the connection when no *complete* request
  head has arrived by then. It therefore bounds a client that connects and sends nothing, or
  sends its headers byte by byte (slowloris), as well as idle keep-alive connections. 75 s keeps
  Prometheus' connection open across scrape intervals up to one minute.
* `logger`: aiohttp logs every malformed request at ERROR with a traceback, and the exception's
  text quotes the offending line, an oversized `Authorization` header included. `ServerLog`
  replaces that logger: one rate-limited line naming the error class, never the request's bytes.
* Request bodies are never read (only GET and HEAD are routed; aiohttp discards an unread body for
  at most `lingering_time`, 10 s, before closing), and `client_max_size` in `build_app` is small.
* TLS handshakes are bounded by asyncio's `ssl_handshake_timeout` (60 s).

aiohttp has no deadline for *sending* a response, so a client that requests /metrics and never
reads would hold the connection, its buffers and the handler forever. `send_deadline_middleware`
runs every handler, and sends what it returns or raises, inside one deadline; /metrics, which
streams its own body and waits until the client has received it, is covered because the deadline
wraps the handler itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from exporter.logs import RateLimitedEvent, event
from exporter.webconfig import WebConfig

log = logging.getLogger("exporter.web")

# Lines about misbehaving clients: at most one per this many seconds and kind.
LOG_INTERVAL = 10.0

Rejected = Callable[[str], None]  # counts a refusal by reason (ExporterMetrics.http_rejected)


def _ignore(reason: str) -> None:
    pass


@dataclass(frozen=True)
class HttpLimits:
    keepalive_timeout: float = 75.0  # complete request head within this of connect / last response
    send_timeout: float = 60.0  # request head complete -> whole response handed to the kernel
    max_scrapes: int = 10  # telemetry responses sent at once; more wait (scrape_wait), then get 503
    max_line_size: int = 8190  # request line (method, path, query, version)
    max_field_size: int = 8190  # one header line
    max_headers: int = 64

    @property
    def scrape_wait(self) -> float:
        """How long a scrape waits for one of the `max_scrapes` turns before it gets 503: long
        enough for a burst of scrapes to take turns, short against Prometheus' scrape timeout."""
        return min(5.0, self.send_timeout / 2)

    @property
    def stall_grace(self) -> float:
        """A response that has handed nothing to the kernel for this long, while another scrape
        waits for a turn, is cut off (exporter.server.MetricsHandler)."""
        return min(2.0, self.send_timeout / 4)

    def runner_kwargs(self, rejected: Rejected = _ignore) -> dict[str, Any]:
        """Keyword arguments for `web.AppRunner` (forwarded to each connection's handler)."""
        return {
            "keepalive_timeout": self.keepalive_timeout,
            "max_line_size": self.max_line_size,
            "max_field_size": self.max_field_size,
            "max_headers": self.max_headers,
            "logger": ServerLog(rejected),
        }


def send_deadline_middleware(timeout: float, rejected: Rejected = _ignore) -> Middleware:
    """Run the handler and send its response (returned, raised, or streamed by the handler itself)
    within `timeout` seconds; abort the connection when the client does not read it in time.
    Must be the outermost middleware, since it sends what the inner ones return."""
    too_slow = RateLimitedEvent(log, LOG_INTERVAL)

    @web.middleware
    async def send_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                try:
                    response = await handler(request)
                except web.HTTPException as exc:  # 404, 405: aiohttp sends it, after this returns
                    await exc.prepare(request)
                    await exc.write_eof()
                    raise
                if not response.prepared:
                    await response.prepare(request)
                    await response.write_eof()
        except TimeoutError:
            if not deadline.expired():
                raise
            rejected("send_timeout")
            too_slow(
                logging.WARNING, "client too slow to read the response, closing", path=request.path,
                remote=request.remote, timeout=timeout,
            )  # fmt: skip
            if request.transport is not None:
                reset(request.transport)
            raise asyncio.CancelledError from None
        return response

    return send_deadline


def reset(transport: asyncio.Transport) -> None:
    """Close a connection at once, dropping what it still had to send. A plain close would leave
    the kernel trying to deliver its send buffer (megabytes, on loopback) to a peer that reads
    nothing, for minutes; with SO_LINGER 0 the close sends a reset and frees it."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def server_middlewares(
    limits: HttpLimits, web_config: WebConfig | None, telemetry_path: str, rejected: Rejected = _ignore
) -> list[Middleware]:
    chain = [send_deadline_middleware(limits.send_timeout, rejected)]
    if web_config is not None:
        chain += web_config.middlewares(telemetry_path, rejected)
    return chain


class ServerLog:
    """What aiohttp's connection handler logs, for the exporter's server (the `logger` it takes).

    aiohttp logs each malformed request (line or header too long, bad method, invalid header) with
    `logger.exception`: an ERROR line and a traceback per request, at the rate a client can send
    them, and the exception's text quotes the offending bytes, e.g. part of an oversized
    `Authorization` header. Here a malformed request is counted and gives at most one structured
    line per LOG_INTERVAL naming the error's class and status; other errors (a handler's bug)
    keep their traceback, also rate-limited. Debug messages without an exception pass through.
    """

    def __init__(self, rejected: Rejected = _ignore, interval: float = LOG_INTERVAL) -> None:
        self._rejected = rejected
        self._bad_request = RateLimitedEvent(log, interval)
        self._error = RateLimitedEvent(log, interval)

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        self._report(logging.ERROR, msg, args, exc_info)

    def error(self, msg: str, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        self._report(logging.ERROR, msg, args, exc_info)

    def warning(self, msg: str, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        self._report(logging.WARNING, msg, args, exc_info)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        pass  # aiohttp's connection handler logs nothing at info

    def debug(self, msg: str, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        error = _exception(exc_info)
        if isinstance(error, HttpProcessingError):
            self._report(logging.DEBUG, msg, args, error)
        elif log.isEnabledFor(logging.DEBUG):
            event(log, logging.DEBUG, "aiohttp: " + _format(msg, args))

    def _report(self, level: int, msg: str, args: tuple[Any, ...], exc_info: Any) -> None:
        error = _exception(exc_info)
        remote = args[0] if args and isinstance(args[0], str) else None
        if isinstance(error, HttpProcessingError):
            self._rejected("bad_request")
            if isinstance(error, BadHttpMethod) and level == logging.DEBUG:
                # aiohttp's own choice: non-HTTP traffic (TLS to the plain port, scanners) is noise.
                event(
                    log, logging.DEBUG, "bad HTTP request refused", error=type(error).__name__, remote=remote
                )
                return
            # Only the class and status: the exception's text quotes the request's own bytes.
            self._bad_request(
                logging.WARNING, "bad HTTP request refused", status=error.code or 400,
                error=type(error).__name__, remote=remote,
            )  # fmt: skip
            return
        fields: dict[str, Any] = {"detail": _format(msg, args), "remote": remote}
        self._error(level, "HTTP server error", exc_info=error, **fields)


def _format(msg: str, args: tuple[Any, ...]) -> str:
    try:
        return msg % args if args else msg
    except (TypeError, ValueError):
        return msg


def _exception(exc_info: Any) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1]
    if exc_info:
        return sys.exc_info()[1]
    return None
