"""Shards together serve exactly the single process's series: for simulated clusters under churn,
the union of every shard's data series equals the series of one unsharded exporter watching the
same API server — same label sets and values, none duplicated, none missing."""

from __future__ import annotations

import json
import random
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter, ExporterConfig
from exporter.handlers.base import HandlerOptions
from exporter.kube.config import load_cluster_access
from exporter.kube.reflector import ReflectorOptions
from exporter.sharding import Shard, fnv1a_64
from exporter.simulator import ClusterSimulator
from tests.helpers import Series, eventually, parse_exposition

FAST = ReflectorOptions(page_size=50, backoff_initial=0.01, backoff_max=0.05)


def data_series(body: bytes) -> Series:
    return {
        k: v for k, v in parse_exposition(body.decode()).items() if not k[0].startswith("mindx_exporter_")
    }


def test_hash_is_stable_and_spreads_nodes() -> None:
    # FNV-1a 64 test vectors: the same in every process and Python version.
    assert fnv1a_64("") == 0xCBF29CE484222325
    assert fnv1a_64("a") == 0xAF63DC4C8601EC8C
    counts = [0] * 4
    for i in range(4000):
        counts[fnv1a_64(f"node-{i:05d}") % 4] += 1
    assert min(counts) > 850, counts
    with pytest.raises(ValueError):
        Shard(2, 2)


@pytest.mark.parametrize("total", [1, 2, 3, 7])
async def test_union_of_shards_equals_one_process(tmp_path: Path, total: int) -> None:
    rng = random.Random(total)
    async with KubeApiTestServer(bookmark_interval=0.05) as api, AsyncExitStack() as stack:
        simulator = ClusterSimulator(
            api.store, nodes=60, seed=total, shard_limit=8000, clusterd_interval=None, volcano_interval=None
        )
        simulator.populate()
        simulator.report_clusterd()
        simulator.report_volcano()
        access = load_cluster_access(str(api.write_kubeconfig(tmp_path / "kc")))

        async def start(shard: Shard) -> Exporter:
            config = ExporterConfig(
                listen_address="127.0.0.1:0", reflector=FAST, handlers=HandlerOptions(shard=shard)
            )
            exporter = await stack.enter_async_context(Exporter(access, config))
            await exporter.wait_ready(15)
            return exporter

        single = await start(Shard())
        shards = [await start(Shard(i, total)) for i in range(total)]
        everyone = [single, *shards]
        # Churn: faults raised, escalated and recovered, ClusterD reshuffling its shards, Volcano
        # rewriting its budgets, an object deleted, a relist for everyone.
        for step in range(12):
            simulator.advance(rng.uniform(60, 900))
            simulator.report_clusterd()
            if step % 3 == 0:
                simulator.report_volcano()
            if step == 6:
                victim = rng.choice(api.store.list("configmaps", "kube-system"))["metadata"]["name"]
                api.store.delete("configmaps", "kube-system", victim)
        simulator.report_clusterd()
        simulator.report_clusterd()
        # Broken node entries in ClusterD's maps, of a node another shard than 0 owns: only shard
        # 0 parses every entry, so it alone serves the maps' `mindx_configmap_invalid`.
        broken = next(f"node-{i}" for i in range(1000) if fnv1a_64(f"node-{i}") % max(total, 2) == 1)
        for name, key, entry in (
            ("cluster-info-device-0", "mindx-dl-deviceinfo-", {"DeviceList": "not a map", "UpdateTime": 1}),
            ("cluster-info-switch-0", "mindx-dl-switchinfo-", {"FaultCode": "not a list", "UpdateTime": 1}),
            ("cluster-info-node-cm", "mindx-dl-nodeinfo-", {"NodeStatus": 5, "UpdateTime": 1}),
        ):
            cm = api.store.get("configmaps", "mindx-dl", name)
            entries = json.loads(cm["data"][name] or "{}")
            entries[f"{key}{broken}"] = entry
            cm["data"][name] = json.dumps(entries)
            api.store.update("configmaps", cm)
        current = api.store.resource_version

        async def caught_up() -> None:
            assert all(int(r.resource_version or 0) >= current for e in everyone for r in e.reflectors)

        await eventually(caught_up, timeout=20)
        expected = data_series(single.store.body())
        union: Series = {}
        for exporter in shards:
            served = data_series(exporter.store.body())
            duplicated = served.keys() & union.keys()
            assert not duplicated, f"served by two shards: {sorted(duplicated, key=str)[:3]}"
            union.update(served)
            if total > 1:
                assert len(served) < len(expected), "a shard serves everything"
        missing = expected.keys() - union.keys()
        extra = union.keys() - expected.keys()
        assert not missing and not extra, (
            f"missing {sorted(missing, key=str)[:3]}, extra {sorted(extra, key=str)[:3]}"
        )
        # Durations are measured against each process's own clock when it sees the clear: the same
        # series and counts, sums a few milliseconds apart.
        timed = ("mindx_npu_fault_duration_seconds_sum", "mindx_npu_fault_duration_seconds_bucket")
        wrong = [k for k in expected if expected[k] != union[k] and k[0] not in timed]
        assert not wrong, f"different values: {wrong[:3]}"
        assert len(expected) > 1000
        for name in ("cluster-info-device-0", "cluster-info-switch-0", "cluster-info-node-cm"):
            invalid = {"namespace": "mindx-dl", "configmap": name, "key": name, "reason": "schema"}
            assert ("mindx_configmap_invalid", frozenset(invalid.items())) in expected, name
        assert any(name == "mindx_npu_chip_faults_total" for name, _ in union), "no fault raised"
        # The usable-chips view is part of the union, unchanged.
        assert any(name == "mindx_node_npu_usable_chips" for name, _ in union)
