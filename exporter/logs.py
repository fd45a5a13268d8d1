"""Structured logs: one JSON object per line, one line per event.

Callers pass facts as keyword fields; nothing here ever receives tokens or kubeconfig contents.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log would add one line per scrape; errors still come through.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    logger.log(level, msg, extra={"fields": fields})


class RateLimitedEvent:
    """An event a client can trigger at will (bad requests, failed logins): at most one line per
    `interval` seconds, carrying the number of occurrences suppressed since the previous line."""

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last = -interval
        self._suppressed = 0

    def __call__(self, level: int, msg: str, exc_info: BaseException | None = None, **fields: Any) -> bool:
        """Log unless a line went out less than `interval` ago; returns whether it logged."""
        now = time.monotonic()
        if now - self._last < self.interval:
            self._suppressed += 1
            return False
        fields["suppressed_since_last"] = self._suppressed
        self.logger.log(level, msg, exc_info=exc_info, extra={"fields": fields})
        self._last = now
        self._suppressed = 0
        return True
