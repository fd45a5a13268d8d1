"""Job reschedules (C), job recovery (D), DPU faults (F) and ClusterD's node-map freshness end to
end: objects the tests build in the producers' real formats and quirks are created, changed and
deleted in the API test server, and the series are read from the real /metrics."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import sys
from typing import Any

import aiohttp
import orjson

from exporter.apiserver import KubeApiTestServer
from exporter.app import SourceSelection, split_namespaces
from exporter.cli import build_parser, exporter_config
from exporter.simulator.job_extra import JOB_NAMESPACES
from tests.conftest import StartExporter
from tests.helpers import eventually, fixture, labels, parse_exposition, select

RESCHEDULE = "job-reschedule-reason"
RECORDS_KEY = "recent-reschedule-records"


def configmap(
    namespace: str, name: str, data: dict[str, str] | None, labels_: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels_ is not None:
        metadata["labels"] = labels_
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data is not None:
        obj["data"] = data
    return obj


def go(value: object) -> str:
    return orjson.dumps(value).decode()


# --- C: job-reschedule-reason ---------------------------------------------------------------------


def reschedule_value(jobs: dict[str, tuple[int, list[tuple[int, list[tuple[str, str, str]]]]]]) -> str:
    """Volcano's map: job id → (TotalRescheduleTimes, records newest first of (time, tasks))."""
    return go(
        {
            job_id: {
                "JobID": job_id,
                "TotalRescheduleTimes": total,
                "RescheduleRecords": [
                    {
                        "LogFileFormatTime": "I0820 09:58:00",  # no year, no zone: not used
                        "RescheduleTimeStamp": at,
                        "ReasonOfTask": [
                            {
                                "RescheduleReason": r,
                                "PodName": f"{job_id}-pod",
                                "NodeName": n,
                                "NodeRankIndex": i,
                            }
                            for r, n, i in tasks
                        ],
                    }
                    for at, tasks in records
                ],
            }
            for job_id, (total, records) in sorted(jobs.items())
        }
    )


