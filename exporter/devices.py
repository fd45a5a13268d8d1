"""`mindx-fault-exporter devices`: which NPU chips of each node a job can use now.

The vendor's "available devices" procedure (exporter.sources.usable) for people at a terminal:
the cluster is read once — a LIST of each source, no watch — or a dump made with
`kubectl get configmaps,events -A -o json`, and parsed by the exporter's own parsers with the
exporter's ClusterD merge rule, so the counts equal `mindx_node_npu_usable_chips`.

Source: ClusterD's three views when any ClusterD object (`cluster-info-node-cm`,
`cluster-info-device-<m>`, `cluster-info-switch-<m>`) exists, else the device plugin's lists and
`SwitchInfoCfg` plus NodeD's status; `--source` forces one. Events in a dump are accepted and
ignored: they record transitions, the ConfigMaps hold the current state.

Exit status: 0 when every named node (every node, if none is named) has at least one usable
chip; 1 otherwise, or when a named node is not found, or no node is found at all; 2 on errors.

`--output json` prints one object (keys always present, in this order):

    source    "clusterd" | "device-plugin"
    now       unix seconds the ages are measured from (--now, default the current time)
    ok        true exactly when the exit status is 0
    nodes     one object per shown node, sorted by name:
      node                 node name
      usable_count         number of chips a job can use now
      usable               those chips' names (natural order)
      blocked              true when node_status or switch_status is "UnHealthy"
      node_status          NodeD / cluster-info-node-cm status, "" when not reported (healthy)
      switch_status        SwitchInfoCfg / cluster-info-switch status, "" when not reported
      available            the producer's available list (before blocking)
      unhealthy, network_unhealthy, recovering, manually_separated   chip names
      resources            per resource name: {"resource", "usable", "available", "unhealthy",
                           "network_unhealthy", "recovering", "manually_separated"}
      faults               active fault codes: {"kind": "chip"|"switch"|"node", "device",
                           "fault_type" ("" for switch and node faults), "code" ("" when the
                           producer gave none), "level", "raised_at" (unix seconds or null),
                           "age_seconds" (integer or null)}
    missing   named nodes not found: {"node", "reason"}
    problems  values that could not be used: {"namespace", "name", "key", "reason", "detail"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from exporter.kube.client import KubeClient
from exporter.kube.config import KubeConfigError, load_cluster_access
from exporter.kube.errors import KubeConnectionError, KubeError
from exporter.kube.listing import list_all
from exporter.kube.selectors import object_matches
from exporter.registry import SOURCES_BY_NAME, watch_target
from exporter.sources import clusterd, deviceplugin, noded
from exporter.sources.base import Source
from exporter.sources.common import Problem, Problems, loads, object_name
from exporter.sources.records import CHIP_LIST_STATUSES, NodeChips, NodeStatusRecord, SwitchState
from exporter.sources.shards import merge_shards, resource_version
from exporter.sources.usable import UsableChips, usable_chips

PROG = "mindx-fault-exporter devices"
CLUSTERD, DEVICE_PLUGIN, NODED = "clusterd", "device-plugin", "noded"
USED_SOURCES = (DEVICE_PLUGIN, NODED, CLUSTERD)
_KINDS = {"configmaps": "ConfigMap", "events": "Event"}
_KIND_TEXT = {"switch": "switch", "node": "node device"}
_NOT_A_PORT = ("", "4294967295")  # SwitchPortId of faults that belong to no port


class CommandError(Exception):
    """Anything that stops the command: printed as one line, exit status 2."""


@dataclass(frozen=True, slots=True)
class FaultRow:
    kind: str  # chip | switch | node
    device: str
    fault_type: str  # "" for switch and node faults
    code: str
    level: str
    raised_at: float  # unix seconds, 0 when unknown


@dataclass(frozen=True, slots=True)
class NodeReport:
    usable: UsableChips
    chips: NodeChips
    faults: tuple[FaultRow, ...]

    @property
    def usable_chips(self) -> list[str]:
        return natural_sorted(chip for chips in self.usable.usable.values() for chip in chips)

    def chips_in(self, status: str) -> list[str]:
        return natural_sorted(chip for res in self.chips.resources for chip in res.lists.get(status, ()))


@dataclass(slots=True)
class Report:
    source: str
    where: str  # where the chip lists come from, for "not found" messages
    nodes: dict[str, NodeReport] = field(default_factory=dict)
    elsewhere: dict[str, str] = field(default_factory=dict)  # node without a chip list → why
    problems: list[tuple[str, str, Problem]] = field(default_factory=list)


# --- selecting the exporter's objects ---------------------------------------------------------


def select_objects(
    objects: Iterable[Mapping[str, Any]], source: Source[Any], namespace: str
) -> list[dict[str, Any]]:
    """The objects a LIST of `source` in `namespace` returns (namespace, kind, selectors), after the
    exporter's client-side name filter."""
    watch = source.watch
    chosen = []
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        kind = obj.get("kind")
        if kind is not None and kind != _KINDS.get(watch.resource):
            continue
        obj_namespace, name = object_name(obj)
        if obj_namespace != namespace or not watch.wants(name):
            continue
        if object_matches(obj, watch.resource, watch.label_selector, watch.field_selector):
            chosen.append(obj)
    return chosen


