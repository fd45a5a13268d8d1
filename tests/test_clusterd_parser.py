"""The ClusterD `cluster-info-*` parsers (node CM, device and switch shards) on every fixture, record by
record, and their tolerance."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exporter.sources import clusterd
from exporter.sources.records import (
    CHIP_LIST_STATUSES,
    ChipFault,
    FaultCode,
    NodeChips,
    NodeFaultDevice,
    NodeStatusRecord,
    NodeView,
    ResourceChips,
    SuperPodInfo,
    SwitchFault,
    SwitchState,
)
from tests.helpers import fixture


def problems_of(result: Any) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def with_map(fixture_name: str, value: object) -> dict:
    """A copy of a fixture whose single data key holds `value` (a dict is JSON-encoded)."""
    cm = fixture(fixture_name)
    key = cm["metadata"]["name"]
    cm["data"][key] = orjson.dumps(value).decode() if isinstance(value, dict | list) else value
    return cm


def decoded(fixture_name: str) -> dict:
    cm = fixture(fixture_name)
    loaded: dict = orjson.loads(cm["data"][cm["metadata"]["name"]])
    return loaded


def res(resource: str, **lists: tuple[str, ...]) -> ResourceChips:
    return ResourceChips(resource, {status: lists.get(status, ()) for status in CHIP_LIST_STATUSES})


def partial(resource: str, **lists: tuple[str, ...]) -> ResourceChips:
    """The lists a DeviceList without some keys yields: only the keys present (+ manually_separated)."""
    return ResourceChips(resource, {"manually_separated": (), **lists})


# --- S4 cluster-info-node-cm ------------------------------------------------------------------


def test_node_cm_exact_records_update_time_in_ms() -> None:
    result = clusterd.parse_node_cm(fixture("cluster-info-node-cm.json"))
    assert problems_of(result) == []
    assert result.records == {
        # NodeD says PreSeparate; ClusterD rewrote it to Healthy (NPUs in use).
        "node133": NodeStatusRecord(
            node="node133",
            status="Healthy",
            devices=(NodeFaultDevice("CPU", "1", ("0000001D",), "PreSeparateFault"),),
            update_time=1744182212.0,  # 1744182212000 ms
        ),
        "node136": NodeStatusRecord(
            node="node136",
            status="UnHealthy",
            devices=(
                NodeFaultDevice("Mainboard", "0", ("2C000031",), "SeparateFault"),
                NodeFaultDevice("PSU", "2", ("0300000D",), "NotHandleFault"),
            ),
            update_time=1744181890.0,
        ),
    }


@pytest.mark.parametrize("value", ["", "   ", "null", "{}", "[]"])
def test_node_cm_empty_values(value: str) -> None:
    result = clusterd.parse_node_cm(with_map("cluster-info-node-cm.json", value))
    assert problems_of(result) == [] and result.records == {}


@pytest.mark.parametrize(
    ("value", "reason"),
    [("{broken", "json"), ('"text"', "schema"), ("[1]", "schema"), ("5", "schema"), (7, "schema")],
)
def test_node_cm_unusable_values(value: object, reason: str) -> None:
    result = clusterd.parse_node_cm(with_map("cluster-info-node-cm.json", value))
    assert problems_of(result) == [("cluster-info-node-cm", reason)]
    assert result.records == {}


def test_node_cm_missing_key() -> None:
    cm = fixture("cluster-info-node-cm.json")
    cm["data"] = {}
    result = clusterd.parse_node_cm(cm)
    assert problems_of(result) == [("cluster-info-node-cm", "schema")] and result.records == {}


def test_node_cm_entry_tolerance() -> None:
    value = {
        # Older ClusterD: no UpdateTime; null FaultDevList after gob deep copy.
        "mindx-dl-nodeinfo-a": {
            "FaultDevList": None,
            "NodeStatus": "Healthy",
            "CmName": "mindx-dl-nodeinfo-a",
        },
        # Key not in the expected form, but CmName is.
        "mindx-dl-deviceinfo-b": {
            "FaultDevList": [],
            "NodeStatus": "PreSeparate",
            "CmName": "mindx-dl-nodeinfo-b",
            "UpdateTime": 0,
        },
        # Neither: flagged and skipped.
        "something": {"FaultDevList": {}, "NodeStatus": "UnHealthy", "CmName": "something"},
        # Not an object: flagged and skipped.
        "mindx-dl-nodeinfo-d": "oops",
        # Unknown status, lower-case code, UpdateTime of a wrong type.
        "mindx-dl-nodeinfo-e": {
            "FaultDevList": [
                {"DeviceType": "NIC", "DeviceId": 4, "FaultCode": ["2c000031"], "FaultLevel": "NewLevel"}
            ],
            "NodeStatus": "Smoking",
            "UpdateTime": "soon",
        },
        # Seconds instead of ms: magnitude decides.
        "mindx-dl-nodeinfo-f": {"NodeStatus": "Healthy", "UpdateTime": 1744181890},
    }
    result = clusterd.parse_node_cm(with_map("cluster-info-node-cm.json", value))
    assert problems_of(result) == [("cluster-info-node-cm", "schema")] * 3
    assert result.records == {
        "a": NodeStatusRecord("a", "Healthy", (), None),
        "b": NodeStatusRecord("b", "PreSeparate", (), None),
        "e": NodeStatusRecord(
            "e", "Smoking", (NodeFaultDevice("NIC", "4", ("2C000031",), "NewLevel"),), None
        ),
        "f": NodeStatusRecord("f", "Healthy", (), 1744181890.0),
    }


def test_node_cm_wrong_name() -> None:
    cm = fixture("cluster-info-node-cm.json")
    cm["metadata"]["name"] = "cluster-info-device-0"
    result = clusterd.parse_node_cm(cm)
    assert result.records is None and result.problems.items == []


# --- S5 cluster-info-device-<m> ----------------------------------------------------------------


def _fault(npu: str, fault_type: str, handling: str, *codes: tuple[str, str, float]) -> ChipFault:
    return ChipFault(npu, fault_type, handling, tuple(FaultCode(c, lvl, t) for c, lvl, t in codes))


def test_device_shard_exact_entries() -> None:
    result = clusterd.parse_device_shard(fixture("cluster-info-device-0.json"))
    assert problems_of(result) == []
    assert result.records is not None
    assert sorted(result.records) == ["node133", "node134", "node135", "node140", "node150"]
    raw = {node: entry.update_time_raw for node, entry in result.records.items()}
    assert raw == {
        "node133": 1744182144,
        "node134": 1744180003,
        "node135": 1744182100,
        "node140": 1744182000,
        "node150": 1744182010,
    }
    views = {node: entry.view for node, entry in result.records.items()}

    a910 = [f"Ascend910-{i}" for i in range(8)]
    assert views["node133"] == NodeView(
        node="node133",
        chips=NodeChips(
            node="node133",
            resources=(
                res(
                    "huawei.com/Ascend910",
                    available=tuple(c for c in a910 if c != "Ascend910-4"),
                    unhealthy=("Ascend910-4",),
                    network_unhealthy=("Ascend910-0",),
                ),
            ),
            faults=(
                _fault(
                    "Ascend910-0",
                    "CardNetworkUnhealthy",
                    "PreSeparateNPU",
                    ("81078603", "PreSeparateNPU", 1744168468.259),
                ),
                # ClusterD re-orders the codes; DP fault_time is ms.
                _fault(
                    "Ascend910-4",
                    "CardUnhealthy",
                    "SeparateNPU",
                    ("80E18401", "NotHandleFault", 1744167455.784),
                    ("A4028801", "NotHandleFault", 1744167455.784),
                    ("80E18402", "SeparateNPU", 1744167455.784),
                    ("A8028801", "SeparateNPU", 1744167455.784),
                ),
            ),
        ),
        superpod=None,  # SuperPodID -2
        update_time=1744182144.0,
    )
    assert views["node134"] == NodeView(
        node="node134",
        chips=NodeChips(
            node="node134",
            resources=(
                res(
                    "huawei.com/Ascend910",
                    available=tuple(c for c in a910 if c != "Ascend910-6"),
                    unhealthy=("Ascend910-6",),
                ),
            ),
            # PublicFault fault_time is seconds.
            faults=(
                _fault(
                    "Ascend910-6", "PublicFault", "SeparateNPU", ("220001001", "SeparateNPU", 1744180000.0)
                ),
            ),
        ),
        update_time=1744180003.0,
    )
    assert views["node135"] == NodeView(
        node="node135",
        chips=NodeChips(
            node="node135",
            resources=(
                res(
                    "huawei.com/Ascend910",
                    available=(
                        "Ascend910-10",
                        "Ascend910-11",
                        "Ascend910-13",
                        "Ascend910-14",
                        "Ascend910-15",
                        "Ascend910-8",
                        "Ascend910-9",
                    ),
                    unhealthy=("Ascend910-12", "Ascend910-3"),
                    manually_separated=("Ascend910-3",),
                ),
            ),
            faults=(
                _fault(
                    "Ascend910-12",
                    "CardUnhealthy",
                    "RestartRequest",
                    ("80C98009", "RestartRequest", 1744181990.456),
                ),
                # Manual separation: empty fault_code and {} map.
                _fault("Ascend910-3", "CardUnhealthy", "ManuallySeparateNPU"),
            ),
            manually_separated=("Ascend910-3",),
        ),
        superpod=SuperPodInfo("node135", 3, 5, None),  # RackID 0 on a non-A5 node = absent
        update_time=1744182100.0,
    )
    assert views["node140"] == NodeView(
        node="node140",
        chips=NodeChips(
            node="node140",
            resources=(
                res(
                    "huawei.com/Ascend310",
                    available=tuple(f"Ascend310-{i}" for i in (0, 1, 2, 3, 4, 5, 7)),
                    unhealthy=("Ascend310-6",),
                ),
            ),
            faults=(),
        ),
        update_time=1744182000.0,
    )
    assert views["node150"] == NodeView(
        node="node150",
        chips=NodeChips(
            node="node150",
            resources=(res("huawei.com/npu", available=tuple(f"npu-{i}" for i in range(8))),),
            faults=(
                _fault(
                    "npu-5",
                    "CardNetworkUnhealthy",
                    "NotHandleFault",
                    ("81078607", "NotHandleFault", 1744181500.321),
                ),
            ),
        ),
        superpod=SuperPodInfo("node150", 1, 0, 2),
        update_time=1744182010.0,
    )


def _one_entry(
    entry: dict, key: str = "mindx-dl-deviceinfo-n1"
) -> tuple[clusterd.ShardResult, NodeView | None]:
    result = clusterd.parse_device_shard(with_map("cluster-info-device-0.json", {key: entry}))
    assert result.records is not None
    found = next(iter(result.records.values()), None)
    return result, found.view if found else None


def _device_entry(device_list: object, **extra: object) -> dict:
    entry: dict[str, object] = {
        "DeviceList": device_list,
        "UpdateTime": 1744182144,
        "CmName": "mindx-dl-deviceinfo-n1",
        "SuperPodID": -2,
        "RackID": 0,
        "ServerIndex": -2,
    }
    entry.update(extra)
    return entry


def test_literal_manually_separate_code_marks_the_chip_manual() -> None:
    faults = [
        {
            "fault_type": "CardUnhealthy",
            "npu_name": "Ascend910-2",
            "large_model_fault_level": "ManuallySeparateNPU",
            "fault_level": "ManuallySeparateNPU",
            "fault_handling": "ManuallySeparateNPU",
            "fault_code": "ManuallySeparateNPU",
            "fault_time_and_level_map": {
                "ManuallySeparateNPU": {"fault_time": -1, "fault_level": "ManuallySeparateNPU"}
            },
        }
    ]
    result, view = _one_entry(
        _device_entry(
            {
                "huawei.com/Ascend910": "Ascend910-0,Ascend910-1",
                "huawei.com/Ascend910-Fault": orjson.dumps(faults).decode(),
                "huawei.com/Ascend910-NetworkUnhealthy": "",
                "huawei.com/Ascend910-Recovering": "",
                "huawei.com/Ascend910-Unhealthy": "Ascend910-2",
            }
        )
    )
    assert problems_of(result) == []
    assert view is not None and view.chips == NodeChips(
        node="n1",
        resources=(
            res(
                "huawei.com/Ascend910",
                available=("Ascend910-0", "Ascend910-1"),
                unhealthy=("Ascend910-2",),
                manually_separated=("Ascend910-2",),
            ),
        ),
        faults=(
            _fault(
                "Ascend910-2",
                "CardUnhealthy",
                "ManuallySeparateNPU",
                ("ManuallySeparateNPU", "ManuallySeparateNPU", 0.0),
            ),
        ),
        manually_separated=("Ascend910-2",),
    )


@pytest.mark.parametrize(
    ("resource_key", "rack", "expected"),
    [
        ("huawei.com/Ascend910", 0, None),  # ClusterD's zero value for "DP wrote no RackID"
        ("huawei.com/Ascend910", 3, 3),  # non-zero is always real
        ("huawei.com/npu", 0, 0),  # A5: rack 0 is a real rack
        ("huawei.com/npu", 4, 4),
        ("huawei.com/npu", -1, None),
        ("huawei.com/npu", None, None),
        ("huawei.com/npu", "7", None),
    ],
)
def test_rack_id_rule(resource_key: str, rack: object, expected: int | None) -> None:
    entry = _device_entry(
        {resource_key: "", resource_key + "-Fault": "[]"}, SuperPodID=1, ServerIndex=2, RackID=rack
    )
    if rack is None:
        del entry["RackID"]
    result, view = _one_entry(entry)
    assert problems_of(result) == []
    assert view is not None and view.superpod == SuperPodInfo("n1", 1, 2, expected)


def test_device_entry_tolerance() -> None:
    faults = [
        {
            "fault_type": "CardUnhealthy",
            "npu_name": "Ascend910-1",
            "fault_level": "FutureLevel",
            "fault_code": "80e18402,110001024",
            "fault_time_and_level_map": None,
        }
    ]
    value = {
        "mindx-dl-deviceinfo-a": _device_entry(
            {
                "huawei.com/Ascend910": "Ascend910-0",
                "huawei.com/Ascend910-Fault": orjson.dumps(faults).decode(),
            }
        ),
        "mindx-dl-deviceinfo-b": _device_entry(None, UpdateTime=None, SuperPodID=None),  # null DeviceList
        "mindx-dl-deviceinfo-c": _device_entry("nope"),  # flagged, entry kept without chips
        "weird-key": _device_entry({}, CmName="mindx-dl-deviceinfo-d"),  # CmName rescues it
        "weird-key-2": _device_entry({}, CmName=None),  # flagged, skipped
        "mindx-dl-deviceinfo-f": [],  # flagged, skipped
    }
    result = clusterd.parse_device_shard(with_map("cluster-info-device-0.json", value))
    assert problems_of(result) == [("cluster-info-device-0", "schema")] * 3
    assert result.records is not None
    assert sorted(result.records) == ["a", "b", "c", "d"]
    a = result.records["a"].view
    assert a.chips == NodeChips(
        node="a",
        resources=(partial("huawei.com/Ascend910", available=("Ascend910-0",)),),
        faults=(
            _fault(
                "Ascend910-1",
                "CardUnhealthy",
                "FutureLevel",
                ("80E18402", "FutureLevel", 0.0),
                ("110001024", "FutureLevel", 0.0),
            ),
        ),
    )
    b = result.records["b"]
    assert b.view == NodeView(node="b", chips=NodeChips("b", (), ()), superpod=None, update_time=None)
    assert b.update_time_raw == 0
    assert result.records["c"].view.chips is None
    assert result.records["c"].view.update_time == 1744182144.0
    assert result.records["d"].view.chips == NodeChips("d", (), ())


def test_device_fault_list_invalid_json_keeps_lists() -> None:
    result, view = _one_entry(
        _device_entry(
            {
                "huawei.com/Ascend910": "Ascend910-0",
                "huawei.com/Ascend910-Unhealthy": "Ascend910-1",
                "huawei.com/Ascend910-Fault": '[{"npu_name":',
            }
        )
    )
    assert problems_of(result) == [("cluster-info-device-0", "json")]
    assert view is not None and view.chips is not None
    assert view.chips.resources == (
        partial("huawei.com/Ascend910", available=("Ascend910-0",), unhealthy=("Ascend910-1",)),
    )
    assert view.chips.faults == ()


@pytest.mark.parametrize("value", ["", "null", "{}"])
def test_surplus_device_shard_is_empty(value: str) -> None:
    result = clusterd.parse_device_shard(with_map("cluster-info-device-0.json", value))
    assert problems_of(result) == [] and result.records == {}


@pytest.mark.parametrize(("value", "reason"), [("{", "json"), ('"x"', "schema"), (None, "schema")])
def test_unusable_device_shard(value: object, reason: str) -> None:
    cm = with_map("cluster-info-device-0.json", value)
    if value is None:
        del cm["data"]["cluster-info-device-0"]
    result = clusterd.parse_device_shard(cm)
    assert problems_of(result) == [("cluster-info-device-0", reason)] and result.records == {}


def test_device_shard_uses_its_own_data_key() -> None:
    cm = fixture("cluster-info-device-0.json")
    cm["metadata"]["name"] = "cluster-info-device-7"
    cm["data"] = {"cluster-info-device-7": cm["data"]["cluster-info-device-0"]}
    result = clusterd.parse_device_shard(cm)
    assert problems_of(result) == [] and result.records is not None and len(result.records) == 5


@pytest.mark.parametrize(
    "name",
    [
        "cluster-info-node-cm",
        "cluster-info-switch-0",
        "cluster-info-device-x",
        "cluster-info-device-",
        "mindx-dl-deviceinfo-node133",
        "",
    ],
)
def test_not_a_device_shard(name: str) -> None:
    cm = fixture("cluster-info-device-0.json")
    cm["metadata"]["name"] = name
    result = clusterd.parse_device_shard(cm)
    assert result.records is None and result.problems.items == []


# --- S6 cluster-info-switch-<m> ----------------------------------------------------------------


def test_switch_shard_exact_entries() -> None:
    result = clusterd.parse_switch_shard(fixture("cluster-info-switch-0.json"))
    assert problems_of(result) == []
    assert result.records == {
        "node133": clusterd.ClusterSwitchEntry(
            SwitchState("node133", "", "Healthy", ()), 1744182144.0, 1744182144
        ),
        "node135": clusterd.ClusterSwitchEntry(
            SwitchState(
                "node135",
                "Separate",
                "UnHealthy",
                (SwitchFault("[0x08520003,na,npu,na]", "0", "12", "Separate", 1744181000.123),),
            ),
            1744182100.0,
            1744182100,
        ),
        # A5: empty struct, NodeStatus "", UpdateTime 0 → no time.
        "node150": clusterd.ClusterSwitchEntry(SwitchState("node150", "", "", ()), None, 0),
    }


def test_switch_entry_tolerance() -> None:
    value = decoded("cluster-info-switch-0.json")
    value["mindx-dl-switchinfo-node133"]["FaultCode"] = None
    value["mindx-dl-switchinfo-node135"]["FaultCode"].append("{not json")
    value["mindx-dl-switchinfo-node135"]["FaultLevel"] = "Meltdown"
    value["mindx-dl-switchinfo-node135"]["NodeStatus"] = "Melting"
    value["mindx-dl-switchinfo-node150"]["FaultCode"] = {}
    value["bogus"] = {"FaultCode": [], "CmName": "bogus"}
    value["mindx-dl-switchinfo-x"] = None
    result = clusterd.parse_switch_shard(with_map("cluster-info-switch-0.json", value))
    assert problems_of(result) == [("cluster-info-switch-0", "schema")] * 4
    assert result.records is not None and sorted(result.records) == ["node133", "node135", "node150"]
    state = result.records["node135"].state
    assert (state.fault_level, state.node_status, len(state.faults)) == ("Meltdown", "Melting", 1)
    assert result.records["node133"].state.faults == ()


@pytest.mark.parametrize("value", ["", "null"])
def test_surplus_switch_shard_is_empty(value: str) -> None:
    result = clusterd.parse_switch_shard(with_map("cluster-info-switch-0.json", value))
    assert problems_of(result) == [] and result.records == {}


def test_not_a_switch_shard() -> None:
    result = clusterd.parse_switch_shard(fixture("cluster-info-device-0.json"))
    assert result.records is None and result.problems.items == []


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("cluster-info-device-0", 0),
        ("cluster-info-device-12", 12),
        ("cluster-info-switch-3", 3),
        ("cluster-info-device-01", None),
        ("cluster-info-device--1", None),
        ("cluster-info-device-", None),
        ("cluster-info-node-cm", None),
        ("cluster-info-device-1a", None),
        ("xcluster-info-device-1", None),
    ],
)
def test_shard_index(name: str, index: int | None) -> None:
    assert clusterd.shard_index(name) == index


_BAD_ENTRY = (
    '{"mindx-dl-deviceinfo-a":{"DeviceList":{"huawei.com/x-Fault":5,"huawei.com/x":[]},'
    '"UpdateTime":true,"SuperPodID":1.5,"ServerIndex":"2","FaultCode":"x","FaultTimeAndLevelMap":[],'
    '"FaultDevList":"y","NodeStatus":[]},"mindx-dl-switchinfo-a":{"FaultCode":[1,{},null]},'
    '"mindx-dl-nodeinfo-a":{"FaultDevList":[null,{"FaultCode":{"a":1}}]}}'
)


@pytest.mark.parametrize("value", [None, 5, "[" * 50000, "{}" * 3, "\u0000", _BAD_ENTRY, [], {}])
@pytest.mark.parametrize("data_none", [False, True])
def test_garbage_never_raises(value: object, data_none: bool) -> None:
    for name, parse in (
        ("cluster-info-device-0", clusterd.parse_device_shard),
        ("cluster-info-switch-0", clusterd.parse_switch_shard),
        ("cluster-info-node-cm", clusterd.parse_node_cm),
    ):
        cm: dict[str, Any] = {"metadata": {"name": name}, "data": None if data_none else {name: value}}
        result = parse(cm)
        assert all(p.reason in {"json", "schema", "checkcode"} for p in result.problems.items)
