"""The device-plugin parser and renderer on every fixture, series by series."""

from __future__ import annotations

import copy

import orjson
import pytest

from exporter.handlers.base import ObjectKey, render_problems
from exporter.metrics.store import Group, MetricsStore
from exporter.registry import ALL_FAMILIES
from exporter.sources import deviceplugin
from exporter.sources.base import render_table
from exporter.sources.common import chip_id, go_json_dumps, sha256_hex, unix_seconds
from exporter.sources.nodeview import NODE_VIEW_METRICS
from tests.helpers import Series, fixture, labels, parse_exposition, select

SRC = "device-plugin"


def render(cm: dict) -> tuple[Series, list]:
    result = deviceplugin.parse_configmap(cm)
    blocks = render_table(NODE_VIEW_METRICS, SRC, result.first) if result.first else {}
    ns, name = cm["metadata"]["namespace"], cm["metadata"]["name"]
    render_problems(blocks, ns, name, result.problems.items)
    store = MetricsStore(ALL_FAMILIES)
    store.set(Group(SRC, ns), ObjectKey(SRC, ns, name, "node"), blocks)
    return parse_exposition(store.body().decode()), result.problems.items


def chip(node: str, npu: str, **extra: str) -> frozenset:
    return labels(source=SRC, node=node, npu=npu, id=chip_id(npu), **extra)


def test_node133_a3_faults_exact_series() -> None:
    series, problems = render(fixture("deviceinfo-node133.json"))
    assert problems == []
    levels = select(series, "mindx_npu_chip_fault_level")
    assert levels == {
        chip("node133", "Ascend910-0"): 7,  # network PreSeparateNPU
        chip("node133", "Ascend910-1"): 0,
        chip("node133", "Ascend910-2"): 0,
        chip("node133", "Ascend910-3"): 0,
        chip("node133", "Ascend910-4"): 8,  # SeparateNPU
        chip("node133", "Ascend910-5"): 0,
        chip("node133", "Ascend910-6"): 0,
        chip("node133", "Ascend910-7"): 0,
    }
    assert select(series, "mindx_npu_chip_fault") == {
        chip("node133", "Ascend910-0", fault_type="CardNetworkUnhealthy", fault_handling="PreSeparateNPU"): 1,
        chip("node133", "Ascend910-4", fault_type="CardUnhealthy", fault_handling="SeparateNPU"): 1,
    }
    codes = select(series, "mindx_npu_chip_fault_code")
    assert codes == {
        chip(
            "node133",
            "Ascend910-0",
            fault_type="CardNetworkUnhealthy",
            fault_code="81078603",
            fault_level="PreSeparateNPU",
        ): 1744168468.259,
        chip(
            "node133",
            "Ascend910-4",
            fault_type="CardUnhealthy",
            fault_code="A8028801",
            fault_level="SeparateNPU",
        ): 1744167455.784,
        chip(
            "node133",
            "Ascend910-4",
            fault_type="CardUnhealthy",
            fault_code="A4028801",
            fault_level="NotHandleFault",
        ): 1744167455.784,
        chip(
            "node133",
            "Ascend910-4",
            fault_type="CardUnhealthy",
            fault_code="80E18402",
            fault_level="SeparateNPU",
        ): 1744167455.784,
        chip(
            "node133",
            "Ascend910-4",
            fault_type="CardUnhealthy",
            fault_code="80E18401",
            fault_level="NotHandleFault",
        ): 1744167455.784,
    }
    assert select(series, "mindx_npu_chip_status") == {
        chip("node133", "Ascend910-0", status="network_unhealthy"): 1,
        chip("node133", "Ascend910-4", status="unhealthy"): 1,
    }
    res = {"source": SRC, "node": "node133", "resource": "huawei.com/Ascend910"}
    assert select(series, "mindx_node_npu_chips") == {
        labels(**res, status="available"): 7,
        labels(**res, status="unhealthy"): 1,
        labels(**res, status="network_unhealthy"): 1,
        labels(**res, status="recovering"): 0,
        labels(**res, status="manually_separated"): 0,
    }
    # SuperPodID -2: not in a super pod, no placement series.
    assert select(series, "mindx_node_superpod_info") == {}
    assert select(series, "mindx_switch_status") == {
        labels(source=SRC, node="node133", status="Healthy"): 1,
        labels(source=SRC, node="node133", status="SubHealthy"): 0,
        labels(source=SRC, node="node133", status="PreSeparate"): 0,
        labels(source=SRC, node="node133", status="UnHealthy"): 0,
    }
    assert select(series, "mindx_switch_fault_level") == {}
    assert select(series, "mindx_switch_fault_code") == {}
    assert select(series, "mindx_source_update_timestamp_seconds") == {
        labels(source=SRC, node="node133"): 1744182144
    }
    assert select(series, "mindx_configmap_invalid") == {}


