"""Kubernetes objects exactly as the MindX DL producers write them, built from ``model`` state.

Every function follows one section of docs/mindx-sources.md and produces Go ``encoding/json``
bytes: struct fields in declaration order, map keys byte-sorted, HTML characters escaped, JSON
nested inside JSON strings where the producer double-encodes. ``go_dumps`` serializes with orjson
and falls back to the project's reference encoder (``go_json_dumps``) whenever the output could
differ from Go's, so the fast path never changes a byte.

The device-plugin, NodeD and Event builders are pure functions of one node. ClusterD and Volcano
keep a little state of their own (shard counts, the random order they draw at every report,
per-node serialized entries), so they are classes; their randomness comes from their own seeded
``random.Random``, independent of the model's.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

import orjson

from exporter.simulator.model import (
    MANUAL,
    NORMAL,
    ClusterModel,
    FaultCodeState,
    FaultTransition,
    Node,
)
from exporter.sources.common import CHIP_LEVEL_RANK, go_json_dumps, go_json_string, sha256_hex
from exporter.steps import Steps, run_steps

__all__ = [
    "CLUSTERD_NAMESPACE",
    "DESCRIPTION",
    "DEVICEPLUGIN_NAMESPACE",
    "NODED_NAMESPACE",
    "SHARD_LIMIT",
    "VOLCANO_NAME",
    "VOLCANO_NAMESPACE",
    "ClusterDProducer",
    "VolcanoProducer",
    "clusterd_chip_lists",
    "clusterd_device_value",
    "clusterd_fault_entries",
    "clusterd_node_status",
    "clusterd_switch_status",
    "clusterd_switch_value",
    "deviceplugin_configmap",
    "deviceplugin_name",
    "event_name",
    "fault_event",
    "go_dumps",
    "noded_configmap",
    "noded_name",
    "split_by_size",
    "volcano_health_state",
]

DEVICEPLUGIN_NAMESPACE = "kube-system"
DEVICEPLUGIN_PREFIX = "mindx-dl-deviceinfo-"
NODED_NAMESPACE = "mindx-dl"
NODED_PREFIX = "mindx-dl-nodeinfo-"
SWITCH_PREFIX = "mindx-dl-switchinfo-"
CLUSTERD_NAMESPACE = "mindx-dl"
CLUSTERD_NODE_CM = "cluster-info-node-cm"
CLUSTERD_DEVICE_PREFIX = "cluster-info-device-"
CLUSTERD_SWITCH_PREFIX = "cluster-info-switch-"
VOLCANO_NAMESPACE = "volcano-system"
VOLCANO_NAME = "vcjob-fault-npu-cm"
SHARD_LIMIT = 819_200  # ClusterD splits its maps above 800 KiB of JSON (spec §8)

CIM_LABELS = {"mx-consumer-cim": "true"}
VOLCANO_LABELS = {"mx-consumer-volcano": "true"}
DESCRIPTION = (
    "The field[xxx.com/xxx] is sunset. Volcano has the ability to maintain the usage status of chips on "
    "its own, and can temporarily use this field by configuring the Volcano parameter "
    "'self-maintain-available-card'"
)
# DP's SwitchInfoCfg when no switch-fault manager is available (A5): the Go zero struct (spec §2.5).
ZERO_SWITCH_INFO = (
    '{"FaultCode":null,"FaultLevel":"","UpdateTime":0,"NodeStatus":"","FaultTimeAndLevelMap":null}'
)
# The producers' containers run in China Standard Time (NodeD updateTime, Event alarmRaisedTime).
PRODUCER_TZ = timezone(timedelta(hours=8))

# Anything in orjson's output that Go would write differently: HTML escapes, U+2028/9, control escapes.
_NOT_GO = re.compile(rb"[<>&]|\\[bfu]|\xe2\x80[\xa8\xa9]")


def go_dumps(value: Any) -> str:
    """``json.Marshal`` of a value built from dicts (in Go field / sorted-key order), lists, str, int."""
    raw = orjson.dumps(value)
    if _NOT_GO.search(raw):
        return go_json_dumps(value)
    return raw.decode()


def _configmap(
    namespace: str, name: str, data: dict[str, str], labels: dict[str, str] | None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = dict(labels)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


# --- S1: device plugin ConfigMap (spec §2) -----------------------------------------------------------


def deviceplugin_name(node: Node) -> str:
    return DEVICEPLUGIN_PREFIX + node.name


def _code_map(codes: list[FaultCodeState]) -> dict[str, dict[str, Any]]:
    return {
        c.code: {"fault_time": c.time_ms, "fault_level": c.level} for c in sorted(codes, key=lambda c: c.code)
    }


def _device_fault(npu: str, fault_type: str, handling: str, codes: list[FaultCodeState]) -> dict[str, Any]:
    """DeviceFault (spec §2.4): the three level fields are identical."""
    return {
        "fault_type": fault_type,
        "npu_name": npu,
        "large_model_fault_level": handling,
        "fault_level": handling,
        "fault_handling": handling,
        "fault_code": ",".join(c.code for c in codes),
        "fault_time_and_level_map": _code_map(codes),
    }


def deviceplugin_fault_list(node: Node) -> str:
    entries = node.fault_entries()
    if not entries:
        return "[]"
    return go_dumps([_device_fault(*entry) for entry in entries])


def _device_list(
    node: Node, lists: dict[str, tuple[str, ...]], fault_list: str, all_keys: bool
) -> dict[str, str]:
    """DeviceList in sorted key order: base, -Fault, -NetworkUnhealthy, -Recovering, -Unhealthy."""
    res = node.kind.resource
    device_list = {res: ",".join(lists["available"]), res + "-Fault": fault_list}
    if all_keys or node.kind.network:
        device_list[res + "-NetworkUnhealthy"] = ",".join(lists["network_unhealthy"])
        device_list[res + "-Recovering"] = ",".join(lists["recovering"])
    device_list[res + "-Unhealthy"] = ",".join(lists["unhealthy"])
    return device_list


def device_info_cfg(node: Node, update_time: int) -> str:
    """`DeviceInfoCfg` (spec §2.2): CheckCode = sha256 of the serialized inner DeviceInfo (§2.7)."""
    device_list = _device_list(node, node.chip_lists(), deviceplugin_fault_list(node), all_keys=False)
    inner = '{"DeviceList":' + go_dumps(device_list) + ',"UpdateTime":' + str(update_time) + "}"
    rack = f',"RackID":{node.rack_id}' if node.kind.rack and node.rack_id is not None else ""
    return (
        f'{{"DeviceInfo":{inner},"SuperPodID":{node.super_pod_id},"ServerIndex":{node.server_index},'
        f'"CheckCode":"{sha256_hex(inner)}"{rack}}}'
    )


def _switch_elements(node: Node) -> list[str]:
    """`FaultCode`: each element a SimpleSwitchFaultInfo serialized to a string (spec §2.5)."""
    return [
        go_dumps(
            {
                "EventType": f.event_type,
                "AssembledFaultCode": f.code,
                "PeerPortDevice": f.peer_device,
                "PeerPortId": f.peer_port,
                "SwitchChipId": f.chip_id,
                "SwitchPortId": f.port_id,
                "Severity": f.severity,
                "Assertion": 1,
                "AlarmRaisedTime": f.time_ms,
            }
        )
        for f in node.switch_faults.values()
    ]


def _switch_time_map(node: Node) -> dict[str, dict[str, Any]]:
    return {
        key: {"fault_time": f.time_ms, "fault_level": f.level}
        for key, f in sorted(node.switch_faults.items())
    }


def switch_info_cfg(node: Node, update_time: int) -> str | None:
    """`SwitchInfoCfg`: A3 only with faults, A5 the zero struct, other kinds no key (spec §2.5)."""
    if node.kind.switch == "zero":
        return ZERO_SWITCH_INFO
    if node.kind.switch != "faults":
        return None
    return go_dumps(
        {
            "FaultCode": _switch_elements(node),
            "FaultLevel": node.switch_level(),
            "UpdateTime": update_time,
            "NodeStatus": node.switch_status(),
            "FaultTimeAndLevelMap": _switch_time_map(node),
        }
    )


def upgrade_fault_reason(node: Node) -> str:
    if not node.upgrades:
        return "{}"
    names = node.kind.names
    reasons = {
        names[chip]: [
            {
                "upgrade_time": u.upgrade_time_ms,
                "fault_code": u.fault_code,
                "fault_level": u.fault_level,
                "upgrade_type": u.upgrade_type,
            }
            for u in upgrades
        ]
        for chip, upgrades in node.upgrades.items()
    }
    return go_dumps(dict(sorted(reasons.items())))


def deviceplugin_configmap(node: Node, update_time: int | None = None) -> dict[str, Any]:
    """`kube-system/mindx-dl-deviceinfo-<node>` (spec §2.1). ``update_time`` (seconds) defaults to
    the node's last content change; the runner passes the write time."""
    when = node.update_time if update_time is None else update_time
    data = {
        "Description": DESCRIPTION,
        "DeviceInfoCfg": device_info_cfg(node, when),
        "ManuallySeparateNPU": ",".join(node.manually_separated()),
    }
    switch = switch_info_cfg(node, when)
    if switch is not None:
        data["SwitchInfoCfg"] = switch
    data["UpgradeFaultReason"] = upgrade_fault_reason(node)
    return _configmap(DEVICEPLUGIN_NAMESPACE, deviceplugin_name(node), data, CIM_LABELS)


