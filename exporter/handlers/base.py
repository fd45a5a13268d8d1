"""What every handler shares: the source description and problem accounting."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from exporter.kube.reflector import ReflectorSink, WatchTarget
from exporter.logs import event
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.metrics.views import Blocks, render_problems
from exporter.sources.common import Problem, Problems

log = logging.getLogger("exporter.handler")


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parser's answer for one object: records by sub-key (a node, a job, …) and problems.
    `records` is None when the object is not one of the source's objects."""

    records: Mapping[str, Any] | None
    problems: Problems = field(default_factory=Problems)


HandlerFactory = Callable[["SourceSpec", WatchTarget, MetricsStore, ExporterMetrics], ReflectorSink]


@dataclass(frozen=True, slots=True)
class SourceSpec:
    name: str  # the flag name (`--source.<name>.*`) and, for data families, the `source` label
    resource: str  # "configmaps" | "events"
    namespace: str  # the producer's namespace: default of --source.<name>.namespace
    label_selector: str
    field_selector: str
    name_prefixes: tuple[str, ...]  # filtered client-side where no selector exists ("" = any)
    description: str
    handler: HandlerFactory
    parse: Callable[[Mapping[str, Any]], Parsed] | None = None
    render: Callable[[str, Any], Blocks] | None = None

    def wants(self, name: str) -> bool:
        return name.startswith(self.name_prefixes)


class ProblemLog:
    """Counts each object version's problems once and logs one line when an object's set of
    problems changes, so a relist or an unchanged rewrite neither recounts nor re-logs."""

    def __init__(self, source: str, metrics: ExporterMetrics) -> None:
        self.source = source
        self.metrics = metrics
        self._seen: dict[tuple[str, str], tuple[str, frozenset[tuple[str, str]]]] = {}

    def account(self, obj: Mapping[str, Any], namespace: str, name: str, problems: list[Problem]) -> None:
        meta = obj.get("metadata")
        version = str(meta.get("resourceVersion", "")) if isinstance(meta, dict) else ""
        kinds = frozenset((p.key, p.reason) for p in problems)
        previous = self._seen.get((namespace, name))
        if previous is not None and version and previous[0] == version:
            return
        self._seen[(namespace, name)] = (version, kinds)
        for problem in problems:
            self.metrics.parse_error(self.source, problem.reason)
        if kinds and (previous is None or previous[1] != kinds):
            event(
                log,
                logging.WARNING,
                "unusable values in object",
                source=self.source,
                namespace=namespace,
                name=name,
                problems=[
                    {"key": p.key, "reason": p.reason, "detail": p.detail[:200]} for p in problems[:10]
                ],
            )

    def forget(self, namespace: str, name: str) -> None:
        self._seen.pop((namespace, name), None)

    def retain(self, present: set[tuple[str, str]]) -> None:
        for key in self._seen.keys() - present:
            del self._seen[key]


ProblemKey = tuple[str, str, str, str]


class SourceHandler:
    """The part every reflector sink shares: where it writes its blocks, and how it accounts for
    the problems its parser finds (`mindx_configmap_invalid`, parse-error counts, one log line)."""

    def __init__(
        self, spec: SourceSpec, target: WatchTarget, store: MetricsStore, metrics: ExporterMetrics
    ) -> None:
        self.spec = spec
        self.target = target
        self.store = store
        self.metrics = metrics
        self.group = (spec.name, target.namespace)
        self.problems = ProblemLog(spec.name, metrics)

    def problem_key(self, namespace: str, name: str) -> ProblemKey:
        return (self.spec.name, namespace, name, "problems")

    def problem_blocks(
        self, obj: Mapping[str, Any], namespace: str, name: str, problems: list[Problem]
    ) -> Blocks:
        """Account for one object's problems; its `mindx_configmap_invalid` blocks ({} when none)."""
        self.problems.account(obj, namespace, name, problems)
        blocks: Blocks = {}
        if problems:
            render_problems(blocks, namespace, name, problems)
        return blocks

    def forget_problems(self, namespace: str, name: str) -> None:
        self.problems.forget(namespace, name)
        self.store.delete(self.group, self.problem_key(namespace, name))
