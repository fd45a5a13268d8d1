"""Big objects are applied in steps (exporter.steps): the reflector runs the event loop between
them, and a scrape between two steps still sees the object's previous version whole."""

from __future__ import annotations

from typing import Any

import orjson

from exporter.handlers.objects import RECORDS_PER_STEP
from exporter.kube.reflector import SteppedSink, WatchTarget
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES_BY_NAME
from exporter.steps import run_steps
from tests.helpers import fixture, labels, parse_exposition, select

VOLCANO = SOURCES_BY_NAME["volcano"]


def volcano_cm(jobs: int, version: int) -> dict[str, Any]:
    """`jobs` budgets; from one version to the next, only every fourth job's budget changes."""
    cm = fixture("vcjob-fault-npu-cm.json")
    cm["metadata"]["resourceVersion"] = str(version)
    budgets = {
        f"team-{i % 7}/job-{i:04d}": {"UUID": f"uid-{i}", "Times": version if i % 4 == 0 else 9}
        for i in range(jobs)
    }
    cm["data"]["remain-retry-times"] = orjson.dumps(budgets).decode()
    return cm


def handler() -> tuple[Any, MetricsStore]:
    store = MetricsStore(ALL_FAMILIES)
    target = WatchTarget("volcano", "configmaps", "volcano-system")
    return VOLCANO.handler(VOLCANO, target, store, ExporterMetrics()), store


def steps_of(stepped: Any, cm: dict[str, Any]) -> int:
    return sum(1 for _ in stepped.upsert_steps(cm))


def test_an_object_with_many_records_is_rendered_in_steps() -> None:
    stepped, store = handler()
    assert isinstance(stepped, SteppedSink)
    stepped.replace([volcano_cm(1000, 1)])
    before = store.body()
    steps = stepped.upsert_steps(volcano_cm(1000, 2))
    next(steps)
    assert store.body() == before, "half an object applied"
    # A step ends after every RECORDS_PER_STEP records rendered, and only the 250 budgets that
    # changed are rendered again.
    assert 1 + sum(1 for _ in steps) == 250 // RECORDS_PER_STEP
    budgets = select(parse_exposition(store.body().decode()), "mindx_job_remaining_retries")
    assert len(budgets) == 1000
    assert budgets[labels(namespace="team-4", podgroup="job-0004", job_uid="uid-4")] == 2
    assert budgets[labels(namespace="team-1", podgroup="job-0001", job_uid="uid-1")] == 9
    # The same object again renders nothing: one step, no pause.
    assert steps_of(stepped, volcano_cm(1000, 2)) == 0
    # In steps or at once: the same series.
    at_once, at_once_store = handler()
    at_once.replace([volcano_cm(1000, 1)])
    run_steps(at_once.upsert_steps(volcano_cm(1000, 2)))
    assert at_once_store.body() == store.body()
