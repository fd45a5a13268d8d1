"""S4-S6: ClusterD's `mindx-dl/cluster-info-*` ConfigMaps (spec §5-§8), parsed.

Each parser handles one ConfigMap. Merging the device/switch shards per node (newest UpdateTime
wins, stale shards after a ClusterD restart) needs state across objects and is done by the caller,
which is why the entries carry the raw `UpdateTime`.
"""

from __future__ import annotations

import enum
import hashlib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, TypeVar

import orjson

from exporter.sources import deviceplugin, noded
from exporter.sources.base import Parsed
from exporter.sources.common import (
    REASON_SCHEMA,
    Problem,
    Problems,
    as_int,
    as_str,
    configmap_data,
    decode_json,
    object_name,
    unix_seconds,
)
from exporter.sources.limits import DEFAULT_LIMITS, Limits
from exporter.sources.records import NodeChips, NodeStatusRecord, NodeView, SuperPodInfo, SwitchState
from exporter.steps import Steps, run_steps

NAMESPACE = "mindx-dl"
NODE_CM_NAME = "cluster-info-node-cm"
DEVICE_PREFIX = "cluster-info-device-"
SWITCH_PREFIX = "cluster-info-switch-"

# Keys of the per-node entries inside each map (the names of the producers' ConfigMaps).
NODE_KEY_PREFIX = "mindx-dl-nodeinfo-"
DEVICE_KEY_PREFIX = "mindx-dl-deviceinfo-"
SWITCH_KEY_PREFIX = "mindx-dl-switchinfo-"

MANUALLY_SEPARATED = "ManuallySeparateNPU"
A5_RESOURCE = "huawei.com/npu"

_SHARD_NAME = re.compile(r"^cluster-info-(device|switch)-(0|[1-9][0-9]{0,8})$")


@dataclass(frozen=True, slots=True)
class ClusterDeviceEntry:
    view: NodeView
    update_time_raw: int  # DeviceInfo.UpdateTime as written (seconds), 0 when missing; for shard merging


@dataclass(frozen=True, slots=True)
class ClusterSwitchEntry:
    state: SwitchState
    update_time: float | None  # unix seconds; None when 0/missing (A5 / no switch manager)
    update_time_raw: int  # as written, 0 when missing; for shard merging


class Kind(enum.Enum):
    """Which of ClusterD's maps a ConfigMap holds."""

    NODE = "node"  # cluster-info-node-cm
    DEVICE = "device"  # cluster-info-device-<m>
    SWITCH = "switch"  # cluster-info-switch-<m>


@dataclass(frozen=True, slots=True)
class MapName:
    kind: Kind
    index: int  # the shard number; 0 for cluster-info-node-cm


def classify(name: str) -> MapName | None:
    """The one place that tells ClusterD's ConfigMaps apart by name; None for any other name."""
    if name == NODE_CM_NAME:
        return MapName(Kind.NODE, 0)
    match = _SHARD_NAME.match(name)
    if match is None:
        return None
    return MapName(Kind.DEVICE if match.group(1) == "device" else Kind.SWITCH, int(match.group(2)))


def shard_index(name: str) -> int | None:
    """`cluster-info-device-3` / `cluster-info-switch-3` → 3; None for any other name."""
    classified = classify(name)
    return classified.index if classified is not None and classified.kind is not Kind.NODE else None


def is_device_shard(name: str) -> bool:
    classified = classify(name)
    return classified is not None and classified.kind is Kind.DEVICE


def is_switch_shard(name: str) -> bool:
    classified = classify(name)
    return classified is not None and classified.kind is Kind.SWITCH


# --- S4 cluster-info-node-cm ------------------------------------------------------------------


# A shard ConfigMap holds a few thousand nodes and takes tens of milliseconds to parse: it is
# parsed in steps (exporter.steps).
ENTRIES_PER_STEP = 256  # about a millisecond of parsing


# Which nodes' entries to parse (a shard parses only the nodes it needs); None: every node.
NodeFilter = Callable[[str], bool] | None


def parse_node_cm(
    cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS, keep: NodeFilter = None
) -> Parsed[NodeStatusRecord]:
    """`cluster-info-node-cm`: ClusterD's copy of every NodeD CM (NodeStatus possibly rewritten,
    spec §5). `UpdateTime` is milliseconds, absent in older ClusterD output. With `keep`, only
    the nodes it accepts are parsed."""
    return run_steps(parse_node_cm_steps(cm, limits, keep))