# --- reading ----------------------------------------------------------------------------------


def read_dump(path: str) -> list[dict[str, Any]]:
    """The items of a `kubectl get … -o json` dump (`-` = standard input); one object is accepted too."""
    try:
        if path == "-":
            stream = sys.stdin
            raw: bytes | str = stream.buffer.read() if hasattr(stream, "buffer") else stream.read()
            label = "standard input"
        else:
            label = path
            with open(path, "rb") as handle:
                raw = handle.read()
    except OSError as err:
        raise CommandError(f"cannot read dump {path}: {err.strerror or err}") from err
    try:
        decoded = loads(raw)
    except ValueError as err:
        raise CommandError(
            f"{label} is not valid JSON ({_one_line(str(err))}); make it with -o json"
        ) from err
    if isinstance(decoded, dict) and isinstance(decoded.get("items"), list):
        return [item for item in decoded["items"] if isinstance(item, dict)]
    if isinstance(decoded, dict) and decoded.get("kind") in _KINDS.values():
        return [decoded]
    raise CommandError(f"{label} is not a Kubernetes List (kubectl get configmaps,events -A -o json)")


async def list_cluster(
    kubeconfig: str | None, context: str | None, namespaces: Mapping[str, str], page_size: int, forced: str
) -> dict[str, list[dict[str, Any]]]:
    """LIST the sources the procedure needs: ClusterD first (unless the device plugin is forced),
    the device plugin and NodeD only when ClusterD has no objects or they are forced."""
    try:
        access = load_cluster_access(kubeconfig, context)
    except KubeConfigError as err:
        raise CommandError(str(err)) from err
    listed: dict[str, list[dict[str, Any]]] = {}
    async with KubeClient(access) as client:

        async def fetch(name: str) -> None:
            source = SOURCES_BY_NAME[name]
            target = watch_target(source, namespaces[name])
            try:
                result = await list_all(client, target.path, target.selector_params(), page_size)
            except KubeError as err:
                if isinstance(err, KubeConnectionError):
                    raise CommandError(
                        f"cannot reach the Kubernetes API at {access.host}: {_one_line(str(err))}"
                    ) from err
                raise CommandError(f"LIST {target.path} failed: {_one_line(str(err))}") from err
            listed[name] = select_objects(result.objects, source, namespaces[name])

        if forced != DEVICE_PLUGIN:
            await fetch(CLUSTERD)
        if forced == DEVICE_PLUGIN or (forced == "auto" and not listed[CLUSTERD]):
            await fetch(DEVICE_PLUGIN)
            await fetch(NODED)
    return listed


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- the procedure ----------------------------------------------------------------------------


def build_report(
    objects: Mapping[str, list[dict[str, Any]]], forced: str, namespaces: Mapping[str, str]
) -> Report:
    if forced == CLUSTERD or (forced == "auto" and objects.get(CLUSTERD)):
        return clusterd_report(objects.get(CLUSTERD, []), namespaces[CLUSTERD])
    return device_plugin_report(
        objects.get(DEVICE_PLUGIN, []), objects.get(NODED, []), namespaces[DEVICE_PLUGIN]
    )


