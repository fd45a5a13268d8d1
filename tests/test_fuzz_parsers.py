"""Property tests (hypothesis) for every source parser and for the handlers and renderers
downstream of them.

Inputs: arbitrary JSON and arbitrary text (also bytes decoded as UTF-8 or Latin-1) in every data
key, and random mutations of the real-format fixtures in tests/fixtures — keys dropped or renamed,
types changed, strings truncated, nulls injected, sibling values swapped, list elements
duplicated — applied at any depth, including inside the JSON-in-a-string layers (DeviceInfoCfg →
DeviceList → `-Fault` list → entry).

Properties:
- nothing raises, in the parser or in the handler that renders its records;
- a data key whose value is not valid JSON gets a `json` problem for that key;
- every rejection is accounted: each list element or map entry the parser drops is matched by a
  problem (at least as many problems as dropped elements), and problems only name the source's
  own data keys (the `key` label cannot be flooded by input);
- the exposition the handler renders parses with prometheus_client, has no duplicate series, and
  carries `mindx_configmap_invalid` for every (key, reason) found and one
  `mindx_exporter_parse_errors_total` increment per problem.

Strings never hold lone surrogates: objects arrive as JSON that orjson decodes, and orjson rejects
them (hypothesis' text() excludes them too).

Example counts: HYPOTHESIS_PROFILE=ci (the default, CI-sized) or HYPOTHESIS_PROFILE=thorough.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.metrics.exposition import Family, render_samples
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES_BY_NAME, watch_target
from exporter.sources import clusterd, deviceplugin, dpu, events, noded, recovery, reschedule, volcano
from exporter.sources.base import Source
from exporter.sources.common import (
    Problem,
    Problems,
    as_int,
    chip_level_rank,
    node_from_name,
    object_name,
)
from exporter.sources.records import ChipFault, FaultCode, NodeFaultDevice
from tests.helpers import Series, fixture, parse_exposition, select

settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# --- strategies -------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=16,
)
SPECIAL_TEXT = st.sampled_from(
    [
        "",
        " ",
        "null",
        "[]",
        "{}",
        '""',
        "0",
        "NaN",
        "Infinity",
        "[" * 3000,  # deeper than any JSON parser's nesting limit
        '{"a":' * 3000,
        '"\\ud800"',  # an escaped lone surrogate: invalid for orjson
        "\ufeff{}",
        "{}garbage",
        "1e999",
    ]
)


def truncations(text: str) -> st.SearchStrategy[str]:
    return st.integers(min_value=0, max_value=max(0, len(text) - 1)).map(lambda n: text[:n])


GARBAGE_TEXT = st.one_of(
    st.text(max_size=120),
    st.binary(max_size=120).map(lambda b: b.decode("utf-8", "replace")),
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),
    JSON_VALUES.map(json.dumps),
    JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False)).flatmap(truncations),
    SPECIAL_TEXT,
)
# What a data key may hold in a fuzzed object: text (the API's map[string]string) or, to test
# type confusion in-process, any JSON value.
DATA_VALUES = st.one_of(GARBAGE_TEXT, GARBAGE_TEXT, JSON_VALUES)


def _inner_json(text: str) -> Any:
    """The decoded container when `text` is a JSON object or array, else None."""
    if text[:1] not in ("{", "["):
        return None
    try:
        decoded = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return decoded if isinstance(decoded, dict | list) else None


Path = tuple[tuple[str, Any], ...]  # ("item", key or index) | ("json", None): into JSON-in-a-string


def _paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every node of a value, descending into strings that hold a JSON object or array."""
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, ("item", key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, ("item", index)))
    elif isinstance(value, str):
        inner = _inner_json(value)
        if inner is not None:
            found += _paths(inner, (*prefix, ("json", None)))
    return found


def _at(value: Any, path: Path, transform: Callable[[Any], Any]) -> Any:
    """`value` with the node at `path` replaced by transform(node); JSON layers are re-encoded as
    Go writes them."""
    if not path:
        return transform(value)
    kind, key = path[0]
    if kind == "json":
        changed = _at(_inner_json(value), path[1:], transform)
        return json.dumps(changed, ensure_ascii=False, separators=(",", ":"))
    container = copy.copy(value)
    container[key] = _at(value[key], path[1:], transform)
    return container


NODE_OPS = ("null", "retype", "truncate", "empty", "control")
PARENT_OPS = ("drop", "swap", "rename", "duplicate")