def parse_node_cm_steps(
    cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS, keep: NodeFilter = None
) -> Steps[Parsed[NodeStatusRecord]]:
    """`parse_node_cm` in steps (see `Steps`): the one map holds every node of the cluster."""
    problems = Problems()
    _, name = object_name(cm)
    if name != NODE_CM_NAME:
        return Parsed(None, problems)
    records: dict[str, NodeStatusRecord] = {}
    for index, (key, entry) in enumerate(_entries(configmap_data(cm), name, problems), 1):
        if index % ENTRIES_PER_STEP == 0:
            yield
        node = _node_of_entry(key, entry, NODE_KEY_PREFIX, name, problems)
        if node is None or (keep is not None and not keep(node)):
            continue
        record = NodeStatusRecord(
            node=node,
            status=noded.parse_node_status(entry.get("NodeStatus"), name, problems),
            devices=noded.parse_fault_dev_list(entry.get("FaultDevList"), name, problems, limits),
            update_time=_update_time(entry.get("UpdateTime"), name, problems)[0],
        )
        seen = records.get(node)
        if seen is None or (record.update_time or 0) >= (seen.update_time or 0):
            records[node] = record
    return Parsed(records, problems)


# --- S5 cluster-info-device-<m> ----------------------------------------------------------------

# node → (a digest of the entry as decoded, its parse, the problems it had): lets a caller skip
# re-parsing the entries a shard rewrite did not change (ClusterD rewrites every shard every ~5 s).
# A digest, not the decoded entry: it is an eighth of the memory, and one compare costs 1 µs.
P = TypeVar("P")
# The parse is None for an entry parsed only for its problems (`check_all`).
EntryMemo = dict[str, tuple[bytes, P | None, tuple[Problem, ...]]]
DeviceEntryMemo = EntryMemo["ClusterDeviceEntry"]
SwitchEntryMemo = EntryMemo["ClusterSwitchEntry"]
Shard = TypeVar("Shard", "ClusterDeviceEntry", "ClusterSwitchEntry")


def _digest(entry: Mapping[str, Any]) -> bytes:
    """128 bits of the entry's JSON: equal for equal entries (a decoded entry re-encodes in its
    written key order, which Go keeps fixed), and a collision is out of reach."""
    return hashlib.blake2b(orjson.dumps(entry), digest_size=16).digest()


def _memoized(
    node: str,
    entry: dict[str, Any],
    key: str,
    memo: EntryMemo[P] | None,
    problems: Problems,
    parse: Callable[[str, Mapping[str, Any], str, Problems], P],
    keep: bool = True,
) -> P | None:
    """`parse` the entry, or reuse the remembered parse when the decoded entry is unchanged.
    Without `keep`, only the entry's problems count (and are remembered); None."""
    if memo is None:
        parsed = parse(node, entry, key, problems)
        return parsed if keep else None
    digest = _digest(entry)
    remembered = memo.get(node)
    if remembered is not None and remembered[0] == digest and (remembered[1] is not None or not keep):
        problems.items.extend(remembered[2])
        return remembered[1] if keep else None
    entry_problems = Problems()
    parsed = parse(node, entry, key, entry_problems)
    problems.items.extend(entry_problems.items)
    memo[node] = (digest, parsed if keep else None, tuple(entry_problems.items))
    return parsed if keep else None


def parse_device_shard(
    cm: Mapping[str, Any],
    memo: DeviceEntryMemo | None = None,
    limits: Limits = DEFAULT_LIMITS,
    keep: NodeFilter = None,
) -> Parsed[ClusterDeviceEntry]:
    """One `cluster-info-device-<m>` shard: ClusterD's processed copy of every DP DeviceInfo.
    With `memo`, entries equal to the remembered ones are reused, and the memo is updated; with
    `keep`, only the nodes it accepts are parsed."""
    return run_steps(parse_device_shard_steps(cm, memo, limits, keep))