def test_node134_healthy_a2() -> None:
    series, problems = render(fixture("deviceinfo-node134-healthy.json"))
    assert problems == []
    levels = select(series, "mindx_npu_chip_fault_level")
    assert len(levels) == 8 and set(levels.values()) == {0}
    assert select(series, "mindx_npu_chip_fault") == {}
    assert select(series, "mindx_npu_chip_status") == {}
    assert select(series, "mindx_node_npu_chips", status="available") == {
        labels(source=SRC, node="node134", resource="huawei.com/Ascend910", status="available"): 8
    }
    assert select(series, "mindx_switch_status") == {}  # no SwitchInfoCfg key on A2


def test_node135_manual_separation_restart_request_and_switch_fault() -> None:
    series, problems = render(fixture("deviceinfo-node135-a3-switchfault.json"))
    assert problems == []
    levels = select(series, "mindx_npu_chip_fault_level")
    assert len(levels) == 9  # 7 available + 2 unhealthy; busy chips are in no list
    assert levels[chip("node135", "Ascend910-3")] == 9
    assert levels[chip("node135", "Ascend910-12")] == 3
    assert select(series, "mindx_npu_chip_status") == {
        chip("node135", "Ascend910-3", status="unhealthy"): 1,
        chip("node135", "Ascend910-3", status="manually_separated"): 1,
        chip("node135", "Ascend910-12", status="unhealthy"): 1,
    }
    assert select(series, "mindx_node_npu_chips", status="manually_separated") == {
        labels(source=SRC, node="node135", resource="huawei.com/Ascend910", status="manually_separated"): 1
    }
    assert select(series, "mindx_node_superpod_info") == {
        labels(source=SRC, node="node135", super_pod_id="3", server_index="5", rack_id=""): 1
    }
    assert select(series, "mindx_switch_status", status="UnHealthy") == {
        labels(source=SRC, node="node135", status="UnHealthy"): 1
    }
    assert select(series, "mindx_switch_fault_level") == {
        labels(source=SRC, node="node135", fault_level="Separate"): 1
    }
    assert select(series, "mindx_switch_fault_code") == {
        labels(
            source=SRC,
            node="node135",
            fault_code="[0x08520003,na,npu,na]",
            switch_chip_id="0",
            switch_port_id="12",
            fault_level="Separate",
        ): 1744181000.123
    }


def test_node140_ascend310_fault_list_under_310p_key() -> None:
    series, problems = render(fixture("deviceinfo-node140-ascend310.json"))
    assert problems == []
    assert select(series, "mindx_npu_chip_fault") == {
        chip("node140", "Ascend310-6", fault_type="CardUnhealthy", fault_handling="RestartNPU"): 1
    }
    assert select(series, "mindx_npu_chip_fault_level")[chip("node140", "Ascend310-6")] == 6
    counts = select(series, "mindx_node_npu_chips")
    # 310 nodes have no -NetworkUnhealthy/-Recovering keys: still all five statuses, 0 included.
    res = {"source": SRC, "node": "node140", "resource": "huawei.com/Ascend310"}
    assert counts == {
        labels(**res, status="available"): 7,
        labels(**res, status="unhealthy"): 1,
        labels(**res, status="network_unhealthy"): 0,
        labels(**res, status="recovering"): 0,
        labels(**res, status="manually_separated"): 0,
    }


def test_node150_a5_npu_names_rack_and_zero_switch_struct() -> None:
    series, problems = render(fixture("deviceinfo-node150-a5-npu.json"))
    assert problems == []
    levels = select(series, "mindx_npu_chip_fault_level")
    assert levels[chip("node150", "npu-5")] == 1
    assert chip("node150", "npu-5") == labels(source=SRC, node="node150", npu="npu-5", id="5")
    assert select(series, "mindx_npu_chip_status") == {}  # NotHandleFault: listed in -Fault, still healthy
    assert select(series, "mindx_node_superpod_info") == {
        labels(source=SRC, node="node150", super_pod_id="1", server_index="0", rack_id="2"): 1
    }
    assert select(series, "mindx_node_npu_chips", status="available") == {
        labels(source=SRC, node="node150", resource="huawei.com/npu", status="available"): 8
    }
    # The zero SwitchInfoCfg struct (NodeStatus "") emits nothing.
    assert select(series, "mindx_switch_status") == {}
    assert select(series, "mindx_switch_fault_level") == {}