async def test_job_reschedules_created_changed_dropped_deleted(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    # Volcano's first sessions: `""`, no job has records yet; another team's object of the same
    # name elsewhere is not selected.
    api.store.apply("configmaps", configmap("mindx-dl", RESCHEDULE, {RECORDS_KEY: ""}))
    api.store.apply("configmaps", configmap("team-a", RESCHEDULE, {RECORDS_KEY: "{broken"}))
    exporter = await start_exporter()
    series = await exporter.scrape()
    assert select(series, "mindx_job_reschedules_total") == {}
    assert select(series, "mindx_configmap_invalid") == {}
    assert select(series, "mindx_exporter_objects", source="job-reschedule") == {
        labels(source="job-reschedule", namespace="mindx-dl"): 1
    }

    # A restart of llm/pretrain with two fault tasks; a vcjob restarted without fault tasks; an
    # unknown reason and an empty rank index kept; someone else's data key ignored.
    first = {
        "llm/pretrain-7b-uid1": (
            1,
            [(1787191080, [("CardUnhealthy", "node133", "0"), ("NodeUnhealthy", "node135", "")])],
        ),
        "default/vc-uid2": (1, [(1787191170, [])]),
    }
    api.store.apply(
        "configmaps",
        configmap("mindx-dl", RESCHEDULE, {RECORDS_KEY: reschedule_value(first), "note": "x"}),
    )

    async def created() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_job_reschedules_total") == {
            labels(namespace="llm", podgroup="pretrain-7b-uid1"): 1,
            labels(namespace="default", podgroup="vc-uid2"): 1,
        }
        assert select(series, "mindx_job_last_reschedule_timestamp_seconds") == {
            labels(namespace="llm", podgroup="pretrain-7b-uid1"): 1787191080,
            labels(namespace="default", podgroup="vc-uid2"): 1787191170,
        }
        assert select(series, "mindx_job_last_reschedule_reason") == {
            labels(namespace="llm", podgroup="pretrain-7b-uid1", reason="CardUnhealthy", node="node133"): 1,
            labels(namespace="llm", podgroup="pretrain-7b-uid1", reason="NodeUnhealthy", node="node135"): 1,
        }

    await eventually(created)

    # The next restart is prepended; Volcano kept 10 records of 57 (truncation is silent); the vcjob
    # finished and Volcano dropped it.
    older = [(1787191080 - n, [("CardUnhealthy", "node133", "0")]) for n in range(1, 10)]
    second = {"llm/pretrain-7b-uid1": (57, [(1787194680, [("brand-new-reason", "node140", "3")]), *older])}
    api.store.apply("configmaps", configmap("mindx-dl", RESCHEDULE, {RECORDS_KEY: reschedule_value(second)}))

    async def changed() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_job_reschedules_total") == {
            labels(namespace="llm", podgroup="pretrain-7b-uid1"): 57
        }
        assert select(series, "mindx_job_last_reschedule_timestamp_seconds") == {
            labels(namespace="llm", podgroup="pretrain-7b-uid1"): 1787194680
        }
        assert select(series, "mindx_job_last_reschedule_reason") == {
            labels(namespace="llm", podgroup="pretrain-7b-uid1", reason="brand-new-reason", node="node140"): 1
        }

    await eventually(changed)

    # A broken write is flagged and counted, and shows nothing stale; the next good one clears it.
    api.store.apply("configmaps", configmap("mindx-dl", RESCHEDULE, {RECORDS_KEY: '{"llm/x":'}))

    async def flagged() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_configmap_invalid") == {
            labels(namespace="mindx-dl", configmap=RESCHEDULE, key=RECORDS_KEY, reason="json"): 1
        }
        assert select(series, "mindx_exporter_parse_errors_total", source="job-reschedule", reason="json")
        assert select(series, "mindx_job_reschedules_total") == {}

    await eventually(flagged)
    api.store.apply("configmaps", configmap("mindx-dl", RESCHEDULE, {RECORDS_KEY: reschedule_value(first)}))
    await eventually(created)
    api.store.apply("configmaps", configmap("mindx-dl", RESCHEDULE, None))  # no data at all

    async def no_data() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_configmap_invalid") == {
            labels(namespace="mindx-dl", configmap=RESCHEDULE, key=RECORDS_KEY, reason="schema"): 1
        }
        assert select(series, "mindx_job_reschedules_total") == {}

    await eventually(no_data)
    api.store.delete("configmaps", "mindx-dl", RESCHEDULE)

    async def deleted() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_configmap_invalid") == {}
        assert select(series, "mindx_job_reschedules_total") == {}
        assert select(series, "mindx_job_last_reschedule_reason") == {}

    await eventually(deleted)
    log = [p for _, p in api.request_log]
    assert any(
        "/namespaces/mindx-dl/configmaps" in p and "fieldSelector=metadata.name%3Djob-reschedule-reason" in p
        for p in log
    )


# --- D: reset-config-<job> ------------------------------------------------------------------------


def reset_config(
    namespace: str,
    job: str,
    info: dict[str, Any] | str,
    *,
    check: str | None = "",
    restart_type: str | None = None,
) -> dict[str, Any]:
    """`check=""` computes the checkCode as the writers do; None leaves it out (the user's CM)."""
    text = info if isinstance(info, str) else go(info)
    data = {"reset.json": text}
    if check is not None:
        data["checkCode"] = check or hashlib.sha256(text.encode()).hexdigest()
    if restart_type is not None:
        data["restartType"] = restart_type
    return configmap(namespace, f"reset-config-{job}", data, {"reset": "true"})


def task_reset_info(ranks: list[int], retries: int, update: int) -> dict[str, Any]:
    return {
        "RankList": [
            {
                "RankId": r,
                "LogicId": 0,
                "Status": "fault",
                "Policy": "",
                "InitialPolicy": "",
                "ErrorCode": None,
                "ErrorCodeHex": "",
            }
            for r in ranks
        ],
        "UpdateTime": update,
        "RetryTime": retries,
        "FaultFlushing": False,
        "GracefulExit": 0,
        "RestartFaultProcess": False,
    }