def parse_device_shard_steps(
    cm: Mapping[str, Any],
    memo: DeviceEntryMemo | None = None,
    limits: Limits = DEFAULT_LIMITS,
    keep: NodeFilter = None,
    faults_only: NodeFilter = None,
) -> Steps[Parsed[ClusterDeviceEntry]]:
    """`parse_device_shard` in steps (see `Steps`). The entries of nodes `faults_only` accepts
    keep only their chips' faults (`faults_only_entry`)."""
    problems = Problems()
    _, name = object_name(cm)
    if not is_device_shard(name):
        return Parsed(None, problems)
    parse = partial(_device_entry, limits=limits, faults_only=faults_only)
    entries = yield from _shard_entries(cm, name, DEVICE_KEY_PREFIX, parse, memo, keep, problems)
    return Parsed(entries, problems)


def faults_only_entry(entry: ClusterDeviceEntry) -> ClusterDeviceEntry:
    """The entry with only what fault history reads (its chips' faults): what shard 0 keeps of
    other shards' nodes, for the cluster-wide fault-duration histogram."""
    chips = entry.view.chips
    view = NodeView(
        node=entry.view.node,
        chips=NodeChips(node=chips.node, resources=(), faults=chips.faults) if chips is not None else None,
        update_time=entry.view.update_time,
    )
    return ClusterDeviceEntry(view=view, update_time_raw=entry.update_time_raw)


def _device_entry(
    node: str,
    entry: Mapping[str, Any],
    key: str,
    problems: Problems,
    limits: Limits = DEFAULT_LIMITS,
    faults_only: NodeFilter = None,
) -> ClusterDeviceEntry:
    parsed = _full_device_entry(node, entry, key, problems, limits)
    return faults_only_entry(parsed) if faults_only is not None and faults_only(node) else parsed


def _full_device_entry(
    node: str, entry: Mapping[str, Any], key: str, problems: Problems, limits: Limits
) -> ClusterDeviceEntry:
    view = NodeView(node=node)
    device_list = entry.get("DeviceList")
    if device_list is None:
        device_list = {}  # Go writes a nil map as null: ClusterD knows the node but no chips
    if isinstance(device_list, dict):
        view.chips = _chips(node, device_list, key, problems, limits)
    else:
        problems.add(key, REASON_SCHEMA, f"{node}: DeviceList is not an object")
    update_time, raw = _update_time(entry.get("UpdateTime"), key, problems)
    view.update_time = update_time
    view.superpod = _superpod(node, entry, view.chips)
    return ClusterDeviceEntry(view=view, update_time_raw=raw)


def _chips(
    node: str, device_list: Mapping[str, Any], key: str, problems: Problems, limits: Limits
) -> NodeChips:
    """ClusterD has no ManuallySeparateNPU key: the manually separated chips are those with a fault
    entry whose handling is ManuallySeparateNPU (ClusterD's manual-fault processor adds them, §6.6)."""
    chips = deviceplugin.parse_device_list(node, device_list, (), key, problems, limits)
    manual = tuple(dict.fromkeys(f.npu for f in chips.faults if f.fault_handling == MANUALLY_SEPARATED))
    if manual:
        # Same input again, only to assign the manual chips to their resources; its problems were
        # already collected by the first pass.
        chips = deviceplugin.parse_device_list(node, device_list, manual, key, Problems(), limits)
    return chips


def _superpod(node: str, entry: Mapping[str, Any], chips: NodeChips | None) -> SuperPodInfo | None:
    """SuperPodID/ServerIndex as in the DP CM. RackID rule: ClusterD copies DP's optional
    `RackID *int32` into a plain int32 field, so every node without one (all non-A5 nodes, spec §6)
    gets `RackID: 0`. A positive RackID is always real; 0 counts only on an A5 node (resource
    `huawei.com/npu`, the only card type whose DP writes RackID, §2.2); negative means absent."""
    info = deviceplugin._superpod(node, entry)
    if info is None or info.rack_id != 0:
        return info
    is_a5 = chips is not None and any(res.resource == A5_RESOURCE for res in chips.resources)
    return info if is_a5 else replace(info, rack_id=None)


# --- S6 cluster-info-switch-<m> ----------------------------------------------------------------


def parse_switch_shard(
    cm: Mapping[str, Any], memo: SwitchEntryMemo | None = None, keep: NodeFilter = None
) -> Parsed[ClusterSwitchEntry]:
    """One `cluster-info-switch-<m>` shard: per node the DP `SwitchInfoCfg` struct plus `CmName`.
    With `memo`, entries equal to the remembered ones are reused, and the memo is updated; with
    `keep`, only the nodes it accepts are parsed."""
    return run_steps(parse_switch_shard_steps(cm, memo, keep))