# --- S2: device plugin fault Events (spec §3) ----------------------------------------------------------


def event_name(node: Node, transition: FaultTransition) -> str:
    """`<dp pod>.<AlarmRaisedTime ms><logicID>`, no separator between ms and logicID."""
    return f"{node.dp_pod}.{transition.time_ms}{transition.chip}"


def fault_event(node: Node, transition: FaultTransition) -> dict[str, Any]:
    kind = node.kind
    chip = transition.chip
    if kind.logic_id_events:
        device = f"logicID:{chip}"
    else:
        device = f"cardID:{chip // kind.chips_per_card}, deviceID:{chip % kind.chips_per_card}"
    seconds = transition.time_ms / 1000
    local = datetime.fromtimestamp(seconds, PRODUCER_TZ).strftime("%Y-%m-%d %H:%M:%S")
    message = (
        f"device fault, nodeName:{node.name}, assertion:{transition.assertion}, {device}, "
        f"faultCodes:{transition.code}, faultLevelName:{transition.level}, alarmRaisedTime:{local}"
    )
    event_time = datetime.fromtimestamp(transition.time_ms // 1000, UTC).replace(
        microsecond=transition.time_ms % 1000 * 1000
    )
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(node, transition), "namespace": DEVICEPLUGIN_NAMESPACE},
        "involvedObject": {"kind": "pod", "namespace": DEVICEPLUGIN_NAMESPACE, "name": node.dp_pod},
        "reason": transition.assertion,
        "message": message,
        "source": {"component": "device-plugin", "host": node.name},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "type": "Warning" if transition.assertion == "Occur" else "Normal",
        "eventTime": event_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": transition.level,
        "reportingComponent": "device-plugin",
        "reportingInstance": node.dp_pod,
    }


