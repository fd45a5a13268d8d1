"""docs/metrics.md lists exactly what /metrics serves: every family, its type and its labels."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection
from exporter.registry import ALL_FAMILIES, SOURCES
from tests.conftest import StartExporter
from tests.helpers import eventually, fixture
from tests.test_object_limits import dp_configmap
from tests.test_sources_e2e import fault_event, load_all

DOCS = Path(__file__).parent.parent / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>[a-z_]+)` \| (?P<type>\w+) \|\s*(?P<labels>[^|]*?)\s*\|")
RUNTIME_PREFIXES = ("process_", "python_")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    families = {}
    for line in DOCS.read_text().splitlines():
        match = ROW.match(line)
        if match:
            labels = frozenset(x.strip() for x in match["labels"].split(",") if x.strip())
            families[match["name"]] = (match["type"], labels)
    return families


def test_contract_table_matches_docs() -> None:
    docs = documented()
    for family in ALL_FAMILIES:
        assert docs.get(family.name) == (family.type, frozenset(family.labels)), family.name


async def test_served_families_are_documented_and_documented_ones_served(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    load_all(api)
    broken = fixture("deviceinfo-node134-healthy.json")
    broken["metadata"]["name"] = "mindx-dl-deviceinfo-node999"
    broken["data"]["DeviceInfoCfg"] = "{truncated"
    api.store.apply("configmaps", broken)
    api.fail_next(1, status=500, path="watch=1")  # so a watch error is counted and served
    # Every source, also those off by default (the job-recovery fixture is in `default`).
    everything = SourceSelection(enabled={source.name: True for source in SOURCES})
    exporter = await start_exporter(sources=everything)
    api.store.apply(
        "events",
        fault_event(
            "dp-pod.1",
            "device fault, nodeName:node134, assertion:Occur, cardID:1, deviceID:0, faultCodes:80E18402, "
            "faultLevelName:SeparateNPU, alarmRaisedTime:2025-04-09 11:00:00",
        ),
    )

    # A chip fault raised after start (counted) and then cleared (timed): the fault history.
    api.store.apply("configmaps", dp_configmap("node777", 8, faults_per_chip=1))
    api.store.apply("configmaps", dp_configmap("node777", 8, faults_per_chip=0))

    async def served() -> dict[str, tuple[str, frozenset[str]]]:
        _, body, _ = await exporter.get("/metrics")
        families: dict[str, tuple[str, frozenset[str]]] = {}
        for family in text_string_to_metric_families(body.decode()):
            if family.name.startswith(RUNTIME_PREFIXES):
                continue
            name = family.name + ("_total" if family.type == "counter" else "")
            labels = frozenset(k for s in family.samples for k in s.labels if k != "le")
            if family.samples:
                families[name] = (family.type, labels)
        assert "mindx_npu_fault_events_total" in families
        assert "mindx_npu_fault_duration_seconds" in families
        return families

    families = await eventually(served)
    docs = documented()
    assert families == docs
