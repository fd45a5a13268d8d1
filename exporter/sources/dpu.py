"""S14: the K8s RDMA Shared Dev Plugin's `kube-system/dpuinfo-<node>` ConfigMap (mindx-sources.md,
"DPU faults").

`DpuInfoCfg` lists every checked HCA (healthy ones with `FaultList: []`) and, since 2026-06-15,
node-level faults under `NodeEvent`. `UpdateTime` is unix ms since 2026-07-14 and an RFC 3339
string (with nanoseconds and zone) before; fault `Time`s are ms. The plugin rewrites the object
at least every ~5 minutes while it runs, so `UpdateTime` is a liveness signal.

Selection: the label `huawei.com/consumer.clusterd=true` exists only since 2026-06-11, so the
June-2026 builds' objects carry none and a label selector on it would miss them. The watch takes
every kube-system ConfigMap *without* the device plugin's `mx-consumer-cim` label (which keeps
the thousands of large `mindx-dl-deviceinfo-<node>` objects out of it) and keeps `dpuinfo-*` by
name: the cost is kube-system's other few ConfigMaps passing through the watch and being dropped
unparsed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from exporter.handlers.objects import per_object
from exporter.metrics.exposition import Family
from exporter.sharding import Scope, node_scope
from exporter.sources.base import Metric, Parsed, Sample, Source, Watch, families_of, render_table
from exporter.sources.common import (
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    as_str,
    configmap_data,
    decode_json,
    node_from_name,
    object_name,
    rfc3339_seconds,
    unix_seconds,
)
from exporter.sources.limits import DEFAULT_LIMITS, REASON_LIMIT, Limits
from exporter.sources.nodeview import SOURCE_UPDATE_TIMESTAMP

NAMESPACE = "kube-system"
NAME_PREFIX = "dpuinfo-"
KEY_DPU_INFO = "DpuInfoCfg"
# Everything but the device plugin's own ConfigMaps (label-less June-2026 objects included).
LABEL_SELECTOR = "!mx-consumer-cim"

# FaultLevel values of the shipped catalog (spec F.3); the catalog file is replaceable, so others
# are kept as written.
LEVELS: tuple[str, ...] = ("SubHealthFault", "SeparateDPU")
DPU_STATUSES: tuple[str, ...] = ("healthy", "faulty")

RECORD = "node"  # the one record of a ConfigMap


@dataclass(frozen=True, slots=True)
class DpuFault:
    hca: str  # "" for a node-level fault (NodeEvent)
    code: str
    level: str
    raised_at: float  # unix seconds (0 when the plugin gave no time)


@dataclass(frozen=True, slots=True)
class NodeDpus:
    node: str
    healthy: int  # HCAs with no fault
    faulty: int
    faults: tuple[DpuFault, ...]  # HCA faults in list order, then node-level faults
    update_time: float | None  # unix seconds


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[NodeDpus]:
    """The node's DPUs and faults. A broken `DpuInfoCfg` gives no record (the object names nothing
    usable); a broken `UpdateTime` loses only the freshness series."""
    problems = Problems()
    _, name = object_name(cm)
    node = node_from_name(name, NAME_PREFIX)
    if node is None:
        return Parsed(None, problems)
    cfg = decode_json(configmap_data(cm), KEY_DPU_INFO, problems, required=True)
    if cfg is None:
        return Parsed({}, problems)
    info = as_dict(cfg.get("DPUInfo"))
    if info is None:
        problems.add(KEY_DPU_INFO, REASON_SCHEMA, "DPUInfo is not an object")
        info = {}
    healthy = faulty = 0
    faults: dict[tuple[str, str], DpuFault] = {}
    dpus = info.get("DPUList")
    if dpus is not None and not isinstance(dpus, list):
        problems.add(KEY_DPU_INFO, REASON_SCHEMA, "DPUList is not an array")
        dpus = None
    dpus = dpus or ()  # null when the plugin found no HCA
    if len(dpus) > limits.chips_per_node:
        problems.add(KEY_DPU_INFO, REASON_LIMIT, f"more than {limits.chips_per_node} HCAs: cut off")
        dpus = dpus[: limits.chips_per_node]
    for element in dpus:
        dpu = as_dict(element)
        if dpu is None:
            problems.add(KEY_DPU_INFO, REASON_SCHEMA, "DPUList element is not an object")
            continue
        hca = as_str(dpu.get("HcaName")).strip()
        found = _faults(hca, dpu.get("FaultList"), problems, limits)
        if found:
            faulty += 1
        else:
            healthy += 1
        for fault in found:
            faults.setdefault((fault.hca, fault.code), fault)
    event = info.get("NodeEvent")  # absent before 2026-06-15
    if event is not None:
        node_event = as_dict(event)
        if node_event is None:
            problems.add(KEY_DPU_INFO, REASON_SCHEMA, "NodeEvent is not an object")
        else:
            for fault in _faults("", node_event.get("FaultList"), problems, limits):
                faults.setdefault((fault.hca, fault.code), fault)
    record = NodeDpus(node, healthy, faulty, tuple(faults.values()), _update_time(cfg, problems))
    return Parsed({RECORD: record}, problems)


def _faults(hca: str, value: object, problems: Problems, limits: Limits) -> list[DpuFault]:
    if value is None:
        return []
    if not isinstance(value, list):
        problems.add(KEY_DPU_INFO, REASON_SCHEMA, f"{hca or 'NodeEvent'}: FaultList is not an array")
        return []
    if len(value) > limits.codes_per_entry:
        problems.add(
            KEY_DPU_INFO,
            REASON_LIMIT,
            f"{hca or 'NodeEvent'}: more than {limits.codes_per_entry} faults: cut off",
        )
        value = value[: limits.codes_per_entry]
    faults = []
    for element in value:
        entry = as_dict(element)
        code = as_str(entry.get("FaultCode")).strip() if entry is not None else ""
        if entry is None or not code:
            problems.add(KEY_DPU_INFO, REASON_SCHEMA, f"{hca or 'NodeEvent'}: fault without FaultCode")
            continue
        level = as_str(entry.get("FaultLevel")).strip()
        faults.append(DpuFault(hca, code, level, unix_seconds(entry.get("Time"))))
    return faults


def _update_time(cfg: Mapping[str, Any], problems: Problems) -> float | None:
    """ms since 2026-07-14, an RFC 3339 string before (`2026-06-08T10:00:05.123456789+08:00`)."""
    value = cfg.get("UpdateTime")
    seconds = rfc3339_seconds(value) if isinstance(value, str) else (unix_seconds(value) or None)
    if seconds is None and as_int(value) != 0:
        problems.add(KEY_DPU_INFO, REASON_SCHEMA, "UpdateTime is neither unix ms nor an RFC 3339 time")
    return seconds


# --- the source ---------------------------------------------------------------------------------

DPU_FAULT_CODE = Family(
    "mindx_dpu_fault_code",
    "gauge",
    "Unix seconds when the DPU/NIC fault was raised, active only (hca empty for node-level faults).",
    ("source", "node", "hca", "fault_code", "fault_level"),
    order=750,
)
NODE_DPUS = Family(
    "mindx_node_dpus",
    "gauge",
    "DPUs/NICs the RDMA device plugin checked on the node, per state (healthy, faulty).",
    ("source", "node", "status"),
    order=760,
)


def _fault_codes(source: str, record: NodeDpus) -> Iterator[Sample]:
    for fault in record.faults:
        yield (source, record.node, fault.hca, fault.code, fault.level), fault.raised_at


def _dpu_counts(source: str, record: NodeDpus) -> Iterator[Sample]:
    yield (source, record.node, "healthy"), record.healthy
    yield (source, record.node, "faulty"), record.faulty


def _update(source: str, record: NodeDpus) -> Iterator[Sample]:
    if record.update_time is not None:
        yield (source, record.node), record.update_time


METRICS: tuple[Metric[NodeDpus], ...] = (
    Metric(DPU_FAULT_CODE, _fault_codes),
    Metric(NODE_DPUS, _dpu_counts),
    Metric(SOURCE_UPDATE_TIMESTAMP, _update),
)


def scope(record: NodeDpus) -> Scope:
    return node_scope(record.node)


SOURCE = Source(
    name="rdma-device-plugin",
    description="the K8s RDMA Shared Dev Plugin's dpuinfo-<node> ConfigMaps (DPU/NIC faults)",
    watch=Watch("configmaps", NAMESPACE, label_selector=LABEL_SELECTOR, name_prefixes=(NAME_PREFIX,)),
    parse=parse_configmap,
    families=families_of(METRICS),
    handler=per_object(partial(render_table, METRICS), scope=scope),
)
