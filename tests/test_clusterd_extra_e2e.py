"""ClusterD's `cluster-system` producers end to end (public faults, fault-frequency separations,
scheduling exceptions): objects written to the API test server the way ClusterD writes them — full
Updates, the overflow merge patch, deletion when empty, no `data` when empty — and series read from
the real /metrics."""

from __future__ import annotations

from typing import Any

import orjson

from exporter.apiserver import KubeApiTestServer
from exporter.devices import select_objects
from exporter.registry import SOURCES
from tests.conftest import StartExporter
from tests.helpers import eventually, fixture, labels, select

NS = "cluster-system"
DESCRIPTION = (
    "The current total number of faults is too large, and only a portion of the detailed fault data "
    "is displayed"
)


def go(value: Any) -> str:
    """Compact JSON as Go writes these values (ASCII, no HTML characters)."""
    return orjson.dumps(value).decode()


def configmap(
    name: str, data: dict[str, str] | None, labels_: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NS}
    if labels_:
        metadata["labels"] = labels_
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data is not None:
        obj["data"] = data
    return obj


def public_fault(
    resource: str, dev_ids: list[int], fault_id: str, type_: str, code: str, level: str, t: int
) -> dict:
    element: dict[str, Any] = {"resource": resource}
    if dev_ids:
        element["devIds"] = dev_ids
    element.update(faultId=fault_id, type=type_, faultCode=code, level=level, faultTime=t)
    return element


def statistic(faults: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """ClusterD's full Update: the whole data map and the label, no Description."""
    count = sum(len(v) for v in faults.values())
    data = {"FaultNum": go({"publicFaultNum": count}), "PublicFaults": go(dict(sorted(faults.items())))}
    return configmap("statistic-fault-info", data, {"mc-statistic-fault": "true"})


async def test_public_faults_arrive_recover_overflow_and_come_back(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter()
    series = await exporter.scrape()
    # No public fault yet: ClusterD has not created the object; the watch is still up.
    assert select(series, "mindx_public_faults") == {}
    assert select(series, "mindx_exporter_watch_up", source="clusterd-public-faults") == {
        labels(source="clusterd-public-faults", namespace=NS): 1
    }
    assert any(
        f"/namespaces/{NS}/configmaps" in p and "fieldSelector=metadata.name%3Dstatistic-fault-info" in p
        for _, p in api.request_log
    )

    ccae = public_fault("CCAE", [3], "ccae-20260901-000001", "NPU", "220001002", "SeparateNPU", 1788000000)
    storage = public_fault(
        "dtfsStorage", [], "dtfs-0000000042", "Storage", "110001021", "SubHealthFault", 1788000100
    )
    # The same code on the same chip from a second sender, written first (Go map order).
    ping = public_fault(
        "pingmesh", [3], "node-a7-3-hccsping", "NPU", "220001002", "PreSeparateNPU", 1787999000
    )
    api.store.apply("configmaps", statistic({"node-a7": [ping, ccae], "node-b2": [storage]}))

    async def arrived() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_public_fault") == {
            labels(
                source="clusterd",
                node="node-a7",
                id="3",
                resource="CCAE",
                fault_type="NPU",
                fault_code="220001002",
                fault_level="SeparateNPU",
            ): 1788000000,
            labels(
                source="clusterd",
                node="node-b2",
                id="",
                resource="dtfsStorage",
                fault_type="Storage",
                fault_code="110001021",
                fault_level="SubHealthFault",
            ): 1788000100,
        }
        assert select(s, "mindx_public_faults") == {labels(source="clusterd"): 3}
        assert select(s, "mindx_public_faults_truncated") == {labels(source="clusterd"): 0}

    await eventually(arrived)

    # CCAE's fault recovers; the array comes in another order: pingmesh's remains.
    api.store.apply("configmaps", statistic({"node-a7": [ping], "node-b2": [storage]}))

    async def recovered() -> None:
        s = await exporter.scrape()
        assert set(dict(k)["fault_level"] for k in select(s, "mindx_public_fault", node="node-a7")) == {
            "PreSeparateNPU"
        }
        assert select(s, "mindx_public_faults") == {labels(source="clusterd"): 2}

    await eventually(recovered)

    # Over 4,500: ClusterD only merge-patches FaultNum and Description; PublicFaults is stale.
    patch = {"data": {"FaultNum": go({"publicFaultNum": 4612}), "Description": DESCRIPTION}}
    api.store.patch("configmaps", NS, "statistic-fault-info", patch)

    async def truncated() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_public_fault") == {}
        assert select(s, "mindx_public_faults") == {labels(source="clusterd"): 4612}
        assert select(s, "mindx_public_faults_truncated") == {labels(source="clusterd"): 1}
        assert select(s, "mindx_configmap_invalid") == {}

    await eventually(truncated)

    # Back under the limit: a full Update, Description gone, detail current again (and an
    # operator's label edit that dropped ClusterD's label does not matter: selected by name).
    unlabelled = statistic({"node-c1": [ccae]})
    del unlabelled["metadata"]["labels"]
    api.store.apply("configmaps", unlabelled)

    async def current() -> None:
        s = await exporter.scrape()
        assert {dict(k)["node"] for k in select(s, "mindx_public_fault")} == {"node-c1"}
        assert select(s, "mindx_public_faults_truncated") == {labels(source="clusterd"): 0}

    await eventually(current)

    # A broken value: flagged and counted, the exporter keeps serving the count.
    broken = statistic({})
    broken["data"]["PublicFaults"] = '{"node-c1":[{"faultCode":'
    api.store.apply("configmaps", broken)

    async def flagged() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_configmap_invalid") == {
            labels(namespace=NS, configmap="statistic-fault-info", key="PublicFaults", reason="json"): 1
        }
        assert select(s, "mindx_exporter_parse_errors_total", source="clusterd-public-faults") == {
            labels(source="clusterd-public-faults", reason="json"): 1
        }
        assert select(s, "mindx_public_fault") == {}
        assert select(s, "mindx_public_faults") == {labels(source="clusterd"): 0}

    await eventually(flagged)

    # ClusterD never deletes it, but an operator may: every series of the object goes.
    api.store.delete("configmaps", NS, "statistic-fault-info")

    async def deleted() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_public_faults") == {}
        assert select(s, "mindx_public_faults_truncated") == {}
        assert select(s, "mindx_configmap_invalid") == {}

    await eventually(deleted)