def clusterd_report(objects: Iterable[dict[str, Any]], namespace: str = "mindx-dl") -> Report:
    """ClusterD's three views, merged per node as the exporter's ClusterD handler does."""
    report = Report(CLUSTERD, f"ClusterD's {clusterd.DEVICE_PREFIX}* shards in namespace {namespace}")
    statuses: dict[str, NodeStatusRecord] = {}
    device_shards: list[tuple[int, Mapping[str, clusterd.ClusterDeviceEntry]]] = []
    switch_shards: list[tuple[int, Mapping[str, clusterd.ClusterSwitchEntry]]] = []
    for obj in objects:
        obj_namespace, name = object_name(obj)
        which = clusterd.classify(name)
        if which is None:
            continue
        problems: Problems
        if which.kind is clusterd.Kind.NODE:
            node_result = clusterd.parse_node_cm(obj)
            statuses.update(node_result.records or {})
            problems = node_result.problems
        elif which.kind is clusterd.Kind.DEVICE:
            device_result = clusterd.parse_device_shard(obj)
            device_shards.append((resource_version(obj), device_result.records or {}))
            problems = device_result.problems
        else:
            switch_result = clusterd.parse_switch_shard(obj)
            switch_shards.append((resource_version(obj), switch_result.records or {}))
            problems = switch_result.problems
        report.problems.extend((obj_namespace, name, p) for p in problems.items)
    devices = merge_shards(device_shards, lambda e: e.update_time_raw)
    switches = merge_shards(switch_shards, lambda e: e.update_time_raw)
    for node, entry in devices.items():
        record = statuses.get(node)
        switch = switches.get(node)
        if entry.view.chips is None:
            report.elsewhere[node] = f"its {clusterd.DEVICE_PREFIX}* entry has no usable DeviceList"
            continue
        report.nodes[node] = _node_report(entry.view.chips, record, switch.state if switch else None)
    for node, record in statuses.items():
        report.elsewhere.setdefault(
            node,
            f"in {clusterd.NODE_CM_NAME} (status {record.status or '-'}) but in no "
            f"{clusterd.DEVICE_PREFIX}* shard of namespace {namespace}",
        )
    for node in switches:
        report.elsewhere.setdefault(
            node,
            f"in {clusterd.SWITCH_PREFIX}* but in no {clusterd.DEVICE_PREFIX}* shard "
            f"of namespace {namespace}",
        )
    return report


def device_plugin_report(
    dp_objects: Iterable[dict[str, Any]],
    noded_objects: Iterable[dict[str, Any]],
    namespace: str = "kube-system",
) -> Report:
    """The device plugin's lists and SwitchInfoCfg plus NodeD's status (no NodeD ConfigMap = healthy)."""
    report = Report(
        DEVICE_PLUGIN,
        f"the device plugin's {deviceplugin.NAME_PREFIX}<node> ConfigMaps in namespace {namespace}",
    )
    statuses: dict[str, NodeStatusRecord] = {}
    for obj in noded_objects:
        noded_result = noded.parse_configmap(obj)
        record = noded_result.first
        if record is not None:
            statuses[record.node] = record
            report.problems.extend((*object_name(obj), p) for p in noded_result.problems.items)
    for obj in dp_objects:
        dp_result = deviceplugin.parse_configmap(obj)
        view = dp_result.first
        if view is None:
            continue
        report.problems.extend((*object_name(obj), p) for p in dp_result.problems.items)
        if view.chips is None:
            report.elsewhere[view.node] = f"{object_name(obj)[1]} has no usable DeviceInfoCfg"
            continue
        report.nodes[view.node] = _node_report(view.chips, statuses.get(view.node), view.switch)
    for node, record in statuses.items():
        report.elsewhere.setdefault(
            node,
            f"NodeD reports it (status {record.status or '-'}) but there is no "
            f"{deviceplugin.NAME_PREFIX}{node} ConfigMap in namespace {namespace}",
        )
    return report


