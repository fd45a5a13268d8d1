"""ClusterD's other three ConfigMaps, byte for byte as ClusterD writes them (spec mindx-sources-2
§A, §B, §G): `cluster-system/statistic-fault-info` (public faults arriving and recovering),
`cluster-system/clusterd-manual-info-cm` (chips separated after repeated faults, deleted when
empty) and `cluster-system/scheduling-exception-report` (jobs stuck before they run).

`ClusterDExtraProducer.write(store, model)` runs with every ClusterD report of the simulator. It
reads the model (chip faults on busy chips feed the fault-frequency counter) but never changes it or
draws from its random generator, so the rest of the simulated cluster is the same with or without
it. A lived-in cluster already has a few public faults, separations (ClusterD persists them in the
ConfigMap across restarts) and stuck jobs, so every family shows from the first report.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from exporter.apiserver.store import ApiServerStatusError, Store
from exporter.simulator.model import MANUAL, NOT_HANDLE, SUB_HEALTH, ClusterModel, Node
from exporter.simulator.producers import go_dumps

__all__ = ["CLUSTER_NAMESPACE", "ClusterDExtraProducer", "ExtraRates"]

CLUSTER_NAMESPACE = "cluster-system"
STATISTIC_NAME = "statistic-fault-info"
STATISTIC_LABELS = {"mc-statistic-fault": "true"}
MAX_FAULT_NUM = 4500  # above it ClusterD only patches FaultNum and Description (§A.5)
OVERFLOW_DESCRIPTION = (
    "The current total number of faults is too large, and only a portion of the detailed fault data is "
    "displayed"
)
MANUAL_NAME = "clusterd-manual-info-cm"
EXCEPTION_NAME = "scheduling-exception-report"

# Public faults: (resource, type, code, level, chips) — fixture codes (pingmesh 220001001, CCAE
# 220001002, dpcStorage 110001020) plus constructed 9-digit codes for the other levels/resources.
# `chips` "one" = one physical chip, "all" = every card of the node (NodeD storage faults), "none".
_PUBLIC_FAULTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("CCAE", "NPU", "220001002", "SeparateNPU", "one"),
    ("pingmesh", "NPU", "220001001", "SeparateNPU", "one"),
    ("Netmind", "Network", "230001001", "PreSeparateNPU", "one"),
    ("dpcStorage", "Node", "110001020", "SubHealthFault", "all"),
    ("dtfsStorage", "Storage", "110001021", "SubHealthFault", "none"),
    ("CCAE", "Node", "220001003", "NotHandleFault", "none"),
)
_UNCOUNTED_LEVELS = frozenset((NOT_HANDLE, SUB_HEALTH, MANUAL))  # not counted by ClusterD (§B.2)

# Jobs that do not run: (jobType, status, reason, message template) with ClusterD's texts (§G.3).
# `{ns}`, `{name}`, `{npus}` are filled in; messages never contain `<` or `>` (ClusterD strips them).
_GVK_VCJOB = "batch.volcano.sh/v1alpha1, Kind=Job"
_GVK_ASCENDJOB = "mindxdl.gitee.com/v1, Kind=AscendJob"
_EXCEPTIONS: tuple[tuple[str, str, str, str], ...] = (
    (
        "AscendJob",
        "PodGroupPending",
        "JobEnqueueFailed",
        "require npu num is {npus}, but cluster npu num is {cap}",
    ),
    (
        "AscendJob",
        "PodGroupRunning",
        "PodPending",
        "pod is pending, please check the pod status using the following command: "
        "kubectl describe pod -n {ns} {name}-worker-1",
    ),
    (
        "Job",
        "PodGroupInqueue",
        "NotEnoughResources",
        "0/{nodes} nodes are unavailable: {nodes} Insufficient huawei.com/Ascend910.",
    ),
    (
        _GVK_VCJOB,
        "JobEmptyStatus",
        "JobNoInitialized",
        "job condition is empty, volcano-controller maybe not running, you can check the status by "
        "executing command: kubectl get pod -n volcano-system -l app=volcano-controller",
    ),
    (
        _GVK_ASCENDJOB,
        "JobEmptyStatus",
        "JobNoInitialized",
        "job condition is empty, ascend-operator maybe not running, you can check the status by "
        "executing command: kubectl get pod -n mindx-dl -l app=ascend-operator",
    ),
)
_JOB_NAMESPACES = ("default", "llm", "training", "inference")
_JOB_NAMES = ("llama-64p", "bert-8p", "resnet50-vc", "qwen-72b", "deepseek-v3")


@dataclass(frozen=True, slots=True)
class ExtraRates:
    """How often these things happen (per node and hour) and how long they last (hours), plus
    ClusterD's `manually_separate_policy.conf` (the simulated cluster counts 2 hits in 24 h)."""

    public_per_node_hour: float = 0.05
    public_mean_hours: float = 0.75
    stuck_per_node_hour: float = 0.05
    stuck_mean_hours: float = 0.75
    fault_threshold: int = 2
    fault_window_hours: float = 24.0
    fault_free_hours: float = 48.0
    initial_public: int = 3
    initial_separations: int = 2
    initial_stuck: int = 3


