"""The handler for sources whose series depend on one object alone (device plugin, NodeD,
Volcano, …): each object's records are rendered when the object changes, and only the records
whose bytes changed touch the store. Joins the source feeds get each object's records too."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

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
from exporter.steps import Steps, run_steps

Render = Callable[[str, Any], Blocks]

_NO_KEYS: frozenset[ObjectKey] = frozenset()
RECORDS_PER_STEP = 32  # a millisecond or two of rendering


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


class _Rendered(NamedTuple):
    oid: ObjectId
    keys: frozenset[ObjectKey]  # every store key of the object's records this shard serves
    blocks: dict[ObjectKey, Blocks]  # the blocks of those keys whose record changed (all of them in a relist)
    records: Mapping[str, Any]
    problem_blocks: Blocks


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
        # Which store keys each object owns (the shared empty set for another shard's object).
        self._keys: dict[ObjectId, frozenset[ObjectKey]] = {}
        # The records of objects that carry several (Volcano's one ConfigMap holds every job's
        # budget, rewritten every second): a rewrite renders only the records that changed.
        # Objects with one record (a node's) are rendered whole: that record is what changed.
        self._records: dict[ObjectId, Mapping[str, Any]] = {}
        self._listed = False

    def relist(self) -> ObjectRelist:
        return ObjectRelist(self)

    def upsert(self, obj: dict[str, Any]) -> None:
        run_steps(self.upsert_steps(obj))

    def upsert_steps(self, obj: dict[str, Any]) -> Steps[None]:
        """`upsert` in steps (exporter.steps): an object of thousands of records (Volcano's)
        renders its changed records a few at a time; the store changes at the end, at once."""
        rendered = yield from self._render_steps(obj, self._records.get(object_name(obj)))
        if rendered is None:
            return
        oid = rendered.oid
        self.store.set(self.problem_group, self.problem_key(*oid), rendered.problem_blocks)
        self.notify(oid, rendered.records)
        for stale in self._keys.get(oid, _NO_KEYS) - rendered.keys:
            self.store.delete(self.group, stale)
        for key, blocks in rendered.blocks.items():
            self.store.set(self.group, key, blocks)
        self._keys[oid] = rendered.keys
        self._remember(oid, rendered.records)
        self.metrics.set_objects(self.target, len(self._keys))

    def delete(self, obj: dict[str, Any]) -> None:
        oid = object_name(obj)
        if oid in self._keys:
            self.notify(oid, {})
        for key in self._keys.pop(oid, _NO_KEYS):
            self.store.delete(self.group, key)
        self._records.pop(oid, None)
        self.forget_problems(*oid)
        self.metrics.set_objects(self.target, len(self._keys))

    def _remember(self, oid: ObjectId, records: Mapping[str, Any]) -> None:
        if len(records) > 1:
            self._records[oid] = records
        else:
            self._records.pop(oid, None)

    def _render(self, obj: Mapping[str, Any]) -> _Rendered | None:
        return run_steps(self._render_steps(obj))

    def _render_steps(
        self, obj: Mapping[str, Any], previous: Mapping[str, Any] | None = None
    ) -> Steps[_Rendered | None]:
        """Parse and render one object; records equal to `previous`'s are not rendered again. A
        step ends every RECORDS_PER_STEP rendered records."""
        namespace, name = object_name(obj)
        if not self.source.watch.wants(name):
            return None
        parsed = self.source.parse(obj, self.options.limits)
        if parsed.records is None and not parsed.problems.items:
            return None
        label = self.source.name
        records = parsed.records or {}
        keys: list[ObjectKey] = []
        blocks_by_key: dict[ObjectKey, Blocks] = {}
        shard = self.options.shard
        for sub_key, record in records.items():
            if shard.everything or shard.owns(self._scope(record)):
                key = ObjectKey(label, namespace, name, sub_key)
                keys.append(key)
                if previous is None or previous.get(sub_key) != record:
                    blocks_by_key[key] = self._render_record(label, record)
                    if len(blocks_by_key) % RECORDS_PER_STEP == 0:
                        yield
        problem_blocks = self.problem_blocks(obj, namespace, name, parsed.problems.items)
        return _Rendered(
            (namespace, name), frozenset(keys) or _NO_KEYS, blocks_by_key, records, problem_blocks
        )


class ObjectRelist:
    """One relist of an `ObjectHandler`, page by page: each object is rendered (and handed to the
    joins) as its page arrives; the store's group is replaced, and the objects gone are let go,
    when the list is complete."""

    def __init__(self, handler: ObjectHandler) -> None:
        self.handler = handler
        self.counting = handler._listed  # the first list only learns
        self.items: dict[ObjectKey, Blocks] = {}
        self.problem_items: dict[ProblemKey, Blocks] = {}
        self.keys: dict[ObjectId, frozenset[ObjectKey]] = {}
        self.records: dict[ObjectId, Mapping[str, Any]] = {}

    def add(self, objects: list[dict[str, Any]]) -> None:
        handler = self.handler
        for obj in objects:
            rendered = handler._render(obj)
            if rendered is not None:
                oid = rendered.oid
                self.keys[oid] = rendered.keys
                self.items.update(rendered.blocks)
                if len(rendered.records) > 1:
                    self.records[oid] = rendered.records
                self.problem_items[handler.problem_key(*oid)] = rendered.problem_blocks
                handler.notify(oid, rendered.records, self.counting)

    def finish(self) -> None:
        handler = self.handler
        previous, handler._keys, handler._listed = handler._keys, self.keys, True
        handler._records = self.records
        for oid in previous.keys() - self.keys.keys():
            handler.notify(oid, {}, self.counting)
        handler.replace_problems(self.problem_items)
        handler.store.replace_group(handler.group, self.items)
        handler.metrics.set_objects(handler.target, len(self.keys))