def test_checkcode_reproduces_documented_value_and_detects_tampering() -> None:
    cm = fixture("deviceinfo-node133.json")
    info = orjson.loads(cm["data"]["DeviceInfoCfg"])
    assert deviceplugin.verify_checkcode(
        info["DeviceInfo"], "a550811fdfafb5717555526816af2ca4ac6c3e102f5907574048578e0c8fcc73"
    )
    tampered = copy.deepcopy(cm)
    info["DeviceInfo"]["DeviceList"]["huawei.com/Ascend910-Unhealthy"] = ""
    tampered["data"]["DeviceInfoCfg"] = orjson.dumps(info).decode()
    series, problems = render(tampered)
    assert [(p.key, p.reason) for p in problems] == [("DeviceInfoCfg", "checkcode")]
    assert select(series, "mindx_configmap_invalid") == {
        labels(
            namespace="kube-system",
            configmap="mindx-dl-deviceinfo-node133",
            key="DeviceInfoCfg",
            reason="checkcode",
        ): 1
    }
    # The data still counts: the chip faults are served.
    assert select(series, "mindx_npu_chip_fault_level")[chip("node133", "Ascend910-4")] == 8


def test_go_json_encoding_matches_go_for_html_and_control_characters() -> None:
    assert go_json_dumps({"a": "<&>", "b": [1, None, True], "c": "\u2028\x01\n"}) == (
        '{"a":"\\u003c\\u0026\\u003e","b":[1,null,true],"c":"\\u2028\\u0001\\n"}'
    )
    # The spec's worked example for a small healthy node.
    canon = (
        '{"DeviceList":{"huawei.com/Ascend910":"Ascend910-0,Ascend910-1,Ascend910-2,Ascend910-3,Ascend910-4,'
        'Ascend910-5,Ascend910-6,Ascend910-7","huawei.com/Ascend910-Fault":"[]","huawei.com/Ascend910-NetworkUnhealthy"'
        ':"","huawei.com/Ascend910-Recovering":"","huawei.com/Ascend910-Unhealthy":""},"UpdateTime":1744181950}'
    )
    assert sha256_hex(canon) == "2ff5454cda7d4dd18477bac7942bfa1a4a3ad9d53656671a2a5cb61e4f0c7b16"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Ascend910-4", "4"),
        ("npu-5", "5"),
        ("Ascend910-4c-100-3", "3"),
        ("Ascend310P-2-17", "2"),
        ("Ascend310P-V-7", "7"),
        ("Ascend910-12", "12"),
        ("weird", ""),
        ("Ascend910-", ""),
    ],
)
def test_chip_id(name: str, expected: str) -> None:
    assert chip_id(name) == expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1744167455784, 1744167455.784),
        (1744182144, 1744182144.0),
        (1744167455784123, 1744167455.784123),
        (0, 0.0),
        (-1, 0.0),
        ("x", 0.0),
        (None, 0.0),
        (True, 0.0),
    ],
)
def test_unix_seconds_any_unit(value: object, seconds: float) -> None:
    assert unix_seconds(value) == pytest.approx(seconds)


def _with_info(info_text: str) -> dict:
    cm = fixture("deviceinfo-node134-healthy.json")
    cm["data"]["DeviceInfoCfg"] = info_text
    return cm


@pytest.mark.parametrize(
    ("info_text", "reason"),
    [
        ("{not json", "json"),
        ("[]", "schema"),
        ('{"DeviceInfo": 5}', "schema"),
        ('{"DeviceInfo": {"DeviceList": "x", "UpdateTime": 1}, "CheckCode": ""}', "schema"),
    ],
)
def test_bad_device_info_is_flagged_not_raised(info_text: str, reason: str) -> None:
    series, problems = render(_with_info(info_text))
    assert reason in {p.reason for p in problems}
    assert select(series, "mindx_configmap_invalid", reason=reason)
    assert select(series, "mindx_npu_chip_fault_level") == {}


