"""S7: the Volcano plugin's `volcano-system/vcjob-fault-npu-cm` ConfigMap (spec §9).

`fault-node` lists only the nodes Volcano considers faulty, with its `NodeHealthState`; its content
comes from ClusterD (S5) by default. `remain-retry-times` holds the rescheduling budget per job.
Other keys (`NodeDEnable`, `fault-job`, `checkCode`, …) are leftovers of old versions and ignored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.handlers.objects import per_object
from exporter.metrics.exposition import Family
from exporter.sharding import Scope, job_scope, node_scope
from exporter.sources.base import (
    Blocks,
    Metric,
    Parsed,
    Sample,
    Source,
    Watch,
    add_block,
    families_of,
    render_table,
)
from exporter.sources.common import (
    REASON_SCHEMA,
    Problem,
    Problems,
    as_dict,
    as_int,
    as_str,
    configmap_data,
    decode_json,
    object_name,
    split_names,
    unix_seconds,
)
from exporter.sources.deviceplugin import merge_faults, parse_fault_list
from exporter.sources.limits import DEFAULT_LIMITS, REASON_LIMIT, Limits
from exporter.sources.nodeview import NODE_VIEW_METRICS
from exporter.sources.records import CHIP_LIST_STATUSES, NodeChips, NodeView, ResourceChips

NAMESPACE = "volcano-system"
NAME = "vcjob-fault-npu-cm"
KEY_FAULT_NODE = "fault-node"
KEY_RETRY_TIMES = "remain-retry-times"

MANUALLY_SEPARATED = "ManuallySeparateNPU"

_VIRTUAL_NAME = re.compile(r"^(.+?)-\d+c[^-]*-\d+-\d+$")  # vNPU Ascend910-4c-100-3
# Physical, share-mode (Ascend310P-2-17) and mixed-insert (Ascend310P-V-7) names.
_PHYSICAL_NAME = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(?:-(?:V|VPro|IPro))?-\d+(?:-\d+)?$")
_ANY_NAME = re.compile(r"^(.+?)-\d+$")
# Chip-name prefixes whose resource is not `huawei.com/<prefix>` (Ascend310 with GetFdFlag, spec §2.3).
_PREFIX_RESOURCES = {"davinci-mini": "huawei.com/Ascend310"}


@dataclass(frozen=True, slots=True)
class VolcanoNode:
    view: NodeView  # chips from FaultDeviceList/UnhealthyNPU/NetworkUnhealthyNPU, update_time
    health_state: str  # NodeHealthState as written: NodeUnhealthy, CardUnhealthy, CardNetworkUnhealthy, …


@dataclass(frozen=True, slots=True)
class JobRetries:
    namespace: str
    podgroup: str
    job_uid: str  # "UUID": the PodGroup owner's UID, "" when absent
    times: int


VolcanoRecord = VolcanoNode | JobRetries


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[VolcanoRecord]:
    """Records `node/<node>` (a fault-node entry) and `job/<namespace>/<podgroup>` (a retry
    budget); records is None only when the object is not `vcjob-fault-npu-cm`, and missing, ""
    or invalid keys give no records of their kind."""
    problems = Problems()
    _, name = object_name(cm)
    if name != NAME:
        return Parsed(None, problems)
    data = configmap_data(cm)
    nodes = _parse_fault_nodes(
        decode_json(data, KEY_FAULT_NODE, problems, shape=list, blank_is_empty=True), problems, limits
    )
    retries = _retry_budgets(data, problems)
    # Sub-keys are strings: store keys are tuples of strings, sorted to order the exposition.
    records: dict[str, VolcanoRecord] = {f"node/{n.view.node}": n for n in nodes}
    records.update({f"job/{j.namespace}/{j.podgroup}": j for j in retries})
    return Parsed(records, problems)


def fault_nodes(parsed: Parsed[VolcanoRecord]) -> tuple[VolcanoNode, ...]:
    return tuple(r for r in (parsed.records or {}).values() if isinstance(r, VolcanoNode))


def job_retries(parsed: Parsed[VolcanoRecord]) -> tuple[JobRetries, ...]:
    return tuple(r for r in (parsed.records or {}).values() if isinstance(r, JobRetries))


# --- fault-node --------------------------------------------------------------------------------


def _parse_fault_nodes(
    entries: list[Any] | None, problems: Problems, limits: Limits
) -> tuple[VolcanoNode, ...]:
    """Duplicate node names (not expected) keep the entry with the larger UpdateTime (tie: later)."""
    nodes: dict[str, tuple[int, VolcanoNode]] = {}
    for entry in entries or ():
        if not isinstance(entry, dict):
            problems.add(KEY_FAULT_NODE, REASON_SCHEMA, "fault-node element is not an object")
            continue
        node = as_str(entry.get("NodeName")).strip()
        if not node:
            problems.add(KEY_FAULT_NODE, REASON_SCHEMA, "fault-node element without NodeName")
            continue
        raw_time = as_int(entry.get("UpdateTime"))
        if raw_time is None and entry.get("UpdateTime") is not None:
            problems.add(KEY_FAULT_NODE, REASON_SCHEMA, f"{node}: UpdateTime is not an integer")
        parsed = _parse_node(node, entry, raw_time, problems, limits)
        seen = nodes.get(node)
        if seen is None or (raw_time or 0) >= seen[0]:
            nodes[node] = (raw_time or 0, parsed)
    return tuple(nodes[name][1] for name in sorted(nodes))


def _parse_node(
    node: str, entry: Mapping[str, Any], raw_time: int | None, problems: Problems, limits: Limits
) -> VolcanoNode:
    fault_list = entry.get("FaultDeviceList")
    if fault_list == {}:
        fault_list = None
    faults = merge_faults(parse_fault_list(fault_list, KEY_FAULT_NODE, problems, limits))
    unhealthy = _names(entry.get("UnhealthyNPU"), node, "UnhealthyNPU", problems, limits)
    network = _names(entry.get("NetworkUnhealthyNPU"), node, "NetworkUnhealthyNPU", problems, limits)
    # Volcano's content comes from ClusterD, which marks manual separation only by the fault entry.
    manual = tuple(dict.fromkeys(f.npu for f in faults if f.fault_handling == MANUALLY_SEPARATED))
    chips = NodeChips(
        node=node,
        resources=_group(unhealthy, network, manual),
        faults=faults,
        manually_separated=manual,
    )
    view = NodeView(node=node, chips=chips, update_time=unix_seconds(raw_time) or None)
    return VolcanoNode(view=view, health_state=as_str(entry.get("NodeHealthState")))


def _names(value: object, node: str, field: str, problems: Problems, limits: Limits) -> tuple[str, ...]:
    """A `[]string` chip list; null/[]/{} mean none; a comma string is accepted too. At most
    `limits.chips_per_node` names are kept."""
    if value is None or value == {}:
        return ()
    if isinstance(value, str):
        items: list[object] = list(split_names(value))
    elif isinstance(value, list):
        items = value
    else:
        problems.add(KEY_FAULT_NODE, REASON_SCHEMA, f"{node}: {field} is not an array")
        return ()
    names: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            problems.add(KEY_FAULT_NODE, REASON_SCHEMA, f"{node}: {field} element is not a string")
            continue
        name = item.strip()
        if name:
            if len(names) >= limits.chips_per_node:
                problems.add(
                    KEY_FAULT_NODE, REASON_LIMIT, f"{node}: more than {limits.chips_per_node} in {field}"
                )
                break
            names[name] = None
    return tuple(names)


def resource_of(npu_name: str) -> str:
    """Resource name a chip belongs to, from its name: `Ascend910-3` → `huawei.com/Ascend910`,
    `npu-2` → `huawei.com/npu`, `Ascend310P-1` → `huawei.com/Ascend310P`; vNPU (`Ascend910-4c-100-3`),
    share-mode (`Ascend310P-2-17`) and mixed-insert (`Ascend310P-V-7`) names map to the physical
    resource. A custom device name maps to `huawei.com/<its prefix>` (the real custom resource name
    is not in the CM). "" when the name has no `-<id>` suffix."""
    name = npu_name.strip()
    match = _VIRTUAL_NAME.match(name) or _PHYSICAL_NAME.match(name) or _ANY_NAME.match(name)
    if match is None:
        return ""
    prefix = match.group(1)
    return _PREFIX_RESOURCES.get(prefix, "huawei.com/" + prefix)


def _group(
    unhealthy: Iterable[str], network: Iterable[str], manual: Iterable[str]
) -> tuple[ResourceChips, ...]:
    per_resource: dict[str, dict[str, list[str]]] = {}
    given = (("unhealthy", unhealthy), ("network_unhealthy", network), ("manually_separated", manual))
    for status, names in given:
        for name in names:
            lists = per_resource.setdefault(resource_of(name), {s: [] for s in CHIP_LIST_STATUSES})
            lists[status].append(name)
    return tuple(
        ResourceChips(resource=res, lists={s: tuple(per_resource[res][s]) for s in CHIP_LIST_STATUSES})
        for res in sorted(per_resource)
    )


# --- remain-retry-times ------------------------------------------------------------------------


def _retry_budgets(data: Mapping[str, Any], problems: Problems) -> tuple[JobRetries, ...]:
    """The retry budgets. Volcano rewrites the ConfigMap every session (~1 s) and the budgets
    mostly stay as they were: the same text is parsed once (thousands of jobs, ~10 ms)."""
    text = data.get(KEY_RETRY_TIMES)
    if not isinstance(text, str):
        return _parse_retries(decode_json(data, KEY_RETRY_TIMES, problems, blank_is_empty=True), problems)
    retries, found = _parse_retries_text(text)
    problems.items.extend(found)
    return retries


@functools.lru_cache(maxsize=2)
def _parse_retries_text(text: str) -> tuple[tuple[JobRetries, ...], tuple[Problem, ...]]:
    problems = Problems()
    decoded = decode_json({KEY_RETRY_TIMES: text}, KEY_RETRY_TIMES, problems, blank_is_empty=True)
    return _parse_retries(decoded, problems), tuple(problems.items)


def _parse_retries(entries: dict[str, Any] | None, problems: Problems) -> tuple[JobRetries, ...]:
    retries = []
    for job_id, value in (entries or {}).items():
        namespace, sep, podgroup = job_id.partition("/")
        if not sep or not namespace or not podgroup:
            problems.add(KEY_RETRY_TIMES, REASON_SCHEMA, f"job id {job_id!r} is not <namespace>/<podgroup>")
            continue
        info = as_dict(value)
        times = as_int(info.get("Times")) if info is not None else None
        if info is None or times is None:
            problems.add(KEY_RETRY_TIMES, REASON_SCHEMA, f"{job_id}: not an object with an integer Times")
            continue
        uid = as_str(info.get("UUID"))
        retries.append(JobRetries(namespace=namespace, podgroup=podgroup, job_uid=uid, times=times))
    return tuple(sorted(retries, key=lambda r: (r.namespace, r.podgroup)))


# --- the source ---------------------------------------------------------------------------------

NODE_HEALTH_STATE = Family(
    "mindx_node_health_state",
    "gauge",
    "Volcano's NodeHealthState for nodes in fault-node (1, active only).",
    ("source", "node", "state"),
    order=220,
)
JOB_REMAINING_RETRIES = Family(
    "mindx_job_remaining_retries",
    "gauge",
    "Remaining fault-retry budget of a job (Times from Volcano's remain-retry-times).",
    ("namespace", "podgroup", "job_uid"),
    order=500,
)


def _health_state(source: str, record: VolcanoNode) -> Iterator[Sample]:
    if record.health_state:
        yield (source, record.view.node, record.health_state), 1


def _retries(source: str, record: JobRetries) -> Iterator[Sample]:
    yield (record.namespace, record.podgroup, record.job_uid), record.times


NODE_METRICS: tuple[Metric[VolcanoNode], ...] = (Metric(NODE_HEALTH_STATE, _health_state),)
JOB_METRICS: tuple[Metric[JobRetries], ...] = (Metric(JOB_REMAINING_RETRIES, _retries),)


def render(source: str, record: VolcanoRecord) -> Blocks:
    if isinstance(record, JobRetries):
        return render_table(JOB_METRICS, source, record)
    blocks = render_table(NODE_VIEW_METRICS, source, record.view)
    for metric in NODE_METRICS:
        add_block(blocks, metric.family, metric.samples(source, record))
    return blocks


def scope(record: VolcanoRecord) -> Scope:
    if isinstance(record, JobRetries):
        return job_scope(record.namespace, record.podgroup)
    return node_scope(record.view.node)


SOURCE = Source(
    name="volcano",
    description="Volcano's vcjob-fault-npu-cm (fault nodes, job retry budgets)",
    # Volcano sets no labels: select the one object by name.
    watch=Watch("configmaps", NAMESPACE, field_selector=f"metadata.name={NAME}", name_prefixes=(NAME,)),
    parse=parse_configmap,
    families=(
        *families_of(NODE_VIEW_METRICS),
        NODE_HEALTH_STATE,
        JOB_REMAINING_RETRIES,
    ),
    handler=per_object(render, scope=scope),
    chip_views=lambda records: [
        r.view.chips for r in records.values() if isinstance(r, VolcanoNode) and r.view.chips is not None
    ],
)