# --- S3: NodeD ConfigMap (spec §4) ---------------------------------------------------------------------


def noded_name(node: Node) -> str:
    return NODED_PREFIX + node.name


def _fault_dev_list(node: Node) -> list[dict[str, Any]]:
    return [
        {
            "DeviceType": d.device_type,
            "DeviceId": d.device_id,
            "FaultCode": list(d.codes),
            "FaultLevel": d.level,
        }
        for d in node.node_faults.values()
    ]


def noded_info(node: Node) -> str:
    inner = go_dumps({"FaultDevList": _fault_dev_list(node), "NodeStatus": node.noded_status()})
    return '{"NodeInfo":' + inner + ',"CheckCode":' + go_json_string(sha256_hex(inner)) + "}"


def rfc3339_local(seconds: float) -> str:
    """Go's time.RFC3339 in the producer's zone: `2025-04-09T15:03:32+08:00`."""
    return datetime.fromtimestamp(int(seconds), PRODUCER_TZ).isoformat(timespec="seconds")


def noded_configmap(node: Node, owner_uid: str) -> dict[str, Any] | None:
    """`mindx-dl/mindx-dl-nodeinfo-<node>`, or None when NodeD deletes it (no fault device)."""
    if not node.node_faults:
        return None
    data = {"NodeInfo": noded_info(node), "updateTime": rfc3339_local(node.noded_update_time)}
    cm = _configmap(NODED_NAMESPACE, noded_name(node), data, CIM_LABELS)
    cm["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "noded", "uid": owner_uid}
    ]
    return cm


# --- S4-S6: ClusterD (spec §5-§8) ----------------------------------------------------------------------


