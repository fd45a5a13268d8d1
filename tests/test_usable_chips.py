"""The vendor's "available devices" procedure as `mindx_node_npu_usable_chips`."""

from __future__ import annotations

import copy

import orjson

from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection
from exporter.sources.common import Problems
from exporter.sources.deviceplugin import parse_device_list
from exporter.sources.usable import usable_chips
from tests.conftest import StartExporter
from tests.helpers import eventually, fixture, labels, select
from tests.test_sources_e2e import load_all


def test_procedure_blocks_on_unhealthy_node_or_switch() -> None:
    chips = parse_device_list(
        "n1",
        {"huawei.com/Ascend910": "Ascend910-0,Ascend910-2", "huawei.com/Ascend910-Unhealthy": "Ascend910-1"},
        (),
        "k",
        Problems(),
    )
    assert usable_chips(chips, "", "").usable == {"huawei.com/Ascend910": ("Ascend910-0", "Ascend910-2")}
    assert usable_chips(chips, "Healthy", "SubHealthy").usable["huawei.com/Ascend910"] == (
        "Ascend910-0",
        "Ascend910-2",
    )
    assert usable_chips(chips, "UnHealthy", "Healthy").usable == {"huawei.com/Ascend910": ()}
    assert usable_chips(chips, "Healthy", "UnHealthy").blocked
    # PreSeparate is not UnHealthy: the procedure only blocks on UnHealthy.
    assert usable_chips(chips, "PreSeparate", "PreSeparate").usable["huawei.com/Ascend910"] == (
        "Ascend910-0",
        "Ascend910-2",
    )


async def test_clusterd_views(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    load_all(api)
    # node134 also sits in a second shard with an older copy: the newest copy decides.
    shard = fixture("cluster-info-device-0.json")
    entries = orjson.loads(shard["data"]["cluster-info-device-0"])
    older = copy.deepcopy(entries["mindx-dl-deviceinfo-node134"])
    older["UpdateTime"] -= 100
    older["DeviceList"]["huawei.com/Ascend910"] = "Ascend910-0"
    second = copy.deepcopy(shard)
    second["metadata"]["name"] = "cluster-info-device-1"
    second["data"] = {"cluster-info-device-1": orjson.dumps({"mindx-dl-deviceinfo-node134": older}).decode()}
    api.store.apply("configmaps", second)
    exporter = await start_exporter()
    series = await exporter.scrape()
    usable = select(series, "mindx_node_npu_usable_chips", source="clusterd")
    assert usable == {
        labels(source="clusterd", node="node133", resource="huawei.com/Ascend910"): 7,
        # node134 is missing from cluster-info-node-cm: healthy, its 7 available chips count.
        labels(source="clusterd", node="node134", resource="huawei.com/Ascend910"): 7,
        # node135's switch is UnHealthy: none of its chips is usable.
        labels(source="clusterd", node="node135", resource="huawei.com/Ascend910"): 0,
        labels(source="clusterd", node="node140", resource="huawei.com/Ascend310"): 7,
        labels(source="clusterd", node="node150", resource="huawei.com/npu"): 8,
    }
    # ClusterD marks node133 UnHealthy: its chips stop being usable.
    node_cm = fixture("cluster-info-node-cm.json")
    node_cm["data"]["cluster-info-node-cm"] = node_cm["data"]["cluster-info-node-cm"].replace(
        '"NodeStatus":"Healthy"', '"NodeStatus":"UnHealthy"'
    )
    api.store.apply("configmaps", node_cm)

    async def blocked() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_node_npu_usable_chips", node="node133") == {
            labels(source="clusterd", node="node133", resource="huawei.com/Ascend910"): 0
        }

    await eventually(blocked)


async def test_device_plugin_and_noded_without_clusterd(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_all(api)
    unhealthy = fixture("nodeinfo-node136-unhealthy.json")
    unhealthy["metadata"]["name"] = "mindx-dl-nodeinfo-node134"  # NodeD: node134 UnHealthy
    api.store.apply("configmaps", unhealthy)
    exporter = await start_exporter(sources=SourceSelection(enabled={"clusterd": False}))
    series = await exporter.scrape()
    assert select(series, "mindx_node_npu_usable_chips") == {
        labels(
            source="device-plugin", node="node133", resource="huawei.com/Ascend910"
        ): 7,  # NodeD PreSeparate
        labels(source="device-plugin", node="node134", resource="huawei.com/Ascend910"): 0,  # NodeD UnHealthy
        labels(
            source="device-plugin", node="node135", resource="huawei.com/Ascend910"
        ): 0,  # switch UnHealthy
        labels(source="device-plugin", node="node140", resource="huawei.com/Ascend310"): 7,
        labels(source="device-plugin", node="node150", resource="huawei.com/npu"): 8,
    }
    # NodeD deletes its ConfigMap when the node recovers: the chips are usable again.
    api.store.delete("configmaps", "mindx-dl", "mindx-dl-nodeinfo-node134")

    async def recovered() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_node_npu_usable_chips", node="node134") == {
            labels(source="device-plugin", node="node134", resource="huawei.com/Ascend910"): 8
        }

    await eventually(recovered)
    api.store.delete("configmaps", "kube-system", "mindx-dl-deviceinfo-node134")

    async def gone() -> None:
        assert select(await exporter.scrape(), "mindx_node_npu_usable_chips", node="node134") == {}

    await eventually(gone)
