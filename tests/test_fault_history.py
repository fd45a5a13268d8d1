"""Fault history through the API test server: every raise counted exactly once per chip and code
(also between two scrapes, also across a watch gap), never on a restart, and cleared faults timed
into the duration histogram."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection
from exporter.registry import SOURCES
from exporter.sources import deviceplugin
from tests.conftest import RunningExporter, StartExporter
from tests.helpers import Series, device_plugin_configmap, eventually, labels, select

ONLY_DP = SourceSelection(enabled={s.name: s.name == "device-plugin" for s in SOURCES})
Faults = Mapping[str, list[tuple[str, str, float]]]  # npu → [(code, level, raised at, unix s)]


def dp(node: str, faults: Faults, chips: int = 8) -> dict[str, Any]:
    """A device-plugin ConfigMap with these faults, in the producer's format (times in ms)."""
    entries = [
        {
            "fault_type": "CardUnhealthy",
            "npu_name": npu,
            "fault_level": codes[0][1],
            "fault_handling": codes[0][1],
            "fault_code": ",".join(code for code, _, _ in codes),
            "fault_time_and_level_map": {
                code: {"fault_time": int(raised * 1000), "fault_level": level}
                for code, level, raised in codes
            },
        }
        for npu, codes in faults.items()
        if codes
    ]
    device_list = {
        "huawei.com/Ascend910": ",".join(
            f"Ascend910-{i}" for i in range(chips) if f"Ascend910-{i}" not in faults
        ),
        "huawei.com/Ascend910-Unhealthy": ",".join(npu for npu, codes in faults.items() if codes),
        "huawei.com/Ascend910-Fault": json.dumps(entries, separators=(",", ":")),
    }
    return device_plugin_configmap(node, device_list, int(time.time()))


def raises(series: Series, **match: str) -> dict[tuple[str, str, str], float]:
    """(node, npu, code) → times raised."""
    out = {}
    for lbls, value in select(series, "mindx_npu_chip_faults_total", **match).items():
        d = dict(lbls)
        out[(d["node"], d["npu"], d["fault_code"])] = value
    return out


async def settled(exporter: RunningExporter, api: KubeApiTestServer) -> Series:
    """A scrape after the exporter has seen everything written so far."""
    current = api.store.resource_version

    async def caught_up() -> None:
        assert all(int(r.resource_version or 0) >= current for r in exporter.exporter.reflectors)

    await eventually(caught_up)
    return await exporter.scrape()


