"""S1: the Ascend Device Plugin's `kube-system/mindx-dl-deviceinfo-<node>` ConfigMap (spec §2)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from exporter.handlers.objects import per_object
from exporter.sharding import node_scope
from exporter.sources.base import Feed, Parsed, Source, Watch, families_of, render_table
from exporter.sources.common import (
    REASON_CHECKCODE,
    REASON_JSON,
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    as_str,
    chip_level_rank,
    configmap_data,
    decode_json,
    go_json_string,
    loads,
    node_from_name,
    normalize_code,
    object_name,
    sha256_hex,
    split_codes,
    split_names,
    unix_seconds,
)
from exporter.sources.limits import DEFAULT_LIMITS, REASON_LIMIT, Limits
from exporter.sources.nodeview import NODE_VIEW_METRICS
from exporter.sources.records import (
    ChipFault,
    FaultCode,
    NodeChips,
    NodeView,
    ResourceChips,
    SuperPodInfo,
    SwitchFault,
    SwitchState,
)
from exporter.sources.usable import ROLE_CHIPS, USABLE_CHIPS

NAME_PREFIX = "mindx-dl-deviceinfo-"
KEY_DEVICE_INFO = "DeviceInfoCfg"
KEY_SWITCH_INFO = "SwitchInfoCfg"
KEY_MANUALLY_SEPARATED = "ManuallySeparateNPU"

# DeviceList key suffix → chip list status. The base key (no suffix) is the available list.
_LIST_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("-NetworkUnhealthy", "network_unhealthy"),
    ("-Unhealthy", "unhealthy"),
    ("-Recovering", "recovering"),
)
_FAULT_SUFFIX = "-Fault"


RECORD = "node"  # the one record of a ConfigMap: the node's view


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[NodeView]:
    """Parse one device-plugin ConfigMap into the node's chips, switch and super-pod data."""
    problems = Problems()
    _, name = object_name(cm)
    node = node_from_name(name, NAME_PREFIX)
    if node is None:
        return Parsed(None, problems)
    data = configmap_data(cm)
    view = NodeView(node=node)

    info = decode_json(data, KEY_DEVICE_INFO, problems, required=True)
    manual = split_names(data.get(KEY_MANUALLY_SEPARATED))
    if info is not None:
        device_info = as_dict(info.get("DeviceInfo"))
        if device_info is None:
            problems.add(KEY_DEVICE_INFO, REASON_SCHEMA, "DeviceInfo is not an object")
        else:
            device_list = as_dict(device_info.get("DeviceList"))
            if device_list is None:
                problems.add(KEY_DEVICE_INFO, REASON_SCHEMA, "DeviceInfo.DeviceList is not an object")
            else:
                view.chips = parse_device_list(node, device_list, manual, KEY_DEVICE_INFO, problems, limits)
            update = device_info.get("UpdateTime")
            if as_int(update) is not None:
                view.update_time = unix_seconds(update) or None
            if not verify_checkcode(device_info, info.get("CheckCode")):
                problems.add(KEY_DEVICE_INFO, REASON_CHECKCODE, "CheckCode does not match DeviceInfo")
        view.superpod = _superpod(node, info)

    if KEY_SWITCH_INFO in data:
        switch = decode_json(data, KEY_SWITCH_INFO, problems)
        if switch is not None:
            view.switch = parse_switch_info(node, switch, KEY_SWITCH_INFO, problems)
    return Parsed({RECORD: view}, problems)


def verify_checkcode(device_info: Mapping[str, Any], check_code: object) -> bool:
    """CheckCode = sha256 of Go's json.Marshal of `DeviceInfo` (spec §2.7): DeviceList with its keys
    sorted, values exactly as received, then UpdateTime."""
    if not isinstance(check_code, str) or not check_code:
        return False
    device_list = device_info.get("DeviceList")
    update = device_info.get("UpdateTime")
    if not isinstance(update, int) or isinstance(update, bool):
        return False
    if device_list is None:  # Go writes a nil map as null
        list_json = "null"
    elif isinstance(device_list, dict):
        parts = []
        for key in sorted(device_list, key=lambda k: k.encode("utf-8")):
            value = device_list[key]
            if not isinstance(value, str):
                return False
            parts.append(go_json_string(key) + ":" + go_json_string(value))
        list_json = "{" + ",".join(parts) + "}"
    else:
        return False
    canonical = '{"DeviceList":' + list_json + ',"UpdateTime":' + str(update) + "}"
    return sha256_hex(canonical) == check_code.lower()


