"""The `/metrics` body for fixed inputs is pinned byte for byte: the fixtures of the original four
producers plus a seeded simulated cluster, rendered through the real exporter and compared with
`tests/golden/body-*.prom`, which was committed before the source-module redesign. A change to
what is served must regenerate the golden file on purpose (`MINDX_REGENERATE_GOLDEN=1 pytest
tests/test_golden_body.py`) and say why in its commit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection
from exporter.simulator import ClusterSimulator
from tests.conftest import StartExporter
from tests.helpers import fixture

GOLDEN = Path(__file__).parent / "golden"
# The fixtures the original four producers (and their Events) read.
ORIGINAL_FIXTURES = (
    "cluster-info-device-0.json",
    "cluster-info-node-cm.json",
    "cluster-info-switch-0.json",
    "deviceinfo-node133.json",
    "deviceinfo-node134-healthy.json",
    "deviceinfo-node135-a3-switchfault.json",
    "deviceinfo-node140-ascend310.json",
    "deviceinfo-node150-a5-npu.json",
    "nodeinfo-node133-preseparate.json",
    "nodeinfo-node136-unhealthy.json",
    "vcjob-fault-npu-cm.json",
)
SIMULATED_START = 1_780_000_000.0  # a fixed simulated clock, so the body does not depend on today


def check_golden(name: str, body: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("MINDX_REGENERATE_GOLDEN") == "1":
        path.write_bytes(body)
        pytest.skip(f"regenerated {path.name}")
    assert body.count(b"\n") > 100
    expected = path.read_bytes()
    if body != expected:
        got, want = body.split(b"\n"), expected.split(b"\n")
        first = (
            next(i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b)
            if any(a != b for a, b in zip(got, want, strict=False))
            else min(len(got), len(want))
        )
        raise AssertionError(
            f"{name} differs from the golden body at line {first + 1}: "
            f"got {got[first : first + 1]!r}, want {want[first : first + 1]!r} "
            f"({len(got)} vs {len(want)} lines)"
        )


async def test_fixture_body_is_unchanged(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    for name in ORIGINAL_FIXTURES:
        api.store.apply("configmaps", fixture(name))
    api.store.apply("events", fixture("event-deviceplugin-node133-occur.json"))
    exporter = await start_exporter()
    check_golden("body-fixtures.prom", exporter.exporter.store.body())


async def test_simulated_cluster_body_is_unchanged(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    simulator = ClusterSimulator(
        api.store,
        nodes=24,
        seed=13,
        start_time=SIMULATED_START,
        shard_limit=6000,
        clusterd_interval=None,
        volcano_interval=None,
    )
    simulator.populate()
    simulator.report_clusterd()
    simulator.report_volcano()
    exporter = await start_exporter()
    check_golden("body-simulated.prom", exporter.exporter.store.body())


async def test_body_without_clusterd_is_unchanged(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    """Without ClusterD, usable chips come from the device plugin joined with NodeD."""
    simulator = ClusterSimulator(
        api.store,
        nodes=24,
        seed=13,
        start_time=SIMULATED_START,
        clusterd_interval=None,
        volcano_interval=None,
    )
    simulator.populate()
    exporter = await start_exporter(sources=SourceSelection(enabled={"clusterd": False}))
    check_golden("body-no-clusterd.prom", exporter.exporter.store.body())