def _node_op(draw: st.DrawFn, op: str, node: Any) -> Any:
    if op == "null":
        return None
    if op == "truncate" and isinstance(node, str | list):
        return node[: draw(st.integers(min_value=0, max_value=max(0, len(node) - 1)))]
    if op == "truncate" and isinstance(node, dict):
        keep = draw(st.integers(min_value=0, max_value=len(node)))
        return dict(list(node.items())[:keep])
    if op == "empty":
        return type(node)() if isinstance(node, str | list | dict) else ""
    if op == "control" and isinstance(node, str):
        position = draw(st.integers(min_value=0, max_value=len(node)))
        special = draw(st.sampled_from(['"', "\\", "\n", "\x00", ",", "\u00e9", "\u2028"]))
        return node[:position] + special + node[position:]
    return draw(DATA_VALUES)


def _parent_op(draw: st.DrawFn, op: str, parent: Any, *, key: Any) -> Any:
    result = copy.copy(parent)
    siblings = list(range(len(parent))) if isinstance(parent, list) else list(parent)
    if op == "drop":
        del result[key]
    elif op == "swap":
        other = draw(st.sampled_from(siblings))
        result[key], result[other] = parent[other], parent[key]
    elif op == "rename" and isinstance(result, dict):
        result[draw(st.text(max_size=12))] = result.pop(key)
    elif op == "duplicate" and isinstance(result, list):
        result.insert(key, copy.deepcopy(parent[key]))
    elif op == "duplicate" and isinstance(result, dict):
        result[f"{key}{draw(st.text(max_size=3))}"] = copy.deepcopy(parent[key])
    else:
        result[key] = draw(DATA_VALUES)
    return result


@st.composite
def mutated(draw: st.DrawFn, base: Mapping[str, Any], max_mutations: int = 4) -> dict[str, Any]:
    """`base` after 1..max_mutations mutations, each at a node drawn uniformly from all nodes of the
    object including those inside JSON-in-a-string layers — so most land deep in the payload."""
    value: Any = copy.deepcopy(dict(base))
    for _ in range(draw(st.integers(min_value=1, max_value=max_mutations))):
        path = draw(st.sampled_from(_paths(value)))
        op = draw(st.sampled_from(NODE_OPS + PARENT_OPS))
        if op in PARENT_OPS and path and path[-1][0] == "item":
            value = _at(value, path[:-1], functools.partial(_parent_op, draw, op, key=path[-1][1]))
        else:
            value = _at(value, path, functools.partial(_node_op, draw, op))
    return value if isinstance(value, dict) else {"data": value}


def configmap(namespace: str, name: str, data: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": "7", "uid": "u-1"},
        "data": dict(data),
    }


def data_with(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """A data map with the source's own keys (each maybe absent) plus stray keys."""
    own = st.fixed_dictionaries({}, optional={key: DATA_VALUES for key in keys})
    stray = st.dictionaries(st.text(max_size=10), DATA_VALUES, max_size=2)
    return st.builds(lambda a, b: {**b, **a}, own, stray)


# --- oracles ----------------------------------------------------------------------------------


def invalid_json(value: object) -> bool:
    """Not valid JSON by the exporter's definition (orjson: RFC 8259, no NaN, no lone surrogate,
    nesting limit)."""
    if not isinstance(value, str):
        return False
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return True
    return False


def decoded(value: object) -> Any:
    if not isinstance(value, str):
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


def kinds(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.key, p.reason) for p in problems}


def count_for(problems: list[Problem], key: str) -> int:
    return sum(1 for p in problems if p.key == key)


def assert_json_problems(
    data: Mapping[str, Any], keys: tuple[str, ...], problems: list[Problem], blank_ok: bool
) -> None:
    for key in keys:
        value = data.get(key)
        if blank_ok and isinstance(value, str) and not value.strip():
            continue
        if invalid_json(value):
            assert (key, "json") in kinds(problems), f"invalid JSON in {key!r} not reported"


def assert_bounded_keys(problems: list[Problem], allowed: set[str]) -> None:
    assert {p.key for p in problems} <= allowed, "a problem names a key the source does not own"
    assert {p.reason for p in problems} <= {"json", "checkcode", "schema"}


# --- the pipeline: handler → store → exposition -------------------------------------------------


