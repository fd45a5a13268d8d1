"""S10: ClusterD's `cluster-system/clusterd-manual-info-cm` ConfigMap, the chips ClusterD separated
because the same fault code hit them `fault_threshold` times within `fault_window_hours`
(spec mindx-sources-2 §B).

ClusterD rewrites it every 15 s while it holds a separation and deletes it when none is left, so an
absent object means nothing is separated. Operators release chips by deleting them from a node's
`Total`; ClusterD reads that back on its next tick, so `Total` decides which chips are separated and
a `Detail` entry for a chip no longer in `Total` is a release in progress, not served.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from exporter.handlers.objects import per_object
from exporter.metrics.exposition import Family
from exporter.sharding import node_scope
from exporter.sources.base import Metric, Parsed, Sample, Source, Watch, families_of, render_table
from exporter.sources.common import (
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    as_str,
    chip_id,
    configmap_data,
    decode_json,
    normalize_code,
    object_name,
    unix_seconds,
)
from exporter.sources.limits import DEFAULT_LIMITS, REASON_LIMIT, Limits

NAMESPACE = "cluster-system"
NAME = "clusterd-manual-info-cm"
SOURCE_LABEL = "clusterd"  # the producer (metric contract: `source` names the producer)
FAULT_LEVEL = "ManuallySeparateNPU"  # the only level ClusterD writes (cm.go:105-108)


@dataclass(frozen=True, slots=True)
class ChipSeparation:
    npu: str
    fault_code: str
    separated_at: float  # unix seconds of LastSeparateTime (ms in the object)


@dataclass(frozen=True, slots=True)
class NodeSeparations:
    node: str
    chips: tuple[ChipSeparation, ...]  # by chip name as in Total (byte order), then code order


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[NodeSeparations]:
    """One record `node/<node>` per data key with a separated chip; at most
    `limits.chips_per_node` chips per node and `limits.codes_per_entry` codes per chip."""
    problems = Problems()
    _, name = object_name(cm)
    if name != NAME:
        return Parsed(None, problems)
    data = configmap_data(cm)
    records: dict[str, NodeSeparations] = {}
    for node in sorted(data):
        value = decode_json(data, node, problems, required=True)
        if value is None:
            continue
        chips = _parse_node(node, value, problems, limits)
        if chips:
            records[f"node/{node}"] = NodeSeparations(node, chips)
    return Parsed(records, problems)


def _parse_node(
    key: str, value: dict[str, Any], problems: Problems, limits: Limits
) -> tuple[ChipSeparation, ...]:
    total = _total(key, value.get("Total"), problems, limits)
    detail = value.get("Detail")
    if detail is None:
        detail = {}
    if not isinstance(detail, dict):
        problems.add(key, REASON_SCHEMA, "Detail is not an object")
        return ()
    chips: list[ChipSeparation] = []
    for npu in total:
        entries = detail.get(npu)
        if not entries:
            # ClusterD writes Detail for every chip of Total; an operator only removes chips.
            problems.add(key, REASON_SCHEMA, f"{npu[:64]!r} is in Total without Detail")
            continue
        chips.extend(_codes(key, npu, entries, problems, limits))
    return tuple(chips)


def _total(key: str, value: object, problems: Problems, limits: Limits) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(key, REASON_SCHEMA, "Total is not an array")
        return ()
    names: dict[str, None] = {}
    for item in value:
        name = as_str(item).strip()
        if not name:
            problems.add(key, REASON_SCHEMA, "Total element is not a chip name")
            continue
        if name not in names and len(names) >= limits.chips_per_node:
            problems.add(key, REASON_LIMIT, f"more than {limits.chips_per_node} chips in Total")
            break
        names[name] = None
    return tuple(names)


def _codes(
    key: str, npu: str, entries: object, problems: Problems, limits: Limits
) -> Iterator[ChipSeparation]:
    """A chip's codes in the order they reached the threshold; a code listed twice keeps its latest
    time (one series per chip and code)."""
    if not isinstance(entries, list):
        problems.add(key, REASON_SCHEMA, f"Detail[{npu[:64]!r}] is not an array")
        return
    latest: dict[str, float] = {}
    for element in entries:
        entry = as_dict(element)
        code = normalize_code(as_str(entry.get("FaultCode"))) if entry is not None else ""
        if entry is None or not code:
            problems.add(key, REASON_SCHEMA, f"Detail[{npu[:64]!r}] element without FaultCode")
            continue
        if code not in latest and len(latest) >= limits.codes_per_entry:
            problems.add(key, REASON_LIMIT, f"{npu[:64]!r}: more than {limits.codes_per_entry} codes")
            break
        if entry.get("FaultLevel") != FAULT_LEVEL:
            problems.add(key, REASON_SCHEMA, f"{npu[:64]!r}: FaultLevel is not {FAULT_LEVEL}")
        raw_time = entry.get("LastSeparateTime")
        seconds = unix_seconds(raw_time)
        if as_int(raw_time) is None or seconds <= 0:
            problems.add(key, REASON_SCHEMA, f"{npu[:64]!r}: LastSeparateTime is not a positive integer")
        latest[code] = max(latest.get(code, 0.0), seconds)
    for code, seconds in latest.items():
        yield ChipSeparation(npu, code, seconds)


# --- the source ---------------------------------------------------------------------------------

NPU_CHIP_MANUAL_SEPARATION = Family(
    "mindx_npu_chip_manual_separation",
    "gauge",
    "Unix seconds of ClusterD's last fault-frequency threshold hit that separated the chip for that "
    "code (LastSeparateTime of clusterd-manual-info-cm; active only).",
    ("source", "node", "npu", "id", "fault_code"),
    order=630,
)


def _samples(_: str, record: NodeSeparations) -> Iterator[Sample]:
    for chip in record.chips:
        yield (SOURCE_LABEL, record.node, chip.npu, chip_id(chip.npu), chip.fault_code), chip.separated_at


METRICS: tuple[Metric[NodeSeparations], ...] = (Metric(NPU_CHIP_MANUAL_SEPARATION, _samples),)

SOURCE = Source(
    name="clusterd-manual-separation",
    description="ClusterD's fault-frequency separations cluster-system/clusterd-manual-info-cm",
    # ClusterD sets no labels: select the one object by name.
    watch=Watch("configmaps", NAMESPACE, field_selector=f"metadata.name={NAME}", name_prefixes=(NAME,)),
    parse=parse_configmap,
    families=families_of(METRICS),
    handler=per_object(partial(render_table, METRICS), scope=lambda record: node_scope(record.node)),
)
