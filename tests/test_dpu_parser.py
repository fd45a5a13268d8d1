"""The RDMA device plugin's `dpuinfo-<node>` parser over the fixture, the June-2026 format and every
item of "What a consumer must tolerate" (mindx-sources-2.md F.9)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from exporter.kube.selectors import object_matches
from exporter.sources import dpu
from exporter.sources.base import Parsed
from exporter.sources.dpu import DpuFault, NodeDpus
from exporter.sources.limits import Limits
from tests.helpers import fixture

FIXTURE = "dpuinfo-node150-faulty.json"
KEY = "DpuInfoCfg"
PORT_DOWN = "Host to network fault. Need to switch IP after fault."


def problems_of(result: Parsed[Any]) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def cfg_of(cm: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(cm["data"][KEY])
    return loaded


def with_cfg(cfg: object, name: str = "dpuinfo-node150", labelled: bool = True) -> dict[str, Any]:
    cm = copy.deepcopy(fixture(FIXTURE))
    cm["metadata"]["name"] = name
    if not labelled:
        del cm["metadata"]["labels"]
    cm["data"][KEY] = cfg if isinstance(cfg, str) else orjson.dumps(cfg).decode()
    return cm


def hca(
    name: str, *faults: dict[str, Any], ip: str | None = "10.0.0.9", eth: str = "enp0s9"
) -> dict[str, Any]:
    item: dict[str, Any] = {"HcaName": name, "EthName": eth}
    if ip is not None:
        item["IpAddr"] = ip
    item.update({"DeviceID": "0xa222", "VendorID": "0x19e5", "FaultList": list(faults)})
    return item


def fault(code: str, level: str, time_ms: object = 1787191104877, desc: str = "x") -> dict[str, Any]:
    return {"FaultCode": code, "Time": time_ms, "Description": desc, "FaultLevel": level}


def june_2026(node: str = "node151") -> dict[str, Any]:
    """What builds b2c8e129..8315e661 (2026-06-03..15) write: no label, no NodeEvent, an RFC 3339
    UpdateTime with nanoseconds, `IpAddr` omitted for an HCA without address, and `ub_port_down`
    still at SeparateDPU."""
    cfg = {
        "DPUInfo": {
            "DPUList": [
                hca("udma0", fault("21000022", "SeparateDPU", 1780884000123, "UB port down."), ip=None),
                hca("udma1", ip=None, eth=""),
            ]
        },
        "UpdateTime": "2026-06-08T10:00:05.123456789+08:00",
    }
    return with_cfg(cfg, name=f"dpuinfo-{node}", labelled=False)


def test_fixture() -> None:
    result = dpu.parse_configmap(fixture(FIXTURE))
    assert problems_of(result) == []
    assert result.records == {
        "node": NodeDpus(
            node="node150",
            healthy=1,
            faulty=1,
            faults=(
                DpuFault("mlx5_0", "21000024", "SeparateDPU", 1787191104.877),
                DpuFault("", "22000026", "SeparateDPU", 1787191159.123),  # NodeEvent: card drop
            ),
            update_time=1787191200.312,
        )
    }


def test_june_2026_format() -> None:
    result = dpu.parse_configmap(june_2026())
    assert problems_of(result) == []
    assert result.records == {
        "node": NodeDpus(
            node="node151",
            healthy=1,
            faulty=1,
            faults=(DpuFault("udma0", "21000022", "SeparateDPU", 1780884000.123),),
            update_time=1780884005.123456,  # 2026-06-08T02:00:05.123456Z (ns truncated to µs)
        )
    }


def test_the_watch_finds_labelled_and_unlabelled_objects_but_not_the_device_plugins() -> None:
    """The watch's own selectors, as the API server applies them, plus the name filter."""
    watch = dpu.SOURCE.watch
    deviceinfo = fixture("deviceinfo-node133.json")
    coredns = {"metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {}}

    def found(obj: dict[str, Any]) -> bool:
        return selected(obj) and watch.wants(obj["metadata"]["name"])

    def selected(obj: dict[str, Any]) -> bool:
        return object_matches(obj, watch.resource, watch.label_selector, watch.field_selector)

    assert found(fixture(FIXTURE)) and found(june_2026())
    assert not found(deviceinfo)  # mx-consumer-cim=true: never even sent to the exporter
    assert selected(coredns) and not found(coredns)  # sent, dropped unparsed


def test_other_objects_are_not_ours() -> None:
    assert dpu.parse_configmap(with_cfg("{}", name="kube-proxy")).records is None
    assert dpu.parse_configmap(with_cfg("{}", name="dpuinfo-")).records is None


@pytest.mark.parametrize(
    ("update_time", "expected"),
    [
        (1787191200312, 1787191200.312),  # ms, since 2026-07-14
        ("2026-06-08T10:00:05+08:00", 1780884005.0),
        ("2026-06-08T02:00:05.5Z", 1780884005.5),
        (0, None),  # no time, not wrong
    ],
)
def test_both_update_time_formats(update_time: object, expected: float | None) -> None:
    cfg = cfg_of(fixture(FIXTURE))
    cfg["UpdateTime"] = update_time
    result = dpu.parse_configmap(with_cfg(cfg))
    assert problems_of(result) == []
    assert result.first is not None and result.first.update_time == expected


@pytest.mark.parametrize("update_time", ["yesterday", "2026-06-08T10:00:05", True, [1], ...])
def test_unusable_update_time_loses_only_freshness(update_time: object) -> None:
    cfg = cfg_of(fixture(FIXTURE))
    if update_time is ...:
        del cfg["UpdateTime"]
    else:
        cfg["UpdateTime"] = update_time
    result = dpu.parse_configmap(with_cfg(cfg))
    assert problems_of(result) == [(KEY, "schema")]
    assert result.first is not None and result.first.update_time is None
    assert len(result.first.faults) == 2


def test_null_and_missing_lists() -> None:
    """`DPUList` null (no HCA found), `NodeEvent` missing (old builds), `FaultList` null."""
    cfg = {"DPUInfo": {"DPUList": None}, "UpdateTime": 1787191200312}
    result = dpu.parse_configmap(with_cfg(cfg))
    assert problems_of(result) == []
    assert result.records == {"node": NodeDpus("node150", 0, 0, (), 1787191200.312)}
    cfg = {
        "DPUInfo": {
            "DPUList": [{"HcaName": "mlx5_0", "FaultList": None}],
            "NodeEvent": {"NodeName": "node150"},
        },
        "UpdateTime": 1787191200312,
    }
    result = dpu.parse_configmap(with_cfg(cfg))
    assert problems_of(result) == []
    assert result.records == {"node": NodeDpus("node150", 1, 0, (), 1787191200.312)}


def test_unknown_codes_levels_and_empty_fields() -> None:
    """The catalog file can be replaced: codes and levels are kept as written; empty EthName,
    DeviceID and a missing IpAddr are fine; a fault without Time reads 0."""
    item = hca(
        "mlx5_3", fault("99000001", "BrandNewLevel"), fault(" 21000023 ", "", time_ms=None), ip=None, eth=""
    )
    item["DeviceID"] = ""
    cfg = {"DPUInfo": {"DPUList": [item], "NodeEvent": {"NodeName": "x", "FaultList": []}}, "UpdateTime": 1}
    result = dpu.parse_configmap(with_cfg(cfg))
    assert problems_of(result) == []
    assert result.first is not None
    assert result.first.faults == (
        DpuFault("mlx5_3", "99000001", "BrandNewLevel", 1787191104.877),
        DpuFault("mlx5_3", "21000023", "", 0.0),
    )


def test_time_jumping_forward_after_a_plugin_restart() -> None:
    """The same fault, re-detected after a plugin restart, gets a new `Time`: the series shows the
    new one (the plugin's first detection since it restarted)."""
    cfg = cfg_of(fixture(FIXTURE))
    first = dpu.parse_configmap(with_cfg(cfg)).first
    cfg["DPUInfo"]["DPUList"][0]["FaultList"][0]["Time"] = 1787194800000
    later = dpu.parse_configmap(with_cfg(cfg)).first
    assert first is not None and later is not None
    assert first.faults[0].raised_at == 1787191104.877 and later.faults[0].raised_at == 1787194800.0


def test_duplicate_fault_codes_give_one_fault() -> None:
    cfg = {
        "DPUInfo": {
            "DPUList": [hca("mlx5_0", fault("21000024", "SeparateDPU"), fault("21000024", "SeparateDPU", 5))]
        },
        "UpdateTime": 1787191200312,
    }
    first = dpu.parse_configmap(with_cfg(cfg)).first
    assert first is not None and len(first.faults) == 1 and first.faulty == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [("", "json"), ("{not json", "json"), ("[]", "schema"), ("null", "schema")],
)
def test_unusable_value(value: str, reason: str) -> None:
    result = dpu.parse_configmap(with_cfg(value))
    assert result.records == {} and problems_of(result) == [(KEY, reason)]