def render_through_handler(
    source: str, objects: list[dict[str, Any]], upsert: bool
) -> tuple[Series, ExporterMetrics]:
    """Feed objects to the source's real handler (as the reflector would) and parse what a scrape
    would serve. `upsert`: one by one as watch events, else as one list."""
    spec: Source[Any] = SOURCES_BY_NAME[source]
    target = watch_target(spec)
    store = MetricsStore(ALL_FAMILIES)
    metrics = ExporterMetrics()
    handler = spec.handler(spec, target, store, metrics)
    if upsert:
        handler.replace([])  # the first list (Events: only learns, never counts)
        for obj in objects:
            handler.upsert(obj)
    else:
        handler.replace(objects)
    body = store.body() + metrics.render()
    return parse_exposition(body.decode("utf-8")), metrics


def assert_accounted_in_exposition(series: Series, obj: Mapping[str, Any], problems: list[Problem]) -> None:
    namespace, name = object_name(obj)
    invalid = select(series, "mindx_configmap_invalid", namespace=namespace, configmap=name)
    served = {(dict(lbls)["key"], dict(lbls)["reason"]) for lbls in invalid}
    assert served == kinds(problems)
    errors = sum(select(series, "mindx_exporter_parse_errors_total").values())
    assert errors == len(problems)


def check_pipeline(source: str, obj: dict[str, Any], problems: list[Problem], upsert: bool) -> Series:
    series, _ = render_through_handler(source, [obj], upsert)
    assert_accounted_in_exposition(series, obj, problems)
    return series


# --- device plugin ----------------------------------------------------------------------------

DP_FIXTURES = [
    fixture(name)
    for name in (
        "deviceinfo-node133.json",
        "deviceinfo-node134-healthy.json",
        "deviceinfo-node135-a3-switchfault.json",
        "deviceinfo-node140-ascend310.json",
        "deviceinfo-node150-a5-npu.json",
    )
]
DP_KEYS = (deviceplugin.KEY_DEVICE_INFO, deviceplugin.KEY_SWITCH_INFO, deviceplugin.KEY_MANUALLY_SEPARATED)


def check_deviceplugin(cm: dict[str, Any], upsert: bool) -> None:
    result = deviceplugin.parse_configmap(cm)
    problems = result.problems.items
    node = node_from_name(object_name(cm)[1], deviceplugin.NAME_PREFIX)
    if node is None:
        assert result.first is None and not problems
        return
    assert result.first is not None and result.first.node == node
    data = cm.get("data") if isinstance(cm.get("data"), dict) else {}
    assert isinstance(data, dict)
    assert_bounded_keys(problems, {deviceplugin.KEY_DEVICE_INFO, deviceplugin.KEY_SWITCH_INFO})
    json_keys = (deviceplugin.KEY_DEVICE_INFO,) + (
        (deviceplugin.KEY_SWITCH_INFO,) if deviceplugin.KEY_SWITCH_INFO in data else ()
    )
    assert_json_problems(data, json_keys, problems, blank_ok=False)
    if result.first.chips is None:
        assert count_for(problems, deviceplugin.KEY_DEVICE_INFO), "DeviceInfoCfg dropped silently"
    if data.get(deviceplugin.KEY_SWITCH_INFO) is not None and result.first.switch is None:
        assert count_for(problems, deviceplugin.KEY_SWITCH_INFO), "SwitchInfoCfg dropped silently"
    # Every DeviceList value and every fault entry is used or reported.
    info = decoded(data.get(deviceplugin.KEY_DEVICE_INFO))
    device_info = info.get("DeviceInfo") if isinstance(info, dict) else None
    device_list = device_info.get("DeviceList") if isinstance(device_info, dict) else None
    if isinstance(device_list, dict) and result.first.chips is not None:
        faulty = {f.npu for f in result.first.chips.faults}
        dropped = 0
        for key, value in device_list.items():
            if not key.endswith("-Fault"):
                dropped += value is not None and not isinstance(value, str)
                continue
            entries = decoded(value) if isinstance(value, str) and value else value
            for entry in entries if isinstance(entries, list) else ():
                npu = entry.get("npu_name") if isinstance(entry, dict) else None
                if isinstance(npu, str) and npu.strip():
                    assert npu.strip() in faulty, "a fault entry vanished"
                else:
                    dropped += 1
        assert count_for(problems, deviceplugin.KEY_DEVICE_INFO) >= dropped
    check_pipeline("device-plugin", cm, problems, upsert)


