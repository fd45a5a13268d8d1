"""Property tests (hypothesis) for ClusterD's `cluster-system` parsers (public faults,
fault-frequency separations, scheduling exceptions) and their handlers, with the strategies and
oracles of tests/test_fuzz_parsers.py: arbitrary text and JSON in every data key, and random
mutations of the real-format fixtures at any depth, including inside the JSON-in-a-string values.

Properties: nothing raises; invalid JSON in a key is a `json` problem of that key; problems name
only the object's own data keys; the handler's exposition parses, has no duplicate series, and
accounts every problem in `mindx_configmap_invalid` and `mindx_exporter_parse_errors_total`."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from exporter.sources import manualseparation, publicfaults, schedulingexceptions
from exporter.sources.common import object_name
from tests.helpers import fixture, select
from tests.test_fuzz_parsers import (
    DATA_VALUES,
    FUZZ,
    assert_bounded_keys,
    assert_json_problems,
    check_pipeline,
    configmap,
    data_with,
    mutated,
)

NODE_KEYS = st.dictionaries(st.text(min_size=1, max_size=12), DATA_VALUES, max_size=4)


def own_keys(cm: dict[str, Any]) -> tuple[str, ...]:
    data = cm.get("data")
    return tuple(data) if isinstance(data, dict) else ()


def check_public_faults(cm: dict[str, Any], upsert: bool) -> None:
    result = publicfaults.parse_configmap(cm)
    problems = result.problems.items
    if object_name(cm)[1] != publicfaults.NAME:
        assert result.records is None and not problems
        return
    assert result.records is not None and publicfaults.RECORD_SUMMARY in result.records
    keys = (publicfaults.KEY_PUBLIC_FAULTS, publicfaults.KEY_FAULT_NUM)
    data = cm.get("data") if isinstance(cm.get("data"), dict) else {}
    assert isinstance(data, dict)
    assert_bounded_keys(problems, set(keys))
    assert_json_problems(data, keys, problems, blank_ok=False)
    series = check_pipeline("clusterd-public-faults", cm, problems, upsert)
    summary = result.records[publicfaults.RECORD_SUMMARY]
    assert isinstance(summary, publicfaults.PublicFaultSummary)
    if summary.truncated:
        assert select(series, "mindx_public_fault") == {}, "stale detail served as current"


def check_manual(cm: dict[str, Any], upsert: bool) -> None:
    result = manualseparation.parse_configmap(cm)
    problems = result.problems.items
    if object_name(cm)[1] != manualseparation.NAME:
        assert result.records is None and not problems
        return
    assert result.records is not None
    data = cm.get("data") if isinstance(cm.get("data"), dict) else {}
    assert isinstance(data, dict)
    assert_bounded_keys(problems, set(own_keys(cm)))
    assert_json_problems(data, own_keys(cm), problems, blank_ok=False)
    check_pipeline("clusterd-manual-separation", cm, problems, upsert)


def check_exceptions(cm: dict[str, Any], upsert: bool) -> None:
    result = schedulingexceptions.parse_configmap(cm)
    problems = result.problems.items
    if object_name(cm)[1] != schedulingexceptions.NAME:
        assert result.records is None and not problems
        return
    assert result.records is not None
    data = cm.get("data") if isinstance(cm.get("data"), dict) else {}
    assert isinstance(data, dict)
    assert_bounded_keys(problems, set(own_keys(cm)))
    assert_json_problems(data, own_keys(cm), problems, blank_ok=False)
    check_pipeline("clusterd-scheduling-exceptions", cm, problems, upsert)


@FUZZ
@given(
    data=data_with(
        (publicfaults.KEY_PUBLIC_FAULTS, publicfaults.KEY_FAULT_NUM, publicfaults.KEY_DESCRIPTION)
    ),
    upsert=st.booleans(),
)
def test_public_faults_arbitrary_data(data: dict[str, Any], upsert: bool) -> None:
    check_public_faults(configmap("cluster-system", publicfaults.NAME, data), upsert)


@FUZZ
@given(
    cm=st.sampled_from(
        [fixture("statistic-fault-info-normal.json"), fixture("statistic-fault-info.json")]
    ).flatmap(mutated),
    upsert=st.booleans(),
)
def test_public_faults_mutated_fixtures(cm: dict[str, Any], upsert: bool) -> None:
    check_public_faults(cm, upsert)


@FUZZ
@given(data=NODE_KEYS, upsert=st.booleans())
def test_manual_separation_arbitrary_data(data: dict[str, Any], upsert: bool) -> None:
    check_manual(configmap("cluster-system", manualseparation.NAME, data), upsert)


@FUZZ
@given(
    cm=st.sampled_from(
        [fixture("clusterd-manual-info-cm-multi.json"), fixture("clusterd-manual-info-cm.json")]
    ).flatmap(mutated),
    upsert=st.booleans(),
)
def test_manual_separation_mutated_fixtures(cm: dict[str, Any], upsert: bool) -> None:
    check_manual(cm, upsert)


@FUZZ
@given(data=NODE_KEYS, upsert=st.booleans())
def test_scheduling_exceptions_arbitrary_data(data: dict[str, Any], upsert: bool) -> None:
    check_exceptions(configmap("cluster-system", schedulingexceptions.NAME, data), upsert)


@FUZZ
@given(cm=mutated(fixture("scheduling-exception-report-jobs.json")), upsert=st.booleans())
def test_scheduling_exceptions_mutated_fixture(cm: dict[str, Any], upsert: bool) -> None:
    check_exceptions(cm, upsert)