def clusterd_node_status(node: Node) -> str:
    """NodeD status as ClusterD rewrites it: PreSeparate becomes Healthy while any NPU of the node
    is in use, else UnHealthy (spec §5)."""
    status = node.noded_status()
    if status == "PreSeparate":
        return "Healthy" if node.busy else "UnHealthy"
    return status


def clusterd_switch_status(node: Node) -> str:
    status = node.switch_status()
    if status == "PreSeparate":
        return "Healthy" if node.busy else "UnHealthy"
    return status


def clusterd_fault_entries(node: Node) -> list[dict[str, Any]]:
    """`-Fault` as ClusterD re-merges it (spec §6.2): codes sorted by (per-code level, code), the
    entry level the most severe per-code level (a level ClusterD does not know counts as
    NormalNPU), ManuallySeparateNPU codes dropped; then its public faults (spec §6.4, times in
    seconds)."""
    entries = []
    for npu, fault_type, handling, codes in node.fault_entries():
        kept = sorted((c for c in codes if c.level != MANUAL), key=lambda c: (c.level, c.code))
        if handling not in CHIP_LEVEL_RANK:
            known = [c.level for c in kept if c.level in CHIP_LEVEL_RANK]
            handling = max(known, key=CHIP_LEVEL_RANK.__getitem__, default=NORMAL)
        entries.append(_device_fault(npu, fault_type, handling, kept))
    if node.public_faults:
        names = node.kind.names
        for chip, public in node.public_faults.items():
            entry = _device_fault(names[chip], "PublicFault", public.level, [])
            entry["fault_code"] = public.code
            detail = {"fault_time": public.time, "fault_level": public.level}
            entry["fault_time_and_level_map"] = {public.code: detail}
            entries.append(entry)
        entries.sort(key=lambda e: (e["npu_name"], e["fault_type"]))
    return entries


def clusterd_chip_lists(node: Node) -> dict[str, tuple[str, ...]]:
    """The DP lists as ClusterD rewrites them: a chip with a public fault above SubHealthFault is
    unhealthy and not available (spec §6.4)."""
    lists = node.chip_lists()
    if not node.public_faults:
        return lists
    moved = {
        node.kind.names[chip]
        for chip, public in node.public_faults.items()
        if public.level not in ("NotHandleFault", "SubHealthFault")
    }
    lists["available"] = tuple(name for name in lists["available"] if name not in moved)
    lists["unhealthy"] = tuple(sorted(set(lists["unhealthy"]) | moved))
    return lists


def clusterd_device_value(node: Node) -> str:
    """One `cluster-info-device-<m>` entry (spec §6): always the 5 DeviceList keys, RackID 0 on
    every node without one, UpdateTime of the last content change (not DP's heartbeat)."""
    entries = clusterd_fault_entries(node)
    fault_list = go_dumps(entries) if entries else "[]"
    device_list = _device_list(node, clusterd_chip_lists(node), fault_list, all_keys=True)
    # A public fault's injection makes the entry's UpdateTime (spec §6.4).
    update_time = max((p.time for p in node.public_faults.values()), default=node.update_time)
    return go_dumps(
        {
            "DeviceList": device_list,
            "UpdateTime": max(node.update_time, update_time),
            "CmName": deviceplugin_name(node),
            "SuperPodID": node.super_pod_id,
            "RackID": node.rack_id if node.rack_id is not None else 0,
            "ServerIndex": node.server_index,
        }
    )


def clusterd_switch_value(node: Node) -> str | None:
    """One `cluster-info-switch-<m>` entry (spec §7), None for nodes without `SwitchInfoCfg`."""
    name = SWITCH_PREFIX + node.name
    if node.kind.switch == "zero":
        return (
            '{"FaultCode":[],"FaultLevel":"","UpdateTime":0,"NodeStatus":"","FaultTimeAndLevelMap":null,'
            f'"CmName":{go_json_string(name)}}}'
        )
    if node.kind.switch != "faults":
        return None
    return go_dumps(
        {
            "FaultCode": _switch_elements(node),
            "FaultLevel": node.switch_level(),
            "UpdateTime": node.update_time,
            "NodeStatus": clusterd_switch_status(node),
            "FaultTimeAndLevelMap": _switch_time_map(node),
            "CmName": name,
        }
    )


