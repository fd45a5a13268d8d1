"""Device-plugin fault Events → `mindx_npu_fault_events_total{node,reason,fault_level}`.

Counting follows the contract: an Event counts once when it appears, and again by however much
its `count` grows; Events that existed before the exporter started are remembered but not
counted, so a restart does not make the counter jump. A relist after a disconnection counts the
Events (and count increases) it missed. Deleting an Event never decrements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.handlers.base import SourceHandler, SourceSpec
from exporter.kube.reflector import WatchTarget
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.metrics.views import Blocks, render_event_counts
from exporter.sources import events
from exporter.sources.common import object_name

CounterKey = tuple[str, str, str]  # (node, reason, fault_level)


class EventCounter(SourceHandler):
    def __init__(
        self, spec: SourceSpec, target: WatchTarget, store: MetricsStore, metrics: ExporterMetrics
    ) -> None:
        super().__init__(spec, target, store, metrics)
        self._started = False
        self._seen: dict[str, tuple[CounterKey, int]] = {}  # Event uid → (counter, count so far)
        self._counts: dict[str, dict[CounterKey, int]] = {}  # node → counters

    def replace(self, objects: list[dict[str, Any]]) -> None:
        counting = self._started  # the first list only learns what already happened
        self._started = True
        present: set[str] = set()
        changed_nodes: set[str] = set()
        problem_items: dict[Any, Blocks] = {}
        for obj in objects:
            uid = self._observe(obj, counting, changed_nodes, problem_items)
            if uid:
                present.add(uid)
        for uid in self._seen.keys() - present:
            del self._seen[uid]
        items: dict[Any, Blocks] = {
            ("events", node): render_event_counts(c) for node, c in self._counts.items()
        }
        items.update((key, blocks) for key, blocks in problem_items.items() if blocks)
        self.problems.retain({(key[1], key[2]) for key in problem_items})
        self.store.replace_group(self.group, items)
        self.metrics.set_objects(self.target, len(self._seen))

    def upsert(self, obj: dict[str, Any]) -> None:
        changed: set[str] = set()
        problem_items: dict[Any, Blocks] = {}
        self._observe(obj, True, changed, problem_items)
        for node in changed:
            self.store.set(self.group, ("events", node), render_event_counts(self._counts[node]))
        for key, blocks in problem_items.items():
            self.store.set(self.group, key, blocks)
        self.metrics.set_objects(self.target, len(self._seen))

    def delete(self, obj: dict[str, Any]) -> None:
        namespace, name = object_name(obj)
        uid = _uid(obj)
        self._seen.pop(uid, None)
        self.forget_problems(namespace, name)
        self.metrics.set_objects(self.target, len(self._seen))

    def _observe(
        self, obj: Mapping[str, Any], counting: bool, changed: set[str], problem_items: dict[Any, Blocks]
    ) -> str:
        """Remember one Event; count what is new about it. Returns its uid for fault Events."""
        namespace, name = object_name(obj)
        result = events.parse_event(obj)
        # Every Event gets an entry ({} when fine), so a corrected Event clears its series.
        problem_items[self.problem_key(namespace, name)] = self.problem_blocks(
            obj, namespace, name, result.problems.items
        )
        record = result.record
        if record is None:
            return ""
        uid = record.uid or f"{namespace}/{name}"
        key = (record.node, record.reason, record.fault_level)
        previous = self._seen.get(uid)
        seen_count = previous[1] if previous is not None else 0
        self._seen[uid] = (key, max(seen_count, record.count))
        increase = record.count - seen_count
        if counting and increase > 0:
            node_counts = self._counts.setdefault(record.node, {})
            node_counts[key] = node_counts.get(key, 0) + increase
            changed.add(record.node)
        return uid


def _uid(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    uid = meta.get("uid") if isinstance(meta, dict) else None
    if isinstance(uid, str) and uid:
        return uid
    namespace, name = object_name(obj)
    return f"{namespace}/{name}"
