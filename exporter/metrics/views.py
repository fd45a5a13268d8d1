"""Records → rendered sample blocks, one function per record shape.

A block is the bytes of one object's samples for one family; the store joins blocks at scrape
time. Each function here is a table row of kube-state-metrics' kind: family → samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from exporter.metrics import families as F
from exporter.metrics.exposition import Family, render_samples
from exporter.sources.common import (
    CHIP_LEVEL_RANK,
    NODE_STATUSES,
    SWITCH_STATUSES,
    Problem,
    chip_id,
    most_severe_rank,
)
from exporter.sources.records import (
    CHIP_LIST_STATUSES,
    NodeChips,
    NodeStatusRecord,
    NodeView,
    SwitchState,
)
from exporter.sources.usable import UsableChips

Blocks = dict[Family, bytes]
Samples = Iterator[tuple[Sequence[str], float]]

_MANUAL_RANK = CHIP_LEVEL_RANK["ManuallySeparateNPU"]


def add_block(blocks: Blocks, family: Family, samples: Iterable[tuple[Sequence[str], float]]) -> None:
    rendered = render_samples(family, samples)
    if rendered:
        blocks[family] = blocks.get(family, b"") + rendered


def render_node_view(source: str, view: NodeView) -> Blocks:
    blocks: Blocks = {}
    if view.chips is not None:
        render_chips(blocks, source, view.chips)
    if view.superpod is not None:
        sp = view.superpod
        rack = "" if sp.rack_id is None else str(sp.rack_id)
        add_block(
            blocks,
            F.NODE_SUPERPOD_INFO,
            [((source, sp.node, str(sp.super_pod_id), str(sp.server_index), rack), 1)],
        )
    if view.switch is not None:
        render_switch(blocks, source, view.switch)
    if view.update_time is not None:
        add_block(blocks, F.SOURCE_UPDATE_TIMESTAMP, [((source, view.node), view.update_time)])
    return blocks


def render_chips(blocks: Blocks, source: str, chips: NodeChips) -> None:
    node = chips.node
    add_block(blocks, F.NPU_CHIP_FAULT_LEVEL, _chip_levels(source, chips))
    add_block(
        blocks,
        F.NPU_CHIP_FAULT,
        (((source, node, f.npu, chip_id(f.npu), f.fault_type, f.fault_handling), 1) for f in chips.faults),
    )
    add_block(blocks, F.NPU_CHIP_FAULT_CODE, _chip_codes(source, chips))
    add_block(blocks, F.NPU_CHIP_STATUS, _chip_statuses(source, chips))
    add_block(
        blocks,
        F.NODE_NPU_CHIPS,
        (
            ((source, node, res.resource, status), len(res.lists.get(status, ())))
            for res in chips.resources
            for status in CHIP_LIST_STATUSES
        ),
    )


def _chip_levels(source: str, chips: NodeChips) -> Samples:
    levels: dict[str, list[str]] = {}
    for res in chips.resources:
        for names in res.lists.values():
            for npu in names:
                levels.setdefault(npu, [])
    for fault in chips.faults:
        levels.setdefault(fault.npu, []).append(fault.fault_handling)
    for npu in chips.manually_separated:
        levels.setdefault(npu, [])
    manual = set(chips.manually_separated)
    for npu in sorted(levels, key=_chip_sort_key):
        rank = most_severe_rank(levels[npu])
        if npu in manual:
            rank = max(rank, _MANUAL_RANK)
        yield (source, chips.node, npu, chip_id(npu)), rank


def _chip_codes(source: str, chips: NodeChips) -> Samples:
    for fault in chips.faults:
        ident = chip_id(fault.npu)
        for code in fault.codes:
            yield (
                (source, chips.node, fault.npu, ident, fault.fault_type, code.code, code.level),
                code.raised_at,
            )


def _chip_statuses(source: str, chips: NodeChips) -> Samples:
    per_chip: dict[str, dict[str, None]] = {}
    for res in chips.resources:
        for status in CHIP_LIST_STATUSES[1:]:
            for npu in res.lists.get(status, ()):
                per_chip.setdefault(npu, {})[status] = None
    for npu in chips.manually_separated:
        per_chip.setdefault(npu, {})["manually_separated"] = None
    for npu in sorted(per_chip, key=_chip_sort_key):
        for status in per_chip[npu]:
            yield (source, chips.node, npu, chip_id(npu), status), 1


def _chip_sort_key(npu: str) -> tuple[str, int, str]:
    ident = chip_id(npu)
    return (npu.rsplit("-", 1)[0], int(ident) if ident else -1, npu)


def status_set(source: str, node: str, current: str, known: tuple[str, ...]) -> Samples:
    """A 0/1 set over the known values, plus the current one if the producer wrote something new."""
    statuses = known if current in known else (*known, current)
    for status in statuses:
        yield (source, node, status), 1 if status == current else 0


def render_switch(blocks: Blocks, source: str, switch: SwitchState) -> None:
    node = switch.node
    if switch.node_status:
        add_block(blocks, F.SWITCH_STATUS, status_set(source, node, switch.node_status, SWITCH_STATUSES))
    if switch.fault_level:
        add_block(blocks, F.SWITCH_FAULT_LEVEL, [((source, node, switch.fault_level), 1)])
    add_block(
        blocks,
        F.SWITCH_FAULT_CODE,
        (
            ((source, node, f.fault_code, f.switch_chip_id, f.switch_port_id, f.fault_level), f.raised_at)
            for f in switch.faults
        ),
    )


def render_problems(blocks: Blocks, namespace: str, configmap: str, problems: Iterable[Problem]) -> None:
    """`mindx_configmap_invalid`: one series per (key, reason) while the object's current version fails."""
    seen = sorted({(p.key, p.reason) for p in problems})
    add_block(blocks, F.CONFIGMAP_INVALID, (((namespace, configmap, key, reason), 1) for key, reason in seen))