def clusterd_node_value(node: Node) -> str:
    return go_dumps(
        {
            "FaultDevList": _fault_dev_list(node),
            "NodeStatus": clusterd_node_status(node),
            "CmName": noded_name(node),
            "UpdateTime": node.noded_update_time * 1000,
        }
    )


def split_by_size(sizes: list[int], limit: int) -> list[tuple[int, int]]:
    """ClusterD's split (spec §8): entries of ``sizes`` bytes each (``"key":value``) in the given
    order; the whole map if its JSON fits in ``limit`` bytes, else the largest prefix that fits
    (binary search), then the same for the rest. Returns [start, end) ranges; an entry larger than
    the limit gets a shard of its own."""
    if not sizes:
        return [(0, 0)]
    # JSON of entries [s, e) = "{" + parts joined by "," + "}" = 1 + (cum[e] - cum[s]) bytes, where
    # cum counts each part plus one separator (the last separator stands in for the closing brace).
    cum = [0, *accumulate(size + 1 for size in sizes)]
    ranges = []
    start = 0
    while start < len(sizes):
        end = bisect_right(cum, limit - 1 + cum[start]) - 1
        end = max(end, start + 1)
        ranges.append((start, end))
        start = end
    return ranges


class ClusterDProducer:
    """ClusterD's report (spec §5-§8): switch shards, then `cluster-info-node-cm`, then device shards.

    Each node's serialized entry is cached with the node's ``version`` and reused until the node
    changes, so a report of 10,000 nodes only shuffles, splits and joins ready strings. The shard
    counts only grow within one producer; surplus shards are written as ``""``.
    """

    def __init__(self, seed: int = 0, shard_limit: int = SHARD_LIMIT) -> None:
        self.rng = random.Random(f"clusterd-{seed}")
        self.shard_limit = shard_limit
        self.device_shards = 0
        self.switch_shards = 0
        self._device: dict[int, tuple[int, str, str]] = {}  # node → (version, key, "key":value)
        self._switch: dict[int, tuple[int, str, str]] = {}

    def _device_part(self, node: Node) -> tuple[str, str]:
        cached = self._device.get(node.index)
        if cached is None or cached[0] != node.version:
            key = deviceplugin_name(node)
            cached = (node.version, key, f'"{key}":{clusterd_device_value(node)}')
            self._device[node.index] = cached
        return cached[1], cached[2]

    def _switch_part(self, node: Node) -> tuple[str, str] | None:
        if node.kind.switch == "none":
            return None
        cached = self._switch.get(node.index)
        if cached is None or cached[0] != node.version:
            key = SWITCH_PREFIX + node.name
            cached = (node.version, key, f'"{key}":{clusterd_switch_value(node)}')
            self._switch[node.index] = cached
        return cached[1], cached[2]

    def _shards(self, parts: list[tuple[str, str]]) -> list[str]:
        """Random order (Go map iteration), size split, each shard's keys sorted (Go map marshal)."""
        self.rng.shuffle(parts)
        ascii_only = all(part.isascii() for _, part in parts)
        sizes = [len(part) if ascii_only else len(part.encode()) for _, part in parts]
        shards = []
        for start, end in split_by_size(sizes, self.shard_limit):
            chunk = sorted(parts[start:end])
            shards.append("{" + ",".join(part for _, part in chunk) + "}")
        return shards

    def node_cm_value(self, model: ClusterModel) -> str:
        entries = sorted(
            (noded_name(node), clusterd_node_value(node)) for node in model.nodes if node.node_faults
        )
        if not entries:
            return ""
        return "{" + ",".join(f'"{key}":{value}' for key, value in entries) + "}"

    def report(self, model: ClusterModel) -> list[dict[str, Any]]:
        """The ConfigMaps of one full report, in ClusterD's write order."""
        return run_steps(self.report_steps(model))

    def report_steps(self, model: ClusterModel) -> Steps[list[dict[str, Any]]]:
        """`report` in steps of a few tens of milliseconds at 20,000 nodes (a caller sharing its
        event loop with the API server runs it between them); returns the ConfigMaps."""
        switch_parts = [p for node in model.nodes if (p := self._switch_part(node)) is not None]
        yield
        device_parts = [self._device_part(node) for node in model.nodes]
        yield
        switch_shards = self._shards(switch_parts)
        yield
        device_shards = self._shards(device_parts)
        yield
        self.switch_shards = max(self.switch_shards, len(switch_shards))
        self.device_shards = max(self.device_shards, len(device_shards))
        switch_shards += [""] * (self.switch_shards - len(switch_shards))
        device_shards += [""] * (self.device_shards - len(device_shards))
        objects = [self._cm(f"{CLUSTERD_SWITCH_PREFIX}{i}", value) for i, value in enumerate(switch_shards)]
        objects.append(self._cm(CLUSTERD_NODE_CM, self.node_cm_value(model)))
        objects += [self._cm(f"{CLUSTERD_DEVICE_PREFIX}{i}", value) for i, value in enumerate(device_shards)]
        return objects

    @staticmethod
    def _cm(name: str, value: str) -> dict[str, Any]:
        return _configmap(CLUSTERD_NAMESPACE, name, {name: value}, VOLCANO_LABELS)