def manual_value(chips: dict[str, list[tuple[str, int]]]) -> str:
    names = sorted(chips)
    detail = {
        n: [
            {"FaultCode": c, "FaultLevel": "ManuallySeparateNPU", "LastSeparateTime": ms}
            for c, ms in chips[n]
        ]
        for n in names
    }
    return go({"Total": names, "Detail": detail})


async def test_manual_separation_created_released_and_deleted(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter()
    assert select(await exporter.scrape(), "mindx_npu_chip_manual_separation") == {}
    data = {
        "node-a3": manual_value(
            {"Ascend910-12": [("80E01801", 1788000000123)], "Ascend910-2": [("8C03A000", 1788000500456)]}
        ),
        "node-a5": manual_value({"npu-7": [("80C98008", 1788001000789), ("220001002", 1788001100000)]}),
    }
    api.store.apply("configmaps", configmap("clusterd-manual-info-cm", data))

    async def separated() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_npu_chip_manual_separation") == {
            labels(
                source="clusterd", node="node-a3", npu="Ascend910-12", id="12", fault_code="80E01801"
            ): 1788000000.123,
            labels(
                source="clusterd", node="node-a3", npu="Ascend910-2", id="2", fault_code="8C03A000"
            ): 1788000500.456,
            labels(
                source="clusterd", node="node-a5", npu="npu-7", id="7", fault_code="80C98008"
            ): 1788001000.789,
            labels(
                source="clusterd", node="node-a5", npu="npu-7", id="7", fault_code="220001002"
            ): 1788001100,
        }

    await eventually(separated)

    # The documented release: an operator deletes a chip from Total (Detail left as it was).
    edited = orjson.loads(data["node-a3"])
    edited["Total"] = ["Ascend910-2"]
    api.store.apply(
        "configmaps",
        configmap(
            "clusterd-manual-info-cm",
            {
                "node-a3": orjson.dumps(edited, option=orjson.OPT_INDENT_2).decode(),
                "node-a5": data["node-a5"],
            },
        ),
    )

    async def released() -> None:
        s = await exporter.scrape()
        assert {dict(k)["npu"] for k in select(s, "mindx_npu_chip_manual_separation", node="node-a3")} == {
            "Ascend910-2"
        }
        assert select(s, "mindx_configmap_invalid") == {}

    await eventually(released)

    # An edit that breaks one key's JSON: that key is flagged, the other node still served.
    api.store.apply(
        "configmaps",
        configmap(
            "clusterd-manual-info-cm", {"node-a3": '{"Total":["Ascend910-2"', "node-a5": data["node-a5"]}
        ),
    )

    async def broken() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_configmap_invalid") == {
            labels(namespace=NS, configmap="clusterd-manual-info-cm", key="node-a3", reason="json"): 1
        }
        assert {dict(k)["node"] for k in select(s, "mindx_npu_chip_manual_separation")} == {"node-a5"}

    await eventually(broken)

    # Nothing separated any more: ClusterD deletes the object.
    api.store.delete("configmaps", NS, "clusterd-manual-info-cm")

    async def deleted() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_npu_chip_manual_separation") == {}
        assert select(s, "mindx_configmap_invalid") == {}

    await eventually(deleted)


