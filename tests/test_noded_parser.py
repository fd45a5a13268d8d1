"""The NodeD (`mindx-dl-nodeinfo-<node>`) parser on every fixture, record by record, and its tolerance."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exporter.sources import noded
from exporter.sources.base import Parsed
from exporter.sources.common import go_json_dumps, sha256_hex
from exporter.sources.records import NodeFaultDevice, NodeStatusRecord
from tests.helpers import fixture


def problems_of(result: Parsed[Any]) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def with_node_info(
    inner: Any, check_code: str | None = None, name: str = "nodeinfo-node133-preseparate.json"
) -> dict:
    """A NodeD CM whose NodeInfo is `inner`, signed correctly unless `check_code` is given."""
    cm = fixture(name)
    code = check_code if check_code is not None else sha256_hex(go_json_dumps(inner))
    cm["data"]["NodeInfo"] = orjson.dumps({"NodeInfo": inner, "CheckCode": code}).decode()
    return cm


def test_node133_preseparate_exact_record() -> None:
    result = noded.parse_configmap(fixture("nodeinfo-node133-preseparate.json"))
    assert problems_of(result) == []
    assert result.first == NodeStatusRecord(
        node="node133",
        status="PreSeparate",
        devices=(NodeFaultDevice("CPU", "1", ("0000001D",), "PreSeparateFault"),),
        # "2025-04-09T15:03:32+08:00" (RFC 3339, container zone) = 07:03:32Z
        update_time=1744182212.0,
    )


def test_node136_unhealthy_exact_record() -> None:
    result = noded.parse_configmap(fixture("nodeinfo-node136-unhealthy.json"))
    assert problems_of(result) == []
    assert result.first == NodeStatusRecord(
        node="node136",
        status="UnHealthy",
        devices=(
            NodeFaultDevice("Mainboard", "0", ("2C000031",), "SeparateFault"),
            NodeFaultDevice("PSU", "2", ("0300000D",), "NotHandleFault"),
        ),
        update_time=1744181890.0,  # 2025-04-09T14:58:10+08:00
    )


def test_checkcode_reproduces_spec_example() -> None:
    cm = fixture("nodeinfo-node133-preseparate.json")
    outer = orjson.loads(cm["data"]["NodeInfo"])
    canonical = go_json_dumps(outer["NodeInfo"])
    assert canonical == (
        '{"FaultDevList":[{"DeviceType":"CPU","DeviceId":1,"FaultCode":["0000001D"],'
        '"FaultLevel":"PreSeparateFault"}],"NodeStatus":"PreSeparate"}'
    )
    assert sha256_hex(canonical) == "230d03dc0e52145f85b908ee146e2c76a7bafc92adde6a30549037a5a743dd45"
    assert noded.verify_checkcode(outer["NodeInfo"], outer["CheckCode"])
    assert noded.verify_checkcode(outer["NodeInfo"], outer["CheckCode"].upper())
    assert not noded.verify_checkcode(outer["NodeInfo"], "")
    assert not noded.verify_checkcode(outer["NodeInfo"], None)
    assert not noded.verify_checkcode("x", outer["CheckCode"])


def test_checkcode_mismatch_is_flagged_but_data_counts() -> None:
    cm = fixture("nodeinfo-node133-preseparate.json")
    outer = orjson.loads(cm["data"]["NodeInfo"])
    outer["NodeInfo"]["NodeStatus"] = "UnHealthy"  # tampered, CheckCode kept
    cm["data"]["NodeInfo"] = orjson.dumps(outer).decode()
    result = noded.parse_configmap(cm)
    assert problems_of(result) == [("NodeInfo", "checkcode")]
    assert result.first is not None and result.first.status == "UnHealthy"
    assert result.first.devices == (NodeFaultDevice("CPU", "1", ("0000001D",), "PreSeparateFault"),)
    # A missing CheckCode is a mismatch too.
    del outer["CheckCode"]
    cm["data"]["NodeInfo"] = orjson.dumps(outer).decode()
    assert problems_of(noded.parse_configmap(cm)) == [("NodeInfo", "checkcode")]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("{not json", "json"),
        ("", "json"),
        ("[]", "schema"),
        ('"text"', "schema"),
        ("null", "schema"),
        ('{"NodeInfo": 5, "CheckCode": "x"}', "schema"),
        ('{"NodeInfo": null}', "schema"),
        (42, "schema"),
    ],
)
def test_unusable_node_info_still_gives_a_record_with_update_time(value: object, reason: str) -> None:
    cm = fixture("nodeinfo-node133-preseparate.json")
    cm["data"]["NodeInfo"] = value
    result = noded.parse_configmap(cm)
    assert problems_of(result) == [("NodeInfo", reason)]
    assert result.first == NodeStatusRecord("node133", "", (), 1744182212.0)


def test_missing_keys_and_missing_data() -> None:
    cm = fixture("nodeinfo-node133-preseparate.json")
    del cm["data"]["updateTime"]
    result = noded.parse_configmap(cm)
    assert problems_of(result) == []  # no updateTime: no time, not a problem
    assert result.first is not None and result.first.update_time is None
    cm["data"] = None
    result = noded.parse_configmap(cm)
    assert problems_of(result) == [("NodeInfo", "schema")]
    assert result.first == NodeStatusRecord("node133", "", (), None)


@pytest.mark.parametrize("fault_dev_list", [None, [], {}])
def test_empty_fault_dev_list_in_every_spelling(fault_dev_list: object) -> None:
    result = noded.parse_configmap(with_node_info({"FaultDevList": fault_dev_list, "NodeStatus": "Healthy"}))
    assert problems_of(result) == []
    assert result.first == NodeStatusRecord("node133", "Healthy", (), 1744182212.0)


def test_missing_inner_fields_unknown_values_and_codes() -> None:
    inner = {
        "FaultDevList": [
            {
                "DeviceType": "UNKNOWN",
                "DeviceId": 7,
                "FaultCode": ["2c000031", "0x0300000d", " 110001024 "],
                "FaultLevel": "MeltdownFault",
            },
            {
                "DeviceType": "Fan",
                "DeviceId": "3",
                "FaultCode": "a1000001, A1000001,",
                "FaultLevel": "NotHandleFault",
            },
            {"DeviceType": "Disk"},  # everything else missing
            {},
        ],
        "NodeStatus": "Exploded",
    }
    result = noded.parse_configmap(with_node_info(inner))
    assert problems_of(result) == []
    assert result.first == NodeStatusRecord(
        node="node133",
        status="Exploded",  # unknown status kept as written
        devices=(
            NodeFaultDevice("UNKNOWN", "7", ("2C000031", "0300000D", "110001024"), "MeltdownFault"),
            NodeFaultDevice("Fan", "3", ("A1000001",), "NotHandleFault"),
            NodeFaultDevice("Disk", "", (), ""),
            NodeFaultDevice("", "", (), ""),
        ),
        update_time=1744182212.0,
    )
    # No NodeStatus at all → "".
    result = noded.parse_configmap(with_node_info({"FaultDevList": None}))
    assert result.first is not None and result.first.status == ""


def test_duplicate_devices_are_merged() -> None:
    inner = {
        "FaultDevList": [
            {"DeviceType": "CPU", "DeviceId": 1, "FaultCode": ["0000001D"], "FaultLevel": "NotHandleFault"},
            {"DeviceType": "CPU", "DeviceId": 2, "FaultCode": ["0000001D"], "FaultLevel": "NotHandleFault"},
            {
                "DeviceType": "CPU",
                "DeviceId": 1,
                "FaultCode": ["0000001e", "0000001D"],
                "FaultLevel": "SeparateFault",
            },
            {"DeviceType": "CPU", "DeviceId": 1, "FaultCode": ["0000001F"], "FaultLevel": "FutureFault"},
        ],
        "NodeStatus": "UnHealthy",
    }
    result = noded.parse_configmap(with_node_info(inner))
    assert problems_of(result) == []
    assert result.first is not None
    assert result.first.devices == (
        NodeFaultDevice("CPU", "1", ("0000001D", "0000001E", "0000001F"), "SeparateFault"),
        NodeFaultDevice("CPU", "2", ("0000001D",), "NotHandleFault"),
    )


def test_wrong_shapes_inside_are_flagged_and_the_rest_kept() -> None:
    inner = {
        "FaultDevList": [
            "garbage",
            {"DeviceType": "PSU", "DeviceId": 2, "FaultCode": 12, "FaultLevel": "NotHandleFault"},
            {
                "DeviceType": "CPU",
                "DeviceId": 1,
                "FaultCode": ["0000001D", 5, None],
                "FaultLevel": "SeparateFault",
            },
        ],
        "NodeStatus": 3,
    }
    result = noded.parse_configmap(with_node_info(inner))
    assert problems_of(result) == [("NodeInfo", "schema")] * 5
    assert result.first == NodeStatusRecord(
        "node133",
        "",
        (
            NodeFaultDevice("PSU", "2", (), "NotHandleFault"),
            NodeFaultDevice("CPU", "1", ("0000001D",), "SeparateFault"),
        ),
        1744182212.0,
    )
    result = noded.parse_configmap(with_node_info({"FaultDevList": "CPU", "NodeStatus": "Healthy"}))
    assert problems_of(result) == [("NodeInfo", "schema")]


@pytest.mark.parametrize(
    ("value", "seconds", "problems"),
    [
        ("2025-04-09T07:03:32Z", 1744182212.0, []),
        ("2025-04-09T15:03:32+08:00", 1744182212.0, []),
        ("2025-04-09T07:03:32", None, [("updateTime", "schema")]),  # no zone: ambiguous
        ("yesterday", None, [("updateTime", "schema")]),
        ("", None, [("updateTime", "schema")]),
        (1744182212, None, [("updateTime", "schema")]),
    ],
)
def test_update_time(value: object, seconds: float | None, problems: list) -> None:
    cm = fixture("nodeinfo-node133-preseparate.json")
    cm["data"]["updateTime"] = value
    result = noded.parse_configmap(cm)
    assert problems_of(result) == problems
    assert result.first is not None and result.first.update_time == seconds


@pytest.mark.parametrize("name", ["mindx-dl-deviceinfo-node133", "mindx-dl-nodeinfo-", "", None])
def test_other_objects_are_not_noded(name: object) -> None:
    cm = fixture("nodeinfo-node133-preseparate.json")
    cm["metadata"]["name"] = name
    result = noded.parse_configmap(cm)
    assert result.first is None and result.problems.items == []
    assert noded.parse_configmap({}).first is None


def test_deep_garbage_never_raises() -> None:
    # Deep enough to overflow a recursive re-encoder: flagged, not raised.
    cm = fixture("nodeinfo-node133-preseparate.json")
    for depth in (200, 1000, 5000):
        deep = "[" * depth + "]" * depth
        cm["data"]["NodeInfo"] = '{"NodeInfo":{"FaultDevList":[{"FaultCode":' + deep + '}]},"CheckCode":"00"}'
        result = noded.parse_configmap(cm)
        assert result.first is not None
        assert problems_of(result) and {r for _, r in problems_of(result)} <= {"json", "schema", "checkcode"}
    cm["data"]["NodeInfo"] = "[" * 100000
    assert problems_of(noded.parse_configmap(cm)) == [("NodeInfo", "json")]
