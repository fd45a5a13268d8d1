"""ClusterD's `statistic-fault-info` parser (spec mindx-sources-2 §A) on the fixtures and on every item
of §A.9, "what a consumer must tolerate"."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from exporter.sources import publicfaults
from exporter.sources.base import Parsed
from exporter.sources.limits import Limits
from exporter.sources.publicfaults import PublicFault, PublicFaultNode, PublicFaultSummary
from tests.helpers import fixture

NORMAL = "statistic-fault-info-normal.json"
DESCRIPTION = (
    "The current total number of faults is too large, and only a portion of the detailed fault data "
    "is displayed"
)


def problems_of(result: Parsed[Any]) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def element(**fields: Any) -> dict[str, Any]:
    base = {
        "resource": "CCAE",
        "devIds": [3],
        "faultId": "ccae-20260820-000117",
        "type": "NPU",
        "faultCode": "220001002",
        "level": "SeparateNPU",
        "faultTime": 1787190600,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def cm(faults: Any, total: int | None = None, **data: Any) -> dict[str, Any]:
    """The fixture's object with `PublicFaults` (a dict is JSON-encoded) and `FaultNum` replaced."""
    obj = copy.deepcopy(fixture(NORMAL))
    if faults is ...:
        obj["data"].pop("PublicFaults")
    else:
        obj["data"]["PublicFaults"] = faults if isinstance(faults, str) else orjson.dumps(faults).decode()
    if total is None and isinstance(faults, dict):
        total = sum(len(v) for v in faults.values() if isinstance(v, list))
    if total is not None:
        obj["data"]["FaultNum"] = orjson.dumps({"publicFaultNum": total}).decode()
    obj["data"].update(data)
    return obj


def nodes(result: Parsed[Any]) -> dict[str, tuple[PublicFault, ...]]:
    return {r.node: r.faults for r in (result.records or {}).values() if isinstance(r, PublicFaultNode)}


def summary(result: Parsed[Any]) -> PublicFaultSummary:
    record = (result.records or {})[publicfaults.RECORD_SUMMARY]
    assert isinstance(record, PublicFaultSummary)
    return record


def test_fixture_two_public_faults() -> None:
    result = publicfaults.parse_configmap(fixture(NORMAL))
    assert problems_of(result) == []
    assert summary(result) == PublicFaultSummary(total=2, truncated=False)
    storage = PublicFault("", "dpcStorage", "Node", "110001020", "SubHealthFault", 1787187600)
    assert nodes(result) == {
        # NodeD's storage fault names all 8 cards: one series per chip.
        "node134": tuple(
            PublicFault(str(i), storage.resource, "Node", "110001020", "SubHealthFault", 1787187600)
            for i in range(8)
        ),
        "node140": (PublicFault("3", "CCAE", "NPU", "220001002", "SeparateNPU", 1787190600),),
    }


def test_older_pingmesh_fixture_same_shape() -> None:
    result = publicfaults.parse_configmap(fixture("statistic-fault-info.json"))
    assert problems_of(result) == []
    assert nodes(result) == {
        "node134": (PublicFault("6", "pingmesh", "NPU", "220001001", "SeparateNPU", 1744180000),)
    }


def test_other_objects_are_not_this_source() -> None:
    other = fixture(NORMAL)
    other["metadata"]["name"] = "statistic-fault-info-old"
    assert publicfaults.parse_configmap(other).records is None


def test_no_public_fault_left() -> None:
    """ClusterD never deletes the object: with no faults it reads `{}` and 0."""
    result = publicfaults.parse_configmap(cm("{}", 0))
    assert problems_of(result) == []
    assert result.records == {"summary": PublicFaultSummary(total=0, truncated=False)}


def test_overflow_withholds_the_stale_detail() -> None:
    """Over 4,500 ClusterD patches only FaultNum and Description: PublicFaults is the last complete
    snapshot, so no per-fault record is served, while the total and the flag are."""
    result = publicfaults.parse_configmap(cm({"node140": [element()]}, 4612, Description=DESCRIPTION))
    assert problems_of(result) == []
    assert summary(result) == PublicFaultSummary(total=4612, truncated=True)
    assert nodes(result) == {}


def test_stale_detail_detected_by_count_alone() -> None:
    """A count that differs from the elements is stale even without Description (patch raced)."""
    result = publicfaults.parse_configmap(cm({"node140": [element()]}, 3))
    assert summary(result).truncated and nodes(result) == {}


