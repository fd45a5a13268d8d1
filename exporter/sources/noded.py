"""S3: NodeD's `mindx-dl/mindx-dl-nodeinfo-<node>` ConfigMap (spec §4).

The CM exists only while the node has a fault device (NodeD deletes it when healthy), so the lead
treats its absence as healthy. ClusterD's `cluster-info-node-cm` (§5) carries the same `NodeInfo`
shape per node; `parse_fault_dev_list` is shared with the ClusterD parser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from exporter.handlers.objects import per_object
from exporter.sharding import node_scope
from exporter.sources.base import Feed, Parsed, Source, Watch, families_of, render_table
from exporter.sources.common import (
    REASON_CHECKCODE,
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    as_str,
    configmap_data,
    decode_json,
    go_json_dumps,
    node_from_name,
    normalize_code,
    object_name,
    rfc3339_seconds,
    sha256_hex,
    split_codes,
)
from exporter.sources.limits import DEFAULT_LIMITS, REASON_LIMIT, Limits
from exporter.sources.nodestatus import NODE_STATUS_METRICS_WITH_TIME
from exporter.sources.records import NodeFaultDevice, NodeStatusRecord
from exporter.sources.usable import ROLE_NODE_STATUS, USABLE_CHIPS

NAME_PREFIX = "mindx-dl-nodeinfo-"
KEY_NODE_INFO = "NodeInfo"
KEY_UPDATE_TIME = "updateTime"

# NodeD device fault levels, least to most severe (spec §11.3); unknown levels rank below all.
NODE_FAULT_LEVELS: tuple[str, ...] = ("NotHandleFault", "PreSeparateFault", "SeparateFault")
_NODE_LEVEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(NODE_FAULT_LEVELS)}


RECORD = "node"  # the one record of a ConfigMap: the node's status


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[NodeStatusRecord]:
    """Parse one NodeD ConfigMap into the node's status and faulty devices.

    A broken `NodeInfo` still yields a record (status "", no devices) so `updateTime` counts; a
    CheckCode mismatch is reported but the data is used.
    """
    problems = Problems()
    _, name = object_name(cm)
    node = node_from_name(name, NAME_PREFIX)
    if node is None:
        return Parsed(None, problems)
    data = configmap_data(cm)

    status = ""
    devices: tuple[NodeFaultDevice, ...] = ()
    outer = decode_json(data, KEY_NODE_INFO, problems, required=True)
    if outer is not None:
        inner = outer.get("NodeInfo")
        if not isinstance(inner, dict):
            problems.add(KEY_NODE_INFO, REASON_SCHEMA, "NodeInfo.NodeInfo is not an object")
        else:
            status = parse_node_status(inner.get("NodeStatus"), KEY_NODE_INFO, problems)
            devices = parse_fault_dev_list(inner.get("FaultDevList"), KEY_NODE_INFO, problems, limits)
            if not verify_checkcode(inner, outer.get("CheckCode")):
                problems.add(KEY_NODE_INFO, REASON_CHECKCODE, "CheckCode does not match NodeInfo")

    update_time: float | None = None
    raw_time = data.get(KEY_UPDATE_TIME)
    if raw_time is not None:
        update_time = rfc3339_seconds(raw_time)
        if update_time is None:
            problems.add(KEY_UPDATE_TIME, REASON_SCHEMA, "not an RFC 3339 time with zone")
    record = NodeStatusRecord(node=node, status=status, devices=devices, update_time=update_time)
    return Parsed({RECORD: record}, problems)


def verify_checkcode(node_info: object, check_code: object) -> bool:
    """CheckCode = sha256 of Go's json.Marshal of the inner `NodeInfo` object (spec §4): struct
    fields in declaration order, which the decoded dict keeps, so re-encoding it as Go does suffices."""
    if not isinstance(check_code, str) or not check_code or not isinstance(node_info, dict):
        return False
    try:
        canonical = go_json_dumps(node_info)
    except (TypeError, ValueError, RecursionError):
        return False
    return sha256_hex(canonical) == check_code.lower()


def parse_node_status(value: object, key: str, problems: Problems) -> str:
    """Raw NodeStatus; unknown values kept as written, "" when absent."""
    if value is not None and not isinstance(value, str):
        problems.add(key, REASON_SCHEMA, "NodeStatus is not a string")
    return as_str(value)


def node_level_rank(level: str) -> int:
    return _NODE_LEVEL_RANK.get(level, -1)


def parse_fault_dev_list(
    value: object, key: str, problems: Problems, limits: Limits = DEFAULT_LIMITS
) -> tuple[NodeFaultDevice, ...]:
    """`FaultDevList` (NodeD and ClusterD): null/[]/{} all mean none. Devices repeated with the same
    (DeviceType, DeviceId) are merged: union of codes, most severe level. At most
    `limits.devices_per_node` devices and `limits.codes_per_entry` codes per device are kept."""
    if value is None or value == {}:
        return ()
    if not isinstance(value, list):
        problems.add(key, REASON_SCHEMA, "FaultDevList is not an array")
        return ()
    merged: dict[tuple[str, str], NodeFaultDevice] = {}
    merged_codes: dict[tuple[str, str], dict[str, None]] = {}  # kept apart: linear, however many repeats
    for element in value:
        device = _parse_fault_dev(element, key, problems)
        if device is None:
            continue
        ident = (device.device_type, device.device_id)
        seen = merged.get(ident)
        if seen is None:
            if len(merged) >= limits.devices_per_node:
                problems.add(key, REASON_LIMIT, f"more than {limits.devices_per_node} fault devices: cut off")
                break
            if len(device.fault_codes) > limits.codes_per_entry:
                problems.add(
                    key, REASON_LIMIT, f"more than {limits.codes_per_entry} codes for a device: cut off"
                )
                device = replace(device, fault_codes=device.fault_codes[: limits.codes_per_entry])
            merged[ident] = device
            continue
        codes = merged_codes.get(ident)
        if codes is None:
            codes = merged_codes[ident] = dict.fromkeys(seen.fault_codes)
        room = limits.codes_per_entry - len(codes)
        if room < len(device.fault_codes):
            problems.add(key, REASON_LIMIT, f"more than {limits.codes_per_entry} codes for a device")
        codes.update(dict.fromkeys(device.fault_codes[: max(room, 0)]))
        level = max((seen.fault_level, device.fault_level), key=node_level_rank)
        merged[ident] = NodeFaultDevice(seen.device_type, seen.device_id, seen.fault_codes, level)
    return tuple(
        replace(device, fault_codes=tuple(merged_codes[ident])) if ident in merged_codes else device
        for ident, device in merged.items()
    )


def _parse_fault_dev(element: object, key: str, problems: Problems) -> NodeFaultDevice | None:
    entry = as_dict(element)
    if entry is None:
        problems.add(key, REASON_SCHEMA, "FaultDevList element is not an object")
        return None
    return NodeFaultDevice(
        device_type=_text(entry.get("DeviceType")),
        device_id=_text(entry.get("DeviceId")),
        fault_codes=_fault_codes(entry.get("FaultCode"), key, problems),
        fault_level=as_str(entry.get("FaultLevel")),
    )


def _fault_codes(value: object, key: str, problems: Problems) -> tuple[str, ...]:
    """NodeD writes a string array; the user doc says a comma string, so accept that too."""
    if value is None or value == {}:
        return ()
    if isinstance(value, str):
        return tuple(split_codes(value))
    if not isinstance(value, list):
        problems.add(key, REASON_SCHEMA, "FaultCode is not an array")
        return ()
    codes: dict[str, None] = {}
    for item in value:
        if not isinstance(item, str):
            problems.add(key, REASON_SCHEMA, "FaultCode element is not a string")
            continue
        code = normalize_code(item)
        if code:
            codes[code] = None
    return tuple(codes)


def _text(value: object) -> str:
    number = as_int(value)
    return str(number) if number is not None else as_str(value).strip()


def _status_of(records: Mapping[str, NodeStatusRecord]) -> tuple[str, object] | None:
    record = records.get(RECORD)
    return (record.node, record.status) if record is not None else None


SOURCE = Source(
    name="noded",
    description="NodeD ConfigMaps mindx-dl-nodeinfo-<node>",
    watch=Watch(
        "configmaps", "mindx-dl", label_selector="mx-consumer-cim=true", name_prefixes=(NAME_PREFIX,)
    ),
    parse=parse_configmap,
    families=families_of(NODE_STATUS_METRICS_WITH_TIME),
    handler=per_object(
        partial(render_table, NODE_STATUS_METRICS_WITH_TIME), scope=lambda record: node_scope(record.node)
    ),
    feeds=(Feed(USABLE_CHIPS, ROLE_NODE_STATUS, _status_of),),
)
