"""The handler for sources whose series depend on one object alone (device plugin, NodeD,
Volcano, …): each object's records are rendered when the object changes, and only the records
whose bytes changed touch the store. Joins the source feeds get each object's records too."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from exporter.handlers.base import (
    DEFAULT_OPTIONS,
    HandlerFactory,
    HandlerOptions,
    ObjectId,
    ObjectKey,
    ProblemKey,
    SourceHandler,
)
from exporter.kube.reflector import WatchTarget
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.sharding import Scope
from exporter.sources.base import Blocks, Source
from exporter.sources.common import object_name

Render = Callable[[str, Any], Blocks]


def per_object(render: Render, scope: Callable[[Any], Scope]) -> HandlerFactory:
    """The handler factory of a source rendered object by object with `render`; `scope` says what
    each record's series are about (a node, a job, …), so a shard renders only its records."""

    def factory(
        source: Source[Any],
        target: WatchTarget,
        store: MetricsStore,
        metrics: ExporterMetrics,
        options: HandlerOptions = DEFAULT_OPTIONS,
    ) -> ObjectHandler:
        return ObjectHandler(source, target, store, metrics, render, scope, options)

    return factory


class ObjectHandler(SourceHandler):
    def __init__(
        self,
        source: Source[Any],
        target: WatchTarget,
        store: MetricsStore,
        metrics: ExporterMetrics,
        render: Render,
        scope: Callable[[Any], Scope],
        options: HandlerOptions = DEFAULT_OPTIONS,
    ) -> None:
        super().__init__(source, target, store, metrics, options)
        self._render_record = render
        self._scope = scope
        self._keys: dict[ObjectId, set[ObjectKey]] = {}  # which store keys each object owns
        self._listed = False

    def replace(self, objects: list[dict[str, Any]]) -> None:
        items: dict[ObjectKey, Blocks] = {}
        problem_items: dict[ProblemKey, Blocks] = {}
        counting, self._listed = self._listed, True  # the first list only learns
        previous, self._keys = self._keys, {}
        for obj in objects:
            rendered = self._render(obj)
            if rendered is not None:
                oid, blocks_by_key, records, problem_blocks = rendered
                self._keys[oid] = set(blocks_by_key)
                items.update(blocks_by_key)
                problem_items[self.problem_key(*oid)] = problem_blocks
                self.notify(oid, records, counting)
        for oid in previous.keys() - self._keys.keys():
            self.notify(oid, {}, counting)
        self.replace_problems(problem_items)
        self.store.replace_group(self.group, items)
        self.metrics.set_objects(self.target, len(self._keys))

    def upsert(self, obj: dict[str, Any]) -> None:
        rendered = self._render(obj)
        if rendered is None:
            return
        oid, blocks_by_key, records, problem_blocks = rendered
        self.store.set(self.problem_group, self.problem_key(*oid), problem_blocks)
        self.notify(oid, records)
        for stale in self._keys.get(oid, set()) - blocks_by_key.keys():
            self.store.delete(self.group, stale)
        for key, blocks in blocks_by_key.items():
            self.store.set(self.group, key, blocks)
        self._keys[oid] = set(blocks_by_key)
        self.metrics.set_objects(self.target, len(self._keys))

    def delete(self, obj: dict[str, Any]) -> None:
        oid = object_name(obj)
        if oid in self._keys:
            self.notify(oid, {})
        for key in self._keys.pop(oid, set()):
            self.store.delete(self.group, key)
        self.forget_problems(*oid)
        self.metrics.set_objects(self.target, len(self._keys))

    def _render(
        self, obj: Mapping[str, Any]
    ) -> tuple[ObjectId, dict[ObjectKey, Blocks], Mapping[str, Any], Blocks] | None:
        namespace, name = object_name(obj)
        if not self.source.watch.wants(name):
            return None
        parsed = self.source.parse(obj, self.options.limits)
        if parsed.records is None and not parsed.problems.items:
            return None
        label = self.source.name
        blocks_by_key: dict[ObjectKey, Blocks] = {}
        shard = self.options.shard
        for sub_key, record in (parsed.records or {}).items():
            if shard.everything or shard.owns(self._scope(record)):
                blocks_by_key[ObjectKey(label, namespace, name, sub_key)] = self._render_record(label, record)
        problem_blocks = self.problem_blocks(obj, namespace, name, parsed.problems.items)
        return (namespace, name), blocks_by_key, parsed.records or {}, problem_blocks