@FUZZ
@given(data=data_with(DP_KEYS), node=st.text(min_size=1, max_size=20), upsert=st.booleans())
def test_deviceplugin_arbitrary_data(data: dict[str, Any], node: str, upsert: bool) -> None:
    check_deviceplugin(configmap("kube-system", deviceplugin.NAME_PREFIX + node, data), upsert)


@FUZZ
@given(cm=st.sampled_from(DP_FIXTURES).flatmap(mutated), upsert=st.booleans())
def test_deviceplugin_mutated_fixtures(cm: dict[str, Any], upsert: bool) -> None:
    check_deviceplugin(cm, upsert)


# --- NodeD ------------------------------------------------------------------------------------

NODED_FIXTURES = [fixture("nodeinfo-node133-preseparate.json"), fixture("nodeinfo-node136-unhealthy.json")]


def check_noded(cm: dict[str, Any], upsert: bool) -> None:
    result = noded.parse_configmap(cm)
    problems = result.problems.items
    node = node_from_name(object_name(cm)[1], noded.NAME_PREFIX)
    if node is None:
        assert result.first is None and not problems
        return
    assert result.first is not None and result.first.node == node
    data = cm.get("data") if isinstance(cm.get("data"), dict) else {}
    assert isinstance(data, dict)
    assert_bounded_keys(problems, {noded.KEY_NODE_INFO, noded.KEY_UPDATE_TIME})
    assert_json_problems(data, (noded.KEY_NODE_INFO,), problems, blank_ok=False)
    outer = decoded(data.get(noded.KEY_NODE_INFO))
    inner = outer.get("NodeInfo") if isinstance(outer, dict) else None
    if not isinstance(inner, dict):
        assert count_for(problems, noded.KEY_NODE_INFO), "an unusable NodeInfo was not reported"
    else:
        devices = {(d.device_type, d.device_id) for d in result.first.devices}
        dev_list = inner.get("FaultDevList")
        dropped = 0
        for element in dev_list if isinstance(dev_list, list) else ():
            if isinstance(element, dict):
                assert devices, "a faulty device vanished"
            else:
                dropped += 1
        assert count_for(problems, noded.KEY_NODE_INFO) >= dropped
    if data.get(noded.KEY_UPDATE_TIME) is not None and result.first.update_time is None:
        assert count_for(problems, noded.KEY_UPDATE_TIME), "an unusable updateTime was not reported"
    check_pipeline("noded", cm, problems, upsert)


@FUZZ
@given(
    data=data_with((noded.KEY_NODE_INFO, noded.KEY_UPDATE_TIME)),
    node=st.text(min_size=1, max_size=20),
    upsert=st.booleans(),
)
def test_noded_arbitrary_data(data: dict[str, Any], node: str, upsert: bool) -> None:
    check_noded(configmap("mindx-dl", noded.NAME_PREFIX + node, data), upsert)


@FUZZ
@given(cm=st.sampled_from(NODED_FIXTURES).flatmap(mutated), upsert=st.booleans())
def test_noded_mutated_fixtures(cm: dict[str, Any], upsert: bool) -> None:
    check_noded(cm, upsert)


# --- ClusterD ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterdMap:
    parse: Callable[[Mapping[str, Any]], Any]
    entry_prefix: str
    fixture: str

    def nodes(self, result: Any) -> set[str] | None:
        found = result.records
        return None if found is None else set(found)


CLUSTERD_MAPS = {
    "node-cm": ClusterdMap(clusterd.parse_node_cm, clusterd.NODE_KEY_PREFIX, "cluster-info-node-cm.json"),
    "device": ClusterdMap(
        clusterd.parse_device_shard, clusterd.DEVICE_KEY_PREFIX, "cluster-info-device-0.json"
    ),
    "switch": ClusterdMap(
        clusterd.parse_switch_shard, clusterd.SWITCH_KEY_PREFIX, "cluster-info-switch-0.json"
    ),
}


def oracle_node(entry_key: str, entry: Mapping[str, Any], prefix: str) -> str | None:
    cm_name = entry.get("CmName")
    for candidate in (entry_key, cm_name if isinstance(cm_name, str) else ""):
        if candidate.startswith(prefix) and candidate[len(prefix) :].strip():
            return candidate[len(prefix) :].strip()
    return None


