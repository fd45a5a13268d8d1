"""One object cannot blow up the exporter: per-object limits (chips, resource names, fault entries,
codes, node devices) cut what goes over them and say so in `mindx_configmap_invalid{reason="limit"}`
and the parse-error count, while the rest of the cluster is served as before; fault-Event counters
of nodes without new Events are dropped after the configured idle time."""

from __future__ import annotations

import json
from typing import Any

from exporter.apiserver import KubeApiTestServer
from exporter.handlers.base import HandlerOptions
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES_BY_NAME, watch_target
from exporter.sources import events, noded
from exporter.sources.limits import Limits
from tests.conftest import StartExporter
from tests.helpers import device_plugin_configmap, eventually, fixture, labels, parse_exposition, select


def dp_configmap(node: str, chips: int, faults_per_chip: int = 0, codes: int = 1) -> dict[str, Any]:
    """A device-plugin ConfigMap in the producer's exact format, with a CheckCode that verifies."""
    names = [f"Ascend910-{i}" for i in range(chips)]
    fault_entries = [
        {
            "npu_name": name,
            "fault_type": f"CardUnhealthy{k}",
            "fault_level": "SeparateNPU",
            "fault_handling": "SeparateNPU",
            "fault_code": ",".join(f"8C{c:06X}" for c in range(codes)),
        }
        for name in names[:4]
        for k in range(faults_per_chip)
    ]
    device_list = {
        "huawei.com/Ascend910": ",".join(names),
        "huawei.com/Ascend910-Fault": json.dumps(fault_entries, separators=(",", ":")),
    }
    return device_plugin_configmap(node, device_list, 1744181950)


async def test_hundred_thousand_chips_are_cut_at_the_limit(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    api.store.apply("configmaps", fixture("deviceinfo-node133.json"))
    exporter = await start_exporter()
    before = select(await exporter.scrape(), "mindx_npu_chip_fault_level", node="node133")
    assert before
    huge = dp_configmap("huge", 100_000)
    assert len(json.dumps(huge)) > 1_000_000
    api.store.apply("configmaps", huge)

    async def reported() -> None:
        series = await exporter.scrape()
        assert select(
            series,
            "mindx_configmap_invalid",
            configmap="mindx-dl-deviceinfo-huge",
            key="DeviceInfoCfg",
            reason="limit",
        )
        levels = select(series, "mindx_npu_chip_fault_level", node="huge")
        assert len(levels) == Limits().chips_per_node
        assert select(series, "mindx_node_npu_chips", node="huge", status="available") == {
            labels(
                source="device-plugin", node="huge", resource="huawei.com/Ascend910", status="available"
            ): Limits().chips_per_node
        }
        errors = select(series, "mindx_exporter_parse_errors_total", source="device-plugin", reason="limit")
        assert sum(errors.values()) >= 1
        # Everything else is served as before.
        assert select(series, "mindx_npu_chip_fault_level", node="node133") == before

    await eventually(reported, timeout=20)


def render(source: str, objects: list[dict[str, Any]], options: HandlerOptions) -> dict[Any, float]:
    spec = SOURCES_BY_NAME[source]
    store = MetricsStore(ALL_FAMILIES)
    handler = spec.handler(spec, watch_target(spec), store, ExporterMetrics(), options)
    handler.replace(objects)
    return parse_exposition(store.body().decode())


def test_limits_are_configurable_and_cover_fault_entries_and_codes() -> None:
    tight = HandlerOptions(limits=Limits(chips_per_node=6, fault_entries_per_chip=2, codes_per_entry=3))
    series = render("device-plugin", [dp_configmap("n1", 10, faults_per_chip=5, codes=9)], tight)
    assert len(select(series, "mindx_npu_chip_fault_level", node="n1")) == 6
    # Two entries per chip kept, of the five written, for each of the four faulty chips.
    assert len(select(series, "mindx_npu_chip_fault", node="n1")) == 4 * 2
    codes = select(series, "mindx_npu_chip_fault_code", node="n1", npu="Ascend910-0")
    assert len(codes) == 2 * 3
    assert select(series, "mindx_configmap_invalid", configmap="mindx-dl-deviceinfo-n1", reason="limit")
    # The same object within the default limits: everything, no problem.
    series = render("device-plugin", [dp_configmap("n1", 10, faults_per_chip=5, codes=9)], HandlerOptions())
    assert len(select(series, "mindx_npu_chip_fault", node="n1")) == 4 * 5
    assert not select(series, "mindx_configmap_invalid", configmap="mindx-dl-deviceinfo-n1")


def test_node_devices_limit() -> None:
    obj = fixture("nodeinfo-node136-unhealthy.json")
    assert len(noded.parse_configmap(obj).first.devices) > 1  # type: ignore[union-attr]
    series = render("noded", [obj], HandlerOptions(limits=Limits(devices_per_node=1)))
    assert len(select(series, "mindx_node_fault_code", node="node136")) == 1
    assert select(series, "mindx_configmap_invalid", configmap="mindx-dl-nodeinfo-node136", reason="limit")


def fault_event(name: str, node: str, count: int = 1) -> dict[str, Any]:
    event = fixture("event-deviceplugin-node133-occur.json")
    event["metadata"] = {"name": name, "namespace": "kube-system", "uid": name}
    event["message"] = event["message"].replace("nodeName:node133", f"nodeName:{node}")
    event["count"] = count
    return event


def test_idle_event_counters_are_dropped() -> None:
    """A node's counters go after `counter_idle_seconds` without an increment, and start again with
    the node's next fault Event; nodes still active keep theirs."""
    now = [1000.0]
    spec = SOURCES_BY_NAME["device-plugin-events"]
    store = MetricsStore(ALL_FAMILIES)
    handler = events.EventCounter(
        spec,
        watch_target(spec),
        store,
        ExporterMetrics(),
        HandlerOptions(counter_idle_seconds=3600),
        clock=lambda: now[0],
    )

    def totals() -> dict[str, float]:
        series = parse_exposition(store.body().decode())
        out: dict[str, float] = {}
        for lbls, value in select(series, "mindx_npu_fault_events_total").items():
            node = dict(lbls)["node"]
            out[node] = out.get(node, 0) + value
        return out

    handler.replace([])  # the first list: nothing to count yet
    handler.upsert(fault_event("a", "quiet"))
    handler.upsert(fault_event("b", "busy"))
    assert totals() == {"quiet": 1, "busy": 1}
    now[0] += 3000
    handler.upsert(fault_event("b", "busy", count=2))
    handler.tick()
    assert totals() == {"quiet": 1, "busy": 2}
    now[0] += 700  # quiet: 3,700 s without an increment; busy: 700 s
    handler.tick()
    assert totals() == {"busy": 2}
    handler.upsert(fault_event("c", "quiet"))
    assert totals() == {"quiet": 1, "busy": 2}
    # 0 keeps counters forever.
    keep = events.EventCounter(
        spec,
        watch_target(spec),
        MetricsStore(ALL_FAMILIES),
        ExporterMetrics(),
        HandlerOptions(counter_idle_seconds=0),
        clock=lambda: now[0],
    )
    keep.replace([])
    keep.upsert(fault_event("a", "quiet"))
    now[0] += 10**7
    keep.tick()
    assert keep.store.body().count(b"mindx_npu_fault_events_total{") == 1
