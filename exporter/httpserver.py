"""Limits of the exporter's HTTP server: what a client may send and how long it may take.

aiohttp knobs used (AppRunner passes them to every connection's RequestHandler):

* `max_line_size` / `max_field_size` / `max_headers`: the request line, each header and the
  number of headers are bounded; larger requests get 400 and the connection is closed.
* `keepalive_timeout`: since aiohttp 3.14.4 this timer runs from the moment a connection is
  accepted and again after every response, and closes the connection when no *complete* request
  head has arrived by then. It therefore bounds a client that connects and sends nothing, or
  sends its headers byte by byte (slowloris), as well as idle keep-alive connections. 75 s keeps
  Prometheus' connection open across scrape intervals up to one minute.
* Request bodies are never read (only GET and HEAD are routed; aiohttp discards an unread body for
  at most `lingering_time`, 10 s, before closing), and `client_max_size` in `build_app` is small.
* TLS handshakes are bounded by asyncio's `ssl_handshake_timeout` (60 s).

aiohttp has no deadline for *sending* a response, so a client that requests /metrics and never
reads would hold the body in memory indefinitely; `send_deadline_middleware` bounds that for
every response a handler returns unsent (all of ours; one a handler streams itself is not covered).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from exporter.logs import event
from exporter.webconfig import WebConfig

log = logging.getLogger("exporter.web")


@dataclass(frozen=True)
class HttpLimits:
    keepalive_timeout: float = 75.0  # complete request head within this of connect / last response
    send_timeout: float = 60.0  # a response must be fully handed to the kernel within this
    max_line_size: int = 8190  # request line (method, path, query, version)
    max_field_size: int = 8190  # one header line
    max_headers: int = 64

    def runner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `web.AppRunner` (forwarded to each connection's handler)."""
        return {
            "keepalive_timeout": self.keepalive_timeout,
            "max_line_size": self.max_line_size,
            "max_field_size": self.max_field_size,
            "max_headers": self.max_headers,
        }


def send_deadline_middleware(timeout: float) -> Middleware:
    """Send the handler's response inside a deadline; abort the connection when the client does not
    read it in time. Must be the outermost middleware, since it sends what the inner ones return."""

    @web.middleware
    async def send_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if response.prepared:
            return response
        try:
            async with asyncio.timeout(timeout):
                await response.prepare(request)
                await response.write_eof()
        except TimeoutError:
            event(
                log,
                logging.WARNING,
                "client too slow to read the response, closing",
                path=request.path,
                remote=request.remote,
                timeout=timeout,
            )
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError from None
        return response

    return send_deadline


def server_middlewares(
    limits: HttpLimits, web_config: WebConfig | None, telemetry_path: str
) -> list[Middleware]:
    chain = [send_deadline_middleware(limits.send_timeout)]
    if web_config is not None:
        chain += web_config.middlewares(telemetry_path)
    return chain
