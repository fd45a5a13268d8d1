"""Real Prometheus-ecosystem processes for end-to-end tests.

Debian's `prometheus` (and `prometheus-alertmanager`) run on 127.0.0.1 with a free port and a
temporary directory; `.ci/run` installs them. Every wait polls with a deadline, and a failing
test shows the tail of the process's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.helpers import eventually

PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    name: str
    log: Path
    proc: asyncio.subprocess.Process

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.name} log (last {lines} lines) ---\n" + "\n".join(text.splitlines()[-lines:])


@contextlib.asynccontextmanager
async def running(name: str, args: list[str], workdir: Path) -> AsyncIterator[Process]:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *args, cwd=workdir, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    try:
        yield Process(name, log, proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_ready(session: aiohttp.ClientSession, url: str, process: Process, timeout: float = 20) -> None:
    async def ready() -> None:
        assert process.proc.returncode is None, f"{process.name} exited\n{process.tail()}"
        try:
            async with session.get(url) as resp:
                assert resp.status == 200, f"{url}: {resp.status}"
        except aiohttp.ClientError as err:
            raise AssertionError(f"{url}: {err}") from err

    await eventually(ready, timeout=timeout, interval=0.1)


class PrometheusApiError(AssertionError):
    """The HTTP API answered with an error (bad query, bad parameters)."""


@dataclass
class PrometheusServer:
    """A running `prometheus` and a client for its HTTP API."""

    url: str
    process: Process
    session: aiohttp.ClientSession

    async def api(self, path: str, params: dict[str, Any] | list[tuple[str, str]]) -> Any:
        async with self.session.get(f"{self.url}/api/v1/{path}", params=params) as resp:
            body = await resp.json(content_type=None)
        if body.get("status") != "success":
            raise PrometheusApiError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    async def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} if time is None else {"query": expr, "time": str(time)}
        data = await self.api("query", params)
        if data["resultType"] in ("vector", "matrix"):
            result: list[dict[str, Any]] = data["result"]
            return result
        return [data]  # a scalar or string

    async def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
        result: list[dict[str, Any]] = (await self.api("query_range", params))["result"]
        return result

    async def series(self, match: str, start: float, end: float) -> list[dict[str, str]]:
        params = [("match[]", match), ("start", str(start)), ("end", str(end))]
        result: list[dict[str, str]] = await self.api("series", params)
        return result


@contextlib.asynccontextmanager
async def prometheus(config: dict[str, Any], workdir: Path) -> AsyncIterator[PrometheusServer]:
    """Start `prometheus` with `config` (a dict, written as YAML) on a free port of 127.0.0.1 and
    wait until it is ready."""
    assert PROMETHEUS is not None, "prometheus is not installed (Debian package `prometheus`)"
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "prometheus.yaml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    args = [
        PROMETHEUS,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    async with aiohttp.ClientSession() as session, running("prometheus", args, workdir) as process:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(session, f"{url}/-/ready", process)
        yield PrometheusServer(url, process, session)
