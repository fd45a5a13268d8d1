"""`mindx-fault-exporter demo`: the real exporter against a simulated MindX DL cluster.

An in-process Kubernetes API server (the project's test server, real list/watch HTTP on
127.0.0.1) holds what a simulated cluster's producers write — device plugin, its Events, NodeD,
ClusterD's shards, Volcano — and the exporter watches it through a kubeconfig, exactly as it
would watch a real cluster. Faults are raised, escalated and recovered as the demo runs.

The flags are defined in `exporter.flags`, which turns them into a `DemoConfig`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter, ExporterConfig
from exporter.kube.config import load_cluster_access
from exporter.logs import event
from exporter.server import parse_listen_address
from exporter.simulator import AlertsScenario, ClusterSimulator, FaultRates

log = logging.getLogger("exporter.demo")

DEMO_RATES = FaultRates()
# --profile: its default time scale. `alerts` also plays the alerts scenario (docs/alerts.md).
PROFILE_TIME_SCALE = {"random": 60.0, "alerts": 1.0}
DEMO_LISTEN_ADDRESS = "127.0.0.1:9847"
READY_TIMEOUT = 30.0
# ClusterSimulator offers `failure`, not a completion signal: look this often whether it died.
SIMULATOR_CHECK_INTERVAL = 0.5


class DemoError(Exception):
    """The demo cannot start for a reason the user can fix (printed as one line, exit status 2)."""


class DemoFailed(Exception):
    """The demo stopped on its own (printed as one line, exit status 1)."""


@dataclass(frozen=True)
class DemoConfig:
    nodes: int = 30
    seed: int = 1
    time_scale: float = 60.0
    profile: str = "random"  # a key of PROFILE_TIME_SCALE
    rates: FaultRates = field(default_factory=FaultRates)
    api_address: str = "127.0.0.1:0"
    kubeconfig_out: str | None = None  # --write-kubeconfig
    exporter: ExporterConfig = field(
        default_factory=lambda: ExporterConfig(listen_address=DEMO_LISTEN_ADDRESS)
    )


async def run(config: DemoConfig, stop: asyncio.Event) -> None:
    """Serve until `stop` is set. Raises DemoError before anything serves, DemoFailed when the
    simulated cluster dies."""
    host, port = parse_listen_address(config.api_address)
    api = KubeApiTestServer(host=host or "127.0.0.1", port=port, bookmark_interval=30.0)
    try:
        await api.start()
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno and err.errno > 0 else err.strerror or str(err)
        raise DemoError(
            f"cannot listen on {config.api_address} for the simulated API: {reason}; "
            "choose another address with --api.listen-address"
        ) from None
    try:
        simulator = ClusterSimulator(
            api.store,
            nodes=config.nodes,
            seed=config.seed,
            rates=config.rates,
            time_scale=config.time_scale,
            script=AlertsScenario() if config.profile == "alerts" else None,
        )
        simulator.populate()
        with tempfile.TemporaryDirectory(prefix="mindx-demo-") as workdir:
            kubeconfig = _write_kubeconfig(api, config.kubeconfig_out or str(Path(workdir) / "kubeconfig"))
            access = load_cluster_access(str(kubeconfig))
            async with Exporter(access, config.exporter) as exporter:
                await simulator.start()
                try:
                    await _serve(config, api, kubeconfig, exporter, simulator, stop)
                finally:
                    # A failure was reported by _serve; stopping must not raise it a second time.
                    with contextlib.suppress(Exception):
                        await simulator.stop()
    finally:
        await api.stop()


async def _serve(
    config: DemoConfig,
    api: KubeApiTestServer,
    kubeconfig: Path,
    exporter: Exporter,
    simulator: ClusterSimulator,
    stop: asyncio.Event,
) -> None:
    try:
        await exporter.wait_ready(READY_TIMEOUT)
    except TimeoutError:
        raise DemoFailed(f"the exporter did not list the simulated API within {READY_TIMEOUT:g} s") from None
    web = config.exporter
    scheme = "https" if web.web_config and web.web_config.tls else "http"
    url = f"{scheme}://{_display_host(web.listen_address)}:{exporter.port}{web.telemetry_path}"
    print(
        f"mindx-fault-exporter demo: {config.nodes} simulated nodes, seed {config.seed}, "
        f"profile {config.profile}, time scale {config.time_scale:g}",
        flush=True,
    )
    print(f"  metrics:             {url}", flush=True)
    print(f"  simulated API:       {api.url}  (kubeconfig {kubeconfig})", flush=True)
    print("  stop with Ctrl-C", flush=True)
    event(log, logging.INFO, "demo running", metrics=url, api=api.url, nodes=config.nodes)
    await _until_stopped_or_failed(stop, simulator)


async def _until_stopped_or_failed(stop: asyncio.Event, simulator: ClusterSimulator) -> None:
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while simulator.failure is None and not stopped.done():
            await asyncio.wait([stopped], timeout=SIMULATOR_CHECK_INTERVAL)
    finally:
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopped
    failure = simulator.failure
    if failure is not None and not stop.is_set():
        raise DemoFailed(f"the simulated cluster stopped: {type(failure).__name__}: {failure}")


def _write_kubeconfig(api: KubeApiTestServer, path: str) -> Path:
    try:
        return api.write_kubeconfig(Path(path))
    except OSError as err:
        raise DemoError(
            f"cannot write the kubeconfig to {path}: {err.strerror or err}; "
            "choose a writable path with --write-kubeconfig"
        ) from None


def _display_host(listen_address: str) -> str:
    host = listen_address.rpartition(":")[0].strip("[]")
    return host if host and host not in ("0.0.0.0", "::") else "127.0.0.1"
