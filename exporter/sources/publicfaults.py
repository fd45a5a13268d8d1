"""S8: ClusterD's `cluster-system/statistic-fault-info` ConfigMap, the public faults (CCAE, pingmesh,
fd-online, storage, …) ClusterD currently holds, per node (spec mindx-sources-2 §A).

Over 4,500 faults ClusterD stops rewriting `PublicFaults` and only patches `FaultNum` (the true total)
and `Description`: the detail left in the object is the last complete snapshot, stale, not a current
subset (§A.5). The parser then withholds the per-fault records rather than serve that snapshot as
current; `mindx_public_faults` and `mindx_public_faults_truncated` still say how many there are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from exporter.handlers.objects import per_object
from exporter.metrics.exposition import Family
from exporter.sharding import CLUSTER_SCOPE, Scope, node_scope
from exporter.sources.base import Metric, Parsed, Sample, Source, Watch, families_of, render_table
from exporter.sources.common import (
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    configmap_data,
    decode_json,
    object_name,
    unix_seconds,
)
from exporter.sources.limits import DEFAULT_LIMITS, REASON_LIMIT, Limits

NAMESPACE = "cluster-system"
NAME = "statistic-fault-info"
KEY_PUBLIC_FAULTS = "PublicFaults"
KEY_FAULT_NUM = "FaultNum"
KEY_DESCRIPTION = "Description"
SOURCE_LABEL = "clusterd"  # the producer (metric contract: `source` names the producer)
MAX_FAULT_NUM = 4500  # ClusterD's MaxFaultNum: above it the detail is frozen (§A.5)

# Closed sets in ClusterD's code (§A.3): a value outside them is kept but flagged. `resource` is
# configurable (publicFaultResource), so any value is accepted silently.
LEVELS: tuple[str, ...] = ("NotHandleFault", "SubHealthFault", "PreSeparateNPU", "SeparateNPU")
TYPES: frozenset[str] = frozenset(("NPU", "Node", "Network", "Storage"))
_LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
_MAX_CHIP_ID = 31  # devIds are physical chip ids 0-31 (checker.go:269-288)

RECORD_SUMMARY = "summary"


@dataclass(frozen=True, slots=True)
class PublicFault:
    """One series: a public fault on one chip (`chip_id` "" for a fault without chips)."""

    chip_id: str
    resource: str
    fault_type: str
    fault_code: str
    fault_level: str
    raised_at: float  # unix seconds, 0 when absent


@dataclass(frozen=True, slots=True)
class PublicFaultNode:
    node: str
    faults: tuple[PublicFault, ...]  # sorted by (chip id, code); one per (chip id, code)


@dataclass(frozen=True, slots=True)
class PublicFaultSummary:
    total: int | None  # publicFaultNum, None when FaultNum is unusable
    truncated: bool


PublicFaultRecord = PublicFaultNode | PublicFaultSummary


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[PublicFaultRecord]:
    """Records `summary` (total, truncated) and `node/<node>` per node with faults; no node records
    while the detail is stale (a `Description`, or an element count that differs from the total).
    At most `limits.chips_per_node` (chip, code) series per node are kept."""
    problems = Problems()
    _, name = object_name(cm)
    if name != NAME:
        return Parsed(None, problems)
    data = configmap_data(cm)
    total = _parse_fault_num(decode_json(data, KEY_FAULT_NUM, problems, required=True), problems)
    by_node = decode_json(data, KEY_PUBLIC_FAULTS, problems, required=True)
    nodes, elements = _parse_public_faults(by_node, problems, limits)
    # Stale detail: ClusterD's patch adds Description; a full write removes it (§A.5).
    truncated = (
        KEY_DESCRIPTION in data
        or (total is not None and total > MAX_FAULT_NUM)
        or (total is not None and by_node is not None and elements != total)
    )
    records: dict[str, PublicFaultRecord] = {RECORD_SUMMARY: PublicFaultSummary(total, truncated)}
    if not truncated:
        records.update({f"node/{node.node}": node for node in nodes})
    return Parsed(records, problems)


def _parse_fault_num(value: dict[str, Any] | None, problems: Problems) -> int | None:
    if value is None:
        return None
    total = as_int(value.get("publicFaultNum"))
    if total is None or total < 0:
        problems.add(KEY_FAULT_NUM, REASON_SCHEMA, "publicFaultNum is not a non-negative integer")
        return None
    return total


def _parse_public_faults(
    value: dict[str, Any] | None, problems: Problems, limits: Limits
) -> tuple[tuple[PublicFaultNode, ...], int]:
    """The nodes with faults, and the number of array elements ClusterD wrote (usable or not)."""
    nodes: list[PublicFaultNode] = []
    elements = 0
    for node, entries in sorted((value or {}).items()):
        if entries is None:
            continue
        if not isinstance(entries, list):
            problems.add(KEY_PUBLIC_FAULTS, REASON_SCHEMA, f"{node!r}: value is not an array")
            continue
        elements += len(entries)
        faults = _merge(node, entries, problems, limits)
        if faults:
            nodes.append(PublicFaultNode(node, faults))
    return tuple(nodes), elements


def _merge(node: str, entries: list[Any], problems: Problems, limits: Limits) -> tuple[PublicFault, ...]:
    """One fault per (chip, code) whatever the array order (Go map order, changes every write): the
    most severe level wins, then the earliest time, then the smallest (resource, type)."""
    best: dict[tuple[str, str], PublicFault] = {}
    for element in entries:
        for fault in _parse_element(node, element, problems):
            key = (fault.chip_id, fault.fault_code)
            seen = best.get(key)
            if seen is None and len(best) >= limits.chips_per_node:
                problems.add(
                    KEY_PUBLIC_FAULTS,
                    REASON_LIMIT,
                    f"{node!r}: more than {limits.chips_per_node} chip faults",
                )
                return _ordered(best)
            if seen is None or _rank(fault) < _rank(seen):
                best[key] = fault
    return _ordered(best)


def _ordered(best: dict[tuple[str, str], PublicFault]) -> tuple[PublicFault, ...]:
    return tuple(best[key] for key in sorted(best, key=lambda k: (k[0] == "", _chip_order(k[0]), k[1])))


def _rank(fault: PublicFault) -> tuple[int, float, str, str]:
    return (-_LEVEL_RANK.get(fault.fault_level, -1), fault.raised_at, fault.resource, fault.fault_type)


def _chip_order(chip_id: str) -> int:
    return int(chip_id) if chip_id.isdigit() else -1


def _parse_element(node: str, element: object, problems: Problems) -> Iterator[PublicFault]:
    entry = as_dict(element)
    if entry is None:
        problems.add(KEY_PUBLIC_FAULTS, REASON_SCHEMA, f"{node!r}: element is not an object")
        return
    code = _string(entry, "faultCode", node, problems)
    level = _string(entry, "level", node, problems)
    fault_type = _string(entry, "type", node, problems)
    resource = _string(entry, "resource", node, problems)
    if level and level not in _LEVEL_RANK:
        problems.add(KEY_PUBLIC_FAULTS, REASON_SCHEMA, f"{node!r}: unknown level {level[:64]!r}")
    if fault_type and fault_type not in TYPES:
        problems.add(KEY_PUBLIC_FAULTS, REASON_SCHEMA, f"{node!r}: unknown type {fault_type[:64]!r}")
    raw_time = entry.get("faultTime")
    seconds = unix_seconds(raw_time)
    if raw_time is not None and (as_int(raw_time) is None or seconds <= 0):
        problems.add(KEY_PUBLIC_FAULTS, REASON_SCHEMA, f"{node!r}: faultTime is not a positive integer")
    for chip_id in _chip_ids(entry.get("devIds"), node, problems):
        yield PublicFault(chip_id, resource, fault_type, code, level, seconds)


def _string(entry: Mapping[str, Any], field: str, node: str, problems: Problems) -> str:
    """A string field; all are `omitempty`, so absent means "". A number (a 9-digit code written
    unquoted) is flagged and kept as its digits."""
    value = entry.get(field)
    if value is None or isinstance(value, str):
        return (value or "").strip()
    problems.add(KEY_PUBLIC_FAULTS, REASON_SCHEMA, f"{node!r}: {field} is not a string")
    number = as_int(value)
    return str(number) if number is not None else ""


def _chip_ids(value: object, node: str, problems: Problems) -> tuple[str, ...]:
    """Physical chip ids as label values; an element without chips gives one series with id ""."""
    if value is None or value == []:
        return ("",)
    if not isinstance(value, list):
        problems.add(KEY_PUBLIC_FAULTS, REASON_SCHEMA, f"{node!r}: devIds is not an array")
        return ("",)
    ids: dict[str, None] = {}
    for item in value:
        number = as_int(item)
        if number is None or not 0 <= number <= _MAX_CHIP_ID:
            problems.add(KEY_PUBLIC_FAULTS, REASON_SCHEMA, f"{node!r}: devIds element is not a chip id 0-31")
            continue
        ids[str(number)] = None
    return tuple(ids) or ("",)


# --- the source ---------------------------------------------------------------------------------

PUBLIC_FAULT = Family(
    "mindx_public_fault",
    "gauge",
    "Unix seconds a public fault (ClusterD statistic-fault-info) was raised, per node, chip id and "
    "code (active only; withheld while ClusterD's detail is truncated).",
    ("source", "node", "id", "resource", "fault_type", "fault_code", "fault_level"),
    order=600,
)
PUBLIC_FAULTS = Family(
    "mindx_public_faults",
    "gauge",
    "Public faults ClusterD holds (publicFaultNum).",
    ("source",),
    order=610,
)
PUBLIC_FAULTS_TRUNCATED = Family(
    "mindx_public_faults_truncated",
    "gauge",
    "1 while ClusterD has stopped writing per-fault detail (over 4,500 public faults).",
    ("source",),
    order=620,
)


def _fault_samples(_: str, record: PublicFaultRecord) -> Iterator[Sample]:
    if isinstance(record, PublicFaultNode):
        for f in record.faults:
            labels = (
                SOURCE_LABEL,
                record.node,
                f.chip_id,
                f.resource,
                f.fault_type,
                f.fault_code,
                f.fault_level,
            )
            yield labels, f.raised_at


def _total_samples(_: str, record: PublicFaultRecord) -> Iterator[Sample]:
    if isinstance(record, PublicFaultSummary) and record.total is not None:
        yield (SOURCE_LABEL,), record.total


def _truncated_samples(_: str, record: PublicFaultRecord) -> Iterator[Sample]:
    if isinstance(record, PublicFaultSummary):
        yield (SOURCE_LABEL,), 1 if record.truncated else 0


METRICS: tuple[Metric[PublicFaultRecord], ...] = (
    Metric(PUBLIC_FAULT, _fault_samples),
    Metric(PUBLIC_FAULTS, _total_samples),
    Metric(PUBLIC_FAULTS_TRUNCATED, _truncated_samples),
)


def scope(record: PublicFaultRecord) -> Scope:
    """A node's public faults belong to the node's shard; the totals are cluster-wide."""
    return node_scope(record.node) if isinstance(record, PublicFaultNode) else CLUSTER_SCOPE


SOURCE = Source(
    name="clusterd-public-faults",
    description="ClusterD's public-fault statistics cluster-system/statistic-fault-info",
    # One object: select it by name (its label is re-set by every full write, but names more).
    watch=Watch("configmaps", NAMESPACE, field_selector=f"metadata.name={NAME}", name_prefixes=(NAME,)),
    parse=parse_configmap,
    families=families_of(METRICS),
    handler=per_object(partial(render_table, METRICS), scope=scope),
)