def test_bad_fault_list_keeps_lists_and_flags_json() -> None:
    cm = fixture("deviceinfo-node133.json")
    info = orjson.loads(cm["data"]["DeviceInfoCfg"])
    device_list = info["DeviceInfo"]["DeviceList"]
    device_list["huawei.com/Ascend910-Fault"] = '[{"npu_name": "Ascend910-4", "fault_handling": "Brand'
    info["CheckCode"] = sha256_hex(
        go_json_dumps(
            {"DeviceList": dict(sorted(device_list.items())), "UpdateTime": info["DeviceInfo"]["UpdateTime"]}
        )
    )
    cm["data"]["DeviceInfoCfg"] = orjson.dumps(info).decode()
    series, problems = render(cm)
    assert [(p.key, p.reason) for p in problems] == [("DeviceInfoCfg", "json")]
    assert select(series, "mindx_npu_chip_status", status="unhealthy")  # lists still served
    assert select(series, "mindx_npu_chip_fault") == {}


def test_unknown_levels_null_lists_wrong_types_and_lower_case_codes() -> None:
    faults = [
        {
            "fault_type": "CardUnhealthy",
            "npu_name": "Ascend910-1",
            "fault_handling": "QuantumFault",
            "fault_code": "80e18402, 80E18402,",
            "fault_time_and_level_map": None,
        },
        {
            "fault_type": "CardUnhealthy",
            "npu_name": "Ascend910-2",
            "fault_handling": "QuantumFault",
            "fault_code": "A1",
            "fault_time_and_level_map": {"a1": {"fault_time": -1, "fault_level": 3}},
        },
        {
            "fault_type": "CardNetworkUnhealthy",
            "npu_name": "Ascend910-2",
            "fault_handling": "RestartNPU",
            "fault_code": "",
            "fault_time_and_level_map": {},
        },
        {"npu_name": ""},
        "garbage",
    ]
    device_list = {
        "huawei.com/Ascend910": "Ascend910-0, Ascend910-0,,",
        "huawei.com/Ascend910-Fault": orjson.dumps(faults).decode(),
        "huawei.com/Ascend910-Unhealthy": None,
        "huawei.com/Ascend910-Recovering": 7,
    }
    cm = _with_info(
        orjson.dumps(
            {
                "DeviceInfo": {"DeviceList": device_list, "UpdateTime": 1744181950},
                "SuperPodID": "x",
                "ServerIndex": None,
                "CheckCode": "00",
            }
        ).decode()
    )
    series, problems = render(cm)
    reasons = sorted((p.key, p.reason) for p in problems)
    assert reasons == [
        ("DeviceInfoCfg", "checkcode"),
        ("DeviceInfoCfg", "schema"),
        ("DeviceInfoCfg", "schema"),
        ("DeviceInfoCfg", "schema"),
    ]
    levels = select(series, "mindx_npu_chip_fault_level")
    assert levels == {
        chip("node134", "Ascend910-0"): 0,
        chip("node134", "Ascend910-1"): -1,  # only an unknown level
        chip("node134", "Ascend910-2"): 6,  # known RestartNPU beats the unknown one
    }
    assert select(series, "mindx_npu_chip_fault_code", npu="Ascend910-1") == {
        chip(
            "node134",
            "Ascend910-1",
            fault_type="CardUnhealthy",
            fault_code="80E18402",
            fault_level="QuantumFault",
        ): 0
    }
    assert select(series, "mindx_npu_chip_fault", fault_handling="QuantumFault")


def test_missing_device_info_key_and_non_string_values() -> None:
    cm = fixture("deviceinfo-node134-healthy.json")
    del cm["data"]["DeviceInfoCfg"]
    cm["data"]["SwitchInfoCfg"] = 12
    series, problems = render(cm)
    assert sorted((p.key, p.reason) for p in problems) == [
        ("DeviceInfoCfg", "schema"),
        ("SwitchInfoCfg", "schema"),
    ]
    assert select(series, "mindx_configmap_invalid", key="SwitchInfoCfg")


def test_not_a_device_plugin_configmap_is_ignored() -> None:
    cm = fixture("deviceinfo-node134-healthy.json")
    cm["metadata"]["name"] = "something-else"
    result = deviceplugin.parse_configmap(cm)
    assert result.first is None and result.problems.items == []


def test_huge_and_deep_garbage_never_raises() -> None:
    cm = _with_info("[" * 100000)
    _, problems = render(cm)
    assert {p.reason for p in problems} == {"json"}
    cm = _with_info('{"DeviceInfo":{"DeviceList":{"huawei.com/Ascend910-Fault":"' + "x" * 1_000_000 + '"}}}')
    _, problems = render(cm)
    assert "json" in {p.reason for p in problems}
