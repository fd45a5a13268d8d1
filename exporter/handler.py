"""Turns the reflector's object stream into rendered blocks in the store (the informer's event
handler): parse → render → store, once per object version."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from exporter.kube.reflector import WatchTarget
from exporter.logs import event
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.metrics.views import Blocks, render_problems
from exporter.registry import SourceSpec
from exporter.sources.common import object_name

log = logging.getLogger("exporter.handler")

ObjectKey = tuple[str, str, str]  # (source, namespace, name)


class ObjectHandler:
    """A reflector sink for sources whose series depend on one object alone."""

    def __init__(
        self, spec: SourceSpec, target: WatchTarget, store: MetricsStore, metrics: ExporterMetrics
    ) -> None:
        self.spec = spec
        self.target = target
        self.store = store
        self.metrics = metrics
        self.group = (spec.name, target.namespace)
        # Per object: the version whose problems were last counted, and those problems, so a
        # relist neither counts nor logs an unchanged object's problems again.
        self._seen: dict[ObjectKey, tuple[str, frozenset[tuple[str, str]]]] = {}

    def replace(self, objects: list[dict[str, Any]]) -> None:
        items: dict[ObjectKey, Blocks] = {}
        for obj in objects:
            rendered = self._render(obj)
            if rendered is not None:
                items[rendered[0]] = rendered[1]
        for key in self._seen.keys() - items.keys():
            del self._seen[key]
        self.store.replace_group(self.group, items)
        self.metrics.set_objects(self.target, len(items))

    def upsert(self, obj: dict[str, Any]) -> None:
        rendered = self._render(obj)
        if rendered is None:
            return
        self.store.set(self.group, rendered[0], rendered[1])
        self.metrics.set_objects(self.target, len(self.store.keys(self.group)))

    def delete(self, obj: dict[str, Any]) -> None:
        namespace, name = object_name(obj)
        key = (self.spec.name, namespace, name)
        self._seen.pop(key, None)
        self.store.delete(self.group, key)
        self.metrics.set_objects(self.target, len(self.store.keys(self.group)))

    def _render(self, obj: Mapping[str, Any]) -> tuple[ObjectKey, Blocks] | None:
        namespace, name = object_name(obj)
        if not name.startswith(self.spec.name_prefix):
            return None
        parsed = self.spec.parse(obj)
        if parsed.record is None and not parsed.problems.items:
            return None
        key = (self.spec.name, namespace, name)
        blocks = self.spec.render(self.spec.name, parsed.record) if parsed.record is not None else {}
        problems = parsed.problems.items
        if problems:
            render_problems(blocks, namespace, name, problems)
        self._account(key, obj, problems)
        return key, blocks

    def _account(self, key: ObjectKey, obj: Mapping[str, Any], problems: list[Any]) -> None:
        meta = obj.get("metadata")
        version = str(meta.get("resourceVersion", "")) if isinstance(meta, dict) else ""
        kinds = frozenset((p.key, p.reason) for p in problems)
        previous = self._seen.get(key)
        if previous is not None and previous[0] == version and version:
            return
        self._seen[key] = (version, kinds)
        for problem in problems:
            self.metrics.parse_error(self.spec.name, problem.reason)
        if kinds and (previous is None or previous[1] != kinds):
            for problem in problems:
                event(
                    log,
                    logging.WARNING,
                    "unusable value",
                    source=self.spec.name,
                    namespace=key[1],
                    configmap=key[2],
                    key=problem.key,
                    reason=problem.reason,
                    detail=problem.detail[:200],
                )