def check_clusterd(kind: str, cm: dict[str, Any]) -> list[Problem]:
    spec = CLUSTERD_MAPS[kind]
    result = spec.parse(cm)
    problems = result.problems.items
    name = object_name(cm)[1]
    nodes = spec.nodes(result)
    if nodes is None:
        assert not problems
        return problems
    assert_bounded_keys(problems, {name})
    data = cm.get("data") if isinstance(cm.get("data"), dict) else {}
    assert isinstance(data, dict)
    assert_json_problems(data, (name,), problems, blank_ok=True)
    outer = decoded(data.get(name))
    if isinstance(outer, dict):
        dropped = 0
        for entry_key, entry in outer.items():
            node = oracle_node(entry_key, entry, spec.entry_prefix) if isinstance(entry, dict) else None
            if node is None:
                dropped += 1
            else:
                assert node in nodes, f"ClusterD entry {entry_key!r} vanished"
        assert len(problems) >= dropped
    elif (
        outer is not None and outer != [] and not (isinstance(data.get(name), str) and not data[name].strip())
    ):
        assert count_for(problems, name), "a non-object ClusterD map was not reported"
    return problems


@FUZZ
@given(
    kind=st.sampled_from(sorted(CLUSTERD_MAPS)),
    shard=st.integers(min_value=0, max_value=3),
    value=DATA_VALUES,
    upsert=st.booleans(),
)
def test_clusterd_arbitrary_data(kind: str, shard: int, value: Any, upsert: bool) -> None:
    name = {
        "node-cm": clusterd.NODE_CM_NAME,
        "device": f"{clusterd.DEVICE_PREFIX}{shard}",
        "switch": f"{clusterd.SWITCH_PREFIX}{shard}",
    }[kind]
    cm = configmap("mindx-dl", name, {name: value})
    problems = check_clusterd(kind, cm)
    check_pipeline("clusterd", cm, problems, upsert)


@FUZZ
@given(
    kind=st.sampled_from(sorted(CLUSTERD_MAPS)),
    data=st.data(),
    upsert=st.booleans(),
)
def test_clusterd_mutated_fixtures(kind: str, data: st.DataObject, upsert: bool) -> None:
    cm = data.draw(mutated(fixture(CLUSTERD_MAPS[kind].fixture)))
    problems = check_clusterd(kind, cm)
    check_pipeline("clusterd", cm, problems, upsert)


@FUZZ
@given(data=st.data(), upsert=st.booleans())
def test_clusterd_shards_together(data: st.DataObject, upsert: bool) -> None:
    """The per-node merge across the node map and several mutated shards (a node in two shards,
    in none, garbage in one) never serves a series twice."""
    device = fixture("cluster-info-device-0.json")
    second = copy.deepcopy(device)
    second["metadata"]["name"] = f"{clusterd.DEVICE_PREFIX}1"
    second["data"] = {f"{clusterd.DEVICE_PREFIX}1": device["data"][f"{clusterd.DEVICE_PREFIX}0"]}
    bases = [fixture("cluster-info-node-cm.json"), device, second, fixture("cluster-info-switch-0.json")]
    objects = [
        data.draw(mutated(base, max_mutations=2)) if data.draw(st.booleans()) else base for base in bases
    ]
    for index, obj in enumerate(objects):
        metadata = obj.get("metadata")
        if isinstance(metadata, dict):
            metadata["resourceVersion"] = str(10 + index)
    render_through_handler("clusterd", objects, upsert)


# --- Volcano ----------------------------------------------------------------------------------


def check_volcano(cm: dict[str, Any], upsert: bool) -> None:
    result = volcano.parse_configmap(cm)
    problems = result.problems.items
    if object_name(cm)[1] != volcano.NAME:
        assert result.records is None and not problems
        return
    assert result.records is not None
    data = cm.get("data") if isinstance(cm.get("data"), dict) else {}
    assert isinstance(data, dict)
    assert_bounded_keys(problems, {volcano.KEY_FAULT_NODE, volcano.KEY_RETRY_TIMES})
    assert_json_problems(data, (volcano.KEY_FAULT_NODE, volcano.KEY_RETRY_TIMES), problems, blank_ok=True)
    fault_nodes = decoded(data.get(volcano.KEY_FAULT_NODE))
    names = {n.view.node for n in volcano.fault_nodes(result)}
    dropped = 0
    for entry in fault_nodes if isinstance(fault_nodes, list) else ():
        node = entry.get("NodeName") if isinstance(entry, dict) else None
        if isinstance(node, str) and node.strip():
            assert node.strip() in names, "a fault-node entry vanished"
        else:
            dropped += 1
    assert count_for(problems, volcano.KEY_FAULT_NODE) >= dropped
    retries = decoded(data.get(volcano.KEY_RETRY_TIMES))
    jobs = {(r.namespace, r.podgroup) for r in volcano.job_retries(result)}
    dropped = 0
    for job_id, value in retries.items() if isinstance(retries, dict) else ():
        namespace, sep, podgroup = job_id.partition("/")
        times = as_int(value.get("Times")) if isinstance(value, dict) else None
        if sep and namespace and podgroup and times is not None:
            assert (namespace, podgroup) in jobs, "a retry budget vanished"
        else:
            dropped += 1
    assert count_for(problems, volcano.KEY_RETRY_TIMES) >= dropped
    check_pipeline("volcano", cm, problems, upsert)


