"""Every source the exporter can watch, one line each (kube-state-metrics' builder.go). Everything
else is derived from the sources' own declarations: the flags, the exposition's families, the
joins; the deployment's RBAC, `docs/metrics.md` and the simulator are checked against this list
(tests/test_registry.py, tests/test_deploy.py, tests/test_docs_metrics.py)."""

from __future__ import annotations

from typing import Any

from exporter.handlers.base import CONFIGMAP_INVALID
from exporter.kube.reflector import WatchTarget
from exporter.metrics.exposition import Family
from exporter.sources import (
    clusterd,
    deviceplugin,
    dpu,
    events,
    manualseparation,
    noded,
    publicfaults,
    recovery,
    reschedule,
    schedulingexceptions,
    volcano,
)
from exporter.sources.base import Join, Source
from exporter.sources.faulthistory import NPU_CHIP_FAULTS_TOTAL, NPU_FAULT_DURATION_SECONDS

SOURCES: tuple[Source[Any], ...] = (
    deviceplugin.SOURCE,
    noded.SOURCE,
    clusterd.SOURCE,
    volcano.SOURCE,
    events.SOURCE,
    publicfaults.SOURCE,
    manualseparation.SOURCE,
    schedulingexceptions.SOURCE,
    reschedule.SOURCE,
    recovery.SOURCE,
    dpu.SOURCE,
)

SOURCES_BY_NAME = {source.name: source for source in SOURCES}


def joins_of(sources: tuple[Source[Any], ...]) -> tuple[Join, ...]:
    """Every join some source feeds or supersedes, in declaration order."""
    found: dict[str, Join] = {}
    for source in sources:
        for join in (*(feed.join for feed in source.feeds), *source.supersedes):
            found.setdefault(join.name, join)
    return tuple(found.values())


def exposition_order(families: list[Family]) -> tuple[Family, ...]:
    return tuple(sorted(dict.fromkeys(families), key=lambda family: family.order))


# Every data family the exporter can serve, in exposition order.
ALL_FAMILIES: tuple[Family, ...] = exposition_order(
    [
        *(family for source in SOURCES for family in source.families),
        *(family for join in joins_of(SOURCES) for family in join.families),
        NPU_CHIP_FAULTS_TOTAL,
        NPU_FAULT_DURATION_SECONDS,
        CONFIGMAP_INVALID,
    ]
)


def watch_target(source: Source[Any], namespace: str | None = None) -> WatchTarget:
    """What a reflector (or the `devices` command's LIST) reads for `source`, in `namespace`
    (default: the producer's own)."""
    watch = source.watch
    return WatchTarget(
        source.name,
        watch.resource,
        watch.namespace if namespace is None else namespace,
        watch.label_selector,
        watch.field_selector,
    )