async def test_job_recovery_is_off_by_default(api: KubeApiTestServer, start_exporter: StartExporter) -> None:
    api.store.apply("configmaps", fixture("reset-config-volcano-podreschedule.json"))
    exporter = await start_exporter()
    series = await exporter.scrape()
    assert select(series, "mindx_job_recovery_retries") == {}
    assert select(series, "mindx_exporter_watch_up", source="job-recovery") == {}
    assert not any("labelSelector=reset%3Dtrue" in p for _, p in api.request_log)


async def test_job_recovery_in_a_list_of_namespaces(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    # The user's YAML (pretty-printed, no checkCode); ClusterD's data-trace with the same label;
    # a job in a namespace that is not watched.
    api.store.apply(
        "configmaps", reset_config("team-a", "llama", '{\n  "status": "initializing"\n}', check=None)
    )
    trace = configmap(
        "team-a",
        "data-trace-llama",
        {"profilingSwitch": '{"CommunicationOperator":"off"}'},
        {"reset": "true"},
    )
    api.store.apply("configmaps", trace)
    api.store.apply("configmaps", reset_config("team-c", "other", task_reset_info([0], 5, 1787191000)))
    selection = SourceSelection(
        enabled={"job-recovery": True}, namespaces={"job-recovery": " team-a, team-b,team-a"}
    )
    exporter = await start_exporter(sources=selection)

    async def initial() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_exporter_watch_up", source="job-recovery") == {
            labels(source="job-recovery", namespace="team-a"): 1,
            labels(source="job-recovery", namespace="team-b"): 1,
        }
        assert select(series, "mindx_job_recovery_ranks") == {
            labels(namespace="team-a", job="llama", status="fault"): 0
        }
        assert select(series, "mindx_job_recovery_retries") == {labels(namespace="team-a", job="llama"): 0}
        assert select(series, "mindx_configmap_invalid") == {}
        assert select(series, "mindx_exporter_objects", source="job-recovery", namespace="team-a") == {
            labels(source="job-recovery", namespace="team-a"): 1  # data-trace-llama is not counted
        }

    await eventually(initial)

    # ClusterD's fault list: ranks 8-15 of the faulty node (no restartType); Volcano rescheduled a
    # pod of team-b/bert (restartType podReschedule, RetryTime 1).
    api.store.apply(
        "configmaps", reset_config("team-a", "llama", task_reset_info(list(range(8, 16)), 0, 1787191190))
    )
    bert = reset_config("team-b", "bert", task_reset_info([], 1, 1787191140), restart_type="podReschedule")
    api.store.apply("configmaps", bert)

    async def recovering() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_job_recovery_ranks") == {
            labels(namespace="team-a", job="llama", status="fault"): 8,
            labels(namespace="team-b", job="bert", status="fault"): 0,
        }
        assert select(series, "mindx_job_recovery_retries") == {
            labels(namespace="team-a", job="llama"): 0,
            labels(namespace="team-b", job="bert"): 1,
        }

    await eventually(recovering)

    # restartAllProcess: RankList [] and RetryTime + 1, but the checkCode is stale: flagged, and the
    # data still shown (a writer that hashed other bytes is a fault worth seeing, not a reason to
    # hide the state).
    cleared = reset_config("team-a", "llama", task_reset_info([], 1, 1787191290), check="0" * 64)
    api.store.apply("configmaps", cleared)

    async def mismatch() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_job_recovery_ranks", namespace="team-a") == {
            labels(namespace="team-a", job="llama", status="fault"): 0
        }
        assert select(series, "mindx_job_recovery_retries", namespace="team-a") == {
            labels(namespace="team-a", job="llama"): 1
        }
        assert select(series, "mindx_configmap_invalid") == {
            labels(namespace="team-a", configmap="reset-config-llama", key="checkCode", reason="checkcode"): 1
        }
        assert select(series, "mindx_exporter_parse_errors_total", source="job-recovery", reason="checkcode")

    await eventually(mismatch)

    # The jobs are deleted with their YAML.
    api.store.delete("configmaps", "team-a", "reset-config-llama")
    api.store.delete("configmaps", "team-b", "reset-config-bert")

    async def gone() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_job_recovery_ranks") == {}
        assert select(series, "mindx_job_recovery_retries") == {}
        assert select(series, "mindx_configmap_invalid") == {}

    await eventually(gone)
    watched = {p.split("?")[0] for _, p in api.request_log if "labelSelector=reset%3Dtrue" in p}
    assert watched == {"/api/v1/namespaces/team-a/configmaps", "/api/v1/namespaces/team-b/configmaps"}