def test_4500_is_still_written_in_full() -> None:
    faults = {f"node{n:04d}": [element(faultId=f"ccae-{n:08d}-{i}") for i in range(3)] for n in range(1500)}
    result = publicfaults.parse_configmap(cm(faults))
    assert summary(result) == PublicFaultSummary(total=4500, truncated=False)
    assert len(nodes(result)) == 1500


def test_over_4500_is_truncated_even_if_description_was_lost() -> None:
    faults = {f"node{n:04d}": [element(faultId=f"ccae-{n:08d}-{i}") for i in range(3)] for n in range(1501)}
    result = publicfaults.parse_configmap(cm(faults))
    assert summary(result) == PublicFaultSummary(total=4503, truncated=True)
    assert nodes(result) == {}


def test_array_order_does_not_change_the_records() -> None:
    """Go map order: elements come in any order; the same code on a chip from two senders is one
    series, the most severe level first, then the earliest time."""
    a = element(
        resource="pingmesh", faultId="node140-3-hccsping", level="PreSeparateNPU", faultTime=1787190000
    )
    b = element(resource="CCAE", faultId="ccae-0001", level="SeparateNPU", faultTime=1787190600)
    c = element(resource="Netmind", faultId="netmind-0001", level="SeparateNPU", faultTime=1787190500)
    first = nodes(publicfaults.parse_configmap(cm({"node140": [a, b, c]})))
    second = nodes(publicfaults.parse_configmap(cm({"node140": [c, b, a]})))
    assert (
        first
        == second
        == {"node140": (PublicFault("3", "Netmind", "NPU", "220001002", "SeparateNPU", 1787190500),)}
    )


def test_same_code_on_one_node_different_chips_and_fault_ids() -> None:
    faults = {
        "node140": [
            element(devIds=[1], faultId="ccae-a0000001"),
            element(devIds=[0, 1], faultId="ccae-b0000001"),
        ]
    }
    result = publicfaults.parse_configmap(cm(faults))
    assert [f.chip_id for f in nodes(result)["node140"]] == ["0", "1"]


def test_fields_missing_are_empty_labels() -> None:
    """Every field is omitempty: no devIds → one series with id ""; no resource (faultId equal to
    it) → ""; no faultTime → 0."""
    bare = {"faultId": "abcdefgh", "type": "Node", "faultCode": "110001020", "level": "NotHandleFault"}
    result = publicfaults.parse_configmap(cm({"node134": [bare, {}]}))
    assert problems_of(result) == []
    assert nodes(result)["node134"] == (
        PublicFault("", "", "", "", "", 0.0),
        PublicFault("", "", "Node", "110001020", "NotHandleFault", 0.0),
    )


def test_dev_ids_the_node_may_not_have_and_no_labels() -> None:
    """Chip ids 0-31 are served as written (the exporter does not know the node's chips); the label
    ClusterD re-sets on every write is not needed."""
    obj = cm({"node140": [element(devIds=[31, 15])]})
    del obj["metadata"]["labels"]
    result = publicfaults.parse_configmap(obj)
    assert problems_of(result) == []
    assert [f.chip_id for f in nodes(result)["node140"]] == ["15", "31"]


def test_node_keys_that_are_no_cluster_node_or_empty() -> None:
    result = publicfaults.parse_configmap(cm({"": [element()], "switch-07.dc1": [element()]}))
    assert problems_of(result) == []
    assert set(nodes(result)) == {"", "switch-07.dc1"}


def test_unknown_level_and_type_are_kept_and_flagged_resource_is_open() -> None:
    faults = {"node140": [element(level="CriticalNPU", type="Power", resource="my-monitor")]}
    result = publicfaults.parse_configmap(cm(faults))
    assert problems_of(result) == [("PublicFaults", "schema"), ("PublicFaults", "schema")]
    assert nodes(result)["node140"] == (
        PublicFault("3", "my-monitor", "Power", "220001002", "CriticalNPU", 1787190600),
    )