def _node_report(chips: NodeChips, record: NodeStatusRecord | None, switch: SwitchState | None) -> NodeReport:
    node_status = record.status if record is not None else ""
    switch_status = switch.node_status if switch is not None else ""
    faults: list[FaultRow] = []
    for fault in chips.faults:
        if not fault.codes:
            faults.append(FaultRow("chip", fault.npu, fault.fault_type, "", fault.fault_handling, 0.0))
        for code in fault.codes:
            faults.append(
                FaultRow("chip", fault.npu, fault.fault_type, code.code, code.level, code.raised_at)
            )
    faults.sort(key=lambda f: (natural_key(f.device), f.fault_type, f.code))
    for sf in switch.faults if switch is not None else ():
        device = f"switch chip {sf.switch_chip_id}"
        if sf.switch_port_id not in _NOT_A_PORT:
            device += f" port {sf.switch_port_id}"
        faults.append(FaultRow("switch", device, "", sf.fault_code, sf.fault_level, sf.raised_at))
    for dev in record.devices if record is not None else ():
        for node_code in dev.fault_codes:
            faults.append(
                FaultRow("node", f"{dev.device_type} {dev.device_id}", "", node_code, dev.fault_level, 0.0)
            )
    return NodeReport(usable_chips(chips, node_status, switch_status), chips, tuple(faults))


# --- output -----------------------------------------------------------------------------------