def test_namespace_lists_from_the_command_line() -> None:
    args = ["--source.job-recovery.enabled=true", "--source.job-recovery.namespace=team-a,team-b"]
    targets = exporter_config(build_parser().parse_args(args)).sources.targets()
    assert [(s.name, t.namespace) for s, t in targets if s.name == "job-recovery"] == [
        ("job-recovery", "team-a"),
        ("job-recovery", "team-b"),
    ]
    default = exporter_config(build_parser().parse_args([])).sources.targets()
    assert "job-recovery" not in {s.name for s, _ in default}
    assert split_namespaces("a, ,b,a") == ["a", "b"]
    assert split_namespaces("") == split_namespaces(" , ") == [""]  # every namespace, as the API has it


# --- F: dpuinfo-<node> ------------------------------------------------------------------------------


def dpuinfo(
    node: str,
    hcas: list[tuple[str, list[tuple[str, int, str]]]],
    node_faults: list[tuple[str, int, str]] | None,
    update: int | str,
) -> dict[str, Any]:
    """A dpuinfo ConfigMap: current builds (label, NodeEvent, ms) unless `node_faults` is None and
    `update` a string (the June-2026 build: no label, no NodeEvent, RFC 3339)."""

    def faults(items: list[tuple[str, int, str]]) -> list[dict[str, Any]]:
        return [{"FaultCode": c, "Time": t, "Description": "d", "FaultLevel": lvl} for c, t, lvl in items]

    info: dict[str, Any] = {
        "DPUList": [
            {"HcaName": h, "EthName": "", "DeviceID": "0xa222", "VendorID": "0x19e5", "FaultList": faults(f)}
            for h, f in hcas
        ]
    }
    if node_faults is not None:
        info["NodeEvent"] = {"NodeName": node, "FaultList": faults(node_faults)}
    value = go({"DPUInfo": info, "UpdateTime": update})
    legacy = isinstance(update, str)
    return configmap(
        "kube-system",
        f"dpuinfo-{node}",
        {"DpuInfoCfg": value},
        None if legacy else {"huawei.com/consumer.clusterd": "true"},
    )


