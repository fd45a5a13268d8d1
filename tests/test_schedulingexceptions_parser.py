"""ClusterD's `scheduling-exception-report` parser (spec mindx-sources-2 §G) on the fixture and on
every item of §G.8, "what a consumer must tolerate"."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from exporter.sources import schedulingexceptions
from exporter.sources.base import Parsed
from exporter.sources.schedulingexceptions import SchedulingException, job_kind
from tests.helpers import fixture

JOBS = "scheduling-exception-report-jobs.json"


def problems_of(result: Parsed[Any]) -> list[tuple[str, str]]:
    return sorted((p.key, p.reason) for p in result.problems.items)


def info(
    name: str = "llama-64p", job_type: str = "AscendJob", namespace: str = "default", **condition: Any
) -> dict[str, Any]:
    conditions = {
        "status": "PodGroupPending",
        "reason": "JobEnqueueFailed",
        "message": "require npu num is 512",
    }
    conditions.update(condition)
    return {"jobName": name, "jobType": job_type, "nameSpace": namespace, "conditions": conditions}


def cm(**values: Any) -> dict[str, Any]:
    obj = copy.deepcopy(fixture(JOBS))
    obj["data"] = {k: v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in values.items()}
    return obj


def records(result: Parsed[SchedulingException]) -> list[SchedulingException]:
    return list((result.records or {}).values())


def test_fixture_three_jobs_not_running() -> None:
    result = schedulingexceptions.parse_configmap(fixture(JOBS))
    assert problems_of(result) == []
    assert records(result) == [
        SchedulingException("default", "bert-8p", "AscendJob", "PodGroupRunning", "PodPending"),
        SchedulingException("default", "llama-64p", "AscendJob", "PodGroupPending", "JobEnqueueFailed"),
        # A vcjob without a PodGroup: jobType is the GroupVersionKind string, normalised to the kind.
        SchedulingException("mindx-dl", "resnet50-vc", "Job", "JobEmptyStatus", "JobNoInitialized"),
    ]


def test_no_data_field_means_no_exception() -> None:
    obj = fixture(JOBS)
    del obj["data"]
    result = schedulingexceptions.parse_configmap(obj)
    assert result.records == {} and problems_of(result) == []


def test_other_objects_are_not_this_source() -> None:
    other = fixture(JOBS)
    other["metadata"]["name"] = "fault-job-info"
    assert schedulingexceptions.parse_configmap(other).records is None


@pytest.mark.parametrize(
    ("job_type", "kind"),
    [
        ("AscendJob", "AscendJob"),
        ("Job", "Job"),
        ("batch.volcano.sh/v1alpha1, Kind=Job", "Job"),
        ("mindxdl.gitee.com/v1, Kind=AscendJob", "AscendJob"),
        ("/v1, Kind=Pod", "Pod"),
        (" AscendJob ", "AscendJob"),
    ],
)
def test_job_type_normalised_to_the_kind(job_type: str, kind: str) -> None:
    assert job_kind(job_type) == kind


def test_dots_in_job_names_split_at_the_last() -> None:
    key = "llama.v2.64p.0b6c3f5e-2d41-4e8a-9a77-5c1e2f3d4a5b"
    result = schedulingexceptions.parse_configmap(cm(**{key: info(name="llama.v2.64p")}))
    assert problems_of(result) == []
    assert records(result)[0].job == "llama.v2.64p"


def test_unknown_reason_is_kept_open_set() -> None:
    """AscendJob condition reasons come from ascend-operator: any identifier is a valid reason."""
    value = info(status="JobFailed", reason="PodTemplateInvalid")
    result = schedulingexceptions.parse_configmap(cm(**{"a.uid1": value}))
    assert problems_of(result) == [] and records(result)[0].reason == "PodTemplateInvalid"


def test_reason_with_text_appended_is_one_series() -> None:
    value = info(
        status="PodGroupInqueue", reason="BatchOrderFailed; node1: npu not enough, node2: npu not enough"
    )
    result = schedulingexceptions.parse_configmap(cm(**{"a.uid1": value}))
    assert problems_of(result) == [] and records(result)[0].reason == "BatchOrderFailed"


def test_unknown_status_is_kept_and_flagged() -> None:
    result = schedulingexceptions.parse_configmap(cm(**{"a.uid1": info(status="PodGroupStuck")}))
    assert problems_of(result) == [("a.uid1", "schema")]
    assert records(result)[0].status == "PodGroupStuck"


def test_message_is_never_part_of_a_record() -> None:
    """Free text (and messages that differ every check) never become labels."""
    one = schedulingexceptions.parse_configmap(cm(**{"a.u": info(message="require npu num is 512")}))
    two = schedulingexceptions.parse_configmap(cm(**{"a.u": info(message="x" * 5000)}))
    assert one.records == two.records


def test_jobs_of_any_namespace_and_a_recreated_job() -> None:
    """A job recreated under the same name (new UID) in the same state gives one series."""
    value = info(namespace="team-a")
    result = schedulingexceptions.parse_configmap(
        cm(**{"llama-64p.uid-old": value, "llama-64p.uid-new": value})
    )
    assert problems_of(result) == []
    assert records(result) == [
        SchedulingException("team-a", "llama-64p", "AscendJob", "PodGroupPending", "JobEnqueueFailed")
    ]


def test_entry_flickering_between_writes() -> None:
    """A condition that changes drops out for one write and comes back: each version stands alone."""
    shown = schedulingexceptions.parse_configmap(cm(**{"a.u": info()}))
    gone = schedulingexceptions.parse_configmap(cm())
    back = schedulingexceptions.parse_configmap(
        cm(**{"a.u": info(status="PodGroupInqueue", reason="NotEnoughResources")})
    )
    assert (
        len(records(shown)) == 1 and records(gone) == [] and records(back)[0].reason == "NotEnoughResources"
    )


@pytest.mark.parametrize(
    ("key", "value", "problems", "served"),
    [
        ("a.u", "", 1, 0),
        ("a.u", "null", 1, 0),
        ("a.u", "{broken", 1, 0),
        ("a.u", "[]", 1, 0),
        ("nouid", info(name="nouid"), 1, 1),
        ("a.u", {"jobName": "a", "jobType": "AscendJob", "nameSpace": "default"}, 1, 0),
        ("a.u", info(namespace=""), 1, 0),
        ("a.u", {**info(), "nameSpace": None}, 1, 0),
        ("a.u", {**info(), "jobName": None}, 1, 1),  # the key still names the job
        ("a.u", {**info(), "jobType": ""}, 1, 1),
        ("a.u", {**info(), "conditions": "PodPending"}, 1, 0),
        ("a.u", info(status=None, reason=None), 2, 1),
        ("a.u", info(reason=""), 1, 1),
        ("a.u", info(reason="; text only"), 1, 1),
        ("a.u", info(namespace="n" * 300), 1, 0),
        ("a.u", info(status=7), 1, 1),
    ],
)
def test_broken_entries_never_raise(key: str, value: Any, problems: int, served: int) -> None:
    obj = cm(**{key: value})
    obj["data"]["bert-8p.5e7a9c1b"] = orjson.dumps(info(name="bert-8p")).decode()
    result = schedulingexceptions.parse_configmap(obj)
    assert [k for k, _ in problems_of(result)] == [key] * problems
    assert len(records(result)) == served + 1  # the good entry is always served


def test_oversized_report_parses() -> None:
    """No cap: hundreds of jobs with 1,000-byte NodePredicateFailed messages."""
    message = "; ".join(f"node-{i:04d}: Insufficient huawei.com/Ascend910" for i in range(20))
    values = {
        f"job-{i}.uid-{i}": info(
            name=f"job-{i}", status="PodGroupInqueue", reason="NodePredicateFailed", message=message
        )
        for i in range(500)
    }
    result = schedulingexceptions.parse_configmap(cm(**values))
    assert problems_of(result) == [] and len(records(result)) == 500