def natural_key(name: str) -> tuple[Any, ...]:
    """`Ascend910-2` before `Ascend910-10`."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def natural_sorted(names: Iterable[str]) -> list[str]:
    return sorted(set(names), key=natural_key)


_NUMBERED = re.compile(r"^(.*?)(0|[1-9][0-9]*)$")


def compact_names(names: Sequence[str]) -> str:
    """`Ascend910-0,…-3,Ascend910-5` → `Ascend910-[0-3,5]`; `-` when empty."""
    groups: dict[str, list[int]] = {}
    for name in natural_sorted(names):
        match = _NUMBERED.match(name)
        prefix, number = (match.group(1), int(match.group(2))) if match else (name, -1)
        groups.setdefault(prefix, []).append(number)
    parts = []
    for prefix, numbers in groups.items():
        if numbers == [-1]:
            parts.append(prefix)
        elif len(numbers) == 1:
            parts.append(f"{prefix}{numbers[0]}")
        else:
            parts.append(f"{prefix}[{_ranges(numbers)}]")
    return ",".join(parts) or "-"


def _ranges(numbers: list[int]) -> str:
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    out = []
    for run in runs:
        out.append(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ",".join(map(str, run)))
    return ",".join(out)


def format_age(raised_at: float, now: float) -> str:
    """Two most significant units: `3d4h`, `5h12m`, `12m5s`, `42s`; `-` when the time is unknown."""
    if raised_at <= 0:
        return "-"
    seconds = max(0, int(now - raised_at))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    while len(units) > 1 and units[0][0] == 0:
        units.pop(0)
    return "".join(f"{value}{unit}" for value, unit in units[:2])


def _align(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


_SOURCE_TEXT = {
    CLUSTERD: "ClusterD (cluster-info-device-*, cluster-info-node-cm, cluster-info-switch-*)",
    DEVICE_PLUGIN: "device plugin (mindx-dl-deviceinfo-*, SwitchInfoCfg) and NodeD (mindx-dl-nodeinfo-*)",
}


def render_table(report: Report, names: Sequence[str], now: float) -> str:
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"Source: {_SOURCE_TEXT[report.source]}", f"Time:   {stamp}", ""]
    rows = [
        [
            "NODE",
            "USABLE",
            "USABLE-CHIPS",
            "UNHEALTHY",
            "NETWORK-UNHEALTHY",
            "RECOVERING",
            "MANUALLY-SEPARATED",
            "NODE-STATUS",
            "SWITCH-STATUS",
        ]
    ]
    faults = [["NODE", "DEVICE", "FAULT-TYPE", "CODE", "LEVEL", "AGE"]]
    for name in names:
        node = report.nodes[name]
        usable = node.usable
        if usable.blocked:
            why = [
                f"{what} UnHealthy"
                for what, status in (("node", usable.node_status), ("switch", usable.switch_status))
                if status == "UnHealthy"
            ]
            chips = f"none ({' and '.join(why)})"
        else:
            chips = compact_names(node.usable_chips)
        rows.append(
            [
                name,
                str(len(node.usable_chips)),
                chips,
                *(compact_names(node.chips_in(status)) for status in CHIP_LIST_STATUSES[1:]),
                usable.node_status or "-",
                usable.switch_status or "-",
            ]
        )
        for fault in node.faults:
            faults.append(
                [
                    name,
                    fault.device,
                    fault.fault_type or _KIND_TEXT.get(fault.kind, fault.kind),
                    fault.code or "-",
                    fault.level or "-",
                    format_age(fault.raised_at, now),
                ]
            )
    lines += _align(rows) if len(rows) > 1 else ["No node found."]
    lines.append("")
    lines += ["Active faults:", *_align(faults)] if len(faults) > 1 else ["No active faults."]
    lines += [
        "",
        "USABLE counts free chips: a chip a job is using is in no list (busy or not reported), so a",
        "fully busy healthy node shows 0 and -. A node's chips are usable unless NODE-STATUS or",
        "SWITCH-STATUS is UnHealthy. - = no chip listed, or status not reported (healthy).",
    ]
    return "\n".join(lines) + "\n"


def report_json(
    report: Report, names: Sequence[str], missing: Mapping[str, str], now: float, ok: bool
) -> dict[str, Any]:
    nodes = []
    for name in names:
        node = report.nodes[name]
        entry: dict[str, Any] = {
            "node": name,
            "usable_count": len(node.usable_chips),
            "usable": node.usable_chips,
            "blocked": node.usable.blocked,
            "node_status": node.usable.node_status,
            "switch_status": node.usable.switch_status,
        }
        for status in CHIP_LIST_STATUSES:
            entry[status] = node.chips_in(status)
        entry["resources"] = [
            {
                "resource": res.resource,
                "usable": natural_sorted(node.usable.usable.get(res.resource, ())),
                **{status: natural_sorted(res.lists.get(status, ())) for status in CHIP_LIST_STATUSES},
            }
            for res in node.chips.resources
        ]
        entry["faults"] = [
            {
                "kind": f.kind,
                "device": f.device,
                "fault_type": f.fault_type,
                "code": f.code,
                "level": f.level,
                "raised_at": f.raised_at if f.raised_at > 0 else None,
                "age_seconds": max(0, int(now - f.raised_at)) if f.raised_at > 0 else None,
            }
            for f in node.faults
        ]
        nodes.append(entry)
    return {
        "source": report.source,
        "now": now,
        "ok": ok,
        "nodes": nodes,
        "missing": [{"node": node, "reason": reason} for node, reason in missing.items()],
        "problems": [
            {"namespace": ns, "name": name, "key": p.key, "reason": p.reason, "detail": p.detail}
            for ns, name, p in report.problems
        ],
    }


# --- command line -----------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    """Run with the flags `exporter.flags.add_devices_flags` defines."""
    namespaces = {name: vars(args)[f"namespace:{name}"] for name in USED_SOURCES}
    now = time.time() if args.now is None else args.now
    try:
        if args.from_file is not None:
            items = read_dump(args.from_file)
            objects = {
                name: select_objects(items, SOURCES_BY_NAME[name], namespaces[name]) for name in USED_SOURCES
            }
        else:
            objects = asyncio.run(
                list_cluster(args.kubeconfig, args.context, namespaces, max(1, args.page_size), args.source)
            )
        report = build_report(objects, args.source, namespaces)
    except CommandError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2

    wanted = list(dict.fromkeys(args.nodes))
    names = [n for n in wanted if n in report.nodes] if wanted else sorted(report.nodes)
    missing = {
        n: report.elsewhere.get(n) or f"not found in {report.where}" for n in wanted if n not in report.nodes
    }
    ok = bool(names) and not missing and all(report.nodes[n].usable_chips for n in names)

    for ns, name, problem in report.problems:
        print(
            f"{PROG}: warning: {ns}/{name} {problem.key}: {problem.reason}: {problem.detail}", file=sys.stderr
        )
    for node, reason in missing.items():
        print(f"{PROG}: node {node}: {reason}", file=sys.stderr)
    if not wanted and not names:
        print(f"{PROG}: no node with a chip list found in {report.where}", file=sys.stderr)

    if args.output == "json":
        sys.stdout.write(
            json.dumps(report_json(report, names, missing, now, ok), indent=2, ensure_ascii=False)
        )
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(report, names, now))
    sys.stdout.flush()
    return 0 if ok else 1