def _split_key(key: str) -> tuple[str, str]:
    """`huawei.com/Ascend910-NetworkUnhealthy` → (`huawei.com/Ascend910`, `network_unhealthy`)."""
    if key.endswith(_FAULT_SUFFIX):
        return key[: -len(_FAULT_SUFFIX)], "fault"
    for suffix, status in _LIST_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], status
    return key, "available"


def parse_device_list(
    node: str,
    device_list: Mapping[str, Any],
    manually_separated: Iterable[str],
    key: str,
    problems: Problems,
    limits: Limits = DEFAULT_LIMITS,
) -> NodeChips:
    """A DeviceList map (DP's or ClusterD's) → the node's chips. Resource names are discovered by
    suffix, so custom names, `huawei.com/npu` and the Ascend310 `Ascend310P-Fault` quirk all work.
    At most `limits.chips_per_node` chip names are kept."""
    lists: dict[str, dict[str, tuple[str, ...]]] = {}
    faults: list[ChipFault] = []
    room = limits.chips_per_node  # names still accepted, over every list
    over_resources = False
    for list_key, value in device_list.items():
        if not isinstance(list_key, str):
            continue
        resource, status = _split_key(list_key)
        if status == "fault":
            faults.extend(parse_fault_list(value, key, problems, limits))
            continue
        if value is not None and not isinstance(value, str):
            problems.add(key, REASON_SCHEMA, f"{list_key} is not a string")
            continue
        if resource not in lists and len(lists) >= limits.resources_per_node:
            if not over_resources:
                problems.add(
                    key, REASON_LIMIT, f"more than {limits.resources_per_node} resource names: cut off"
                )
                over_resources = True
            continue
        names = split_names(value)
        if len(names) > room:
            problems.add(key, REASON_LIMIT, f"more than {limits.chips_per_node} chips: {list_key} cut off")
            names = names[: max(room, 0)]
        room -= len(names)
        lists.setdefault(resource, {})[status] = tuple(names)
    manual = tuple(manually_separated)[: limits.chips_per_node]
    manual_by_resource = _assign_to_resources(manual, lists)
    resources = []
    for resource in sorted(lists):
        per_status = lists[resource]
        per_status["manually_separated"] = tuple(manual_by_resource.get(resource, ()))
        resources.append(ResourceChips(resource=resource, lists=per_status))
    return NodeChips(
        node=node, resources=tuple(resources), faults=merge_faults(faults), manually_separated=manual
    )


def _assign_to_resources(
    chips: tuple[str, ...], lists: Mapping[str, Mapping[str, tuple[str, ...]]]
) -> dict[str, list[str]]:
    """Which resource a manually separated chip belongs to: the one listing it, else the one whose
    name matches the chip's prefix (`huawei.com/npu` ↔ `npu-3`), else the only one; the first in
    `lists` order where several qualify. Indexed, so a garbage object with many chips and many
    resource names costs linear time, not chips times list entries."""
    listed: dict[str, str] = {}
    for res, per in lists.items():
        for names in per.values():
            for name in names:
                listed.setdefault(name, res)
    by_prefix: dict[str, str] = {}
    for res in lists:
        by_prefix.setdefault(res.rsplit("/", 1)[-1] + "-", res)
    rank = {res: index for index, res in enumerate(lists)}
    longest = max(map(len, by_prefix), default=0)
    assigned: dict[str, list[str]] = {}
    for chip in chips:
        owner = listed.get(chip)
        if owner is None:
            dash = chip.find("-", 0, longest)
            while dash != -1:
                match = by_prefix.get(chip[: dash + 1])
                if match is not None and (owner is None or rank[match] < rank[owner]):
                    owner = match
                dash = chip.find("-", dash + 1, longest)
        if owner is None and len(lists) == 1:
            owner = next(iter(lists))
        if owner is not None:
            assigned.setdefault(owner, []).append(chip)
    return assigned