# --- S7: Volcano (spec §9) -----------------------------------------------------------------------------


def volcano_health_state(node: Node, lists: dict[str, tuple[str, ...]] | None = None) -> str:
    """NodeHealthState from ClusterD's view: NodeUnhealthy (NodeD or switch UnHealthy) over
    CardUnhealthy over CardNetworkUnhealthy over Healthy (spec §9, §11.5)."""
    if clusterd_node_status(node) == "UnHealthy" or clusterd_switch_status(node) == "UnHealthy":
        return "NodeUnhealthy"
    lists = lists if lists is not None else clusterd_chip_lists(node)
    if lists["unhealthy"]:
        return "CardUnhealthy"
    if lists["network_unhealthy"]:
        return "CardNetworkUnhealthy"
    return "Healthy"


class VolcanoProducer:
    """`volcano-system/vcjob-fault-npu-cm`, rewritten every scheduling session. Node entries are
    cached up to their session `UpdateTime`; the array order is re-drawn every session."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(f"volcano-{seed}")
        self._entries: dict[int, tuple[tuple[int, int], str]] = {}  # node → (versions, entry prefix)

    def _entry_prefix(self, node: Node) -> str:
        """The node's `FaultNodeInfoToCm` up to `"UpdateTime":`, or "" when the node is healthy."""
        versions = (node.version, node.noded_version)
        cached = self._entries.get(node.index)
        if cached is not None and cached[0] == versions:
            return cached[1]
        lists = clusterd_chip_lists(node)
        state = volcano_health_state(node, lists)
        prefix = ""
        if state != "Healthy":
            faults = [
                {
                    "fault_type": e["fault_type"],
                    "npu_name": e["npu_name"],
                    "fault_level": e["fault_level"],
                    "fault_handling": e["fault_handling"],
                    "large_model_fault_level": e["large_model_fault_level"],
                    "fault_code": e["fault_code"],
                }
                for e in clusterd_fault_entries(node)
            ]
            body = go_dumps(
                {
                    "FaultDeviceList": faults,
                    "NodeName": node.name,
                    "UnhealthyNPU": list(lists["unhealthy"]) or None,
                    "NetworkUnhealthyNPU": list(lists["network_unhealthy"]) or None,
                    "NodeHealthState": state,
                }
            )
            prefix = body[:-1] + ',"UpdateTime":'
        self._entries[node.index] = (versions, prefix)
        return prefix

    def fault_node_value(self, model: ClusterModel, session_time: int) -> str:
        prefixes = [p for node in model.faulty_nodes() if (p := self._entry_prefix(node))]
        if not prefixes:
            return ""
        self.rng.shuffle(prefixes)
        stamp = f"{session_time}}}"
        return "[" + ",".join(prefix + stamp for prefix in prefixes) + "]"

    @staticmethod
    def retry_value(model: ClusterModel) -> str:
        if not model.jobs:
            return ""
        times = {job.job_id: {"UUID": job.uid, "Times": job.times} for job in model.jobs.values()}
        return go_dumps(dict(sorted(times.items())))

    def configmap(self, model: ClusterModel, session_time: int | None = None) -> dict[str, Any]:
        when = int(model.stamp()) if session_time is None else session_time
        data = {
            "fault-node": self.fault_node_value(model, when),
            "remain-retry-times": self.retry_value(model),
        }
        return _configmap(VOLCANO_NAMESPACE, VOLCANO_NAME, data, None)
