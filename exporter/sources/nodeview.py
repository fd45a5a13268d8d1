"""Families of a producer's view of one node (`NodeView`): its chips, super-pod placement, switch
and update time. The device plugin, ClusterD's device shards and Volcano's fault-node all describe
nodes this way, so they share this table; each fills the `source` label with its own name."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from exporter.metrics.exposition import Family
from exporter.sources.base import Metric, Sample
from exporter.sources.common import CHIP_LEVEL_RANK, SWITCH_STATUSES, chip_id, most_severe_rank
from exporter.sources.records import CHIP_LIST_STATUSES, NodeChips, NodeView, SwitchState

CHIP = ("source", "node", "npu", "id")

NPU_CHIP_FAULT_LEVEL = Family(
    "mindx_npu_chip_fault_level",
    "gauge",
    "Rank of the chip's most severe current fault_handling: 0 NormalNPU/NormalNetwork or none, "
    "1 NotHandleFault, 2 SubHealthFault, 3 RestartRequest, 4 RestartBusiness, 5 FreeRestartNPU, "
    "6 RestartNPU, 7 PreSeparateNPU, 8 SeparateNPU, 9 ManuallySeparateNPU; "
    "-1 when only levels unknown to the exporter are present.",
    CHIP,
    order=100,
)
NPU_CHIP_FAULT = Family(
    "mindx_npu_chip_fault",
    "gauge",
    "1 for each current fault entry of a chip (active only).",
    (*CHIP, "fault_type", "fault_handling"),
    order=110,
)
NPU_CHIP_FAULT_CODE = Family(
    "mindx_npu_chip_fault_code",
    "gauge",
    "Unix seconds when the fault code was raised (0 if the producer gave no time), active only.",
    (*CHIP, "fault_type", "fault_code", "fault_level"),
    order=120,
)
NPU_CHIP_STATUS = Family(
    "mindx_npu_chip_status",
    "gauge",
    "1 for each non-available chip list the chip is in (active only).",
    (*CHIP, "status"),
    order=130,
)
NODE_NPU_CHIPS = Family(
    "mindx_node_npu_chips",
    "gauge",
    "Number of chips in each of the producer's lists per node and resource name.",
    ("source", "node", "resource", "status"),
    order=140,
)
NODE_SUPERPOD_INFO = Family(
    "mindx_node_superpod_info",
    "gauge",
    "Super-pod placement of a node (1); rack_id is empty where the producer gives none.",
    ("source", "node", "super_pod_id", "server_index", "rack_id"),
    order=300,
)
SWITCH_STATUS = Family(
    "mindx_switch_status",
    "gauge",
    "Interconnect switch status of a node as a 0/1 set over Healthy, SubHealthy, PreSeparate, UnHealthy.",
    ("source", "node", "status"),
    order=400,
)
SWITCH_FAULT_LEVEL = Family(
    "mindx_switch_fault_level",
    "gauge",
    "1 while the node's switch reports a non-empty FaultLevel (active only).",
    ("source", "node", "fault_level"),
    order=410,
)
SWITCH_FAULT_CODE = Family(
    "mindx_switch_fault_code",
    "gauge",
    "Unix seconds when the switch fault was raised, active only.",
    ("source", "node", "fault_code", "switch_chip_id", "switch_port_id", "fault_level"),
    order=420,
)
SOURCE_UPDATE_TIMESTAMP = Family(
    "mindx_source_update_timestamp_seconds",
    "gauge",
    "The producer's own update time for the node, in unix seconds.",
    ("source", "node"),
    order=900,
)

_MANUAL_RANK = CHIP_LEVEL_RANK["ManuallySeparateNPU"]


# --- chips --------------------------------------------------------------------------------------


def chip_levels(source: str, chips: NodeChips) -> Iterator[Sample]:
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


def chip_faults(source: str, chips: NodeChips) -> Iterator[Sample]:
    for f in chips.faults:
        yield (source, chips.node, f.npu, chip_id(f.npu), f.fault_type, f.fault_handling), 1


def chip_codes(source: str, chips: NodeChips) -> Iterator[Sample]:
    for fault in chips.faults:
        ident = chip_id(fault.npu)
        for code in fault.codes:
            yield (
                (source, chips.node, fault.npu, ident, fault.fault_type, code.code, code.level),
                code.raised_at,
            )


def chip_statuses(source: str, chips: NodeChips) -> Iterator[Sample]:
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


def chip_list_sizes(source: str, chips: NodeChips) -> Iterator[Sample]:
    for res in chips.resources:
        for status in CHIP_LIST_STATUSES:
            yield (source, chips.node, res.resource, status), len(res.lists.get(status, ()))


def _chip_sort_key(npu: str) -> tuple[str, int, str]:
    ident = chip_id(npu)
    return (npu.rsplit("-", 1)[0], int(ident) if ident else -1, npu)


# --- switch -------------------------------------------------------------------------------------


def status_set(source: str, node: str, current: str, known: tuple[str, ...]) -> Iterator[Sample]:
    """A 0/1 set over the known values, plus the current one if the producer wrote something new."""
    statuses = known if current in known else (*known, current)
    for status in statuses:
        yield (source, node, status), 1 if status == current else 0


def switch_status(source: str, switch: SwitchState) -> Iterator[Sample]:
    if switch.node_status:
        yield from status_set(source, switch.node, switch.node_status, SWITCH_STATUSES)


def switch_fault_level(source: str, switch: SwitchState) -> Iterator[Sample]:
    if switch.fault_level:
        yield (source, switch.node, switch.fault_level), 1


def switch_fault_codes(source: str, switch: SwitchState) -> Iterator[Sample]:
    for f in switch.faults:
        yield (
            (source, switch.node, f.fault_code, f.switch_chip_id, f.switch_port_id, f.fault_level),
            f.raised_at,
        )


SWITCH_METRICS: tuple[Metric[SwitchState], ...] = (
    Metric(SWITCH_STATUS, switch_status),
    Metric(SWITCH_FAULT_LEVEL, switch_fault_level),
    Metric(SWITCH_FAULT_CODE, switch_fault_codes),
)


# --- the whole view -----------------------------------------------------------------------------


def _on_chips(
    samples: Callable[[str, NodeChips], Iterable[Sample]],
) -> Callable[[str, NodeView], Iterable[Sample]]:
    def of_view(source: str, view: NodeView) -> Iterable[Sample]:
        return samples(source, view.chips) if view.chips is not None else ()

    return of_view


def _on_switch(
    samples: Callable[[str, SwitchState], Iterable[Sample]],
) -> Callable[[str, NodeView], Iterable[Sample]]:
    def of_view(source: str, view: NodeView) -> Iterable[Sample]:
        return samples(source, view.switch) if view.switch is not None else ()

    return of_view


def superpod_info(source: str, view: NodeView) -> Iterator[Sample]:
    sp = view.superpod
    if sp is not None:
        rack = "" if sp.rack_id is None else str(sp.rack_id)
        yield (source, sp.node, str(sp.super_pod_id), str(sp.server_index), rack), 1


def update_time(source: str, view: NodeView) -> Iterator[Sample]:
    if view.update_time is not None:
        yield (source, view.node), view.update_time


NODE_VIEW_METRICS: tuple[Metric[NodeView], ...] = (
    Metric(NPU_CHIP_FAULT_LEVEL, _on_chips(chip_levels)),
    Metric(NPU_CHIP_FAULT, _on_chips(chip_faults)),
    Metric(NPU_CHIP_FAULT_CODE, _on_chips(chip_codes)),
    Metric(NPU_CHIP_STATUS, _on_chips(chip_statuses)),
    Metric(NODE_NPU_CHIPS, _on_chips(chip_list_sizes)),
    Metric(NODE_SUPERPOD_INFO, superpod_info),
    *(Metric(m.family, _on_switch(m.samples)) for m in SWITCH_METRICS),
    Metric(SOURCE_UPDATE_TIMESTAMP, update_time),
)