def exception(name: str, job_type: str, namespace: str, status: str, reason: str, message: str) -> str:
    return go(
        {
            "jobName": name,
            "jobType": job_type,
            "nameSpace": namespace,
            "conditions": {"status": status, "reason": reason, "message": message},
        }
    )


async def test_scheduling_exceptions_from_empty_report_and_back(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    # No exception: the API server stores the empty map as no `data` field at all.
    api.store.apply("configmaps", configmap("scheduling-exception-report", None))
    exporter = await start_exporter()
    series = await exporter.scrape()
    assert select(series, "mindx_job_scheduling_exception") == {}
    assert select(series, "mindx_configmap_invalid") == {}
    assert select(series, "mindx_exporter_objects", source="clusterd-scheduling-exceptions") == {
        labels(source="clusterd-scheduling-exceptions", namespace=NS): 1
    }

    gvk = "mindxdl.gitee.com/v1, Kind=AscendJob"
    data = {
        "gpt.v3.1024p.7d1e2f30-4a5b-4c6d-8e9f-0a1b2c3d4e5f": exception(
            "gpt.v3.1024p", gvk, "research", "JobEmptyStatus", "JobNoInitialized", "job condition is empty"
        ),
        "bert-8p.5e7a9c1b-0d2f-4b6e-a1c3-e5f7091b2d4f": exception(
            "bert-8p",
            "AscendJob",
            "default",
            "PodGroupInqueue",
            "BatchOrderFailed; node1: npu not enough",
            "x",
        ),
    }
    api.store.apply("configmaps", configmap("scheduling-exception-report", data))

    async def stuck() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_job_scheduling_exception") == {
            labels(
                namespace="research",
                job="gpt.v3.1024p",
                job_type="AscendJob",
                status="JobEmptyStatus",
                reason="JobNoInitialized",
            ): 1,
            labels(
                namespace="default",
                job="bert-8p",
                job_type="AscendJob",
                status="PodGroupInqueue",
                reason="BatchOrderFailed",
            ): 1,
        }

    await eventually(stuck)

    # bert-8p got its pods placed but one is pending; gpt runs now (gone); an unknown status is flagged.
    data = {
        "bert-8p.5e7a9c1b-0d2f-4b6e-a1c3-e5f7091b2d4f": exception(
            "bert-8p", "AscendJob", "default", "PodGroupRunning", "PodPending", "pod is pending"
        ),
        "old.1": exception("old", "Job", "default", "PodGroupLost", "Whatever", ""),
    }
    api.store.apply("configmaps", configmap("scheduling-exception-report", data))

    async def changed() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_job_scheduling_exception") == {
            labels(
                namespace="default",
                job="bert-8p",
                job_type="AscendJob",
                status="PodGroupRunning",
                reason="PodPending",
            ): 1,
            labels(
                namespace="default", job="old", job_type="Job", status="PodGroupLost", reason="Whatever"
            ): 1,
        }
        assert select(s, "mindx_configmap_invalid") == {
            labels(namespace=NS, configmap="scheduling-exception-report", key="old.1", reason="schema"): 1
        }

    await eventually(changed)

    api.store.apply("configmaps", configmap("scheduling-exception-report", None))

    async def all_running() -> None:
        s = await exporter.scrape()
        assert select(s, "mindx_job_scheduling_exception") == {}
        assert select(s, "mindx_configmap_invalid") == {}

    await eventually(all_running)

    # Deleted with jobs in it (ClusterD never deletes it; an operator or a namespace cleanup may).
    api.store.apply("configmaps", configmap("scheduling-exception-report", data))
    await eventually(changed)
    api.store.delete("configmaps", NS, "scheduling-exception-report")
    await eventually(all_running)


def test_fault_job_info_is_not_read() -> None:
    """S12 is not exported (docs/metrics.md says why): no source's watch selects it, so RBAC never
    grants it either (tests/test_deploy.py)."""
    obj = fixture("fault-job-info-single.json")
    assert not [s.name for s in SOURCES if select_objects([obj], s, s.namespace)]
