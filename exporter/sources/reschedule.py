"""S11: Volcano's `mindx-dl/job-reschedule-reason` ConfigMap (mindx-sources.md, "Job reschedules").

`recent-reschedule-records` maps each job (`<namespace>/<PodGroup name>`) Volcano still has in its
session to `TotalRescheduleTimes` and up to ten records, newest first. Volcano writes the object
at every session close (≈ 1 s) and drops a job at the next session after it went; `""` means no
job has records. The times are unix seconds (`LogFileFormatTime` has neither year nor zone and is
not used).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from exporter.handlers.objects import per_object
from exporter.metrics.exposition import Family
from exporter.sharding import Scope, job_scope
from exporter.sources.base import Metric, Parsed, Sample, Source, Watch, families_of, render_table
from exporter.sources.common import (
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    as_str,
    configmap_data,
    decode_json,
    object_name,
    unix_seconds,
)
from exporter.sources.limits import DEFAULT_LIMITS, REASON_LIMIT, Limits

NAMESPACE = "mindx-dl"
NAME = "job-reschedule-reason"
KEY_RECORDS = "recent-reschedule-records"

# RescheduleReason values Volcano writes (spec C.3); others are kept as written.
REASONS: tuple[str, ...] = (
    "NodeUnhealthy",
    "CardUnhealthy",
    "pod-failed",
    "process-exception",
    "RelationFaultSeparate",
    "SubHealthFault",
)


@dataclass(frozen=True, slots=True)
class JobReschedules:
    namespace: str
    podgroup: str
    total: int | None  # TotalRescheduleTimes; None when unusable
    last_time: float | None  # newest record's RescheduleTimeStamp, unix seconds; None without records
    last_reasons: tuple[tuple[str, str], ...]  # (reason, node) of the newest record's tasks


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[JobReschedules]:
    """One record per job, keyed `<namespace>/<podgroup>`; records is None only for another object."""
    problems = Problems()
    _, name = object_name(cm)
    if name != NAME:
        return Parsed(None, problems)
    jobs = decode_json(configmap_data(cm), KEY_RECORDS, problems, required=True, blank_is_empty=True)
    records: dict[str, JobReschedules] = {}
    for job_id, value in (jobs or {}).items():
        record = _parse_job(job_id, value, problems, limits)
        if record is not None:
            records[f"{record.namespace}/{record.podgroup}"] = record
    return Parsed(dict(sorted(records.items())), problems)


def _parse_job(job_id: str, value: object, problems: Problems, limits: Limits) -> JobReschedules | None:
    namespace, sep, podgroup = job_id.partition("/")
    if not sep or not namespace or not podgroup:
        problems.add(KEY_RECORDS, REASON_SCHEMA, f"job id {job_id[:100]!r} is not <namespace>/<podgroup>")
        return None
    entry = as_dict(value)
    if entry is None:
        problems.add(KEY_RECORDS, REASON_SCHEMA, f"{job_id}: not an object")
        return None
    total = as_int(entry.get("TotalRescheduleTimes"))
    if total is None or total < 0:
        problems.add(KEY_RECORDS, REASON_SCHEMA, f"{job_id}: TotalRescheduleTimes is not a count")
        total = None
    newest = _newest_record(job_id, entry.get("RescheduleRecords"), problems, limits)
    last_time, reasons = newest if newest is not None else (None, ())
    return JobReschedules(namespace, podgroup, total, last_time, reasons)


def _newest_record(
    job_id: str, value: object, problems: Problems, limits: Limits
) -> tuple[float | None, tuple[tuple[str, str], ...]] | None:
    """The record with the largest RescheduleTimeStamp (Volcano keeps them newest first; the first
    wins a tie). None when the job has no usable record (`null` and `[]` are no records)."""
    if value is None:
        return None
    if not isinstance(value, list):
        problems.add(KEY_RECORDS, REASON_SCHEMA, f"{job_id}: RescheduleRecords is not an array")
        return None
    best: tuple[float, dict[str, Any]] | None = None
    for element in value:
        record = as_dict(element)
        if record is None:
            problems.add(KEY_RECORDS, REASON_SCHEMA, f"{job_id}: reschedule record is not an object")
            continue
        stamp = as_int(record.get("RescheduleTimeStamp"))
        if stamp is None or stamp <= 0:
            problems.add(KEY_RECORDS, REASON_SCHEMA, f"{job_id}: RescheduleTimeStamp is not unix seconds")
            stamp = 0
        seconds = unix_seconds(stamp)  # seconds as written; a ms value is recognised by its size
        if best is None or seconds > best[0]:
            best = (seconds, record)
    if best is None:
        return None
    return (best[0] or None), _task_reasons(job_id, best[1].get("ReasonOfTask"), problems, limits)


def _task_reasons(
    job_id: str, value: object, problems: Problems, limits: Limits
) -> tuple[tuple[str, str], ...]:
    """(reason, node) per faulty task, de-duplicated; `[]` (a restart without fault tasks) and
    `null` give none. Volcano keeps at most 10 tasks; past the limit the list is cut off."""
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(KEY_RECORDS, REASON_SCHEMA, f"{job_id}: ReasonOfTask is not an array")
        return ()
    found: dict[tuple[str, str], None] = {}
    for element in value:
        task = as_dict(element)
        if task is None:
            problems.add(KEY_RECORDS, REASON_SCHEMA, f"{job_id}: ReasonOfTask element is not an object")
            continue
        reason = (as_str(task.get("RescheduleReason")).strip(), as_str(task.get("NodeName")).strip())
        if reason not in found and len(found) >= limits.fault_entries_per_chip:
            problems.add(
                KEY_RECORDS,
                REASON_LIMIT,
                f"{job_id}: more than {limits.fault_entries_per_chip} task reasons: cut off",
            )
            break
        found[reason] = None
    return tuple(found)


# --- the source ---------------------------------------------------------------------------------

JOB = ("namespace", "podgroup")

JOB_RESCHEDULES = Family(
    "mindx_job_reschedules_total",
    "counter",
    "Times Volcano rescheduled the job (TotalRescheduleTimes of job-reschedule-reason).",
    JOB,
    order=700,
)
JOB_LAST_RESCHEDULE_TIMESTAMP = Family(
    "mindx_job_last_reschedule_timestamp_seconds",
    "gauge",
    "Unix seconds of the job's newest reschedule record.",
    JOB,
    order=710,
)
JOB_LAST_RESCHEDULE_REASON = Family(
    "mindx_job_last_reschedule_reason",
    "gauge",
    "1 per reason and node of the faulty tasks of the job's newest reschedule record (active only).",
    (*JOB, "reason", "node"),
    order=720,
)


def _total(source: str, record: JobReschedules) -> Iterator[Sample]:
    if record.total is not None:
        yield (record.namespace, record.podgroup), record.total


def _last_time(source: str, record: JobReschedules) -> Iterator[Sample]:
    if record.last_time is not None:
        yield (record.namespace, record.podgroup), record.last_time


def _last_reasons(source: str, record: JobReschedules) -> Iterator[Sample]:
    for reason, node in record.last_reasons:
        yield (record.namespace, record.podgroup, reason, node), 1


METRICS: tuple[Metric[JobReschedules], ...] = (
    Metric(JOB_RESCHEDULES, _total),
    Metric(JOB_LAST_RESCHEDULE_TIMESTAMP, _last_time),
    Metric(JOB_LAST_RESCHEDULE_REASON, _last_reasons),
)


def scope(record: JobReschedules) -> Scope:
    return job_scope(record.namespace, record.podgroup)


SOURCE = Source(
    name="job-reschedule",
    description="Volcano's job-reschedule-reason (jobs' reschedule counts and reasons)",
    # Volcano sets no labels (and wipes others'): select the one object by name.
    watch=Watch("configmaps", NAMESPACE, field_selector=f"metadata.name={NAME}", name_prefixes=(NAME,)),
    parse=parse_configmap,
    families=families_of(METRICS),
    handler=per_object(partial(render_table, METRICS), scope=scope),
)