@FUZZ
@given(data=data_with((volcano.KEY_FAULT_NODE, volcano.KEY_RETRY_TIMES, "NodeDEnable")), upsert=st.booleans())
def test_volcano_arbitrary_data(data: dict[str, Any], upsert: bool) -> None:
    check_volcano(configmap("volcano-system", volcano.NAME, data), upsert)


@FUZZ
@given(cm=mutated(fixture("vcjob-fault-npu-cm.json")), upsert=st.booleans())
def test_volcano_mutated_fixture(cm: dict[str, Any], upsert: bool) -> None:
    check_volcano(cm, upsert)


# --- job reschedules, job recovery, DPUs -------------------------------------------------------


def check_one_key_source(
    source: str, cm: dict[str, Any], keys: tuple[str, ...], upsert: bool, blank_ok: bool
) -> None:
    """A source whose parser reads one JSON key (plus, for job-recovery, the checkCode beside it)."""
    result = SOURCES_BY_NAME[source].parse(cm)
    problems = result.problems.items
    assert_bounded_keys(problems, set(keys))
    if result.records is None:  # not the source's object (its name was mutated): nothing to say
        assert not problems
    else:
        data = cm.get("data")
        assert_json_problems(data if isinstance(data, dict) else {}, keys[:1], problems, blank_ok)
    check_pipeline(source, cm, problems, upsert)


RESCHEDULE_KEYS = (reschedule.KEY_RECORDS,)
RECOVERY_KEYS = (recovery.KEY_RESET, recovery.KEY_CHECK_CODE)
DPU_KEYS = (dpu.KEY_DPU_INFO,)


@FUZZ
@given(data=data_with(RESCHEDULE_KEYS), upsert=st.booleans())
def test_reschedule_arbitrary_data(data: dict[str, Any], upsert: bool) -> None:
    cm = configmap(reschedule.NAMESPACE, reschedule.NAME, data)
    check_one_key_source("job-reschedule", cm, RESCHEDULE_KEYS, upsert, blank_ok=True)


@FUZZ
@given(cm=mutated(fixture("job-reschedule-reason-multi.json")), upsert=st.booleans())
def test_reschedule_mutated_fixture(cm: dict[str, Any], upsert: bool) -> None:
    check_one_key_source("job-reschedule", cm, RESCHEDULE_KEYS, upsert, blank_ok=True)


@FUZZ
@given(data=data_with((*RECOVERY_KEYS, "restartType")), upsert=st.booleans())
def test_recovery_arbitrary_data(data: dict[str, Any], upsert: bool) -> None:
    cm = configmap("team-a", "reset-config-llama", data)
    check_one_key_source("job-recovery", cm, RECOVERY_KEYS, upsert, blank_ok=False)


@FUZZ
@given(cm=mutated(fixture("reset-config-volcano-podreschedule.json")), upsert=st.booleans())
def test_recovery_mutated_fixture(cm: dict[str, Any], upsert: bool) -> None:
    check_one_key_source("job-recovery", cm, RECOVERY_KEYS, upsert, blank_ok=False)


@FUZZ
@given(data=data_with(DPU_KEYS), upsert=st.booleans())
def test_dpu_arbitrary_data(data: dict[str, Any], upsert: bool) -> None:
    check_one_key_source(
        "rdma-device-plugin",
        configmap(dpu.NAMESPACE, "dpuinfo-node150", data),
        DPU_KEYS,
        upsert,
        blank_ok=False,
    )


@FUZZ
@given(cm=mutated(fixture("dpuinfo-node150-faulty.json")), upsert=st.booleans())
def test_dpu_mutated_fixture(cm: dict[str, Any], upsert: bool) -> None:
    check_one_key_source("rdma-device-plugin", cm, DPU_KEYS, upsert, blank_ok=False)