def render_node_status(source: str, record: NodeStatusRecord, with_update_time: bool = True) -> Blocks:
    """NodeD's ConfigMap, or one node of ClusterD's `cluster-info-node-cm`."""
    blocks: Blocks = {}
    node = record.node
    if record.status:
        add_block(blocks, F.NODE_STATUS, status_set(source, node, record.status, NODE_STATUSES))
    add_block(
        blocks,
        F.NODE_FAULT_CODE,
        (
            ((source, node, dev.device_type, dev.device_id, code, dev.fault_level), 1)
            for dev in record.devices
            for code in dev.fault_codes
        ),
    )
    if with_update_time and record.update_time is not None:
        add_block(blocks, F.SOURCE_UPDATE_TIMESTAMP, [((source, node), record.update_time)])
    return blocks


def render_health_state(blocks: Blocks, source: str, node: str, state: str) -> None:
    if state:
        add_block(blocks, F.NODE_HEALTH_STATE, [((source, node, state), 1)])


def render_job_retries(namespace: str, podgroup: str, job_uid: str, times: int) -> Blocks:
    blocks: Blocks = {}
    add_block(blocks, F.JOB_REMAINING_RETRIES, [((namespace, podgroup, job_uid), times)])
    return blocks


def render_event_counts(counts: Mapping[tuple[str, str, str], int]) -> Blocks:
    """`mindx_npu_fault_events_total` for one node: (node, reason, fault_level) → count."""
    blocks: Blocks = {}
    add_block(blocks, F.NPU_FAULT_EVENTS, ((key, count) for key, count in sorted(counts.items())))
    return blocks


def render_usable(source: str, usable: UsableChips) -> Blocks:
    blocks: Blocks = {}
    add_block(
        blocks,
        F.NODE_NPU_USABLE_CHIPS,
        (((source, usable.node, resource), len(chips)) for resource, chips in sorted(usable.usable.items())),
    )
    return blocks