def test_missing_key_and_missing_data() -> None:
    cm = with_cfg("{}")
    del cm["data"][KEY]
    result = dpu.parse_configmap(cm)
    assert result.records == {} and problems_of(result) == [(KEY, "schema")]
    del cm["data"]
    assert problems_of(dpu.parse_configmap(cm)) == [(KEY, "schema")]


def test_bad_shapes_are_problems_and_the_rest_is_used() -> None:
    cfg = {
        "DPUInfo": {
            "DPUList": [
                7,
                hca("mlx5_0", fault("21000024", "SeparateDPU"), {"FaultLevel": "x"}, "y"),
                {"FaultList": 3},
            ],
            "NodeEvent": ["not", "an", "object"],
        },
        "UpdateTime": 1787191200312,
    }
    result = dpu.parse_configmap(with_cfg(cfg))
    assert len(result.problems.items) == 5 and {p.reason for p in result.problems.items} == {"schema"}
    assert result.first == NodeDpus(
        "node150", 1, 1, (DpuFault("mlx5_0", "21000024", "SeparateDPU", 1787191104.877),), 1787191200.312
    )
    result = dpu.parse_configmap(with_cfg({"DPUInfo": {"DPUList": {"a": 1}}, "UpdateTime": 1}))
    assert problems_of(result) == [(KEY, "schema")]
    result = dpu.parse_configmap(with_cfg({"UpdateTime": 1}))
    assert problems_of(result) == [(KEY, "schema")]
    assert result.first == NodeDpus("node150", 0, 0, (), 1.0)