# --- device-plugin Events ---------------------------------------------------------------------

EVENT = fixture("event-deviceplugin-node133-occur.json")
FIELD_TEXT = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**40), max_value=2**40).map(str),
    st.sampled_from(["node133", "Occur", "Recovery", "SeparateNPU", "80E18402", "80E18402,8C204E00", ""]),
)


@st.composite
def fault_messages(draw: st.DrawFn) -> str:
    """Messages in (and around) the device plugin's format: fields dropped, reordered, garbled."""
    fields = [
        ("nodeName", draw(FIELD_TEXT)),
        ("assertion", draw(FIELD_TEXT)),
        *draw(
            st.sampled_from(
                [
                    [("cardID", draw(FIELD_TEXT)), ("deviceID", draw(FIELD_TEXT))],
                    [("logicID", draw(FIELD_TEXT))],
                ]
            )
        ),
        ("faultCodes", draw(FIELD_TEXT)),
        ("faultLevelName", draw(FIELD_TEXT)),
        ("alarmRaisedTime", draw(FIELD_TEXT)),
    ]
    if draw(st.booleans()):
        fields = draw(st.permutations(fields))[: draw(st.integers(min_value=0, max_value=len(fields)))]
    prefix = draw(
        st.sampled_from(["device fault, ", "  device fault, ", "device fault,", "hot reset start, "])
    )
    return prefix + ", ".join(f"{key}:{value}" for key, value in fields)


EVENT_MUTATIONS = st.one_of(
    mutated(EVENT),
    st.builds(lambda message: dict(EVENT, message=message), fault_messages()),
    st.builds(
        lambda message, count: dict(EVENT, message=message, count=count),
        fault_messages() | GARBAGE_TEXT,
        JSON_VALUES,
    ),
)


@FUZZ
@given(event=EVENT_MUTATIONS)
def test_event_parser_and_counter(event: dict[str, Any]) -> None:
    result = events.parse_event(event)
    problems = result.problems.items
    message = event.get("message")
    is_fault = isinstance(message, str) and message.lstrip().startswith(events.FAULT_MESSAGE_PREFIX)
    if not is_fault:
        assert result.first is None and not problems
    else:
        # Exactly one of: a record, or a schema problem for the message.
        assert (result.first is None) == (kinds(problems) == {("message", "schema")})
        assert len(problems) <= 1
    series, _ = render_through_handler("device-plugin-events", [event], upsert=True)
    counted = sum(select(series, "mindx_npu_fault_events_total").values())
    assert counted == (result.first.count if result.first is not None else 0)
    if result.first is not None:
        assert result.first.count >= 1
    assert sum(select(series, "mindx_exporter_parse_errors_total").values()) == len(problems)


# --- the exposition itself --------------------------------------------------------------------

LABEL_TEXT = st.text(max_size=30) | st.sampled_from(
    ['"', "\\", "\n", '\\"', "\\n", "\\\\n", "é\u2028\r\t\x00"]
)


@FUZZ
@given(values=st.lists(st.tuples(LABEL_TEXT, LABEL_TEXT), min_size=1, max_size=5, unique=True))
def test_label_values_round_trip(values: list[tuple[str, str]]) -> None:
    """Any label value (quotes, backslashes, newlines, non-ASCII, control characters) is escaped so
    that a parser gets exactly the value back."""
    family = Family("mindx_fuzz_info", "gauge", "Fuzzed label values.", ("a", "b"))
    body = family.header() + render_samples(family, ((pair, 1) for pair in values))
    series = parse_exposition(body.decode("utf-8"))
    parsed: set[Hashable] = {frozenset(lbls) for (_, lbls) in series}
    assert parsed == {frozenset({("a", a), ("b", b)}) for a, b in values}


# --- the linear-time merges against the straightforward (quadratic) definitions ------------------
# The parsers index and merge in linear time so a 1 MiB garbage object cannot stall the event loop
# (tests/test_resource_bounds.py). These references are the plain definitions they replaced.


