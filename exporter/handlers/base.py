"""What every handler shares: problem accounting (`mindx_configmap_invalid`, parse-error counts,
one log line) and the store keys of per-object records."""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from exporter.kube.reflector import ReflectorSink, Relist, WatchTarget
from exporter.logs import event
from exporter.metrics.exposition import Family
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import Group, MetricsStore
from exporter.sharding import ALL, Scope, Shard, object_scope
from exporter.sources.base import Blocks, Source, add_block
from exporter.sources.common import Problem
from exporter.sources.limits import DEFAULT_LIMITS, Limits

log = logging.getLogger("exporter.handler")

CONFIGMAP_INVALID = Family(
    "mindx_configmap_invalid",
    "gauge",
    "1 while the current version of a ConfigMap data key fails (reason json, checkcode, schema or limit).",
    ("namespace", "configmap", "key", "reason"),
    order=1000,
)


@dataclass(frozen=True, slots=True)
class HandlerOptions:
    """What the operator can tune about how objects become series (`docs/configuration.md`)."""

    limits: Limits = DEFAULT_LIMITS
    # Counters of a node with no new increment for this long are dropped (0 = never): a node's
    # counters otherwise live as long as the process, and every node that ever had a fault Event
    # would keep its series.
    counter_idle_seconds: float = 86400.0
    # Which part of the series this process renders (--shard/--total-shards; all by default).
    shard: Shard = ALL


DEFAULT_OPTIONS = HandlerOptions()

HandlerFactory = Callable[
    [Source[Any], WatchTarget, MetricsStore, ExporterMetrics, HandlerOptions], "SourceHandler"
]
ObjectId = tuple[str, str]  # (namespace, name)
# (object, its records or {} when it went, whether changes count: False during the first list).
RecordListener = Callable[[ObjectId, Mapping[str, Any], bool], None]


class ObjectKey(NamedTuple):
    """Store key of one record of one object."""

    source: str
    namespace: str
    name: str
    record: str  # the parser's sub-key ("node", "job/<ns>/<podgroup>", …)


class ProblemKey(NamedTuple):
    """Store key of one object's `mindx_configmap_invalid` series."""

    source: str
    namespace: str
    name: str


def render_problems(blocks: Blocks, namespace: str, configmap: str, problems: list[Problem]) -> None:
    """`mindx_configmap_invalid`: one series per (key, reason) while the object's current version fails."""
    seen = sorted({(p.key, p.reason) for p in problems})
    add_block(blocks, CONFIGMAP_INVALID, (((namespace, configmap, key, reason), 1) for key, reason in seen))


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
        # Only objects with problems are remembered: one without has nothing to count again, and
        # is most of a cluster's objects.
        if kinds:
            self._seen[(namespace, name)] = (version, kinds)
        elif previous is not None:
            del self._seen[(namespace, name)]
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


class SourceHandler(ReflectorSink):
    """The part every reflector sink shares: where it writes its blocks, and how it accounts for
    the problems its parser finds (`mindx_configmap_invalid`, parse-error counts, one log line)."""

    def __init__(
        self,
        source: Source[Any],
        target: WatchTarget,
        store: MetricsStore,
        metrics: ExporterMetrics,
        options: HandlerOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.source = source
        self.options = options
        self.target = target
        self.store = store
        self.metrics = metrics
        self.group = Group(source.name, target.namespace)
        # Problems are kept apart from the records, so each group has one key type.
        self.problem_group = Group(source.name, f"{target.namespace} problems")
        self.problems = ProblemLog(source.name, metrics)
        self._listeners: list[RecordListener] = []

    @abc.abstractmethod
    def relist(self) -> Relist:
        """Start a relist (see `ReflectorSink`)."""

    def replace(self, objects: list[dict[str, Any]]) -> None:
        """A whole list at once (what the reflector hands over page by page)."""
        relist = self.relist()
        relist.add(objects)
        relist.finish()

    def listen(self, listener: RecordListener) -> None:
        """Also hand every object's parsed records to `listener` (`{}` when the object goes), for
        the joins the source feeds."""
        self._listeners.append(listener)

    def notify(self, oid: ObjectId, records: Mapping[str, Any], counting: bool = True) -> None:
        for listener in self._listeners:
            listener(oid, records, counting)

    def problem_key(self, namespace: str, name: str) -> ProblemKey:
        return ProblemKey(self.source.name, namespace, name)

    def problem_scope(self, namespace: str, name: str) -> Scope:
        """Which shard serves the object's `mindx_configmap_invalid`: the object's."""
        return object_scope(namespace, name)

    def problem_blocks(
        self, obj: Mapping[str, Any], namespace: str, name: str, problems: list[Problem]
    ) -> Blocks:
        """Account for one object's problems; its `mindx_configmap_invalid` blocks ({} when none, or
        when the object is another shard's)."""
        self.problems.account(obj, namespace, name, problems)
        blocks: Blocks = {}
        if problems and self.options.shard.owns(self.problem_scope(namespace, name)):
            render_problems(blocks, namespace, name, problems)
        return blocks

    def set_problems(
        self, obj: Mapping[str, Any], namespace: str, name: str, problems: list[Problem]
    ) -> None:
        """Account for and show one object's problems (a corrected object clears its series)."""
        blocks = self.problem_blocks(obj, namespace, name, problems)
        self.store.set(self.problem_group, self.problem_key(namespace, name), blocks)

    def replace_problems(self, items: Mapping[ProblemKey, Blocks]) -> None:
        """A relist: the objects with problems are exactly `items`' keys."""
        self.problems.retain({(key.namespace, key.name) for key in items})
        self.store.replace_group(self.problem_group, {key: blocks for key, blocks in items.items() if blocks})

    def forget_problems(self, namespace: str, name: str) -> None:
        self.problems.forget(namespace, name)
        self.store.delete(self.problem_group, self.problem_key(namespace, name))
