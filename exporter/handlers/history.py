"""Fault history of one source (`mindx_npu_chip_faults_total`, `mindx_npu_fault_duration_seconds`):
the handler hands over every version of every object (`SourceHandler.listen`), this compares each
with the previous version of the same object and counts what was raised and times what cleared.

- The first list after start only learns what is already raised, so a restart never makes the
  counter jump; an object that appears later counts the codes it carries (they are new to it).
- A relist after a disconnection compares with what was known before the gap: codes raised during
  the gap and still active count once; codes that cleared during it are timed at the relist.
- A deleted object takes its counters with it (and its active codes are not timed: they did not
  clear, their object went away).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from exporter.handlers.base import ObjectId, RecordListener
from exporter.metrics.store import Group, MetricsStore
from exporter.sharding import ALL, CLUSTER_SCOPE, Shard
from exporter.sources.base import Blocks, add_block
from exporter.sources.faulthistory import (
    NPU_CHIP_FAULTS_TOTAL,
    NPU_FAULT_DURATION_SECONDS,
    ActiveCode,
    CodeKey,
    CounterKey,
    DurationHistogram,
    active_codes,
    compare,
    counter_samples,
    render_histograms,
)
from exporter.sources.records import NodeChips

ChipViews = Callable[[Mapping[str, Any]], Iterable[NodeChips]]


class HistoryKey(NamedTuple):
    """Store key of one object's fault counters, or (name "") of the source's histogram."""

    source: str
    namespace: str
    name: str


class FaultHistory:
    def __init__(
        self, source: str, store: MetricsStore, shard: Shard = ALL, clock: Callable[[], float] = time.time
    ) -> None:
        self.source = source
        self.shard = shard
        self.store = store
        self.group = Group(source, "fault history")
        self._clock = clock
        # Per object: its active codes, each with the time it counts from (the producer's raise
        # time, else when first seen), and its counters.
        self._active: dict[ObjectId, dict[CodeKey, tuple[ActiveCode, float]]] = {}
        self._counts: dict[ObjectId, dict[CounterKey, int]] = {}
        self._histograms: dict[str, DurationHistogram] = {}
        # Shard 0 follows every node's codes, for the cluster-wide histogram; any other shard only
        # its own nodes'.
        self._every_node = shard.owns(CLUSTER_SCOPE)

    def listener(self, views: ChipViews) -> RecordListener:
        def listen(oid: ObjectId, records: Mapping[str, Any], counting: bool) -> None:
            self.update(oid, list(views(records)) if records else None, counting)

        return listen

    def update(self, oid: ObjectId, views: list[NodeChips] | None, counting: bool) -> None:
        """A new version of object `oid` (None: the object is gone)."""
        if views is None:
            self._active.pop(oid, None)
            if self._counts.pop(oid, None) is not None:
                self.store.delete(self.group, HistoryKey(self.source, *oid))
            return
        if not self._every_node:
            # Another shard counts those nodes' faults, and shard 0 times every clear.
            views = [view for view in views if self.shard.owns_node(view.node)]
        now = self._clock()
        current = active_codes(views)
        known = self._active.get(oid)
        previous = {key: entry[0] for key, entry in known.items()} if known is not None else {}
        change = compare(previous, current)
        if known is not None:
            for code in change.cleared:
                since = known[(code.node, code.npu, code.code)][1]
                self._histogram(code.level).observe(max(0.0, now - since))
        active: dict[CodeKey, tuple[ActiveCode, float]] = {}
        for key, code in current.items():
            held = known.get(key) if known is not None else None
            active[key] = (code, held[1] if held is not None else (code.raised_at or now))
        # An object with no active code is not remembered: it compares as one never seen (no
        # code to clear, every later code new), and most objects have none.
        if active:
            self._active[oid] = active
        elif known is not None:
            del self._active[oid]
        raised = [code for code in change.raised if self.shard.owns_node(code.node)] if counting else []
        if raised:
            counts = self._counts.setdefault(oid, {})
            for code in raised:
                counter = (code.node, code.npu, code.code, code.level)
                counts[counter] = counts.get(counter, 0) + 1
            blocks: Blocks = {}
            add_block(blocks, NPU_CHIP_FAULTS_TOTAL, counter_samples(self.source, counts))
            self.store.set(self.group, HistoryKey(self.source, *oid), blocks)
        # The histogram is cluster-wide: shard 0 sees every clear and serves it.
        if change.cleared and known is not None and self.shard.owns(CLUSTER_SCOPE):
            self.store.set(
                self.group,
                HistoryKey(self.source, "", ""),
                {NPU_FAULT_DURATION_SECONDS: render_histograms(self.source, self._histograms)},
            )

    def _histogram(self, level: str) -> DurationHistogram:
        histogram = self._histograms.get(level)
        if histogram is None:
            histogram = self._histograms[level] = DurationHistogram()
        return histogram
