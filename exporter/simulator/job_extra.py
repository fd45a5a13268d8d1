"""The simulated cluster's job records beyond `vcjob-fault-npu-cm`, byte for byte as the producers
write them (docs/mindx-sources.md, "Job reschedules" and "Job recovery"):

- Volcano's `mindx-dl/job-reschedule-reason`: every restart the model makes (a chip of a running
  job became unusable) is a reschedule record, newest first, at most ten per job, the JSON cut
  to 950 KiB as Volcano cuts it; a job's entry goes with the job.
- `<job namespace>/reset-config-<job name>`: created by the "user" with the job
  (`{"status":"initializing"}`, no checkCode), updated by Volcano after a pod reschedule
  (`RetryTime`, `restartType: podReschedule`) or, for process-recovery jobs, by ClusterD (the fault
  node's ranks while the recovery runs, then cleared with `RetryTime` + 1), deleted with the job.

Randomness comes from generators of their own, so the rest of the simulation (and its golden
bodies) does not change with these producers.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from exporter.simulator.model import _JOB_NAMESPACES, ClusterModel, Job, JobRestart
from exporter.simulator.producers import go_dumps

RESCHEDULE_NAMESPACE = "mindx-dl"
RESCHEDULE_NAME = "job-reschedule-reason"
RESCHEDULE_KEY = "recent-reschedule-records"
MAX_RECORDS = 10  # MaxRescheduleRecordsNum
MAX_BYTES = 950 * 1024  # MaxKbOfRescheduleRecords
MAX_TASKS = 10
RESET_PREFIX = "reset-config-"
JOB_NAMESPACES: tuple[str, ...] = _JOB_NAMESPACES  # where the simulated jobs (and their reset-config) live
USER_RESET_JSON = '{"status":"initializing"}'  # the vendor's sample YAML

_SCHEDULER_ZONE = timezone(timedelta(hours=8))  # klog's local time on the scheduler (spec C.2)
_NO_FAULT_TASK_SHARE = 0.08  # restarts Volcano records with `"ReasonOfTask":[]` (a software fault)
_PROCESS_RECOVERY_SHARE = 0.4  # jobs with process-recover-enable=on: ClusterD writes their file
_RECOVERY_SECONDS = (120.0, 900.0)  # how long ClusterD's fault list stays before restartAllProcess


def _log_time(at: float) -> str:
    return datetime.fromtimestamp(int(at), UTC).astimezone(_SCHEDULER_ZONE).strftime("I%m%d %H:%M:%S")


def _task(job: Job, reason: str, node_name: str, rank: int) -> dict[str, str]:
    """A RescheduleTaskReason: the pod of rank `rank` (`<job>-master-0`, `<job>-worker-<n>`)."""
    pod = f"{job.name}-master-0" if rank == 0 else f"{job.name}-worker-{rank - 1}"
    return {"RescheduleReason": reason, "PodName": pod, "NodeName": node_name, "NodeRankIndex": str(rank)}


def _configmap(
    namespace: str, name: str, data: dict[str, str], labels: dict[str, str] | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


# --- Volcano's job-reschedule-reason -----------------------------------------------------------------


@dataclass(slots=True)
class _JobReasons:
    job: Job
    total: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)  # RescheduleRecord, newest first


class RescheduleProducer:
    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(f"job-reschedule-{seed}")
        self._jobs: dict[int, _JobReasons] = {}
        self._cached: str | None = None

    def record(self, restart: JobRestart) -> None:
        """`PreStopAction` after a successful restart: prepend a record, count it."""
        job, node = restart.job, restart.node
        entry = self._jobs.setdefault(job.id, _JobReasons(job))
        tasks: list[dict[str, str]] = []
        if self.rng.random() >= _NO_FAULT_TASK_SHARE:
            reason = "NodeUnhealthy" if node.noded_status() == "UnHealthy" else "CardUnhealthy"
            rank = job.nodes.index(node) if node in job.nodes else 0
            tasks.append(_task(job, reason, node.name, rank))
        record = {
            "LogFileFormatTime": _log_time(restart.stamp),
            "RescheduleTimeStamp": int(restart.stamp),
            "ReasonOfTask": tasks[:MAX_TASKS],
        }
        entry.records.insert(0, record)
        entry.records.sort(key=lambda r: -int(r["RescheduleTimeStamp"]))  # history may be newer
        del entry.records[MAX_RECORDS:]
        entry.total += 1
        self._cached = None

    def seed_history(self, job: Job, times: list[float], reason: str, node_name: str) -> None:
        """Reschedules from before the simulation started (restored from the CM by Volcano)."""
        entry = self._jobs.setdefault(job.id, _JobReasons(job))
        for at in times:
            task = _task(job, reason, node_name, len(job.nodes) - 1)
            entry.records.append(
                {"LogFileFormatTime": _log_time(at), "RescheduleTimeStamp": int(at), "ReasonOfTask": [task]}
            )
            entry.total += 1
        entry.records.sort(key=lambda r: -int(r["RescheduleTimeStamp"]))  # newest first
        del entry.records[MAX_RECORDS:]
        self._cached = None

    def value(self, model: ClusterModel) -> str:
        """The data value at a session close: jobs no longer in the session are dropped."""
        for job_id in [j for j in self._jobs if j not in model.jobs]:
            del self._jobs[job_id]
            self._cached = None
        if self._cached is None:
            self._cached = self._marshal()
        return self._cached

    def _marshal(self) -> str:
        if not self._jobs:
            return ""
        entries = {e.job.job_id: e for e in self._jobs.values() if e.records}
        records = {job_id: list(e.records) for job_id, e in entries.items()}

        def dump() -> str:
            return go_dumps(
                {
                    job_id: {
                        "JobID": job_id,
                        "TotalRescheduleTimes": entries[job_id].total,
                        "RescheduleRecords": records[job_id],
                    }
                    for job_id in sorted(entries)
                }
            )

        text = dump()
        for _ in range(10):  # cache.go: drop every job's oldest record (keeping one), re-marshal
            if len(text) <= MAX_BYTES:
                break
            for kept in records.values():
                if len(kept) > 1:
                    kept.pop()
            text = dump()
        return text if entries else ""

    def configmap(self, model: ClusterModel) -> dict[str, Any]:
        return _configmap(RESCHEDULE_NAMESPACE, RESCHEDULE_NAME, {RESCHEDULE_KEY: self.value(model)}, None)


# --- reset-config-<job> ------------------------------------------------------------------------------


@dataclass(slots=True)
class _ResetFile:
    job: Job
    process_recovery: bool  # ClusterD writes it (process-recover-enable=on), else Volcano
    restart_fault_process: bool
    info: dict[str, Any] | None = None  # TaskResetInfo once a component wrote it
    restart_type: str | None = None
    clear_at: float | None = None  # when ClusterD's recovery of the current fault ends


def reset_name(job: Job) -> str:
    return RESET_PREFIX + job.name


class RecoveryProducer:
    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(f"job-recovery-{seed}")
        self._files: dict[int, _ResetFile] = {}

    def sync_jobs(self, model: ClusterModel) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """New jobs bring their file (the user's YAML); ended jobs take it with them."""
        created = []
        for job in model.jobs.values():
            if job.id not in self._files:
                f = _ResetFile(job, self.rng.random() < _PROCESS_RECOVERY_SHARE, self.rng.random() < 0.5)
                self._files[job.id] = f
                created.append(self._configmap(f))
        gone = [j for j in self._files if j not in model.jobs]
        deleted = [(self._files[j].job.namespace, reset_name(self._files[j].job)) for j in gone]
        for job_id in gone:
            del self._files[job_id]
        return created, deleted

    def restart(self, restart: JobRestart) -> dict[str, Any] | None:
        f = self._files.get(restart.job.id)
        if f is None:
            return None
        job, now = restart.job, int(restart.stamp)
        info = f.info or _task_reset_info()
        if f.process_recovery:
            # ClusterD `fault`: every rank of the faulty node (GetFaultRankIdsInSameNode).
            chips = restart.node.kind.chips
            base = (job.nodes.index(restart.node) if restart.node in job.nodes else 0) * chips
            info["RankList"] = [_fault_rank(rank) for rank in range(base, base + chips)]
            info.update(
                UpdateTime=now,
                FaultFlushing=False,
                GracefulExit=0,
                RestartFaultProcess=f.restart_fault_process,
            )
            f.restart_type = None  # ClusterD's writes drop the key
            f.clear_at = restart.at + self.rng.uniform(*_RECOVERY_SECONDS)
        else:
            # Volcano `updateResetCm`: RetryTime + 1 when only some of the job's pods moved, else 0.
            info["RankList"] = []
            info["UpdateTime"] = now
            info["RetryTime"] = info["RetryTime"] + 1 if len(job.nodes) > 1 else 0
            f.restart_type = "podReschedule"
        f.info = info
        return self._configmap(f)

    def under_way(self, now: float, stamp: float) -> list[dict[str, Any]]:
        """A lived-in cluster: one process-recovery job's ClusterD recovery is in progress (its
        fault list written a minute ago, cleared half an hour later)."""
        for f in self._files.values():
            if f.process_recovery and f.clear_at is None and f.job.nodes:
                written = self.restart(JobRestart(f.job, f.job.nodes[0], 0, now - 60.0, stamp - 60.0))
                f.clear_at = now + 1800.0
                return [written] if written is not None else []
        return []

    def due(self, now: float, stamp: float) -> Iterator[dict[str, Any]]:
        """ClusterD's `restartAllProcess` once a recovery has run its course."""
        for f in self._files.values():
            if f.clear_at is not None and f.clear_at <= now and f.info is not None:
                f.clear_at = None
                retries = f.info["RetryTime"] + 1
                f.info.update(
                    RankList=[], UpdateTime=int(stamp), RetryTime=retries, FaultFlushing=False,
                    GracefulExit=0, RestartFaultProcess=False,
                )  # fmt: skip
                yield self._configmap(f)

    @staticmethod
    def _configmap(f: _ResetFile) -> dict[str, Any]:
        if f.info is None:
            data = {"reset.json": USER_RESET_JSON}
        else:
            text = go_dumps(f.info)
            data = {"checkCode": hashlib.sha256(text.encode()).hexdigest(), "reset.json": text}
            if f.restart_type is not None:
                data["restartType"] = f.restart_type
        return _configmap(f.job.namespace, reset_name(f.job), data, {"reset": "true"})


def _task_reset_info() -> dict[str, Any]:
    """TaskResetInfo in Go field order, as every writer first reads the user's JSON: all zero."""
    return {
        "RankList": [],
        "UpdateTime": 0,
        "RetryTime": 0,
        "FaultFlushing": False,
        "GracefulExit": 0,
        "RestartFaultProcess": False,
    }


def _fault_rank(rank: int) -> dict[str, Any]:
    return {
        "RankId": rank,
        "LogicId": 0,
        "Status": "fault",
        "Policy": "",
        "InitialPolicy": "",
        "ErrorCode": None,
        "ErrorCodeHex": "",
    }


# --- both, driven together ----------------------------------------------------------------------------


class JobRecords:
    """What the runner calls: `start` once, `step` after every model step, `reschedule_configmap` at
    every Volcano session close. Objects to write come back as lists; deletions as (namespace, name)."""

    def __init__(self, seed: int = 0) -> None:
        self.reschedules = RescheduleProducer(seed)
        self.recovery = RecoveryProducer(seed)
        self._history_rng = random.Random(f"job-history-{seed}")

    def start(self, model: ClusterModel) -> list[dict[str, Any]]:
        # A lived-in cluster: some running jobs were rescheduled before the simulation started,
        # one of them three times in the last hour.
        jobs = sorted(model.jobs.values(), key=lambda j: j.id)
        for index, job in enumerate(jobs[:: max(1, len(jobs) // 4)]):
            count = 3 if index == 0 else self._history_rng.randint(1, 2)
            times = [model.stamp() - self._history_rng.uniform(60, 3000) for _ in range(count)]
            self.reschedules.seed_history(job, times, "CardUnhealthy", job.nodes[-1].name)
        created, _ = self.recovery.sync_jobs(model)
        return created + self.step(model)[0] + self.recovery.under_way(model.now, model.stamp())

    def step(self, model: ClusterModel) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        created, deleted = self.recovery.sync_jobs(model)
        writes = list(created)
        while model.job_restarts:
            restart = model.job_restarts.popleft()
            if not restart.job.active:
                continue
            self.reschedules.record(restart)
            updated = self.recovery.restart(restart)
            if updated is not None:
                writes.append(updated)
        writes.extend(self.recovery.due(model.now, model.stamp()))
        return writes, deleted

    def reschedule_configmap(self, model: ClusterModel) -> dict[str, Any]:
        return self.reschedules.configmap(model)