def parse_fault_list(
    value: object, key: str, problems: Problems, limits: Limits = DEFAULT_LIMITS
) -> list[ChipFault]:
    """A `-Fault` value: a JSON array of DeviceFault encoded inside a string (spec §2.4)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            entries = loads(value)
        except ValueError as err:
            problems.add(key, REASON_JSON, f"fault list is not valid JSON: {err}")
            return []
    else:
        entries = value
    if entries is None:
        return []
    if not isinstance(entries, list):
        problems.add(key, REASON_SCHEMA, "fault list is not an array")
        return []
    faults = []
    per_chip: dict[str, int] = {}
    over = False
    for entry in entries:
        fault = parse_fault_entry(entry, limits, problems, key)
        if fault is None:
            problems.add(key, REASON_SCHEMA, "fault entry without npu_name")
            continue
        seen = per_chip.get(fault.npu, 0)
        if seen >= limits.fault_entries_per_chip or (seen == 0 and len(per_chip) >= limits.chips_per_node):
            over = True
            continue
        per_chip[fault.npu] = seen + 1
        faults.append(fault)
    if over:
        problems.add(
            key,
            REASON_LIMIT,
            f"more than {limits.fault_entries_per_chip} fault entries for a chip, or faults for more "
            f"than {limits.chips_per_node} chips: cut off",
        )
    return faults


def parse_fault_entry(
    entry: object, limits: Limits = DEFAULT_LIMITS, problems: Problems | None = None, key: str = ""
) -> ChipFault | None:
    """One DeviceFault; codes beyond `limits.codes_per_entry` are cut off (and reported in
    `problems` when given)."""
    if not isinstance(entry, dict):
        return None
    npu = as_str(entry.get("npu_name")).strip()
    if not npu:
        return None
    handling = (
        as_str(entry.get("fault_handling"))
        or as_str(entry.get("fault_level"))
        or as_str(entry.get("large_model_fault_level"))
    )
    time_map = {
        normalize_code(str(k)): v for k, v in (as_dict(entry.get("fault_time_and_level_map")) or {}).items()
    }
    codes = split_codes(entry.get("fault_code")) or list(time_map)
    if len(codes) > limits.codes_per_entry:
        if problems is not None:
            problems.add(key, REASON_LIMIT, f"{npu}: more than {limits.codes_per_entry} codes: cut off")
        codes = codes[: limits.codes_per_entry]
    fault_codes = []
    for code in codes:
        detail = as_dict(time_map.get(code)) or {}
        fault_codes.append(
            FaultCode(
                code=code,
                level=as_str(detail.get("fault_level")) or handling,
                raised_at=unix_seconds(detail.get("fault_time")),
            )
        )
    return ChipFault(
        npu=npu,
        fault_type=as_str(entry.get("fault_type")),
        fault_handling=handling,
        codes=tuple(fault_codes),
    )


def merge_faults(faults: Iterable[ChipFault]) -> tuple[ChipFault, ...]:
    """Producers write one entry per (chip, fault_type); if a broken object has more, merge them so
    no series is emitted twice: most severe handling (the earliest on a tie), union of codes (each
    code's earliest entry; the last entry's codes first, then those only earlier ones have). Linear
    in the number of entries, however many repeat one chip."""
    groups: dict[tuple[str, str], list[ChipFault]] = {}
    for fault in faults:
        groups.setdefault((fault.npu, fault.fault_type), []).append(fault)
    merged = []
    for (npu, fault_type), group in groups.items():
        if len(group) == 1:
            merged.append(group[0])
            continue
        handling = group[0].fault_handling
        for fault in group[1:]:
            handling = max((handling, fault.fault_handling), key=chip_level_rank)
        earliest: dict[str, FaultCode] = {}
        for fault in group:
            for code in fault.codes:
                earliest.setdefault(code.code, code)
        order: dict[str, None] = {}
        for fault in reversed(group):
            for code in fault.codes:
                order.setdefault(code.code, None)
        merged.append(ChipFault(npu, fault_type, handling, tuple(earliest[code] for code in order)))
    return tuple(merged)


def parse_switch_info(node: str, info: Mapping[str, Any], key: str, problems: Problems) -> SwitchState:
    """`SwitchInfoCfg` (spec §2.5); ClusterD's switch shards carry the same struct (§7)."""
    level = as_str(info.get("FaultLevel"))
    time_map = as_dict(info.get("FaultTimeAndLevelMap")) or {}
    raw_codes = info.get("FaultCode")
    if raw_codes is not None and not isinstance(raw_codes, list):
        problems.add(key, REASON_SCHEMA, "FaultCode is not an array")
        raw_codes = None
    faults: dict[tuple[str, str, str, str], SwitchFault] = {}
    for element in raw_codes or ():
        fault = _parse_switch_fault(element, level, time_map)
        if fault is None:
            problems.add(key, REASON_SCHEMA, "switch FaultCode element is not a fault object")
            continue
        ident = (fault.fault_code, fault.switch_chip_id, fault.switch_port_id, fault.fault_level)
        if ident not in faults:
            faults[ident] = fault
    return SwitchState(
        node=node,
        fault_level=level,
        node_status=as_str(info.get("NodeStatus")),
        faults=tuple(faults.values()),
    )