def parse_switch_shard_steps(
    cm: Mapping[str, Any],
    memo: SwitchEntryMemo | None = None,
    keep: NodeFilter = None,
    check_all: bool = False,
) -> Steps[Parsed[ClusterSwitchEntry]]:
    """`parse_switch_shard` in steps (see `Steps`); with `check_all`, the entries `keep` rejects
    are parsed for their problems too."""
    problems = Problems()
    _, name = object_name(cm)
    if not is_switch_shard(name):
        return Parsed(None, problems)
    entries = yield from _shard_entries(
        cm, name, SWITCH_KEY_PREFIX, _switch_entry, memo, keep, problems, check_all
    )
    return Parsed(entries, problems)


# --- shared ------------------------------------------------------------------------------------


def _shard_entries(
    cm: Mapping[str, Any],
    name: str,
    prefix: str,
    parse: Callable[[str, Mapping[str, Any], str, Problems], Shard],
    memo: EntryMemo[Shard] | None,
    keep: NodeFilter,
    problems: Problems,
    check_all: bool = False,
) -> Steps[dict[str, Shard]]:
    """Every (kept) node's entry of one shard; a node written twice keeps its newest copy. With
    `check_all`, the entries not kept are parsed for their problems too. A step ends every
    ENTRIES_PER_STEP entries."""
    entries: dict[str, Shard] = {}
    for index, (key, entry) in enumerate(_entries(configmap_data(cm), name, problems), 1):
        if index % ENTRIES_PER_STEP == 0:
            yield
        node = _node_of_entry(key, entry, prefix, name, problems)
        if node is None:
            continue
        kept = keep is None or keep(node)
        if not kept and not check_all:
            continue
        parsed = _memoized(node, entry, name, memo, problems, parse, kept)
        if parsed is None:
            continue
        seen = entries.get(node)
        if seen is None or parsed.update_time_raw >= seen.update_time_raw:
            entries[node] = parsed
    return entries


def _entries(data: Mapping[str, Any], key: str, problems: Problems) -> list[tuple[str, dict[str, Any]]]:
    """The outer map stored under the data key named like the CM: `""` (surplus shard, no NodeD
    CM) and `null`/`{}`/`[]` are empty; non-object entries are flagged and skipped."""
    decoded = decode_json(data, key, problems, required=True, blank_is_empty=True)
    entries = []
    for entry_key, entry in (decoded or {}).items():
        if not isinstance(entry, dict):
            problems.add(key, REASON_SCHEMA, f"entry {entry_key!r} is not an object")
            continue
        entries.append((entry_key, entry))
    return entries


def _switch_entry(node: str, entry: Mapping[str, Any], key: str, problems: Problems) -> ClusterSwitchEntry:
    state = deviceplugin.parse_switch_info(node, entry, key, problems)
    update_time, raw = _update_time(entry.get("UpdateTime"), key, problems)
    return ClusterSwitchEntry(state=state, update_time=update_time, update_time_raw=raw)


def _node_of_entry(
    entry_key: str, entry: Mapping[str, Any], prefix: str, key: str, problems: Problems
) -> str | None:
    """Node name from the map key `<prefix><node>`, else from `CmName`; else flag and skip."""
    # Interned: a node's name is kept by every map, memo and record that holds the node, once.
    if entry_key.startswith(prefix) and (node := entry_key[len(prefix) :].strip()):
        return sys.intern(node)  # the usual case, first
    for candidate in (entry_key, as_str(entry.get("CmName"))):
        node = candidate[len(prefix) :].strip() if candidate.startswith(prefix) else ""
        if node:
            return sys.intern(node)
    problems.add(key, REASON_SCHEMA, f"entry {entry_key!r}: neither key nor CmName starts with {prefix!r}")
    return None


def _update_time(value: object, key: str, problems: Problems) -> tuple[float | None, int]:
    """(unix seconds or None when missing/0, raw integer or 0). The unit differs per map (ms in the
    node CM, s in the shards); unix_seconds decides by magnitude."""
    if value is None:
        return None, 0
    raw = as_int(value)
    if raw is None:
        problems.add(key, REASON_SCHEMA, "UpdateTime is not an integer")
        return None, 0
    return unix_seconds(raw) or None, raw