def reference_merge_faults(faults: list[ChipFault]) -> tuple[ChipFault, ...]:
    merged: dict[tuple[str, str], ChipFault] = {}
    for fault in faults:
        key = (fault.npu, fault.fault_type)
        seen = merged.get(key)
        if seen is None:
            merged[key] = fault
            continue
        handling = max((seen.fault_handling, fault.fault_handling), key=chip_level_rank)
        codes = {c.code: c for c in fault.codes}
        codes.update({c.code: c for c in seen.codes})
        merged[key] = ChipFault(fault.npu, fault.fault_type, handling, tuple(codes.values()))
    return tuple(merged.values())


def reference_assign(
    chips: tuple[str, ...], lists: Mapping[str, Mapping[str, tuple[str, ...]]]
) -> dict[str, list[str]]:
    assigned: dict[str, list[str]] = {}
    for chip in chips:
        owner = next(
            (res for res, per in lists.items() if any(chip in names for names in per.values())), None
        )
        if owner is None:
            owner = next((res for res in lists if chip.startswith(res.rsplit("/", 1)[-1] + "-")), None)
        if owner is None and len(lists) == 1:
            owner = next(iter(lists))
        if owner is not None:
            assigned.setdefault(owner, []).append(chip)
    return assigned


def reference_fault_devs(devices: list[NodeFaultDevice]) -> tuple[NodeFaultDevice, ...]:
    merged: dict[tuple[str, str], NodeFaultDevice] = {}
    for device in devices:
        ident = (device.device_type, device.device_id)
        seen = merged.get(ident)
        if seen is None:
            merged[ident] = device
            continue
        codes = dict.fromkeys(seen.fault_codes)
        codes.update(dict.fromkeys(device.fault_codes))
        level = max((seen.fault_level, device.fault_level), key=noded.node_level_rank)
        merged[ident] = NodeFaultDevice(seen.device_type, seen.device_id, tuple(codes), level)
    return tuple(merged.values())


SMALL = st.sampled_from(["a", "b", "c", ""])
LEVEL_NAMES = st.sampled_from(["SeparateNPU", "RestartNPU", "NotHandleFault", "Bogus", ""])
FAULT_CODES = st.builds(FaultCode, st.sampled_from(["A1", "B2", "C3", "D4"]), LEVEL_NAMES, st.integers(0, 3))
CHIP_FAULTS = st.builds(
    ChipFault,
    st.sampled_from(["npu-1", "npu-2"]),
    SMALL,
    LEVEL_NAMES,
    st.lists(FAULT_CODES, max_size=4, unique_by=lambda c: c.code).map(tuple),
)


@FUZZ
@given(faults=st.lists(CHIP_FAULTS, max_size=8))
def test_merge_faults_matches_reference(faults: list[ChipFault]) -> None:
    assert deviceplugin.merge_faults(faults) == reference_merge_faults(faults)


CHIP_NAMES = st.sampled_from(["npu-1", "npu-2", "a-b-1", "a-1", "Ascend910-3", "x", "-", "a-b-"])
RESOURCES = st.sampled_from(
    ["huawei.com/npu", "huawei.com/a", "huawei.com/a-b", "a", "x/", "huawei.com/Ascend910"]
)


@FUZZ
@given(
    chips=st.lists(CHIP_NAMES, max_size=6).map(tuple),
    lists=st.dictionaries(
        RESOURCES,
        st.dictionaries(st.sampled_from(["available", "unhealthy"]), st.lists(CHIP_NAMES).map(tuple)),
    ),
)
def test_assign_to_resources_matches_reference(
    chips: tuple[str, ...], lists: dict[str, dict[str, tuple[str, ...]]]
) -> None:
    assert deviceplugin._assign_to_resources(chips, lists) == reference_assign(chips, lists)


FAULT_DEVS = st.builds(
    NodeFaultDevice,
    st.sampled_from(["CPU", "PSU"]),
    st.sampled_from(["0", "1"]),
    st.lists(st.sampled_from(["A1", "B2", "C3"]), max_size=3, unique=True).map(tuple),
    st.sampled_from(["NotHandleFault", "PreSeparateFault", "SeparateFault", "Other", ""]),
)


@FUZZ
@given(devices=st.lists(FAULT_DEVS, max_size=8))
def test_fault_dev_merge_matches_reference(devices: list[NodeFaultDevice]) -> None:
    as_json = [
        {
            "DeviceType": d.device_type,
            "DeviceId": d.device_id,
            "FaultCode": list(d.fault_codes),
            "FaultLevel": d.fault_level,
        }
        for d in devices
    ]
    assert noded.parse_fault_dev_list(as_json, "NodeInfo", Problems()) == reference_fault_devs(devices)
