"""Real VictoriaMetrics processes for end-to-end tests: `victoria-metrics` (single-node store),
`vmagent` (scraper, optionally one member of a cluster that splits the targets) and `vmalert`
(rule evaluation against the store), from Debian's `victoria-metrics` package, which `.ci/run`
installs. They run on 127.0.0.1 with free ports and temporary directories; every wait polls with
a deadline, and a failing test shows the tail of the process's log.

The flags are spelled out here, in one place, because docs/deployment.md ("Large clusters:
shards") quotes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.prometheus_process import Process, free_port, wait_ready

VICTORIA_METRICS = shutil.which("victoria-metrics")
VMAGENT = shutil.which("vmagent")
VMALERT = shutil.which("vmalert")


@contextlib.asynccontextmanager
async def spawn(
    name: str, args: list[str], workdir: Path, env: Mapping[str, str] | None = None
) -> AsyncIterator[Process]:
    """Run `args` with its output in `workdir/NAME.log`; terminate it (then kill) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *args,
            cwd=workdir,
            env=None if env is None else {**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
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


class VmApiError(AssertionError):
    """A VictoriaMetrics HTTP API answered with an error."""


@dataclass
class VmProcess:
    """A running VictoriaMetrics component and a client for its HTTP API."""

    url: str
    process: Process
    session: aiohttp.ClientSession

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        async with self.session.get(f"{self.url}{path}", params=params) as resp:
            body = await resp.json(content_type=None)
        if not isinstance(body, dict) or body.get("status") != "success":
            raise VmApiError(f"{self.process.name} {path} {params}: {body}")
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at the current time (the store's Prometheus-compatible API)."""
        data = await self.get_json("/api/v1/query", {"query": expr})
        result: list[dict[str, Any]] = data["result"]
        return result


def victoria_metrics_args(port: int, data: Path) -> list[str]:
    return [
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-storageDataPath={data}",
        "-retentionPeriod=1d",
        # Fresh samples are queryable at once (the default hides the last 30 s from queries near
        # "now", which suits Grafana, not an alert rule or a test).
        "-search.latencyOffset=0s",
        # A series that left a scrape stops answering instant queries within seconds even without
        # a staleness marker, as Prometheus's 5-minute lookback would at a 1 s interval.
        "-search.maxStalenessInterval=10s",
    ]


def vmagent_args(
    port: int, scrape_config: Path, remote_write: str, buffer: Path, member: int, members: int
) -> list[str]:
    return [
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-promscrape.config={scrape_config}",
        f"-promscrape.cluster.membersCount={members}",
        f"-promscrape.cluster.memberNum={member}",
        "-promscrape.cluster.replicationFactor=1",
        f"-remoteWrite.url={remote_write}",
        f"-remoteWrite.tmpDataPath={buffer}",
        "-remoteWrite.flushInterval=1s",
    ]


def vmalert_args(port: int, rules: Path, datasource: str, notifier: str, evaluation: str) -> list[str]:
    return [
        f"-httpListenAddr=127.0.0.1:{port}",
        f"-rule={rules}",
        f"-datasource.url={datasource}",
        # Recording rules (the fault-history group) are written back to the store.
        f"-remoteWrite.url={datasource}",
        f"-notifier.url={notifier}",
        f"-evaluationInterval={evaluation}",
        # Alerts carry the rule's labels only, as on Prometheus (no `alertgroup`).
        "-disableAlertgroupLabel",
    ]


@contextlib.asynccontextmanager
async def victoria_metrics(session: aiohttp.ClientSession, workdir: Path) -> AsyncIterator[VmProcess]:
    assert VICTORIA_METRICS is not None, (
        "victoria-metrics is not installed (Debian package `victoria-metrics`)"
    )
    port = free_port()
    args = [VICTORIA_METRICS, *victoria_metrics_args(port, workdir / "data")]
    async with spawn("victoria-metrics", args, workdir) as process:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(session, f"{url}/health", process)
        yield VmProcess(url, process, session)


@contextlib.asynccontextmanager
async def vmagent(
    session: aiohttp.ClientSession,
    workdir: Path,
    scrape_config: dict[str, Any],
    remote_write: str,
    member: int = 0,
    members: int = 1,
) -> AsyncIterator[VmProcess]:
    """One vmagent scraping `scrape_config` (a Prometheus-style dict); with `members` > 1 it is
    member `member` of a cluster and scrapes only its share of the targets."""
    assert VMAGENT is not None, "vmagent is not installed (Debian package `victoria-metrics`)"
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "scrape.yaml"
    config.write_text(yaml.safe_dump(scrape_config))
    port = free_port()
    args = [VMAGENT, *vmagent_args(port, config, remote_write, workdir / "buffer", member, members)]
    async with spawn(f"vmagent-{member}", args, workdir) as process:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(session, f"{url}/health", process)
        yield VmProcess(url, process, session)


@contextlib.asynccontextmanager
async def vmalert(
    session: aiohttp.ClientSession, workdir: Path, rules: Path, datasource: str, notifier: str
) -> AsyncIterator[VmProcess]:
    assert VMALERT is not None, "vmalert is not installed (Debian package `victoria-metrics`)"
    port = free_port()
    args = [VMALERT, *vmalert_args(port, rules, datasource, notifier, "1s")]
    async with spawn("vmalert", args, workdir) as process:
        url = f"http://127.0.0.1:{port}"
        await wait_ready(session, f"{url}/health", process)
        yield VmProcess(url, process, session)
