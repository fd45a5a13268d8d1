"""S15: ClusterD's `cluster-system/scheduling-exception-report` ConfigMap, why jobs do not run
(spec mindx-sources-2 §G).

ClusterD rewrites the whole data map every 10 s, one key `<jobName>.<jobUID>` per job that is not
running. With no exception the map is empty, which the API server stores as no `data` field at all:
that is "no exceptions", not a broken object. A job shows only once its condition was the same at
two checks in a row, and drops out for a round when it changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from exporter.handlers.objects import per_object
from exporter.metrics.exposition import Family
from exporter.sharding import job_scope
from exporter.sources.base import Metric, Parsed, Sample, Source, Watch, families_of, render_table
from exporter.sources.common import (
    REASON_SCHEMA,
    Problems,
    as_dict,
    configmap_data,
    decode_json,
    object_name,
)
from exporter.sources.limits import DEFAULT_LIMITS, Limits

NAMESPACE = "cluster-system"
NAME = "scheduling-exception-report"

# `status` is a closed set in ClusterD (consts.go:34-45): another value is kept but flagged.
STATUSES: frozenset[str] = frozenset(
    (
        "JobEmptyStatus",
        "JobInitialized",
        "JobFailed",
        "PodGroupCreated",
        "PodGroupPending",
        "PodGroupInqueue",
        "PodGroupUnknown",
        "PodGroupRunning",
    )
)
# `reason` is open (AscendJob condition reasons come from ascend-operator); a label keeps only its
# leading identifier, so a reason with text appended (`BatchOrderFailed; …`) stays one series.
_REASON = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
# A job without a PodGroup yet has its GroupVersionKind as jobType: `batch.volcano.sh/v1alpha1, Kind=Job`.
_GVK_KIND = re.compile(r"(?:^|,)\s*Kind=([^,\s]+)\s*$")
_MAX_LABEL = 253  # Kubernetes names; anything longer is not a name


@dataclass(frozen=True, slots=True)
class SchedulingException:
    namespace: str
    job: str
    job_type: str  # the owner's kind (`AscendJob`, `Job`, …), also for the GVK form
    status: str
    reason: str


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[SchedulingException]:
    """One record per job in an exception; no `data` means none. One series per data key at most,
    so none of `limits` applies (a job is not a node's chip or device)."""
    problems = Problems()
    _, name = object_name(cm)
    if name != NAME:
        return Parsed(None, problems)
    data = configmap_data(cm)
    records: dict[str, SchedulingException] = {}
    for key in sorted(data):
        value = decode_json(data, key, problems, required=True)
        if value is None:
            continue
        record = _parse_job(key, value, problems)
        if record is not None:
            # One series per label set: the sub-key is the labels (a job recreated under the same
            # name between two writes would otherwise give a duplicate series).
            labels = (record.namespace, record.job, record.job_type, record.status, record.reason)
            records.setdefault("\x00".join(labels), record)
    return Parsed(records, problems)


def job_kind(job_type: str) -> str:
    """`AscendJob` → `AscendJob`; `mindxdl.gitee.com/v1, Kind=AscendJob` → `AscendJob`."""
    match = _GVK_KIND.search(job_type)
    return match.group(1) if match else job_type.strip()


def _parse_job(key: str, value: Mapping[str, Any], problems: Problems) -> SchedulingException | None:
    # Job names may contain dots, UIDs do not: the key splits at the last one.
    key_job, dot, uid = key.rpartition(".")
    if not dot or not key_job or not uid:
        problems.add(key, REASON_SCHEMA, "key is not <jobName>.<jobUID>")
    job = _field(key, value, "jobName", problems) or key_job
    namespace = _field(key, value, "nameSpace", problems)
    if not job or not namespace:
        return None
    job_type = job_kind(_field(key, value, "jobType", problems))
    condition = as_dict(value.get("conditions"))
    if condition is None:
        problems.add(key, REASON_SCHEMA, "conditions is not an object")
        return None
    status = _field(key, condition, "status", problems)
    if status and status not in STATUSES:
        problems.add(key, REASON_SCHEMA, f"unknown status {status[:64]!r}")
    raw_reason = _field(key, condition, "reason", problems)
    match = _REASON.match(raw_reason)
    reason = match.group(0) if match else ""
    if raw_reason and not match:
        problems.add(key, REASON_SCHEMA, "reason does not start with an identifier")
    return SchedulingException(namespace, job, job_type, status, reason)


def _field(key: str, value: Mapping[str, Any], field: str, problems: Problems) -> str:
    """A string field ClusterD always writes (no omitempty): absent, null, "" or not a string, or
    longer than a Kubernetes name, is a problem and gives ""."""
    raw = value.get(field)
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        problems.add(key, REASON_SCHEMA, f"{field} is missing, empty or not a string")
        return ""
    if len(text) > _MAX_LABEL:
        problems.add(key, REASON_SCHEMA, f"{field} is longer than {_MAX_LABEL} characters")
        return ""
    return text


# --- the source ---------------------------------------------------------------------------------

JOB_SCHEDULING_EXCEPTION = Family(
    "mindx_job_scheduling_exception",
    "gauge",
    "1 per job ClusterD reports as not running and why (scheduling-exception-report; active only).",
    ("namespace", "job", "job_type", "status", "reason"),
    order=640,
)


def _samples(_: str, record: SchedulingException) -> Iterator[Sample]:
    yield (record.namespace, record.job, record.job_type, record.status, record.reason), 1


METRICS: tuple[Metric[SchedulingException], ...] = (Metric(JOB_SCHEDULING_EXCEPTION, _samples),)

SOURCE = Source(
    name="clusterd-scheduling-exceptions",
    description="ClusterD's report of jobs that do not run cluster-system/scheduling-exception-report",
    # ClusterD sets no labels: select the one object by name.
    watch=Watch("configmaps", NAMESPACE, field_selector=f"metadata.name={NAME}", name_prefixes=(NAME,)),
    parse=parse_configmap,
    families=families_of(METRICS),
    handler=per_object(
        partial(render_table, METRICS), scope=lambda record: job_scope(record.namespace, record.job)
    ),
)
