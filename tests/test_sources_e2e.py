"""Every source end to end: objects written to the API test server, series read from /metrics."""

from __future__ import annotations

import copy
from typing import Any

from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection
from exporter.registry import SOURCES
from tests.conftest import StartExporter
from tests.helpers import FIXTURES, eventually, fixture, labels, select

CONFIGMAP_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json") if not p.name.startswith("event-"))


def load_all(api: KubeApiTestServer) -> None:
    for name in CONFIGMAP_FIXTURES:
        api.store.apply("configmaps", fixture(name))
    api.store.apply("events", fixture("event-deviceplugin-node133-occur.json"))


def fault_event(name: str, message: str, reason: str = "Occur", count: int | None = None) -> dict[str, Any]:
    event = copy.deepcopy(fixture("event-deviceplugin-node133-occur.json"))
    event["metadata"] = {"name": name, "namespace": "kube-system"}
    event["message"] = message
    event["reason"] = reason
    if count is not None:
        event["count"] = count
    return event


async def test_every_source_served_from_fixtures(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_all(api)
    exporter = await start_exporter()
    series = await exporter.scrape()
    status = select(series, "mindx_node_status", status="UnHealthy")
    assert status == {
        labels(source="noded", node="node133", status="UnHealthy"): 0,
        labels(source="noded", node="node136", status="UnHealthy"): 1,
        labels(source="clusterd", node="node133", status="UnHealthy"): 0,
        labels(source="clusterd", node="node136", status="UnHealthy"): 1,
    }
    # NodeD says PreSeparate; ClusterD rewrote it to Healthy because the node's NPUs are in use.
    assert select(series, "mindx_node_status", source="noded", node="node133", status="PreSeparate") == {
        labels(source="noded", node="node133", status="PreSeparate"): 1
    }
    assert select(series, "mindx_node_fault_code", source="noded") == {
        labels(
            source="noded",
            node="node133",
            device_type="CPU",
            device_id="1",
            fault_code="0000001D",
            fault_level="PreSeparateFault",
        ): 1,
        labels(
            source="noded",
            node="node136",
            device_type="Mainboard",
            device_id="0",
            fault_code="2C000031",
            fault_level="SeparateFault",
        ): 1,
        labels(
            source="noded",
            node="node136",
            device_type="PSU",
            device_id="2",
            fault_code="0300000D",
            fault_level="NotHandleFault",
        ): 1,
    }
    # ClusterD's view: PublicFault injected on node134 with its time in seconds.
    assert select(series, "mindx_npu_chip_fault", source="clusterd", fault_type="PublicFault") == {
        labels(
            source="clusterd",
            node="node134",
            npu="Ascend910-6",
            id="6",
            fault_type="PublicFault",
            fault_handling="SeparateNPU",
        ): 1
    }
    public = select(series, "mindx_npu_chip_fault_code", source="clusterd", fault_type="PublicFault")
    assert len(public) == 1 and 1.7e9 < next(iter(public.values())) < 1.8e9
    assert select(series, "mindx_switch_fault_code", source="clusterd", node="node135")
    # Volcano: health state and retry budgets.
    assert select(series, "mindx_node_health_state", source="volcano", state="NodeUnhealthy") == {
        labels(source="volcano", node="node135", state="NodeUnhealthy"): 1,
        labels(source="volcano", node="node136", state="NodeUnhealthy"): 1,
    }
    retries = select(series, "mindx_job_remaining_retries")
    assert sorted(retries.values()) == [0, 2]
    assert select(series, "mindx_job_remaining_retries", namespace="llm") == {
        labels(
            namespace="llm",
            podgroup="pretrain-70b-0b7e9c1a-55aa-4f0e-8d3c-2a9b8c7d6e5f",
            job_uid="0b7e9c1a-55aa-4f0e-8d3c-2a9b8c7d6e5f",
        ): 0
    }
    # Every source reports its own update time for the nodes it knows.
    stamps = select(series, "mindx_source_update_timestamp_seconds")
    assert {dict(k)["source"] for k in stamps} == {
        "device-plugin",
        "noded",
        "clusterd",
        "volcano",
        "rdma-device-plugin",
    }
    assert stamps[labels(source="noded", node="node133")] == 1744182212  # 2025-04-09T15:03:32+08:00
    # The Event existed before the exporter started: not counted.
    assert select(series, "mindx_npu_fault_events_total") == {}
    assert select(series, "mindx_configmap_invalid") == {}
    # Every source enabled by default, each in its producer's namespace, has listed.
    assert select(series, "mindx_exporter_watch_up") == {
        labels(source=target.source, namespace=target.namespace): 1
        for _, target in SourceSelection().targets()
    }
    # The narrowest selectors: Volcano's object by name, Events by reporting component.
    log = [p for _, p in api.request_log]
    assert any(
        "/namespaces/volcano-system/configmaps" in p
        and "fieldSelector=metadata.name%3Dvcjob-fault-npu-cm" in p
        for p in log
    )
    assert any(
        "/namespaces/kube-system/events" in p and "fieldSelector=source%3Ddevice-plugin" in p for p in log
    )
    assert any(
        "/namespaces/mindx-dl/configmaps" in p and "labelSelector=mx-consumer-volcano%3Dtrue" in p
        for p in log
    )


async def test_noded_configmap_deleted_when_healthy(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_all(api)
    exporter = await start_exporter()
    api.store.delete("configmaps", "mindx-dl", "mindx-dl-nodeinfo-node136")

    async def gone() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_node_status", source="noded", node="node136") == {}
        assert select(series, "mindx_node_fault_code", source="noded", node="node136") == {}
        assert select(series, "mindx_source_update_timestamp_seconds", source="noded", node="node136") == {}

    await eventually(gone)


async def test_volcano_keys_emptied_and_changed(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_all(api)
    exporter = await start_exporter()
    cm = fixture("vcjob-fault-npu-cm.json")
    cm["data"]["fault-node"] = ""
    cm["data"]["remain-retry-times"] = '{"default/job-a-1":{"UUID":"1","Times":3}}'
    cm["data"]["NodeDEnable"] = "on"  # a legacy key: tolerated
    api.store.apply("configmaps", cm)

    async def followed() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_node_health_state") == {}
        assert select(series, "mindx_npu_chip_fault_level", source="volcano") == {}
        assert select(series, "mindx_job_remaining_retries") == {
            labels(namespace="default", podgroup="job-a-1", job_uid="1"): 3
        }
        assert select(series, "mindx_configmap_invalid") == {}

    await eventually(followed)


async def test_fault_events_counted_from_start(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    load_all(api)
    exporter = await start_exporter()
    api.store.apply(
        "events",
        fault_event(
            "dp-pod.17441700000001",
            "device fault, nodeName:node134, assertion:Occur, cardID:1, deviceID:0, faultCodes:80E18402, "
            "faultLevelName:SeparateNPU, alarmRaisedTime:2025-04-09 11:00:00",
        ),
    )
    api.store.apply(
        "events",
        fault_event(
            "dp-pod.17441700000002",
            "device fault, nodeName:node150, assertion:Recovery, logicID:5, faultCodes:81078607, "
            "faultLevelName:NotHandleFault, alarmRaisedTime:2025-04-09 11:00:01",
            reason="Recovery",
        ),
    )
    hot_reset = fault_event(
        "node134.1744170000000.reset.start", "hot reset start, nodeName:node134, ringDevs:0"
    )
    hot_reset["reason"] = "HotResetStart"
    api.store.apply("events", hot_reset)
    garbled = fault_event("dp-pod.17441700000003", "device fault, nodeName:node134, this is not the format")
    api.store.apply("events", garbled)

    async def counted() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_npu_fault_events_total") == {
            labels(node="node134", reason="Occur", fault_level="SeparateNPU"): 1,
            labels(node="node150", reason="Recovery", fault_level="NotHandleFault"): 1,
        }
        assert select(series, "mindx_configmap_invalid", configmap="dp-pod.17441700000003") == {
            labels(
                namespace="kube-system", configmap="dp-pod.17441700000003", key="message", reason="schema"
            ): 1
        }

    await eventually(counted)
    # The Event is recorded again (count 4): the counter grows by 3.
    again = api.store.get("events", "kube-system", "dp-pod.17441700000001")
    again["count"] = 4
    api.store.apply("events", again)

    async def grown() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_npu_fault_events_total", node="node134") == {
            labels(node="node134", reason="Occur", fault_level="SeparateNPU"): 4
        }

    await eventually(grown)
    # Deleting an Event (TTL) never decrements; a relist does not recount what was counted.
    api.store.delete("events", "kube-system", "dp-pod.17441700000001")
    api.compact()

    async def kept() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_exporter_relists_total", source="device-plugin-events", reason="expired")
        assert select(series, "mindx_npu_fault_events_total") == {
            labels(node="node134", reason="Occur", fault_level="SeparateNPU"): 4,
            labels(node="node150", reason="Recovery", fault_level="NotHandleFault"): 1,
        }

    await eventually(kept)


async def test_sources_switched_off_and_moved(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    load_all(api)
    moved = fixture("nodeinfo-node136-unhealthy.json")
    moved["metadata"]["namespace"] = "ops-mindx"
    api.store.apply("configmaps", moved)
    selection = SourceSelection(
        enabled={source.name: source.name in ("device-plugin", "noded") for source in SOURCES},
        namespaces={"noded": "ops-mindx"},
    )
    exporter = await start_exporter(sources=selection)
    series = await exporter.scrape()
    assert {dict(k)["source"] for k in select(series, "mindx_exporter_watch_up")} == {
        "device-plugin",
        "noded",
    }
    assert select(series, "mindx_node_status", status="UnHealthy") == {
        labels(source="noded", node="node136", status="UnHealthy"): 1
    }
    assert select(series, "mindx_npu_chip_fault_level", source="clusterd") == {}
    assert not any("/namespaces/volcano-system/" in p for _, p in api.request_log)


async def test_corrected_event_clears_its_invalid_series(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter()
    api.store.apply("events", fault_event("dp-pod.1", "device fault, nodeName:node134, not the format"))

    async def flagged() -> None:
        assert select(await exporter.scrape(), "mindx_configmap_invalid", configmap="dp-pod.1")

    await eventually(flagged)
    fixed = api.store.get("events", "kube-system", "dp-pod.1")
    fixed["message"] = (
        "device fault, nodeName:node134, assertion:Occur, cardID:1, deviceID:0, faultCodes:80E18402, "
        "faultLevelName:SeparateNPU, alarmRaisedTime:2025-04-09 11:00:00"
    )
    api.store.apply("events", fixed)

    async def cleared() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_configmap_invalid") == {}
        assert select(series, "mindx_npu_fault_events_total", node="node134")

    await eventually(cleared)