def test_oversized_value() -> None:
    """A node with 512 HCAs, each with every catalog fault (≈ 170 KB)."""
    codes = [
        ("21000022", "SubHealthFault"),
        ("21000023", "SubHealthFault"),
        ("21000024", "SeparateDPU"),
        ("22000025", "SubHealthFault"),
    ]
    cfg = {
        "DPUInfo": {
            "DPUList": [hca(f"mlx5_{i}", *(fault(c, lvl) for c, lvl in codes)) for i in range(512)],
            "NodeEvent": {"NodeName": "node150", "FaultList": []},
        },
        "UpdateTime": 1787191200312,
    }
    cm = with_cfg(cfg)
    assert len(cm["data"][KEY]) > 150_000
    result = dpu.parse_configmap(cm)
    assert problems_of(result) == []
    assert result.first is not None and result.first.faulty == 512 and len(result.first.faults) == 2048


def test_per_object_limits_cut_off_and_report() -> None:
    """More HCAs or faults than the per-object limits (docs/operations.md): cut off, reason limit."""
    cfg = {
        "DPUInfo": {
            "DPUList": [
                hca(f"mlx5_{i}", fault("21000024", "SeparateDPU"), fault("21000023", "x")) for i in range(5)
            ]
        },
        "UpdateTime": 1787191200312,
    }
    result = dpu.parse_configmap(with_cfg(cfg), Limits(chips_per_node=3, codes_per_entry=1))
    assert problems_of(result) == [(KEY, "limit")] * 4  # the HCA list, and each kept HCA's faults
    assert result.first is not None and result.first.faulty == 3 and len(result.first.faults) == 3
