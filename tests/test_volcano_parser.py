"""The Volcano `vcjob-fault-npu-cm` parser on the fixture, record by record, and its tolerance."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from exporter.sources import volcano
from exporter.sources.base import Parsed
from exporter.sources.records import (
    CHIP_LIST_STATUSES,
    ChipFault,
    FaultCode,
    NodeChips,
    NodeView,
    ResourceChips,
)
from tests.helpers import fixture

NAME = "vcjob-fault-npu-cm"
T = 1744182215  # session time of the fixture, seconds


def problems_of(result: Parsed[Any]) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def res(resource: str, **lists: tuple[str, ...]) -> ResourceChips:
    return ResourceChips(resource, {status: lists.get(status, ()) for status in CHIP_LIST_STATUSES})


def fault(npu: str, fault_type: str, handling: str, *codes: str) -> ChipFault:
    # Volcano has no time map: every code gets the entry's level and time 0.
    return ChipFault(npu, fault_type, handling, tuple(FaultCode(c, handling, 0.0) for c in codes))


def node(
    name: str, state: str, resources: tuple, faults: tuple, manual: tuple = (), t: float | None = T
) -> volcano.VolcanoNode:
    chips = NodeChips(node=name, resources=resources, faults=faults, manually_separated=manual)
    return volcano.VolcanoNode(view=NodeView(node=name, chips=chips, update_time=t), health_state=state)


def with_keys(**data: object) -> dict:
    """The fixture with data keys replaced (`fault_node` → `fault-node`, …); a list/dict is JSON-encoded."""
    cm = fixture("vcjob-fault-npu-cm.json")
    for key, value in data.items():
        key = key.replace("_", "-")
        if value is ...:
            cm["data"].pop(key, None)
        else:
            cm["data"][key] = orjson.dumps(value).decode() if isinstance(value, list | dict) else value
    return cm


def fault_nodes() -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = orjson.loads(fixture("vcjob-fault-npu-cm.json")["data"]["fault-node"])
    return loaded


def test_fixture_exact_records() -> None:
    result = volcano.parse_configmap(fixture("vcjob-fault-npu-cm.json"))
    assert problems_of(result) == []
    assert volcano.fault_nodes(result) == (
        node(
            "node133",
            "CardUnhealthy",
            (res("huawei.com/Ascend910", unhealthy=("Ascend910-4",), network_unhealthy=("Ascend910-0",)),),
            (
                fault("Ascend910-0", "CardNetworkUnhealthy", "PreSeparateNPU", "81078603"),
                fault(
                    "Ascend910-4",
                    "CardUnhealthy",
                    "SeparateNPU",
                    "80E18401",
                    "A4028801",
                    "80E18402",
                    "A8028801",
                ),
            ),
        ),
        node(
            "node134",
            "CardUnhealthy",
            (res("huawei.com/Ascend910", unhealthy=("Ascend910-6",)),),
            (fault("Ascend910-6", "PublicFault", "SeparateNPU", "220001001"),),
        ),
        node(
            "node135",
            "NodeUnhealthy",
            (
                res(
                    "huawei.com/Ascend910",
                    unhealthy=("Ascend910-12", "Ascend910-3"),
                    manually_separated=("Ascend910-3",),
                ),
            ),
            (
                fault("Ascend910-12", "CardUnhealthy", "RestartRequest", "80C98009"),
                fault("Ascend910-3", "CardUnhealthy", "ManuallySeparateNPU"),
            ),
            manual=("Ascend910-3",),
        ),
        # NodeD/switch made the node unhealthy: no chip lists at all.
        node("node136", "NodeUnhealthy", (), ()),
        node("node140", "CardUnhealthy", (res("huawei.com/Ascend310", unhealthy=("Ascend310-6",)),), ()),
    )
    assert volcano.job_retries(result) == (
        volcano.JobRetries(
            namespace="default",
            podgroup="mindx-test-6f1c2d4e-8a0b-4c39-9d52-1e2f3a4b5c6d",
            job_uid="6f1c2d4e-8a0b-4c39-9d52-1e2f3a4b5c6d",
            times=2,
        ),
        volcano.JobRetries(
            namespace="llm",
            podgroup="pretrain-70b-0b7e9c1a-55aa-4f0e-8d3c-2a9b8c7d6e5f",
            job_uid="0b7e9c1a-55aa-4f0e-8d3c-2a9b8c7d6e5f",
            times=0,
        ),
    )


@pytest.mark.parametrize("value", ["", "  ", "null", "[]", "{}", ...])
def test_empty_or_missing_keys(value: object) -> None:
    result = volcano.parse_configmap(with_keys(fault_node=value, remain_retry_times=value))
    assert problems_of(result) == []
    assert volcano.fault_nodes(result) == () and volcano.job_retries(result) == ()


@pytest.mark.parametrize(
    ("value", "reason"),
    [("[{", "json"), ("{not json", "json"), ('"text"', "schema"), ("5", "schema"), (12, "schema")],
)
def test_invalid_keys_flag_and_keep_the_other_key(value: object, reason: str) -> None:
    result = volcano.parse_configmap(with_keys(fault_node=value))
    assert problems_of(result) == [("fault-node", reason)]
    assert (
        volcano.fault_nodes(result) == ()
        and volcano.job_retries(result) is not None
        and len(volcano.job_retries(result)) == 2
    )
    result = volcano.parse_configmap(with_keys(remain_retry_times=value))
    assert problems_of(result) == [("remain-retry-times", reason)]
    assert (
        volcano.job_retries(result) == ()
        and volcano.fault_nodes(result) is not None
        and len(volcano.fault_nodes(result)) == 5
    )


def test_wrong_shapes_of_valid_json() -> None:
    result = volcano.parse_configmap(
        with_keys(fault_node={"NodeName": "x"}, remain_retry_times=[{"UUID": "u"}])
    )
    assert problems_of(result) == [("fault-node", "schema"), ("remain-retry-times", "schema")]
    assert volcano.fault_nodes(result) == () and volcano.job_retries(result) == ()


def test_stale_and_legacy_keys_are_ignored() -> None:
    cm = fixture("vcjob-fault-npu-cm.json")
    cm["data"].update(
        {"NodeDEnable": "on", "fault-job": "{broken", "checkCode": "abc", "node-rankIndex-Occurrence": "[]"}
    )
    result = volcano.parse_configmap(cm)
    assert problems_of(result) == []
    assert volcano.fault_nodes(result) is not None and len(volcano.fault_nodes(result)) == 5


def test_missing_data_and_wrong_name() -> None:
    cm = fixture("vcjob-fault-npu-cm.json")
    cm["data"] = None
    result = volcano.parse_configmap(cm)
    assert (volcano.fault_nodes(result), volcano.job_retries(result), problems_of(result)) == ((), (), [])
    cm["metadata"]["name"] = "vcjob-fault-npu-cm-old"
    result = volcano.parse_configmap(cm)
    assert (result.records, problems_of(result)) == (None, [])
    assert volcano.parse_configmap({}).records is None


def test_duplicate_node_keeps_the_newer_entry() -> None:
    entries = fault_nodes()
    old = dict(entries[1], UpdateTime=T - 10, NodeHealthState="CardNetworkUnhealthy")
    new = dict(entries[1], UpdateTime=T + 10, NodeHealthState="NodeUnhealthy")
    for order in ([old, new], [new, old]):
        result = volcano.parse_configmap(with_keys(fault_node=order))
        assert problems_of(result) == []
        assert volcano.fault_nodes(result) is not None and len(volcano.fault_nodes(result)) == 1
        assert volcano.fault_nodes(result)[0].health_state == "NodeUnhealthy"
        assert volcano.fault_nodes(result)[0].view.update_time == T + 10


def test_node_entry_tolerance() -> None:
    entries = [
        {
            # No fault_handling: fault_level, then large_model_fault_level; unknown level kept;
            # lower-case codes.
            "FaultDeviceList": [
                {
                    "fault_type": "CardUnhealthy",
                    "npu_name": "npu-2",
                    "fault_level": "FutureLevel",
                    "fault_code": "80e18402,110001024",
                },
                {
                    "fault_type": "CardNetworkUnhealthy",
                    "npu_name": "npu-3",
                    "large_model_fault_level": "SeparateNPU",
                    "fault_code": "81078603",
                },
            ],
            "NodeName": "a5",
            "UnhealthyNPU": ["npu-2", "npu-2", ""],
            "NetworkUnhealthyNPU": ["npu-3"],
            "NodeHealthState": "SomethingNew",
            "UpdateTime": 1744182215000,  # ms by mistake: magnitude decides
        },
        {
            "FaultDeviceList": None,
            "NodeName": "b",
            "UnhealthyNPU": {},
            "NetworkUnhealthyNPU": [],
            "NodeHealthState": "Healthy",
        },  # no UpdateTime
        {
            "FaultDeviceList": {},
            "NodeName": "c",
            "UnhealthyNPU": "Ascend310P-1,Ascend310P-2",
            "UpdateTime": 0,
        },
        {"NodeName": ""},  # flagged, skipped
        "garbage",  # flagged, skipped
        {
            "NodeName": "d",
            "FaultDeviceList": [5, {"npu_name": "Ascend910-1", "fault_handling": "RestartNPU"}],
            "UnhealthyNPU": 7,
            "NetworkUnhealthyNPU": ["Ascend910-1", 3],
            "UpdateTime": "later",
        },
    ]
    result = volcano.parse_configmap(with_keys(fault_node=entries))
    assert problems_of(result) == [("fault-node", "schema")] * 6
    assert volcano.fault_nodes(result) == (
        node(
            "a5",
            "SomethingNew",
            (res("huawei.com/npu", unhealthy=("npu-2",), network_unhealthy=("npu-3",)),),
            (
                fault("npu-2", "CardUnhealthy", "FutureLevel", "80E18402", "110001024"),
                fault("npu-3", "CardNetworkUnhealthy", "SeparateNPU", "81078603"),
            ),
            t=1744182215.0,
        ),
        node("b", "Healthy", (), (), t=None),
        node(
            "c", "", (res("huawei.com/Ascend310P", unhealthy=("Ascend310P-1", "Ascend310P-2")),), (), t=None
        ),
        node(
            "d",
            "",
            (res("huawei.com/Ascend910", network_unhealthy=("Ascend910-1",)),),
            (fault("Ascend910-1", "", "RestartNPU"),),
            t=None,
        ),
    )


@pytest.mark.parametrize(
    ("npu", "resource"),
    [
        ("Ascend910-3", "huawei.com/Ascend910"),
        ("Ascend910-12", "huawei.com/Ascend910"),
        ("npu-2", "huawei.com/npu"),
        ("Ascend310P-1", "huawei.com/Ascend310P"),
        ("Ascend310-6", "huawei.com/Ascend310"),
        ("Ascend910-4c-100-3", "huawei.com/Ascend910"),  # vNPU
        ("Ascend310P-2c.1cpu-101-2", "huawei.com/Ascend310P"),  # vNPU with a template suffix
        ("Ascend310P-2-17", "huawei.com/Ascend310P"),  # share mode
        ("Ascend310P-V-7", "huawei.com/Ascend310P"),  # mixed insert
        ("Ascend310P-IPro-1", "huawei.com/Ascend310P"),
        ("davinci-mini-3", "huawei.com/Ascend310"),
        ("MyCard-5", "huawei.com/MyCard"),  # custom name
        ("weird", ""),
        ("", ""),
    ],
)
def test_resource_of(npu: str, resource: str) -> None:
    assert volcano.resource_of(npu) == resource


def test_mixed_resources_on_one_node_are_grouped() -> None:
    entries = [
        {"NodeName": "n", "UnhealthyNPU": ["Ascend310P-1", "Ascend310-2"], "NetworkUnhealthyNPU": ["x"]}
    ]
    result = volcano.parse_configmap(with_keys(fault_node=entries))
    assert volcano.fault_nodes(result) is not None
    chips = volcano.fault_nodes(result)[0].view.chips
    assert chips is not None and chips.resources == (
        res("", network_unhealthy=("x",)),
        res("huawei.com/Ascend310", unhealthy=("Ascend310-2",)),
        res("huawei.com/Ascend310P", unhealthy=("Ascend310P-1",)),
    )


def test_retry_entries_tolerance() -> None:
    value = {
        "default/job-a": {"UUID": "u1", "Times": 3},
        "no-slash": {"UUID": "u2", "Times": 1},  # flagged
        "/pg": {"UUID": "u3", "Times": 1},  # flagged
        "ns/": {"UUID": "u4", "Times": 1},  # flagged
        "ns/no-times": {"UUID": "u5"},  # flagged
        "ns/bad-times": {"UUID": "u6", "Times": "2"},  # flagged
        "ns/not-object": 4,  # flagged
        "ns/no-uuid": {"Times": 1},
        "ns/float-times": {"UUID": "u8", "Times": 2.0},
        "a/b/c": {"UUID": "u9", "Times": -1},
    }
    result = volcano.parse_configmap(with_keys(remain_retry_times=value))
    assert problems_of(result) == [("remain-retry-times", "schema")] * 6
    assert volcano.job_retries(result) == (
        volcano.JobRetries("a", "b/c", "u9", -1),
        volcano.JobRetries("default", "job-a", "u1", 3),
        volcano.JobRetries("ns", "float-times", "u8", 2),
        volcano.JobRetries("ns", "no-uuid", "", 1),
    )


@pytest.mark.parametrize(
    "value",
    [
        "[" * 50000,
        "[null,1,[],{}]",
        '[{"NodeName":"n","FaultDeviceList":"[{"}]',
        '{"a/b":null,"c/d":[]}',
        "\u0000",
    ],
)
def test_garbage_never_raises(value: str) -> None:
    result = volcano.parse_configmap(with_keys(fault_node=value, remain_retry_times=value))
    assert all(p.reason in {"json", "schema"} for p in result.problems.items)
