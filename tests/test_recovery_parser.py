"""The `reset-config-<job>` parser over the fixture, the spec's ClusterD example and every item of
"What a consumer must tolerate" (mindx-sources-2.md D.10)."""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import orjson
import pytest

from exporter.sources import recovery
from exporter.sources.base import Parsed
from exporter.sources.recovery import JobRecovery
from tests.helpers import fixture

FIXTURE = "reset-config-volcano-podreschedule.json"


def problems_of(result: Parsed[Any]) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def go_marshal(value: object) -> str:
    return orjson.dumps(value).decode()


def task_reset_info(
    ranks: list[dict[str, Any]], retries: int = 0, update: int = 1787191190
) -> dict[str, Any]:
    return {
        "RankList": ranks,
        "UpdateTime": update,
        "RetryTime": retries,
        "FaultFlushing": False,
        "GracefulExit": 0,
        "RestartFaultProcess": False,
    }


def clusterd_rank(rank: int) -> dict[str, Any]:
    return {
        "RankId": rank,
        "LogicId": 0,
        "Status": "fault",
        "Policy": "",
        "InitialPolicy": "",
        "ErrorCode": None,
        "ErrorCodeHex": "",
    }


def reset_config(
    reset_json: str | None,
    *,
    check_code: str | bool | None = True,
    restart_type: str | None = None,
    name: str = "reset-config-llama",
    namespace: str = "training",
) -> dict[str, Any]:
    """A reset-config ConfigMap; `check_code=True` computes it as every writer does."""
    data: dict[str, str] = {}
    if reset_json is not None:
        data["reset.json"] = reset_json
        if check_code is True:
            data["checkCode"] = hashlib.sha256(reset_json.encode()).hexdigest()
    if isinstance(check_code, str):
        data["checkCode"] = check_code
    if restart_type is not None:
        data["restartType"] = restart_type
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {"reset": "true"}},
        "data": data,
    }


def test_volcano_fixture() -> None:
    result = recovery.parse_configmap(fixture(FIXTURE))
    assert problems_of(result) == []
    # RankList [] → no faulty rank now (the `fault` count is 0); RetryTime 1 after a one-pod reschedule.
    assert result.records == {
        "job": JobRecovery("default", "default-test-pytorch", (("fault", 0),), retries=1)
    }


def test_clusterd_fault_list_of_the_spec() -> None:
    """D.9's ClusterD example: ranks 8-15 of a faulty node, no restartType, checkCode verifies."""
    text = go_marshal(task_reset_info([clusterd_rank(r) for r in range(8, 16)]))
    check = "e10cb2d3db4f5821e217d0eb643d21f366481c49f6a037464d4f2d27f2e07b8a"
    result = recovery.parse_configmap(reset_config(text, check_code=check))
    assert problems_of(result) == []
    assert result.records == {"job": JobRecovery("training", "llama", (("fault", 8),), retries=0)}


def test_the_users_initial_object() -> None:
    """The vendor's sample YAML: `{"status":"initializing"}`, formatted as the user wrote it, and no
    checkCode. Every writer reads it as all zero: no ranks, no retries, and nothing is wrong."""
    for text in ('{"status":"initializing"}', '{\n  "status": "initializing"\n}\n'):
        result = recovery.parse_configmap(reset_config(text, check_code=None))
        assert problems_of(result) == []
        assert result.records == {"job": JobRecovery("training", "llama", (("fault", 0),), retries=0)}


def test_pretty_printed_task_reset_info() -> None:
    text = orjson.dumps(task_reset_info([clusterd_rank(3)], retries=2), option=orjson.OPT_INDENT_2).decode()
    result = recovery.parse_configmap(reset_config(text))
    assert problems_of(result) == []
    assert result.records == {"job": JobRecovery("training", "llama", (("fault", 1),), retries=2)}


def test_checkcode_mismatch_is_reported_and_the_data_used() -> None:
    text = go_marshal(task_reset_info([clusterd_rank(0)], retries=4))
    result = recovery.parse_configmap(reset_config(text, check_code="0" * 64))
    assert problems_of(result) == [("checkCode", "checkcode")]
    assert result.records == {"job": JobRecovery("training", "llama", (("fault", 1),), retries=4)}
    # The hash is of the exact bytes: the same value re-formatted does not verify.
    fixed = reset_config(text)
    fixed["data"]["reset.json"] = text.replace(",", ", ")
    assert problems_of(recovery.parse_configmap(fixed)) == [("checkCode", "checkcode")]


