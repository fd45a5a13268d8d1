"""Volcano's `job-reschedule-reason` parser over the fixtures and every item of "What a consumer
must tolerate" (mindx-sources-2.md C.9)."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from exporter.sources import reschedule
from exporter.sources.base import Parsed
from exporter.sources.limits import Limits
from exporter.sources.reschedule import JobReschedules
from tests.helpers import fixture

KEY = "recent-reschedule-records"
LLAMA = "llama-2x16-6d0f8f0c-5b7e-4a61-9d6b-2f0c7a9e1b3d"
RESNET = "resnet50-vc-0a9e3c71-44d2-4f0b-8e19-7b6d5c4a3f21"


def problems_of(result: Parsed[Any]) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def with_value(value: object) -> dict[str, Any]:
    """The multi fixture with `recent-reschedule-records` replaced (a dict is encoded as Go does)."""
    cm = copy.deepcopy(fixture("job-reschedule-reason-multi.json"))
    cm["data"][KEY] = orjson.dumps(value).decode() if isinstance(value, dict) else value
    return cm


def job(total: object = 2, records: object = None, **extra: object) -> dict[str, Any]:
    return {"JobID": "ns/pg", "TotalRescheduleTimes": total, "RescheduleRecords": records, **extra}


def record(stamp: object, *tasks: tuple[str, str, str]) -> dict[str, Any]:
    return {
        "LogFileFormatTime": "I0820 09:58:00",
        "RescheduleTimeStamp": stamp,
        "ReasonOfTask": [
            {"RescheduleReason": reason, "PodName": "p", "NodeName": node, "NodeRankIndex": rank}
            for reason, node, rank in tasks
        ],
    }


def test_multi_fixture() -> None:
    result = reschedule.parse_configmap(fixture("job-reschedule-reason-multi.json"))
    assert problems_of(result) == []
    assert result.records == {
        f"default/{LLAMA}": JobReschedules(
            "default",
            LLAMA,
            total=3,
            last_time=1787191080,
            # The newest record (first): two tasks, both RelationFaultSeparate, on two nodes.
            last_reasons=(("RelationFaultSeparate", "node133"), ("RelationFaultSeparate", "node135")),
        ),
        # A restart without fault tasks: `"ReasonOfTask":[]`.
        f"mindx-dl/{RESNET}": JobReschedules("mindx-dl", RESNET, 1, 1787191170, ()),
    }


def test_documented_single_fixture() -> None:
    result = reschedule.parse_configmap(fixture("job-reschedule-reason.json"))
    assert problems_of(result) == []
    pg = "mindx-test-6f1c2d4e-8a0b-4c39-9d52-1e2f3a4b5c6d"
    assert result.records == {
        f"default/{pg}": JobReschedules("default", pg, 1, 1744167461, (("CardUnhealthy", "node133"),))
    }


def test_other_objects_are_not_ours() -> None:
    cm = fixture("job-reschedule-reason-multi.json")
    cm["metadata"]["name"] = "job-reschedule-reason-backup"
    assert reschedule.parse_configmap(cm).records is None


@pytest.mark.parametrize("value", ["", "  ", "null", "{}"])
def test_empty_values_mean_no_job(value: str) -> None:
    """Volcano writes `""` once no job has records (and from the first session on)."""
    result = reschedule.parse_configmap(with_value(value))
    assert result.records == {} and problems_of(result) == []


def test_missing_key_and_missing_data_are_schema_problems() -> None:
    cm = with_value("")
    del cm["data"][KEY]
    cm["data"]["someone-else"] = "x"
    result = reschedule.parse_configmap(cm)
    assert result.records == {} and problems_of(result) == [(KEY, "schema")]
    del cm["data"]
    assert problems_of(reschedule.parse_configmap(cm)) == [(KEY, "schema")]


def test_other_data_keys_are_ignored() -> None:
    cm = fixture("job-reschedule-reason-multi.json")
    cm["data"]["added-by-someone"] = "{not json"
    result = reschedule.parse_configmap(cm)
    assert problems_of(result) == [] and len(result.records or {}) == 2


@pytest.mark.parametrize("value", ["{truncated", "[1,2]", '"text"'])
def test_not_an_object(value: str) -> None:
    result = reschedule.parse_configmap(with_value(value))
    assert result.records == {}
    assert problems_of(result) == [(KEY, "json" if value.startswith("{") else "schema")]


def test_quirks_of_a_record() -> None:
    """`NodeRankIndex` "", unknown reasons kept as written, `LogFileFormatTime` without year or zone
    ignored, total above the kept records (truncation), records not newest-first."""
    value = {
        "a/old-first": job(
            total=57,
            records=[
                record(1787000000, ("CardUnhealthy", "n1", "0")),
                record(1787191000, ("NewReasonFromAFutureVolcano", "n2", ""), ("pod-failed", "n3", "")),
            ],
        ),
    }
    result = reschedule.parse_configmap(with_value(value))
    assert problems_of(result) == []
    assert result.records == {
        "a/old-first": JobReschedules(
            "a",
            "old-first",
            57,
            1787191000,
            (("NewReasonFromAFutureVolcano", "n2"), ("pod-failed", "n3")),
        )
    }


def test_null_and_empty_lists() -> None:
    value = {
        "a/null-records": job(total=0, records=None),
        "a/no-records": job(total=1, records=[]),
        "a/null-tasks": job(total=1, records=[{"RescheduleTimeStamp": 1787191000, "ReasonOfTask": None}]),
    }
    result = reschedule.parse_configmap(with_value(value))
    assert problems_of(result) == []
    assert result.records == {
        "a/no-records": JobReschedules("a", "no-records", 1, None, ()),
        "a/null-records": JobReschedules("a", "null-records", 0, None, ()),
        "a/null-tasks": JobReschedules("a", "null-tasks", 1, 1787191000, ()),
    }


def test_times_in_milliseconds_are_recognised() -> None:
    value = {"a/ms": job(total=1, records=[record(1787191000123, ("CardUnhealthy", "n1", "0"))])}
    (parsed,) = (reschedule.parse_configmap(with_value(value)).records or {}).values()
    assert parsed.last_time == pytest.approx(1787191000.123)


def test_bad_entries_are_problems_and_the_rest_is_used() -> None:
    value = {
        "no-slash": job(),
        "a/not-an-object": None,
        "a/bad-total": job(total="3", records=[record(1787191000, ("CardUnhealthy", "n1", "0"))]),
        "a/negative-total": job(total=-1),
        "a/bad-records": job(records={"0": {}}),
        "a/bad-record": job(records=["x", record("yesterday", ("CardUnhealthy", "n1", "0"))]),
        "a/bad-tasks": job(
            records=[{"RescheduleTimeStamp": 1787191000, "ReasonOfTask": [1, {"NodeName": 7}]}]
        ),
        "a/bad-task-list": job(
            records=[{"RescheduleTimeStamp": 1787191000, "ReasonOfTask": "CardUnhealthy"}]
        ),
        "a/good": job(total=4, records=[record(1787191000, ("CardUnhealthy", "n1", "0"))]),
    }
    result = reschedule.parse_configmap(with_value(value))
    assert len(result.problems.items) == 9
    assert {p.reason for p in result.problems.items} == {"schema"}
    records = result.records or {}
    assert set(records) == {
        "a/bad-total",
        "a/negative-total",
        "a/bad-records",
        "a/bad-record",
        "a/bad-tasks",
        "a/bad-task-list",
        "a/good",
    }
    assert records["a/bad-total"] == JobReschedules(
        "a", "bad-total", None, 1787191000, (("CardUnhealthy", "n1"),)
    )
    # A record without a usable time still names its reasons; its time is unknown.
    assert records["a/bad-record"] == JobReschedules("a", "bad-record", 2, None, (("CardUnhealthy", "n1"),))
    # A task that is not an object is skipped; a non-string NodeName reads as "".
    assert records["a/bad-tasks"].last_reasons == (("", ""),)
    assert records["a/good"] == JobReschedules("a", "good", 4, 1787191000, (("CardUnhealthy", "n1"),))


def test_oversized_value_is_parsed() -> None:
    """Over `MaxKbOfRescheduleRecords` (950 KiB) Volcano drops old records and, if still too long,
    writes the value anyway (C.5): a value of about 1.2 MB of 2,000 jobs is read whole."""
    value = {
        f"ns{i % 7}/job-{i}": job(
            total=30,
            records=[
                record(1787191000 - n * 60, *[("CardUnhealthy", f"node{t}", str(t)) for t in range(3)])
                for n in range(2)
            ],
        )
        for i in range(2000)
    }
    cm = with_value(value)
    assert len(cm["data"][KEY]) > 1_000_000
    result = reschedule.parse_configmap(cm)
    assert problems_of(result) == [] and len(result.records or {}) == 2000


def test_per_object_limit_on_task_reasons() -> None:
    tasks = [("CardUnhealthy", f"node{i}", str(i)) for i in range(5)]
    value = {"a/many-tasks": job(total=1, records=[record(1787191000, *tasks)])}
    result = reschedule.parse_configmap(with_value(value), Limits(fault_entries_per_chip=3))
    assert problems_of(result) == [(KEY, "limit")]
    (parsed,) = (result.records or {}).values()
    assert parsed.last_reasons == (
        ("CardUnhealthy", "node0"),
        ("CardUnhealthy", "node1"),
        ("CardUnhealthy", "node2"),
    )
