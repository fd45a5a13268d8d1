"""S13: the per-job recovery file `<job namespace>/reset-config-<job name>` (mindx-sources.md,
"Job recovery").

The user creates it with the job (often with `reset.json: {"status":"initializing"}` and no
`checkCode`); Volcano (pod rescheduling) and ClusterD (process-level recovery) update it; nothing
deletes it but the job's owner. `reset.json` is Go's `TaskResetInfo`; `checkCode` is the SHA-256
of `reset.json`'s exact bytes. ClusterD's `data-trace-<job>` ConfigMaps carry the same `reset=true`
label, so the name prefix decides.

It lives in the jobs' namespaces, and RBAC cannot narrow a ConfigMap watch to a label: the source
is off by default and watches the namespaces it is given (`--source.job-recovery.namespace`, a
comma-separated list; docs/configuration.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from exporter.handlers.objects import per_object
from exporter.metrics.exposition import Family
from exporter.sharding import Scope, job_scope
from exporter.sources.base import Metric, Parsed, Sample, Source, Watch, families_of, render_table
from exporter.sources.common import (
    REASON_CHECKCODE,
    REASON_SCHEMA,
    Problems,
    as_dict,
    as_int,
    as_str,
    configmap_data,
    decode_json,
    node_from_name,
    object_name,
)
from exporter.sources.limits import DEFAULT_LIMITS, Limits

NAME_PREFIX = "reset-config-"
LABEL_SELECTOR = "reset=true"
DEFAULT_NAMESPACE = "default"  # where the vendor's sample jobs run; the flag takes a list
KEY_RESET = "reset.json"
KEY_CHECK_CODE = "checkCode"

# ClusterD's rank status; old device-plugin builds wrote unrecovered/recovered/failed (spec D.5).
STATUS_FAULT = "fault"

RECORD = "job"  # the one record of a ConfigMap


@dataclass(frozen=True, slots=True)
class JobRecovery:
    namespace: str
    job: str
    ranks: tuple[tuple[str, int], ...]  # (Status, ranks with it), `fault` always first
    retries: int | None  # RetryTime; None when unusable


def parse_configmap(cm: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Parsed[JobRecovery]:
    """The job's recovery state. A user-created `reset.json` that is not (yet) a `TaskResetInfo`
    reads, as every MindX writer reads it, as all zero: no ranks, no retries. A `checkCode`
    mismatch is reported and the data used; a missing `checkCode` is the user's CM, not a fault."""
    problems = Problems()
    namespace, name = object_name(cm)
    job = node_from_name(name, NAME_PREFIX)
    if job is None:
        return Parsed(None, problems)
    data = configmap_data(cm)
    info = decode_json(data, KEY_RESET, problems, required=True)
    if info is None:
        return Parsed({}, problems)
    check_code = data.get(KEY_CHECK_CODE)
    if check_code is not None and not _verifies(data[KEY_RESET], check_code):
        problems.add(KEY_CHECK_CODE, REASON_CHECKCODE, "checkCode is not the SHA-256 of reset.json")
    ranks = _ranks(info.get("RankList"), problems)
    record = JobRecovery(namespace=namespace, job=job, ranks=ranks, retries=_retries(info, problems))
    return Parsed({RECORD: record}, problems)


def _verifies(text: str, check_code: object) -> bool:
    return isinstance(check_code, str) and hashlib.sha256(text.encode()).hexdigest() == check_code.lower()


def _ranks(value: object, problems: Problems) -> tuple[tuple[str, int], ...]:
    """Ranks per Status; `[]` and `null` mean no rank is faulty now. A rank listed twice counts once."""
    statuses: dict[str, set[object]] = {STATUS_FAULT: set()}
    if value is not None and not isinstance(value, list):
        problems.add(KEY_RESET, REASON_SCHEMA, "RankList is not an array")
        value = None
    for index, element in enumerate(value or ()):
        rank = as_dict(element)
        if rank is None:
            problems.add(KEY_RESET, REASON_SCHEMA, "RankList element is not an object")
            continue
        rank_id = as_int(rank.get("RankId"))
        statuses.setdefault(as_str(rank.get("Status")).strip(), set()).add(
            rank_id if rank_id is not None else ("element", index)
        )
    return tuple((status, len(ranks)) for status, ranks in statuses.items())


def _retries(info: Mapping[str, Any], problems: Problems) -> int | None:
    value = info.get("RetryTime")
    if value is None:  # absent from the user's initial JSON; Go reads null as 0 too
        return 0
    retries = as_int(value)
    if retries is None or retries < 0:
        problems.add(KEY_RESET, REASON_SCHEMA, "RetryTime is not a count")
        return None
    return retries


# --- the source ---------------------------------------------------------------------------------

JOB_RECOVERY_RANKS = Family(
    "mindx_job_recovery_ranks",
    "gauge",
    "Ranks in reset.json's RankList per Status (status fault always emitted, 0 when none).",
    ("namespace", "job", "status"),
    order=730,
)
JOB_RECOVERY_RETRIES = Family(
    "mindx_job_recovery_retries",
    "gauge",
    "RetryTime of the job's reset.json (reset-config-<job>).",
    ("namespace", "job"),
    order=740,
)


def _ranks_samples(source: str, record: JobRecovery) -> Iterator[Sample]:
    for status, count in record.ranks:
        yield (record.namespace, record.job, status), count


def _retries_samples(source: str, record: JobRecovery) -> Iterator[Sample]:
    if record.retries is not None:
        yield (record.namespace, record.job), record.retries


METRICS: tuple[Metric[JobRecovery], ...] = (
    Metric(JOB_RECOVERY_RANKS, _ranks_samples),
    Metric(JOB_RECOVERY_RETRIES, _retries_samples),
)


def scope(record: JobRecovery) -> Scope:
    return job_scope(record.namespace, record.job)


SOURCE = Source(
    name="job-recovery",
    description="the per-job recovery files reset-config-<job> (label reset=true) in the jobs' namespaces",
    # The label also matches ClusterD's data-trace-<job>: the name prefix decides (client-side).
    watch=Watch("configmaps", DEFAULT_NAMESPACE, label_selector=LABEL_SELECTOR, name_prefixes=(NAME_PREFIX,)),
    parse=parse_configmap,
    families=families_of(METRICS),
    handler=per_object(partial(render_table, METRICS), scope=scope),
    # Off unless asked for: it needs ConfigMap read access in every namespace it watches.
    enabled_by_default=False,
)
