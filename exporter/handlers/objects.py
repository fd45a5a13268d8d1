"""The handler for sources whose series depend on one object alone (device plugin, NodeD,
Volcano): each object's records are rendered when the object changes, and only the records
whose bytes changed touch the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from exporter.handlers.base import SourceHandler, SourceSpec
from exporter.kube.reflector import WatchTarget
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.metrics.views import Blocks
from exporter.sources.common import object_name

ObjectId = tuple[str, str]  # (namespace, name)
StoreKey = tuple[str, str, str, str]  # (source, namespace, name, record sub-key)
RecordListener = Callable[[ObjectId, Mapping[str, Any]], None]


class ObjectHandler(SourceHandler):
    def __init__(
        self, spec: SourceSpec, target: WatchTarget, store: MetricsStore, metrics: ExporterMetrics
    ) -> None:
        if spec.parse is None or spec.render is None:
            raise ValueError(f"source {spec.name} needs a parser and a renderer")
        super().__init__(spec, target, store, metrics)
        self._keys: dict[ObjectId, set[StoreKey]] = {}  # which store keys each object owns
        self._listeners: list[RecordListener] = []

    def listen(self, listener: RecordListener) -> None:
        """Also hand every object's parsed records to `listener` (`{}` when the object goes), for
        series that join several sources."""
        self._listeners.append(listener)

    def _notify(self, oid: ObjectId, records: Mapping[str, Any]) -> None:
        for listener in self._listeners:
            listener(oid, records)

    def replace(self, objects: list[dict[str, Any]]) -> None:
        items: dict[StoreKey, Blocks] = {}
        previous, self._keys = self._keys, {}
        for obj in objects:
            rendered = self._render(obj)
            if rendered is not None:
                oid, blocks_by_key, records = rendered
                self._keys[oid] = set(blocks_by_key)
                items.update(blocks_by_key)
                self._notify(oid, records)
        for oid in previous.keys() - self._keys.keys():
            self._notify(oid, {})
        self.problems.retain(set(self._keys))
        self.store.replace_group(self.group, items)
        self.metrics.set_objects(self.target, len(self._keys))

    def upsert(self, obj: dict[str, Any]) -> None:
        rendered = self._render(obj)
        if rendered is None:
            return
        oid, blocks_by_key, records = rendered
        self._notify(oid, records)
        for stale in self._keys.get(oid, set()) - blocks_by_key.keys():
            self.store.delete(self.group, stale)
        for key, blocks in blocks_by_key.items():
            self.store.set(self.group, key, blocks)
        self._keys[oid] = set(blocks_by_key)
        self.metrics.set_objects(self.target, len(self._keys))

    def delete(self, obj: dict[str, Any]) -> None:
        oid = object_name(obj)
        if oid in self._keys:
            self._notify(oid, {})
        for key in self._keys.pop(oid, set()):
            self.store.delete(self.group, key)
        self.problems.forget(*oid)
        self.metrics.set_objects(self.target, len(self._keys))

    def _render(
        self, obj: Mapping[str, Any]
    ) -> tuple[ObjectId, dict[StoreKey, Blocks], Mapping[str, Any]] | None:
        namespace, name = object_name(obj)
        if not self.spec.wants(name):
            return None
        assert self.spec.parse is not None and self.spec.render is not None
        parsed = self.spec.parse(obj)
        if parsed.records is None and not parsed.problems.items:
            return None
        source = self.spec.name
        blocks_by_key: dict[StoreKey, Blocks] = {}
        for sub_key, record in (parsed.records or {}).items():
            blocks_by_key[(source, namespace, name, sub_key)] = self.spec.render(source, record)
        problem_blocks = self.problem_blocks(obj, namespace, name, parsed.problems.items)
        if problem_blocks:
            blocks_by_key[self.problem_key(namespace, name)] = problem_blocks
        return (namespace, name), blocks_by_key, parsed.records or {}
