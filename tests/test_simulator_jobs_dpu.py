"""The simulator's job-reschedule, job-recovery and DPU producers (exporter/simulator/job_extra.py,
dpu.py): what they write follows the producers' rules and parses cleanly, and it follows the
model (restarts, job ends, faults that come and go)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from exporter.apiserver.store import Store
from exporter.simulator import ClusterSimulator
from exporter.simulator.dpu import _rfc3339_nano
from exporter.simulator.job_extra import JOB_NAMESPACES, MAX_RECORDS, RESCHEDULE_KEY, USER_RESET_JSON
from exporter.sources import dpu, recovery, reschedule
from exporter.sources.common import rfc3339_seconds


def simulate(hours: int = 6, seed: int = 11) -> tuple[ClusterSimulator, list[dict[str, Any]]]:
    """A busy cluster for `hours`, with every reset-config version written along the way."""
    store = Store()
    sim = ClusterSimulator(store, nodes=40, seed=seed, start_time=1_787_191_200.0, warmup=3600.0)
    sim.populate()
    versions: list[dict[str, Any]] = []
    for _ in range(hours * 12):
        sim.advance(300.0)
        sim.report_volcano()
        for namespace in JOB_NAMESPACES:
            versions += [
                cm
                for cm in store.list("configmaps", namespace)
                if cm["metadata"]["name"].startswith("reset-config-")
            ]
    return sim, versions


def test_reschedule_records_follow_volcanos_rules() -> None:
    sim, _ = simulate()
    cm = sim.store.get("configmaps", "mindx-dl", "job-reschedule-reason")
    assert "labels" not in cm["metadata"]
    value = cm["data"][RESCHEDULE_KEY]
    result = reschedule.parse_configmap(cm)
    assert not result.problems.items
    if value == "":
        assert result.records == {}
        return
    jobs = json.loads(value)
    assert list(jobs) == sorted(jobs)  # Go map keys, byte-sorted
    running = {job.job_id for job in sim.model.jobs.values()}
    assert set(jobs) <= running  # a job's entry goes with the job
    for job_id, entry in jobs.items():
        assert entry["JobID"] == job_id
        records = entry["RescheduleRecords"]
        stamps = [r["RescheduleTimeStamp"] for r in records]
        assert stamps == sorted(stamps, reverse=True) and 1 <= len(records) <= MAX_RECORDS
        assert entry["TotalRescheduleTimes"] >= len(records)
        for record in records:
            assert list(record) == ["LogFileFormatTime", "RescheduleTimeStamp", "ReasonOfTask"]
            assert record["LogFileFormatTime"].startswith("I") and len(record["LogFileFormatTime"]) == 14
            for task in record["ReasonOfTask"]:
                assert list(task) == ["RescheduleReason", "PodName", "NodeName", "NodeRankIndex"]
                assert task["NodeName"] in sim.model.node_by_name
    assert any(len(e["RescheduleRecords"]) > 1 for e in jobs.values())


def test_reset_config_versions_verify_and_end_with_their_jobs() -> None:
    sim, versions = simulate()
    kinds = set()
    for cm in versions:
        data = cm["data"]
        assert cm["metadata"]["labels"] == {"reset": "true"}
        result = recovery.parse_configmap(cm)
        assert not result.problems.items, cm["metadata"]["name"]
        if "checkCode" not in data:
            assert data == {"reset.json": USER_RESET_JSON}
            kinds.add("user")
            continue
        assert hashlib.sha256(data["reset.json"].encode()).hexdigest() == data["checkCode"]
        info = json.loads(data["reset.json"])
        assert list(info) == [
            "RankList",
            "UpdateTime",
            "RetryTime",
            "FaultFlushing",
            "GracefulExit",
            "RestartFaultProcess",
        ]
        if data.get("restartType") == "podReschedule":
            kinds.add("volcano")
            assert info["RankList"] == []
        elif info["RankList"]:
            kinds.add("clusterd fault")
            assert {r["Status"] for r in info["RankList"]} == {"fault"}
            assert all(r["ErrorCode"] is None for r in info["RankList"])
        else:
            kinds.add("clusterd cleared")
    assert kinds == {"user", "volcano", "clusterd fault", "clusterd cleared"}
    present = {
        (cm["metadata"]["namespace"], cm["metadata"]["name"])
        for namespace in JOB_NAMESPACES
        for cm in sim.store.list("configmaps", namespace)
    }
    assert present == {(job.namespace, f"reset-config-{job.name}") for job in sim.model.jobs.values()}


def test_dpu_objects_both_builds_faults_come_and_go() -> None:
    store = Store()
    sim = ClusterSimulator(store, nodes=40, seed=3, start_time=1_787_191_200.0)
    sim.populate()
    seen_faults: set[tuple[str, str, str]] = set()
    for _ in range(48):
        sim.advance(300.0)
        objects = [
            cm
            for cm in store.list("configmaps", "kube-system")
            if cm["metadata"]["name"].startswith("dpuinfo-")
        ]
        assert len(objects) == 40
        for cm in objects:
            result = dpu.parse_configmap(cm)
            assert not result.problems.items
            record = result.first
            assert record is not None and record.healthy + record.faulty == 2
            # Written at least every 5 simulated minutes: the freshness signal moves.
            assert record.update_time is not None and sim.model.now - record.update_time <= 300
            legacy = "labels" not in cm["metadata"]
            value = json.loads(cm["data"]["DpuInfoCfg"])
            assert isinstance(value["UpdateTime"], str) == legacy
            assert ("NodeEvent" in value["DPUInfo"]) != legacy
            seen_faults |= {(record.node, f.hca, f.code) for f in record.faults}
    now = {
        (r.node, f.hca, f.code)
        for cm in store.list("configmaps", "kube-system")
        if (r := dpu.parse_configmap(cm).first)
        for f in r.faults
    }
    assert seen_faults - now, "no fault ever cleared"
    assert any(hca == "" for _, hca, _ in seen_faults), "no card drop"


def test_rfc3339_nano_is_gos_format() -> None:
    assert re.fullmatch(r"2026-06-08T10:00:05\.1234\d{0,4}[1-9]\+08:00", _rfc3339_nano(1780884005.123456789))
    assert _rfc3339_nano(1780884005.0) == "2026-06-08T10:00:05+08:00"  # trailing zeros dropped, no dot
    assert _rfc3339_nano(1780884005.5) == "2026-06-08T10:00:05.5+08:00"
    assert rfc3339_seconds(_rfc3339_nano(1780884005.25)) == 1780884005.25
