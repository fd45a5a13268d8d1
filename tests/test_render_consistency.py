"""Incremental rendering is exact: after long random sequences of simulator updates, relists,
dropped streams and deletions, the exporter's pre-rendered body is byte for byte what a fresh
exporter renders from the same cluster state."""

from __future__ import annotations

import random
from pathlib import Path

from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter, ExporterConfig
from exporter.kube.config import load_cluster_access
from exporter.kube.reflector import ReflectorOptions
from exporter.simulator import ClusterSimulator
from tests.helpers import eventually

FAST = ReflectorOptions(page_size=7, backoff_initial=0.01, backoff_max=0.05)
# Event counters and fault history depend on when the exporter started (what was there at start only
# counts from then on).
HISTORY_DEPENDENT = (
    b"mindx_npu_fault_events_total",
    b"mindx_npu_chip_faults_total",
    b"mindx_npu_fault_duration_seconds",
)


def comparable(body: bytes) -> bytes:
    return b"\n".join(line for line in body.split(b"\n") if not line.startswith(HISTORY_DEPENDENT))


async def caught_up(exporter: Exporter, api: KubeApiTestServer) -> None:
    """Every watch has seen the server's current resourceVersion (bookmarks carry it)."""
    current = api.store.resource_version

    async def check() -> None:
        assert all(int(r.resource_version or 0) >= current for r in exporter.reflectors)

    await eventually(check, timeout=15)


async def test_incremental_body_equals_fresh_render(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    async with KubeApiTestServer(bookmark_interval=0.05) as api:
        simulator = ClusterSimulator(
            api.store, nodes=40, seed=3, shard_limit=6000, clusterd_interval=None, volcano_interval=None
        )
        simulator.populate()
        simulator.report_clusterd()
        simulator.report_volcano()
        access = load_cluster_access(str(api.write_kubeconfig(tmp_path / "kc")))
        config = ExporterConfig(listen_address="127.0.0.1:0", reflector=FAST)
        async with Exporter(access, config) as exporter:
            await exporter.wait_ready(10)
            for step in range(60):
                simulator.advance(rng.uniform(30, 600))
                if rng.random() < 0.5:
                    simulator.report_clusterd()
                if rng.random() < 0.5:
                    simulator.report_volcano()
                action = rng.random()
                if action < 0.1:
                    api.compact()  # open watches get 410: relist
                elif action < 0.2:
                    api.drop_streams()
                elif action < 0.3:
                    victims = [o["metadata"]["name"] for o in api.store.list("configmaps", "kube-system")]
                    if victims:
                        api.store.delete("configmaps", "kube-system", rng.choice(victims))
                if step % 10 == 9:
                    await caught_up(exporter, api)
            # One full ClusterD report after the last change, so no node is mid-move between shards.
            simulator.report_clusterd()
            simulator.report_clusterd()
            simulator.report_volcano()
            await caught_up(exporter, api)
            incremental = exporter.store.body()
            async with Exporter(access, config) as fresh:
                await fresh.wait_ready(10)
                rendered = fresh.store.body()
        assert incremental.count(b"\n") > 1000
        assert comparable(incremental) == comparable(rendered)