@dataclass(slots=True)
class _PublicFault:
    node: str
    resource: str
    dev_ids: tuple[int, ...]
    fault_id: str
    fault_type: str
    code: str
    level: str
    fault_time: int  # seconds
    until: float  # simulated time it recovers


@dataclass(slots=True)
class _StuckJob:
    key: str  # <jobName>.<jobUID>
    value: str  # the marshalled jobExceptionInfo
    since: float
    until: float


class ClusterDExtraProducer:
    def __init__(self, seed: int = 0, rates: ExtraRates | None = None) -> None:
        self.rng = random.Random(f"clusterd-extra-{seed}")
        self.rates = rates if rates is not None else ExtraRates()
        self._last: float | None = None
        self._last_stamp = 0.0  # the model's written time at the last write (model.stamp)
        self._public: dict[tuple[str, str], _PublicFault] = {}  # (node, resource+faultId) → fault
        self._public_written = ""  # PublicFaults of the last full write (ClusterD writes on change)
        self._hits: dict[tuple[str, int, str], list[int]] = {}  # (node, chip, code) → hit times (ms)
        self._seen: set[tuple[str, int, str, int]] = set()  # occurrences already counted
        # node → chip name → code → LastSeparateTime (ms), in the order codes reached the threshold
        self._separated: dict[str, dict[str, dict[str, int]]] = {}
        # (node, chip name, code) → simulated time of its last hit: releases follow simulated time,
        # while LastSeparateTime is a written time (never past the wall clock, see model.stamp)
        self._separated_at: dict[tuple[str, str, str], float] = {}
        self._manual_exists = False
        self._stuck: dict[str, _StuckJob] = {}
        self._job_seq = 0
        self._fault_seq = 0
        self._cluster_chips: int | None = None
        self._scripted_since: dict[str, float] = {}  # model.stuck_jobs key → simulated time first seen

    # -- the writes -------------------------------------------------------------------------------------

    def write(self, store: Store, model: ClusterModel) -> None:
        """Bring the three objects up to `model.now`, as ClusterD's writers would."""
        now, stamp = model.now, model.stamp()
        if self._last is None:
            self._seed(model)
        else:
            self._advance(model, self._last, now, self._last_stamp, stamp)
        self._last, self._last_stamp = now, stamp
        self._write_statistic(store, model)
        self._write_manual(store, model)
        self._apply(store, self.exception_configmap(now, model))

    @staticmethod
    def _apply(store: Store, obj: dict[str, Any]) -> None:
        with contextlib.suppress(ApiServerStatusError):
            store.apply("configmaps", obj)

    def _write_statistic(self, store: Store, model: ClusterModel) -> None:
        public = {**self._public, **_scripted_public(model)}
        count = len(public)
        if count > MAX_FAULT_NUM:
            # Only FaultNum and Description are patched; on a missing object the patch fails (§A.5).
            patch = {"data": {"FaultNum": self._fault_num(count), "Description": OVERFLOW_DESCRIPTION}}
            with contextlib.suppress(ApiServerStatusError):
                store.patch("configmaps", CLUSTER_NAMESPACE, STATISTIC_NAME, patch)
            self._public_written = ""
            return
        faults = self.public_faults_value(public)
        if faults == self._public_written:
            return
        self._public_written = faults
        data = {"FaultNum": self._fault_num(count), "PublicFaults": faults}
        self._apply(store, _configmap(STATISTIC_NAME, data, STATISTIC_LABELS))

    def _write_manual(self, store: Store, model: ClusterModel) -> None:
        self._release(model.now)
        if not self._separated:
            if self._manual_exists:
                with contextlib.suppress(ApiServerStatusError):
                    store.delete("configmaps", CLUSTER_NAMESPACE, MANUAL_NAME)
                self._manual_exists = False
            return
        self._apply(store, _configmap(MANUAL_NAME, self.manual_data(), None))
        self._manual_exists = True

    # -- the values -------------------------------------------------------------------------------------

    @staticmethod
    def _fault_num(count: int) -> str:
        return go_dumps({"publicFaultNum": count})

    def public_faults_value(self, public: dict[tuple[str, str], _PublicFault] | None = None) -> str:
        """`map[node][]NodeFault`: node keys sorted, each array in Go map order (drawn anew)."""
        by_node: dict[str, list[dict[str, Any]]] = {}
        for fault in (self._public if public is None else public).values():
            element: dict[str, Any] = {"resource": fault.resource}
            if fault.dev_ids:
                element["devIds"] = list(fault.dev_ids)
            element.update(
                faultId=fault.fault_id,
                type=fault.fault_type,
                faultCode=fault.code,
                level=fault.level,
                faultTime=fault.fault_time,
            )
            by_node.setdefault(fault.node, []).append(element)
        for elements in by_node.values():
            self.rng.shuffle(elements)
        return go_dumps(dict(sorted(by_node.items())))

    def manual_data(self) -> dict[str, str]:
        """One key per node: `{"Total":[…],"Detail":{chip:[{FaultCode,FaultLevel,LastSeparateTime}]}}`."""
        data = {}
        for node, chips in sorted(self._separated.items()):
            names = sorted(chips)  # sort.Strings: byte order, like the map keys of Detail
            detail = {
                name: [
                    {"FaultCode": code, "FaultLevel": MANUAL, "LastSeparateTime": ms}
                    for code, ms in chips[name].items()
                ]
                for name in names
            }
            data[node] = go_dumps({"Total": names, "Detail": detail})
        return data

    def exception_configmap(self, now: float, model: ClusterModel | None = None) -> dict[str, Any]:
        """Jobs whose condition was the same at the previous check (ClusterD's debounce); no
        exception at all gives an object without `data`, as the API server stores an empty map.
        The model's scripted stuck jobs (model.stuck_jobs) are pending for want of NPUs."""
        data = {job.key: job.value for job in self._stuck.values() if job.since < now}
        if model is not None:
            scripted = model.stuck_jobs
            self._scripted_since = {key: self._scripted_since.get(key, now) for key in scripted}
            for key, (namespace, name) in scripted.items():
                if self._scripted_since[key] + 10.0 < now:  # the same condition at two checks
                    data[key] = self._exception_value(model, namespace, name, _EXCEPTIONS[0])
        return _configmap(EXCEPTION_NAME, dict(sorted(data.items())) or None, None)

    # -- the simulated processes ------------------------------------------------------------------------

    def _seed(self, model: ClusterModel) -> None:
        """A lived-in cluster: faults and stuck jobs of the past hour, separations of the past day."""
        r, now = self.rates, model.now
        stamp = model.stamp()
        for _ in range(r.initial_public):
            ago = self.rng.uniform(60, 3600)
            self._add_public(model, now - ago, stamp - ago, still_active_at=now)
        for _ in range(r.initial_stuck):
            self._add_stuck(model, now - self.rng.uniform(60, 3600), still_active_at=now)
        for _ in range(r.initial_separations):
            node = self.rng.choice(model.nodes)
            chip = self.rng.randrange(node.kind.chips)
            code = self.rng.choice(("80E18402", "8C03A000", "80C98008", "80E01801"))
            ago = self.rng.uniform(3600, 86400)
            self._separate(node, chip, code, now - ago, int((stamp - ago) * 1000))

    def _advance(
        self, model: ClusterModel, start: float, end: float, start_stamp: float, end_stamp: float
    ) -> None:
        r, nodes = self.rates, len(model.nodes)
        # Written times of the interval's arrivals: spread over the written times of its ends.
        ratio = (end_stamp - start_stamp) / (end - start) if end > start else 0.0
        for at in self._arrivals(start, end, r.public_per_node_hour * nodes):
            self._add_public(model, at, start_stamp + (at - start) * ratio)
        for at in self._arrivals(start, end, r.stuck_per_node_hour * nodes):
            self._add_stuck(model, at)
        self._public = {key: f for key, f in self._public.items() if f.until > end}
        self._stuck = {key: job for key, job in self._stuck.items() if job.until > end}
        self._count_hits(model)

    def _arrivals(self, start: float, end: float, per_hour: float) -> Iterator[float]:
        if per_hour <= 0:
            return
        at = start + self.rng.expovariate(per_hour / 3600.0)
        while at <= end:
            yield at
            at += self.rng.expovariate(per_hour / 3600.0)

    def _lifetime(self, at: float, mean_hours: float, still_active_at: float | None) -> float:
        """When something that began at `at` ends; those of the initial state last past `still_active_at`."""
        duration = self.rng.expovariate(1.0 / (mean_hours * 3600.0))
        return (still_active_at if still_active_at is not None else at) + duration

    def _add_public(
        self, model: ClusterModel, at: float, written: float, still_active_at: float | None = None
    ) -> None:
        node = self.rng.choice(model.nodes)
        resource, fault_type, code, level, chips = self.rng.choice(_PUBLIC_FAULTS)
        if chips == "one":
            dev_ids: tuple[int, ...] = (self.rng.randrange(node.kind.chips),)
        elif chips == "all":
            dev_ids = tuple(range(node.kind.chips))
        else:
            dev_ids = ()
        self._fault_seq += 1
        fault_id = _fault_id(resource, node, dev_ids, int(written), self._fault_seq)
        until = self._lifetime(at, self.rates.public_mean_hours, still_active_at)
        fault = _PublicFault(
            node.name, resource, dev_ids, fault_id, fault_type, code, level, int(written), until
        )
        # A repeated `occur` of a key already present is ignored (§A.4).
        self._public.setdefault((node.name, resource + fault_id), fault)

    def _add_stuck(self, model: ClusterModel, at: float, still_active_at: float | None = None) -> None:
        self._job_seq += 1
        namespace = self.rng.choice(_JOB_NAMESPACES)
        name = f"{self.rng.choice(_JOB_NAMES)}-{self._job_seq}"
        uid = _uuid(self.rng)
        value = self._exception_value(model, namespace, name, self.rng.choice(_EXCEPTIONS))
        until = self._lifetime(at, self.rates.stuck_mean_hours, still_active_at) + 10.0
        key = f"{name}.{uid}"
        # Shown once the condition was the same at two checks 10 s apart.
        self._stuck[key] = _StuckJob(key, value, at + 10.0, until)

    def _exception_value(
        self, model: ClusterModel, namespace: str, name: str, exception: tuple[str, str, str, str]
    ) -> str:
        job_type, status, reason, template = exception
        if self._cluster_chips is None:  # nodes never change kind: count once
            self._cluster_chips = sum(node.kind.chips for node in model.nodes)
        chips = self._cluster_chips
        message = template.format(
            ns=namespace, name=name, npus=chips + 128, cap=chips, nodes=len(model.nodes)
        )
        return go_dumps(
            {
                "jobName": name,
                "jobType": job_type,
                "nameSpace": namespace,
                "conditions": {"status": status, "reason": reason, "message": message},
            }
        )

    def _count_hits(self, model: ClusterModel) -> None:
        """ClusterD's fault-frequency counter: each new occurrence of a counted code on a chip a job
        uses is a hit; `fault_threshold` hits within the window separate the chip (§B.3)."""
        r = self.rates
        window_ms = int(r.fault_window_hours * 3600 * 1000)
        for node in model.faulty_nodes():
            for faults in (node.chip_faults, node.net_faults):
                for chip, fault in faults.items():
                    if not node.is_busy(chip):
                        continue
                    for state in fault.codes.values():
                        if state.level in _UNCOUNTED_LEVELS:
                            continue
                        occurrence = (node.name, chip, state.code, state.time_ms)
                        if occurrence in self._seen:
                            continue
                        self._seen.add(occurrence)
                        hits = self._hits.setdefault((node.name, chip, state.code), [])
                        hits.append(state.time_ms)
                        del hits[: -r.fault_threshold]
                        if len(hits) >= r.fault_threshold and hits[-1] - hits[0] <= window_ms:
                            self._separate(node, chip, state.code, model.now, int(model.stamp() * 1000))

    def _separate(self, node: Node, chip: int, code: str, at: float, ms: int) -> None:
        """Separate at simulated time ``at``, written as ``ms``."""
        name = node.kind.names[chip]
        codes = self._separated.setdefault(node.name, {}).setdefault(name, {})
        codes[code] = ms  # a new code goes last; a repeated one keeps its place, time refreshed
        self._separated_at[(node.name, name, code)] = at

    def _release(self, now: float) -> None:
        """Codes are released `fault_free_hours` after their last threshold hit (§B.3)."""
        oldest = now - self.rates.fault_free_hours * 3600
        at = self._separated_at
        for node in list(self._separated):
            chips = self._separated[node]
            for name in list(chips):
                for code in [code for code in chips[name] if at[(node, name, code)] <= oldest]:
                    del chips[name][code], at[(node, name, code)]
                if not chips[name]:
                    del chips[name]
            if not chips:
                del self._separated[node]
        self._seen = {o for o in self._seen if o[3] > oldest}