@pytest.mark.parametrize("restart_type", [None, "podReschedule", "hotReset", "somethingNew"])
def test_restart_type_present_or_absent(restart_type: str | None) -> None:
    text = go_marshal(task_reset_info([], retries=1))
    result = recovery.parse_configmap(reset_config(text, restart_type=restart_type))
    assert problems_of(result) == []
    assert result.records == {"job": JobRecovery("training", "llama", (("fault", 0),), retries=1)}


def test_old_device_plugin_ranks() -> None:
    """Pre-2026-05-28 DP hot-reset entries: `ErrorCode: []`, its own statuses; unknown statuses and
    ranks repeated are counted as written, once."""
    ranks = [
        {"RankId": 0, "LogicId": 0, "Status": "unrecovered", "Policy": "reset", "InitialPolicy": "reset",
         "ErrorCode": [], "ErrorCodeHex": "80E18402"},
        {"RankId": 1, "LogicId": 1, "Status": "recovered", "Policy": "empty", "InitialPolicy": "reset",
         "ErrorCode": [], "ErrorCodeHex": ""},
        {"RankId": 1, "LogicId": 1, "Status": "recovered", "Policy": "empty", "InitialPolicy": "reset",
         "ErrorCode": [], "ErrorCodeHex": ""},
        {"RankId": 2, "Status": "from-the-future"},
        {"Status": "failed"},
    ]  # fmt: skip
    result = recovery.parse_configmap(
        reset_config(go_marshal(task_reset_info(ranks, retries=1)), restart_type="hotReset")
    )
    assert problems_of(result) == []
    (record,) = (result.records or {}).values()
    assert dict(record.ranks) == {
        "fault": 0,
        "unrecovered": 1,
        "recovered": 1,
        "from-the-future": 1,
        "failed": 1,
    }


def test_data_trace_and_other_objects_are_not_ours() -> None:
    """ClusterD's `data-trace-<job>` carries the same `reset=true` label."""
    trace = reset_config(None, name="data-trace-llama")
    trace["data"] = {"profilingSwitch": '{"CommunicationOperator":"off"}'}
    assert recovery.parse_configmap(trace).records is None
    assert recovery.parse_configmap(reset_config(None, name="reset-config-")).records is None


def test_missing_data_and_missing_reset_json() -> None:
    no_key = reset_config(None, restart_type="podReschedule")
    result = recovery.parse_configmap(no_key)
    assert result.records == {} and problems_of(result) == [("reset.json", "schema")]
    del no_key["data"]
    assert problems_of(recovery.parse_configmap(no_key)) == [("reset.json", "schema")]


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "json"), ("{truncated", "json"), ("null", "schema"), ("[]", "schema"), ('"x"', "schema")],
)
def test_unusable_reset_json(text: str, reason: str) -> None:
    result = recovery.parse_configmap(reset_config(text, check_code=None))
    assert result.records == {} and problems_of(result) == [("reset.json", reason)]


def test_unusable_fields() -> None:
    text = go_marshal({"RankList": {"0": {}}, "RetryTime": "2"})
    result = recovery.parse_configmap(reset_config(text))
    assert problems_of(result) == [("reset.json", "schema"), ("reset.json", "schema")]
    # What is usable is still shown: the fault count (0); RetryTime is withheld.
    assert result.records == {"job": JobRecovery("training", "llama", (("fault", 0),), retries=None)}
    text = go_marshal({"RankList": [7, None, clusterd_rank(1)], "RetryTime": None})
    result = recovery.parse_configmap(reset_config(text))
    assert problems_of(result) == [("reset.json", "schema"), ("reset.json", "schema")]
    assert result.records == {"job": JobRecovery("training", "llama", (("fault", 1),), retries=0)}


def test_oversized_rank_list() -> None:
    """A 4,096-rank job whose every rank ClusterD lists (≈ 115 B per rank, ~470 KB)."""
    text = go_marshal(task_reset_info([clusterd_rank(r) for r in range(4096)], retries=3))
    assert len(text) > 400_000
    result = recovery.parse_configmap(reset_config(text))
    assert problems_of(result) == []
    assert result.records == {"job": JobRecovery("training", "llama", (("fault", 4096),), retries=3)}


def test_spec_fixture_is_a_copy_not_a_reference() -> None:
    """The fixture is parsed as loaded: a parse does not modify it (records are fresh)."""
    cm = fixture(FIXTURE)
    before = copy.deepcopy(cm)
    recovery.parse_configmap(cm)
    assert cm == before