def test_numeric_looking_code_stays_a_string_with_its_zeros() -> None:
    result = publicfaults.parse_configmap(cm({"node140": [element(faultCode="020001002")]}))
    assert nodes(result)["node140"][0].fault_code == "020001002"
    unquoted = publicfaults.parse_configmap(cm('{"node140":[{"faultCode":220001002,"devIds":[3]}]}', 1))
    assert problems_of(unquoted) == [("PublicFaults", "schema")]
    assert nodes(unquoted)["node140"][0].fault_code == "220001002"


def test_fault_time_is_seconds_and_a_ms_value_is_converted() -> None:
    seconds = nodes(publicfaults.parse_configmap(cm({"n": [element(faultTime=1787190600)]})))
    millis = nodes(publicfaults.parse_configmap(cm({"n": [element(faultTime=1787190600123)]})))
    assert seconds["n"][0].raised_at == 1787190600
    assert millis["n"][0].raised_at == pytest.approx(1787190600.123)


@pytest.mark.parametrize(
    ("value", "problems"),
    [
        ("", [("PublicFaults", "json")]),
        ("null", [("PublicFaults", "schema")]),
        ("[]", [("PublicFaults", "schema")]),
        ("{not json", [("PublicFaults", "json")]),
        ('{"node140":"x"}', [("PublicFaults", "schema")]),
        ('{"node140":[1,null]}', [("PublicFaults", "schema"), ("PublicFaults", "schema")]),
        ('{"node140":[{"devIds":"3"}]}', [("PublicFaults", "schema")]),
        ('{"node140":[{"devIds":[3,99,-1,"x",null]}]}', [("PublicFaults", "schema")] * 4),
        ('{"node140":[{"faultTime":"2026-08-20"}]}', [("PublicFaults", "schema")]),
        ('{"node140":[{"faultTime":-1}]}', [("PublicFaults", "schema")]),
        ('{"node140":[{"level":null,"type":null,"resource":null,"faultCode":null}]}', []),
    ],
)
def test_broken_public_faults_never_raise(value: str, problems: list[tuple[str, str]]) -> None:
    result = publicfaults.parse_configmap(cm(value, 1 if value.startswith('{"') else 0))
    assert problems_of(result) == problems
    assert isinstance(summary(result), PublicFaultSummary)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "json"),
        ("null", "schema"),
        ('{"publicFaultNum":"2"}', "schema"),
        ('{"publicFaultNum":-2}', "schema"),
    ],
)
def test_broken_fault_num(value: str, reason: str) -> None:
    obj = fixture(NORMAL)
    obj["data"]["FaultNum"] = value
    result = publicfaults.parse_configmap(obj)
    assert problems_of(result) == [("FaultNum", reason)]
    # Without a count, staleness is judged by Description alone: the detail is served.
    assert summary(result) == PublicFaultSummary(total=None, truncated=False)
    assert set(nodes(result)) == {"node134", "node140"}


def test_configmap_without_data_or_keys() -> None:
    obj = fixture(NORMAL)
    del obj["data"]
    result = publicfaults.parse_configmap(obj)
    assert problems_of(result) == [("FaultNum", "schema"), ("PublicFaults", "schema")]
    assert result.records == {"summary": PublicFaultSummary(total=None, truncated=False)}
    only_num = publicfaults.parse_configmap(cm(..., 2))
    assert problems_of(only_num) == [("PublicFaults", "schema")]


def test_oversized_value_parses() -> None:
    """Bytes are never checked by ClusterD: a maximal element (128-char id, 32 devIds) x 4,500."""
    big = element(faultId="f" * 128, devIds=list(range(32)))
    faults = {f"node{n:04d}": [dict(big, faultId=f"{n:04d}" + "f" * 124)] for n in range(4500)}
    result = publicfaults.parse_configmap(cm(faults))
    assert problems_of(result) == []
    assert sum(len(f) for f in nodes(result).values()) == 4500 * 32


def test_per_node_limit_cuts_off_and_reports() -> None:
    """A broken or hostile reporter cannot add unbounded series for one node."""
    faults = {
        "node140": [
            element(faultCode=f"2200{i:05d}", faultId=f"ccae-{i:08d}", devIds=[0, 1]) for i in range(6)
        ]
    }
    result = publicfaults.parse_configmap(cm(faults), Limits(chips_per_node=5))
    assert problems_of(result) == [("PublicFaults", "limit")]
    assert len(nodes(result)["node140"]) == 5
    assert problems_of(publicfaults.parse_configmap(cm(faults), Limits(chips_per_node=12))) == []