async def test_dpu_faults_labelled_and_unlabelled(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    api.store.apply("configmaps", fixture("dpuinfo-node150-faulty.json"))
    june = dpuinfo(
        "node151",
        [("udma0", [("21000022", 1780884000123, "SeparateDPU")]), ("udma1", [])],
        None,
        "2026-06-08T10:00:05.123456789+08:00",
    )
    api.store.apply("configmaps", june)
    api.store.apply("configmaps", configmap("kube-system", "coredns", {"Corefile": ".:53 {}"}))
    api.store.apply("configmaps", fixture("deviceinfo-node134-healthy.json"))
    exporter = await start_exporter()

    async def found() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_dpu_fault_code") == {
            labels(
                source="rdma-device-plugin",
                node="node150",
                hca="mlx5_0",
                fault_code="21000024",
                fault_level="SeparateDPU",
            ): 1787191104.877,
            labels(
                source="rdma-device-plugin",
                node="node150",
                hca="",
                fault_code="22000026",
                fault_level="SeparateDPU",
            ): 1787191159.123,
            labels(
                source="rdma-device-plugin",
                node="node151",
                hca="udma0",
                fault_code="21000022",
                fault_level="SeparateDPU",
            ): 1780884000.123,
        }
        assert select(series, "mindx_node_dpus") == {
            labels(source="rdma-device-plugin", node=n, status=s): v
            for n, s, v in [
                ("node150", "healthy", 1),
                ("node150", "faulty", 1),
                ("node151", "healthy", 1),
                ("node151", "faulty", 1),
            ]
        }
        assert select(series, "mindx_source_update_timestamp_seconds", source="rdma-device-plugin") == {
            labels(source="rdma-device-plugin", node="node150"): 1787191200.312,
            labels(source="rdma-device-plugin", node="node151"): 1780884005.123456,
        }
        assert select(series, "mindx_exporter_objects", source="rdma-device-plugin") == {
            labels(source="rdma-device-plugin", namespace="kube-system"): 2
        }

    await eventually(found)

    # The NIC comes back, the card is still missing; the June node's plugin is upgraded (ms, label).
    recovered = copy.deepcopy(fixture("dpuinfo-node150-faulty.json"))
    cfg = orjson.loads(recovered["data"]["DpuInfoCfg"])
    cfg["DPUInfo"]["DPUList"][0]["FaultList"] = []
    cfg["UpdateTime"] = 1787191500000
    recovered["data"]["DpuInfoCfg"] = go(cfg)
    api.store.apply("configmaps", recovered)
    api.store.apply("configmaps", dpuinfo("node151", [("udma0", []), ("udma1", [])], [], 1787191500001))

    async def changed() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_dpu_fault_code") == {
            labels(
                source="rdma-device-plugin",
                node="node150",
                hca="",
                fault_code="22000026",
                fault_level="SeparateDPU",
            ): 1787191159.123,
        }
        assert select(series, "mindx_node_dpus", status="faulty") == {
            labels(source="rdma-device-plugin", node="node150", status="faulty"): 0,
            labels(source="rdma-device-plugin", node="node151", status="faulty"): 0,
        }
        assert select(
            series, "mindx_source_update_timestamp_seconds", source="rdma-device-plugin", node="node151"
        ) == {labels(source="rdma-device-plugin", node="node151"): 1787191500.001}

    await eventually(changed)

    # A value the plugin never writes: flagged and counted; the node's series go (nothing usable).
    broken = dpuinfo("node151", [], [], 1)
    broken["data"]["DpuInfoCfg"] = '{"DPUInfo":'
    api.store.apply("configmaps", broken)

    async def flagged() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_configmap_invalid") == {
            labels(namespace="kube-system", configmap="dpuinfo-node151", key="DpuInfoCfg", reason="json"): 1
        }
        assert select(series, "mindx_node_dpus", node="node151") == {}
        assert select(series, "mindx_exporter_parse_errors_total", source="rdma-device-plugin", reason="json")

    await eventually(flagged)

    # A removed node's stale object is deleted by hand.
    api.store.delete("configmaps", "kube-system", "dpuinfo-node150")
    api.store.delete("configmaps", "kube-system", "dpuinfo-node151")

    async def deleted() -> None:
        series = await exporter.scrape()
        assert select(series, "mindx_dpu_fault_code") == {}
        assert select(series, "mindx_node_dpus") == {}
        assert select(series, "mindx_source_update_timestamp_seconds", source="rdma-device-plugin") == {}
        assert select(series, "mindx_configmap_invalid") == {}

    await eventually(deleted)
    log = [p for _, p in api.request_log]
    assert any(
        "/namespaces/kube-system/configmaps" in p
        and ("labelSelector=!mx-consumer-cim" in p or "labelSelector=%21mx-consumer-cim" in p)
        for p in log
    )


# --- ClusterD: the node map's time counts for freshness ---------------------------------------------