async def test_raise_clear_raise_counts_twice_and_times_the_clear(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter(sources=ONLY_DP)
    now = time.time()
    api.store.apply("configmaps", dp("n1", {}))
    api.store.apply("configmaps", dp("n1", {"Ascend910-2": [("80E18402", "SeparateNPU", now - 3600)]}))
    api.store.apply("configmaps", dp("n1", {}))
    api.store.apply("configmaps", dp("n1", {"Ascend910-2": [("80E18402", "SeparateNPU", now)]}))
    series = await settled(exporter, api)
    # Raised, cleared and raised again: between two scrapes, and still counted twice.
    assert raises(series) == {("n1", "Ascend910-2", "80E18402"): 2}
    assert (
        select(series, "mindx_npu_chip_faults_total")[
            labels(
                source="device-plugin",
                node="n1",
                npu="Ascend910-2",
                id="2",
                fault_code="80E18402",
                fault_level="SeparateNPU",
            )
        ]
        == 2
    )
    # The first raise lasted from the producer's raise time, an hour before it cleared.
    buckets = select(series, "mindx_npu_fault_duration_seconds_bucket", fault_level="SeparateNPU")
    by_le = {dict(k)["le"]: v for k, v in buckets.items()}
    assert by_le["3600"] == 0 and by_le["7200"] == 1 and by_le["+Inf"] == 1
    (total,) = select(series, "mindx_npu_fault_duration_seconds_sum", fault_level="SeparateNPU").values()
    assert 3600 <= total < 3600 + 60


async def test_a_code_moving_between_chips_counts_on_each(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter(sources=ONLY_DP)
    now = time.time()
    api.store.apply("configmaps", dp("n1", {"Ascend910-1": [("8C1F8609", "RestartNPU", now)]}))
    api.store.apply("configmaps", dp("n1", {"Ascend910-5": [("8C1F8609", "RestartNPU", now)]}))
    series = await settled(exporter, api)
    assert raises(series) == {("n1", "Ascend910-1", "8C1F8609"): 1, ("n1", "Ascend910-5", "8C1F8609"): 1}
    # Without a producer time the clear is timed from when the exporter first saw the code.
    assert select(series, "mindx_npu_fault_duration_seconds_count", fault_level="RestartNPU") == {
        labels(source="device-plugin", fault_level="RestartNPU"): 1
    }


async def test_restart_with_faults_active_does_not_jump(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    now = time.time()
    api.store.apply("configmaps", dp("n1", {"Ascend910-0": [("80E18402", "SeparateNPU", now - 60)]}))
    exporter = await start_exporter(sources=ONLY_DP)
    series = await settled(exporter, api)
    assert raises(series) == {}
    assert select(series, "mindx_npu_chip_fault_code", node="n1")  # the fault itself is served
    # A later raise on the same node counts from zero.
    api.store.apply(
        "configmaps",
        dp(
            "n1",
            {
                "Ascend910-0": [("80E18402", "SeparateNPU", now - 60)],
                "Ascend910-3": [("81078603", "PreSeparateNPU", now)],
            },
        ),
    )
    assert raises(await settled(exporter, api)) == {("n1", "Ascend910-3", "81078603"): 1}


async def test_a_raise_inside_a_watch_gap_counts_once(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter(sources=ONLY_DP)
    now = time.time()
    api.store.apply("configmaps", dp("n1", {}))
    await settled(exporter, api)
    relists_before = sum(
        select(await exporter.scrape(), "mindx_exporter_relists_total", source="device-plugin").values()
    )
    api.mute_watches()  # the exporter misses what follows
    api.store.apply("configmaps", dp("n1", {"Ascend910-6": [("80E18402", "SeparateNPU", now)]}))
    api.drop_streams()
    api.compact()  # the reconnecting watch is told its resourceVersion is gone: it relists

    async def relisted() -> Series:
        series = await exporter.scrape()
        relists = sum(select(series, "mindx_exporter_relists_total", source="device-plugin").values())
        assert relists > relists_before
        return series

    await eventually(relisted)
    assert raises(await settled(exporter, api)) == {("n1", "Ascend910-6", "80E18402"): 1}
    # Another relist with nothing new changes nothing.
    api.compact()
    api.drop_streams()
    api.store.apply("configmaps", dp("n2", {}))
    assert raises(await settled(exporter, api)) == {("n1", "Ascend910-6", "80E18402"): 1}


async def test_deleting_the_object_drops_its_chips_series(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter(sources=ONLY_DP)
    now = time.time()
    api.store.apply("configmaps", dp("n1", {"Ascend910-0": [("80E18402", "SeparateNPU", now)]}))
    api.store.apply("configmaps", dp("n2", {"Ascend910-0": [("80E18402", "SeparateNPU", now)]}))
    assert set(raises(await settled(exporter, api))) == {
        ("n1", "Ascend910-0", "80E18402"),
        ("n2", "Ascend910-0", "80E18402"),
    }
    api.store.delete("configmaps", "kube-system", f"{deviceplugin.NAME_PREFIX}n1")
    assert set(raises(await settled(exporter, api))) == {("n2", "Ascend910-0", "80E18402")}


async def test_clusterd_view_is_counted_per_node(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    """ClusterD's shards are merged per node first: a node moving between shards is no raise."""
    only_clusterd = SourceSelection(enabled={s.name: s.name == "clusterd" for s in SOURCES})
    exporter = await start_exporter(sources=only_clusterd)

    def shard(index: int, nodes: dict[str, list[str]], stamp: int) -> dict[str, Any]:
        name = f"cluster-info-device-{index}"
        entries = {
            f"mindx-dl-deviceinfo-{node}": {
                "DeviceList": {
                    "huawei.com/Ascend910": "Ascend910-0,Ascend910-1",
                    "huawei.com/Ascend910-Fault": json.dumps(
                        [
                            {
                                "npu_name": npu,
                                "fault_type": "CardUnhealthy",
                                "fault_level": "SeparateNPU",
                                "fault_handling": "SeparateNPU",
                                "fault_code": "80E18402",
                            }
                            for npu in npus
                        ]
                    ),
                },
                "UpdateTime": stamp,
            }
            for node, npus in nodes.items()
        }
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "mindx-dl", "labels": {"mx-consumer-volcano": "true"}},
            "data": {name: json.dumps(entries)},
        }

    api.store.apply("configmaps", shard(0, {"a": [], "b": []}, 100))
    api.store.apply("configmaps", shard(0, {"a": ["Ascend910-1"], "b": []}, 105))
    # Node a moves to shard 1, same fault: no new raise.
    api.store.apply("configmaps", shard(1, {"a": ["Ascend910-1"]}, 110))
    api.store.apply("configmaps", shard(0, {"b": []}, 110))
    series = await settled(exporter, api)
    assert raises(series, source="clusterd") == {("a", "Ascend910-1", "80E18402"): 1}