def _configmap(name: str, data: dict[str, str] | None, labels: dict[str, str] | None) -> dict[str, Any]:
    """ClusterD's objects carry name, namespace, labels (statistic-fault-info only) and data."""
    metadata: dict[str, Any] = {"name": name, "namespace": CLUSTER_NAMESPACE}
    if labels is not None:
        metadata["labels"] = dict(labels)
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data is not None:
        obj["data"] = data
    return obj


def _scripted_public(model: ClusterModel) -> dict[tuple[str, str], _PublicFault]:
    """The model's scripted public faults (Node.public_faults, also in ClusterD's device shards),
    reported by pingmesh."""
    faults = {}
    for node in model.faulty_nodes():
        for chip, public in node.public_faults.items():
            fault_id = _fault_id("pingmesh", node, (chip,), public.time, 0)
            fault = _PublicFault(
                node.name, "pingmesh", (chip,), fault_id, "NPU", public.code, public.level, public.time, 0.0
            )
            faults[(node.name, "pingmesh" + fault_id)] = fault
    return faults


def _fault_id(resource: str, node: Node, dev_ids: tuple[int, ...], at: int, seq: int) -> str:
    """Fault instance ids as their senders build them (§A.2); pingmesh's name the chip, so a
    repeated report of the same chip is the same fault."""
    if resource == "dpcStorage":  # NodeD: hex(sha256(node + "/" + "DPC_PROCESS" …))
        return hashlib.sha256(f"{node.name}/DPC_PROCESS/{at}/{seq}".encode()).hexdigest()
    if resource == "pingmesh":
        return f"{node.name}-{dev_ids[0] if dev_ids else 0}-hccsping"
    return f"{resource.lower()}-{at}-{seq:06d}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
