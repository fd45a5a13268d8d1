"""ClusterD's `clusterd-manual-info-cm` parser (spec mindx-sources-2 §B) on the fixtures and on every
item of §B.8, "what a consumer must tolerate"."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from exporter.sources import manualseparation
from exporter.sources.base import Parsed
from exporter.sources.limits import Limits
from exporter.sources.manualseparation import ChipSeparation, NodeSeparations
from tests.helpers import fixture

MULTI = "clusterd-manual-info-cm-multi.json"
# The documentation's sample value, byte for byte (§B.7).
DOC_VALUE = (
    '{"Total":["Ascend910-0","Ascend910-2","Ascend910-3"],"Detail":{"Ascend910-0":[{"FaultCode":"8C084E00",'
    '"FaultLevel":"ManuallySeparateNPU","LastSeparateTime":1770811685650}],"Ascend910-2":[{"FaultCode":'
    '"8C084E00","FaultLevel":"ManuallySeparateNPU","LastSeparateTime":1770811685650}],"Ascend910-3":[{'
    '"FaultCode":"8C084E00","FaultLevel":"ManuallySeparateNPU","LastSeparateTime":1770811685650}]}}'
)


def problems_of(result: Parsed[Any]) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def cm(**values: Any) -> dict[str, Any]:
    """An object with data keys = node names; a dict value is JSON-encoded."""
    obj = copy.deepcopy(fixture(MULTI))
    obj["data"] = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in values.items()}
    return obj


def chips(result: Parsed[NodeSeparations]) -> dict[str, tuple[ChipSeparation, ...]]:
    return {r.node: r.chips for r in (result.records or {}).values()}


def detail(code: str, ms: int = 1787190600005, level: str = "ManuallySeparateNPU") -> dict[str, Any]:
    return {"FaultCode": code, "FaultLevel": level, "LastSeparateTime": ms}


def test_fixture_two_nodes_several_codes() -> None:
    result = manualseparation.parse_configmap(fixture(MULTI))
    assert problems_of(result) == []
    assert chips(result) == {
        "node135": (
            ChipSeparation("Ascend910-10", "80E01801", 1787104800.412),
            ChipSeparation("Ascend910-10", "8C03A000", 1787187600.087),
            ChipSeparation("Ascend910-3", "80C98008", 1787190600.005),
        ),
        "node150": (ChipSeparation("npu-12", "80E01801", 1786586400.9),),
    }


def test_older_fixture_and_documentation_sample() -> None:
    old = manualseparation.parse_configmap(fixture("clusterd-manual-info-cm.json"))
    assert chips(old) == {"node135": (ChipSeparation("Ascend910-3", "80E01801", 1744170000.456),)}
    doc = manualseparation.parse_configmap(cm(**{"localhost.localdomain": DOC_VALUE}))
    assert problems_of(doc) == []
    assert [c.npu for c in chips(doc)["localhost.localdomain"]] == [
        "Ascend910-0",
        "Ascend910-2",
        "Ascend910-3",
    ]
    assert chips(doc)["localhost.localdomain"][0].separated_at == pytest.approx(1770811685.650)


def test_other_objects_are_not_this_source() -> None:
    other = fixture(MULTI)
    other["metadata"]["name"] = "clusterd-config-cm"
    assert manualseparation.parse_configmap(other).records is None


def test_without_data_nothing_is_separated() -> None:
    obj = fixture(MULTI)
    del obj["data"]
    result = manualseparation.parse_configmap(obj)
    assert result.records == {} and problems_of(result) == []


def test_operator_removed_chips_from_total_are_released() -> None:
    """The documented release: delete chips from `Total` (Detail may still list them) — not an
    error; `Total: []` releases the node."""
    value = orjson.loads(fixture(MULTI)["data"]["node135"])
    value["Total"] = ["Ascend910-3"]
    result = manualseparation.parse_configmap(cm(node135=value, node150={"Total": [], "Detail": {}}))
    assert problems_of(result) == []
    assert chips(result) == {"node135": (ChipSeparation("Ascend910-3", "80C98008", 1787190600.005),)}


def test_chip_in_total_without_detail_is_flagged() -> None:
    result = manualseparation.parse_configmap(
        cm(node135={"Total": ["Ascend910-1", "Ascend910-3"], "Detail": {"Ascend910-3": [detail("80C98008")]}})
    )
    assert problems_of(result) == [("node135", "schema")]
    assert [c.npu for c in chips(result)["node135"]] == ["Ascend910-3"]


def test_whitespace_from_an_editor_is_fine() -> None:
    pretty = orjson.dumps(
        orjson.loads(fixture(MULTI)["data"]["node150"]), option=orjson.OPT_INDENT_2
    ).decode()
    result = manualseparation.parse_configmap(cm(node150="\n  " + pretty + "\n"))
    assert problems_of(result) == []
    assert chips(result) == {"node150": (ChipSeparation("npu-12", "80E01801", 1786586400.9),)}


def test_duplicates_keep_one_series_per_chip_and_code() -> None:
    value = {
        "Total": ["Ascend910-3", "Ascend910-3"],
        "Detail": {
            "Ascend910-3": [
                detail("80c98008", 1787190000000),
                detail("80C98008", 1787190600000),
                detail("8C03A000"),
            ]
        },
    }
    result = manualseparation.parse_configmap(cm(node135=value))
    assert problems_of(result) == []
    assert chips(result)["node135"] == (
        ChipSeparation("Ascend910-3", "80C98008", 1787190600.0),
        ChipSeparation("Ascend910-3", "8C03A000", 1787190600.005),
    )


def test_chip_names_of_any_device_type() -> None:
    names = ["Ascend310-1", "Ascend310P-7", "Ascend910-15", "npu-5", "Ascend910-4c-100-3"]
    value = {"Total": sorted(names), "Detail": {n: [detail("80E01801")] for n in names}}
    result = manualseparation.parse_configmap(cm(node1=value))
    assert problems_of(result) == []
    assert [c.npu for c in chips(result)["node1"]] == sorted(names)


def test_seconds_instead_of_ms_still_seconds() -> None:
    value = {"Total": ["npu-1"], "Detail": {"npu-1": [detail("80E01801", 1787190600)]}}
    assert chips(manualseparation.parse_configmap(cm(n=value)))["n"][0].separated_at == 1787190600


def test_public_fault_code_kept_as_written() -> None:
    value = {"Total": ["npu-1"], "Detail": {"npu-1": [detail("220001002")]}}
    assert chips(manualseparation.parse_configmap(cm(n=value)))["n"][0].fault_code == "220001002"


@pytest.mark.parametrize(
    ("value", "reasons", "served"),
    [
        ("", ["json"], 0),
        ("null", ["schema"], 0),
        ("{broken", ["json"], 0),
        ("[]", ["schema"], 0),
        ('{"Total":"Ascend910-3","Detail":{}}', ["schema"], 0),
        ('{"Total":["Ascend910-3"],"Detail":[]}', ["schema"], 0),
        (
            '{"Total":["Ascend910-3",null,""],"Detail":{"Ascend910-3":[{"FaultCode":"80C98008","FaultLevel":"ManuallySeparateNPU","LastSeparateTime":1}]}}',
            ["schema", "schema"],
            1,
        ),
        ('{"Total":["Ascend910-3"],"Detail":{"Ascend910-3":{"FaultCode":"1"}}}', ["schema"], 0),
        (
            '{"Total":["Ascend910-3"],"Detail":{"Ascend910-3":[null,{"FaultCode":""},{"FaultCode":null}]}}',
            ["schema"] * 3,
            0,
        ),
        (
            '{"Total":["Ascend910-3"],"Detail":{"Ascend910-3":[{"FaultCode":"80C98008","FaultLevel":"SeparateNPU","LastSeparateTime":1787190600005}]}}',
            ["schema"],
            1,
        ),
        (
            '{"Total":["Ascend910-3"],"Detail":{"Ascend910-3":[{"FaultCode":"80C98008","FaultLevel":"ManuallySeparateNPU","LastSeparateTime":"1787190600005"}]}}',
            ["schema"],
            1,
        ),
        (
            '{"Total":["Ascend910-3"],"Detail":{"Ascend910-3":[{"FaultCode":"80C98008","FaultLevel":"ManuallySeparateNPU"}]}}',
            ["schema"],
            1,
        ),
        ('{"Total":null,"Detail":null}', [], 0),
        ("{}", [], 0),
    ],
)
def test_broken_values_never_raise(value: str, reasons: list[str], served: int) -> None:
    """An operator's edit (valid for up to 15 s) or a broken value: flagged on that key; the other
    nodes are still served."""
    result = manualseparation.parse_configmap(cm(node135=value, node150=fixture(MULTI)["data"]["node150"]))
    assert problems_of(result) == [("node135", r) for r in reasons]
    assert len(chips(result).get("node135", ())) == served
    assert chips(result)["node150"] == (ChipSeparation("npu-12", "80E01801", 1786586400.9),)


def test_non_string_value_and_data() -> None:
    obj = cm(node150=fixture(MULTI)["data"]["node150"])
    obj["data"]["node135"] = 7
    result = manualseparation.parse_configmap(obj)
    assert problems_of(result) == [("node135", "schema")]
    obj["data"] = "node135"
    assert manualseparation.parse_configmap(obj).records == {}


def test_oversized_object_parses() -> None:
    """No cap in ClusterD: thousands of separated chips (until the 1 MiB limit rejects the write)."""
    value = {
        "Total": sorted(f"Ascend910-{i}" for i in range(16)),
        "Detail": {f"Ascend910-{i}": [detail(f"80E0{j:04X}") for j in range(8)] for i in range(16)},
    }
    result = manualseparation.parse_configmap(cm(**{f"node{n:04d}": value for n in range(40)}))
    assert problems_of(result) == []
    assert sum(len(c) for c in chips(result).values()) == 40 * 16 * 8


def test_limits_cut_off_chips_and_codes_and_report() -> None:
    value = {
        "Total": [f"npu-{i}" for i in range(4)],
        "Detail": {f"npu-{i}": [detail(f"80E0{j:04X}") for j in range(3)] for i in range(4)},
    }
    result = manualseparation.parse_configmap(cm(n=value), Limits(chips_per_node=3, codes_per_entry=2))
    assert problems_of(result) == [("n", "limit")] * 4  # one for Total, one per kept chip's codes
    assert len(chips(result)["n"]) == 3 * 2
    assert (
        problems_of(
            manualseparation.parse_configmap(cm(n=value), Limits(chips_per_node=4, codes_per_entry=3))
        )
        == []
    )