def _parse_switch_fault(element: object, entry_level: str, time_map: Mapping[str, Any]) -> SwitchFault | None:
    # Each element is a JSON object serialized to a string; tolerate a plain object too.
    if isinstance(element, str):
        try:
            element = loads(element)
        except ValueError:
            return None
    if not isinstance(element, dict):
        return None
    code = as_str(element.get("AssembledFaultCode"))
    if not code:
        return None
    chip = _id_text(element.get("SwitchChipId"))
    port = _id_text(element.get("SwitchPortId"))
    detail = as_dict(time_map.get(f"{code}_{chip}_{port}")) or {}
    return SwitchFault(
        fault_code=code,
        switch_chip_id=chip,
        switch_port_id=port,
        fault_level=as_str(detail.get("fault_level")) or entry_level,
        raised_at=unix_seconds(detail.get("fault_time") or element.get("AlarmRaisedTime")),
    )


def _id_text(value: object) -> str:
    number = as_int(value)
    return str(number) if number is not None else as_str(value)


def _superpod(node: str, info: Mapping[str, Any]) -> SuperPodInfo | None:
    """SuperPodID/ServerIndex are ints; negative means "not in a super pod / unknown" (spec §2.2)."""
    super_pod = as_int(info.get("SuperPodID"))
    server = as_int(info.get("ServerIndex"))
    if super_pod is None or server is None or super_pod < 0:
        return None
    rack = as_int(info.get("RackID"))
    return SuperPodInfo(
        node=node,
        super_pod_id=super_pod,
        server_index=server,
        rack_id=rack if rack is not None and rack >= 0 else None,
    )


def _chips_of(records: Mapping[str, NodeView]) -> tuple[str, object] | None:
    view = records.get(RECORD)
    return (view.node, view) if view is not None else None


SOURCE = Source(
    name="device-plugin",
    description="Ascend Device Plugin ConfigMaps mindx-dl-deviceinfo-<node>",
    watch=Watch(
        "configmaps", "kube-system", label_selector="mx-consumer-cim=true", name_prefixes=(NAME_PREFIX,)
    ),
    parse=parse_configmap,
    families=families_of(NODE_VIEW_METRICS),
    handler=per_object(partial(render_table, NODE_VIEW_METRICS), scope=lambda view: node_scope(view.node)),
    feeds=(Feed(USABLE_CHIPS, ROLE_CHIPS, _chips_of),),
    chip_views=lambda records: [view.chips for view in records.values() if view.chips is not None],
)