def node_cm(entries: dict[str, int]) -> dict[str, Any]:
    """`cluster-info-node-cm` with one Healthy entry per node, `UpdateTime` in ms."""
    cm = copy.deepcopy(fixture("cluster-info-node-cm.json"))
    value = {
        f"mindx-dl-nodeinfo-{node}": {
            "FaultDevList": [],
            "NodeStatus": "Healthy",
            "CmName": f"mindx-dl-nodeinfo-{node}",
            "UpdateTime": ms,
        }
        for node, ms in entries.items()
    }
    cm["data"] = {"cluster-info-node-cm": go(value)}
    return cm


async def test_clusterd_update_time_is_the_newer_of_node_map_and_device_shards(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    device = fixture("cluster-info-device-0.json")
    shard = orjson.loads(device["data"]["cluster-info-device-0"])
    device_times = {
        key.removeprefix("mindx-dl-deviceinfo-"): entry["UpdateTime"] for key, entry in shard.items()
    }
    node, shard_time = sorted(device_times.items())[0]
    api.store.apply("configmaps", device)
    # One node newer in the node map, one older, one the node map alone knows.
    api.store.apply(
        "configmaps", node_cm({node: (shard_time + 60) * 1000 + 250, "node-only-in-node-map": 1787191200123})
    )
    exporter = await start_exporter(sources=SourceSelection(enabled={"clusterd": True}))

    async def combined() -> None:
        stamps = select(await exporter.scrape(), "mindx_source_update_timestamp_seconds", source="clusterd")
        assert stamps[labels(source="clusterd", node=node)] == shard_time + 60.25
        assert stamps[labels(source="clusterd", node="node-only-in-node-map")] == 1787191200.123
        others = set(device_times) - {node}
        assert {dict(k)["node"] for k in stamps} == {node, "node-only-in-node-map", *others}
        for other in others:
            assert stamps[labels(source="clusterd", node=other)] == device_times[other]

    await eventually(combined)
    # The node map's copy becomes older than the shard's: the shard's time; the node leaves the
    # node map: its series goes.
    api.store.apply("configmaps", node_cm({node: (shard_time - 600) * 1000}))

    async def fell_back() -> None:
        stamps = select(await exporter.scrape(), "mindx_source_update_timestamp_seconds", source="clusterd")
        assert stamps[labels(source="clusterd", node=node)] == shard_time
        assert labels(source="clusterd", node="node-only-in-node-map") not in stamps

    await eventually(fell_back)


# --- the demo -------------------------------------------------------------------------------------

NEW_FAMILIES = (
    "mindx_job_reschedules_total",
    "mindx_job_last_reschedule_timestamp_seconds",
    "mindx_job_last_reschedule_reason",
    "mindx_job_recovery_ranks",
    "mindx_job_recovery_retries",
    "mindx_dpu_fault_code",
    "mindx_node_dpus",
)


async def test_demo_shows_every_new_family() -> None:
    """The real `mindx-fault-exporter demo` process: reschedules with reasons, recovery files of
    the simulated jobs' namespaces (the opt-in source is on in the demo), a ClusterD recovery in
    progress and a NIC down. On an idle machine all show within about half a minute; the
    deadline here is only a safety net."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exporter", "demo", "--nodes", "30", "--web.listen-address", "127.0.0.1:0",
        "--log.level", "warning",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = ""
        while not url:
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            assert line, "the demo exited before printing its metrics URL"
            if "metrics:" in line:
                url = line.split("metrics:", 1)[1].strip()
        async with aiohttp.ClientSession() as session:

            async def shown() -> None:
                async with session.get(url) as resp:
                    series = parse_exposition(await resp.text())
                for family in NEW_FAMILIES:
                    assert select(series, family), f"{family} has no series"
                assert any(v > 0 for v in select(series, "mindx_job_recovery_ranks", status="fault").values())
                assert select(series, "mindx_source_update_timestamp_seconds", source="rdma-device-plugin")
                recovery = select(series, "mindx_exporter_watch_up", source="job-recovery")
                assert {dict(k)["namespace"] for k in recovery} == set(JOB_NAMESPACES)
                assert select(series, "mindx_configmap_invalid") == {}

            await eventually(shown, timeout=120, interval=1.0)
    finally:
        proc.terminate()
        await proc.wait()
