"""ClusterD's `cluster-info-*` ConfigMaps, kept per node, not per shard (spec §8).

ClusterD splits its device and switch maps into shards by size, re-draws which node goes into
which shard on every report, and writes the shards one after another. So a node can sit in two
shards (old copy not yet overwritten) or in none for a moment, and shards left from before a
ClusterD restart are never written again. The rules here:

- a node's entry is the newest copy: largest `UpdateTime`, ties broken by the shard's
  resourceVersion (written later);
- a node missing from every shard is dropped only once every live shard has been written
  after it went missing — one full round of the report — so a reshuffle never flaps it;
- a shard other than `-0` not written for `stale_after` seconds is stale and ignored.

Freshness (`mindx_source_update_timestamp_seconds{source="clusterd"}`): ClusterD stamps a node in
two maps, the node map (`UpdateTime` in ms, from NodeD's reports) and the device shards (seconds,
from the device plugin's). A node's series is the newer of the two, so a node ClusterD reports
in one map only (no NPU device info, or no NodeD) still has one, and a node is as fresh as
ClusterD's latest word about it. Switch shards are not counted: their time is the switch
manager's, 0 on nodes without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from exporter.handlers.base import DEFAULT_OPTIONS, HandlerOptions, ProblemKey, SourceHandler
from exporter.kube.reflector import WatchTarget
from exporter.metrics.exposition import render_samples
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.sharding import CLUSTER_SCOPE, Scope
from exporter.sources.base import Blocks, Parsed, Source, render_table
from exporter.sources.clusterd import parser as clusterd
from exporter.sources.clusterd.parser import ENTRIES_PER_STEP, Kind
from exporter.sources.common import object_name
from exporter.sources.nodestatus import NODE_STATUS_METRICS
from exporter.sources.nodeview import NODE_VIEW_METRICS, SOURCE_UPDATE_TIMESTAMP, SWITCH_METRICS
from exporter.sources.records import NodeStatusRecord
from exporter.sources.shards import newest
from exporter.sources.shards import resource_version as _resource_version
from exporter.sources.usable import render_usable, usable_chips
from exporter.steps import Steps, run_steps

Entry = TypeVar("Entry")
Changes = dict[str, Blocks | None]  # node → new blocks, or None to drop the node

DEFAULT_STALE_AFTER = 60.0  # twelve ClusterD report cycles


@dataclass(slots=True)
class _Shard(Generic[Entry]):
    index: int
    resource_version: int
    sequence: int  # order of writes as this exporter saw them
    written_at: float  # monotonic clock
    entries: Mapping[str, Entry] = field(default_factory=dict)


class ShardMerger(Generic[Entry]):
    """One sharded map (devices or switches) merged into one entry per node."""

    def __init__(
        self,
        stamp: Callable[[Entry], int],
        render: Callable[[Entry], Blocks],
        stale_after: float,
        clock: Callable[[], float],
    ) -> None:
        self._stamp = stamp
        self._render = render
        self._stale_after = stale_after
        self._clock = clock
        self._shards: dict[str, _Shard[Entry]] = {}
        self._stale: set[str] = set()
        self._sequence = 0
        self.winners: dict[str, Entry] = {}
        self.pending: dict[str, int] = {}  # node → write sequence at which it went missing
        # node → the shards holding it, so lookups stay O(1); a tuple (usually of one), a quarter
        # of a set's memory.
        self._holders: dict[str, tuple[str, ...]] = {}

    def _index(self, name: str, old: Mapping[str, Entry], new: Mapping[str, Entry]) -> None:
        run_steps(self._index_steps(name, old, new))

    def _index_steps(self, name: str, old: Mapping[str, Entry], new: Mapping[str, Entry]) -> Steps[None]:
        """Shard `name` held `old`'s nodes and now holds `new`'s. Only the nodes that came or went
        are touched: a rewrite mostly holds the same nodes, and new holders for every node on
        every report would be that many more objects for the garbage collector to scan."""
        for count, node in enumerate(old.keys() - new.keys() if old else (), 1):
            if count % ENTRIES_PER_STEP == 0:
                yield
            holders = tuple(holder for holder in self._holders.get(node, ()) if holder != name)
            if holders:
                self._holders[node] = holders
            else:
                self._holders.pop(node, None)
        for count, node in enumerate(new.keys() - old.keys() if old else new, 1):
            if count % ENTRIES_PER_STEP == 0:
                yield
            holders = self._holders.get(node, ())
            if name not in holders:
                self._holders[node] = (*holders, name)

    def write(self, name: str, index: int, resource_version: int, entries: Mapping[str, Entry]) -> Changes:
        """A shard was created or rewritten."""
        return run_steps(self.write_steps(name, index, resource_version, entries))

    def write_steps(
        self, name: str, index: int, resource_version: int, entries: Mapping[str, Entry]
    ) -> Steps[Changes]:
        """`write` in steps (a reshuffled shard moves thousands of nodes). Nothing else may use the
        merger until the steps are done (ClusterdHandler.tick waits)."""
        self._sequence += 1
        old = self._shards.get(name)
        self._shards[name] = _Shard(index, resource_version, self._sequence, self._clock(), entries)
        yield from self._index_steps(name, old.entries if old else {}, entries)
        self._stale.discard(name)
        changes: Changes = {}
        for count, (node, entry) in enumerate(entries.items(), 1):
            if count % ENTRIES_PER_STEP == 0:
                yield
            if entry is self.winners.get(node):
                # The current winner again (an unchanged entry, parsed once): it had the newest
                # UpdateTime of every holder and now also the newest shard, so it stays.
                self.pending.pop(node, None)
            else:
                self._resolve(node, changes)
        for count, node in enumerate(old.entries.keys() - entries.keys() if old else (), 1):
            if count % ENTRIES_PER_STEP == 0:
                yield
            self._resolve(node, changes)
        self._expire(changes)
        return changes

    def remove(self, name: str) -> Changes:
        """A shard ConfigMap was deleted: its nodes must be found elsewhere."""
        self._sequence += 1
        old = self._shards.pop(name, None)
        self._index(name, old.entries if old else {}, {})
        self._stale.discard(name)
        changes: Changes = {}
        for node in old.entries if old else ():
            self._resolve(node, changes)
        self._expire(changes)
        return changes

    def replace(self, shards: list[tuple[str, int, int, Mapping[str, Entry]]]) -> dict[str, Blocks]:
        """A relist: the listed shards are the whole truth now."""
        self._sequence += 1
        now = self._clock()
        self._shards = {
            name: _Shard(index, rv, self._sequence, now, entries) for name, index, rv, entries in shards
        }
        self._holders = {}
        for name, shard in self._shards.items():
            self._index(name, {}, shard.entries)
        self._stale.clear()
        self.pending.clear()
        self.winners = {}
        rendered: dict[str, Blocks] = {}
        for shard in self._shards.values():
            for node in shard.entries:
                if node not in rendered:
                    best = self._best(node)
                    if best is not None:
                        self.winners[node] = best
                        rendered[node] = self._render(best)
        return rendered

    def tick(self) -> Changes:
        """Periodic: shards that went stale stop counting, and stop holding back missing nodes."""
        now = self._clock()
        changes: Changes = {}
        for name, shard in self._shards.items():
            if name not in self._stale and shard.index > 0 and now - shard.written_at > self._stale_after:
                self._stale.add(name)
                for node in shard.entries:
                    self._resolve(node, changes)
        self._expire(changes)
        return changes

    def nodes(self) -> set[str]:
        """Every node some shard (live or stale) holds."""
        return set(self._holders)

    def _live(self) -> list[_Shard[Entry]]:
        return [shard for name, shard in self._shards.items() if name not in self._stale]

    def _best(self, node: str) -> Entry | None:
        return newest(
            (self._stamp(shard.entries[node]), shard.resource_version, shard.entries[node])
            for name in self._holders.get(node, ())
            if name not in self._stale and (shard := self._shards[name])
        )

    def _resolve(self, node: str, changes: Changes) -> None:
        best = self._best(node)
        if best is None:
            if node in self.winners and node not in self.pending:
                self.pending[node] = self._sequence
            return
        self.pending.pop(node, None)
        current = self.winners.get(node)
        if current is not best and current != best:
            self.winners[node] = best
            changes[node] = self._render(best)

    def _expire(self, changes: Changes) -> None:
        if not self.pending:
            return
        oldest_write = min((shard.sequence for shard in self._live()), default=self._sequence)
        for node, missing_since in list(self.pending.items()):
            if oldest_write >= missing_since:
                del self.pending[node]
                del self.winners[node]
                changes[node] = None


SOURCE = "clusterd"


class NodeKey(NamedTuple):
    """Store key of one of ClusterD's per-node views."""

    source: str
    view: str  # NODE | DEVICE | SWITCH | USABLE | TIME
    node: str


_NODE, _DEVICE, _SWITCH, _USABLE, _TIME = "node", "device", "switch", "usable", "time"

# The device view without its update time: the node's time is the newer of two maps (`_TIME`).
_DEVICE_METRICS = tuple(m for m in NODE_VIEW_METRICS if m.family is not SOURCE_UPDATE_TIMESTAMP)


def _device_blocks(entry: clusterd.ClusterDeviceEntry) -> Blocks:
    return render_table(_DEVICE_METRICS, SOURCE, entry.view)


def _time_blocks(node: str, seconds: float) -> Blocks:
    return {SOURCE_UPDATE_TIMESTAMP: render_samples(SOURCE_UPDATE_TIMESTAMP, [((SOURCE, node), seconds)])}


def _switch_blocks(entry: clusterd.ClusterSwitchEntry) -> Blocks:
    return render_table(SWITCH_METRICS, SOURCE, entry.state)


def _node_blocks(record: NodeStatusRecord) -> Blocks:
    # The node map's UpdateTime is rendered with the device shards' (`_TIME`), not here.
    return render_table(NODE_STATUS_METRICS, SOURCE, record)


class ClusterdHandler(SourceHandler):
    def __init__(
        self,
        source: Source[Any],
        target: WatchTarget,
        store: MetricsStore,
        metrics: ExporterMetrics,
        options: HandlerOptions = DEFAULT_OPTIONS,
        stale_after: float = DEFAULT_STALE_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(source, target, store, metrics, options)
        shard = options.shard
        mine = shard.owns_node
        # Shard 0 parses every node's entries: it serves the cluster-wide fault-duration histogram
        # (every chip's clears) and these ConfigMaps' `mindx_configmap_invalid` (every entry's
        # problems). Of other shards' nodes it keeps only the chips' faults (all the histogram
        # reads) and nothing of their switch or node-map entries. Any other shard parses only its
        # own nodes: a node's merge depends on no other node.
        self._check_all = shard.owns(CLUSTER_SCOPE)
        self._own: clusterd.NodeFilter = None if shard.everything else mine  # the nodes served here
        self._keep: clusterd.NodeFilter = None if self._check_all else mine  # device entries kept
        self._faults_only: clusterd.NodeFilter = (
            (lambda node: not mine(node)) if not shard.everything and self._check_all else None
        )
        self.devices: ShardMerger[clusterd.ClusterDeviceEntry] = ShardMerger(
            lambda e: e.update_time_raw,
            lambda e: _device_blocks(e) if mine(e.view.node) else {},
            stale_after,
            clock,
        )
        self.switches: ShardMerger[clusterd.ClusterSwitchEntry] = ShardMerger(
            lambda e: e.update_time_raw,
            lambda e: _switch_blocks(e) if mine(e.state.node) else {},
            stale_after,
            clock,
        )
        # This shard's nodes' records from cluster-info-node-cm, as shown: their status and time
        # feed the usable-chips view and the nodes' update time.
        self._node_records: dict[str, NodeStatusRecord] = {}
        self._listed = False
        self._objects: set[tuple[str, str]] = set()
        # Unchanged entries are not parsed again when ClusterD rewrites (or reshuffles) its shards.
        self._device_memo: clusterd.DeviceEntryMemo = {}
        self._switch_memo: clusterd.SwitchEntryMemo = {}
        self._writing = False  # a shard's merge is between two steps (see upsert_steps)

    def problem_scope(self, namespace: str, name: str) -> Scope:
        """Only shard 0 parses every node's entry, so only it knows each map's problems."""
        return CLUSTER_SCOPE

    # --- ReflectorSink ----------------------------------------------------------------------

    def relist(self) -> ClusterdRelist:
        return ClusterdRelist(self)

    def upsert(self, obj: dict[str, Any]) -> None:
        run_steps(self.upsert_steps(obj))

    def upsert_steps(self, obj: dict[str, Any]) -> Steps[None]:
        """`upsert` in steps: the reflector lets the event loop run between them, so a burst of
        shard ConfigMaps (thousands of nodes each) does not hold up scrapes and other watches."""
        namespace, name = object_name(obj)
        which = clusterd.classify(name)
        if which is None:
            return
        parsed = yield from self._parse_steps(obj, which.kind)
        if which.kind is Kind.NODE:
            self._write_node_cm(parsed.records or {})
        else:
            merger = self.devices if which.kind is Kind.DEVICE else self.switches
            kind = _DEVICE if which.kind is Kind.DEVICE else _SWITCH
            rv = _resource_version(obj)
            yield from self._merge_steps(merger, kind, name, which.index, rv, parsed.records)
        self._objects.add((namespace, name))
        self.set_problems(obj, namespace, name, parsed.problems.items)
        self.metrics.set_objects(self.target, len(self._objects))

    def _parse_steps(self, obj: Mapping[str, Any], kind: Kind) -> Steps[Parsed[Any]]:
        """One of ClusterD's maps, parsed with this shard's node filters (see __init__)."""
        if kind is Kind.NODE:
            return (yield from clusterd.parse_node_cm_steps(obj, self.options.limits, self._keep))
        if kind is Kind.DEVICE:
            return (
                yield from clusterd.parse_device_shard_steps(
                    obj, self._device_memo, self.options.limits, self._keep, self._faults_only
                )
            )
        return (
            yield from clusterd.parse_switch_shard_steps(obj, self._switch_memo, self._own, self._check_all)
        )

    def _merge_steps(
        self,
        merger: ShardMerger[Entry],
        kind: str,
        name: str,
        index: int,
        rv: int,
        entries: Mapping[str, Entry] | None,
    ) -> Steps[None]:
        """Merge one shard's entries in steps; `tick` leaves the merger alone meanwhile."""
        self._writing = True
        try:
            changes = yield from merger.write_steps(name, index, rv, entries or {})
        finally:
            self._writing = False
        self._apply(kind, changes)

    def delete(self, obj: dict[str, Any]) -> None:
        namespace, name = object_name(obj)
        which = clusterd.classify(name)
        if which is None:
            return
        if which.kind is Kind.NODE:
            self._write_node_cm({})
        elif which.kind is Kind.DEVICE:
            self._apply(_DEVICE, self.devices.remove(name))
        else:
            self._apply(_SWITCH, self.switches.remove(name))
        self._objects.discard((namespace, name))
        self.forget_problems(namespace, name)
        self.metrics.set_objects(self.target, len(self._objects))

    def tick(self) -> None:
        if self._writing:
            return  # a shard is being merged in steps: the next tick does it
        self._apply(_DEVICE, self.devices.tick())
        self._apply(_SWITCH, self.switches.tick())
        # Forget parses of nodes no shard holds any more.
        for memo, merger in ((self._device_memo, self.devices), (self._switch_memo, self.switches)):
            for node in memo.keys() - merger.nodes():
                del memo[node]

    def _relisted(self, relist: ClusterdRelist) -> None:
        """A relist is complete: its maps are the whole truth now."""
        self._objects, self._node_records = relist.objects, relist.node_records
        before = set(self.devices.winners)
        for node, blocks in self.devices.replace(relist.device_shards).items():
            relist.items[NodeKey(SOURCE, _DEVICE, node)] = blocks
        counting, self._listed = self._listed, True  # the first list only learns
        for node, entry in self.devices.winners.items():
            self.notify(self._node_oid(node), {f"device/{node}": entry}, counting)
        for node in before - self.devices.winners.keys():
            self.notify(self._node_oid(node), {}, counting)
        for node, blocks in self.switches.replace(relist.switch_shards).items():
            relist.items[NodeKey(SOURCE, _SWITCH, node)] = blocks
        for node in self.devices.winners:
            usable = self._usable(node)
            if usable is not None:
                relist.items[NodeKey(SOURCE, _USABLE, node)] = usable
        for node in self.devices.winners.keys() | self._node_records.keys():
            seconds = self._update_time(node)
            if seconds is not None:
                relist.items[NodeKey(SOURCE, _TIME, node)] = _time_blocks(node, seconds)
        self.replace_problems(relist.problem_items)
        self.store.replace_group(self.group, relist.items)
        self.metrics.set_objects(self.target, len(self._objects))

    # --- helpers ----------------------------------------------------------------------------

    def _write_node_cm(self, records: Mapping[str, NodeStatusRecord]) -> None:
        # Only records that changed are rendered again: the map holds every node and is
        # rewritten every report.
        shown, self._node_records = self._node_records, dict(self._own_records(records))
        changed = {
            n for n in shown.keys() | self._node_records.keys() if shown.get(n) != self._node_records.get(n)
        }
        for node in changed:
            record = self._node_records.get(node)
            if record is None:
                self.store.delete(self.group, NodeKey(SOURCE, _NODE, node))
            else:
                self.store.set(self.group, NodeKey(SOURCE, _NODE, node), _node_blocks(record))
        self._refresh_usable(changed)
        self._refresh_time(changed)

    def _own_records(self, records: Mapping[str, NodeStatusRecord]) -> Mapping[str, NodeStatusRecord]:
        """The node map's records of the nodes served here (the others' were parsed for problems)."""
        if self._own is None:
            return records
        return {node: record for node, record in records.items() if self._own(node)}

    def _node_oid(self, node: str) -> tuple[str, str]:
        """Listeners see ClusterD per node (its merged view), not per shard."""
        return (self.target.namespace, f"node/{node}")

    def _apply(self, kind: str, changes: Changes) -> None:
        for node, blocks in changes.items():
            if blocks is None:
                self.store.delete(self.group, NodeKey(SOURCE, kind, node))
            else:
                self.store.set(self.group, NodeKey(SOURCE, kind, node), blocks)
            if kind == _DEVICE:
                entry = self.devices.winners.get(node)
                self.notify(self._node_oid(node), {f"device/{node}": entry} if entry is not None else {})
        self._refresh_usable(changes.keys())
        if kind == _DEVICE:
            self._refresh_time(changes.keys())

    def _usable(self, node: str) -> Blocks | None:
        """The vendor's procedure over ClusterD's three views (see exporter.sources.usable)."""
        device = self.devices.winners.get(node)
        if device is None or device.view.chips is None or not self.options.shard.owns_node(node):
            return None
        switch = self.switches.winners.get(node)
        switch_status = switch.state.node_status if switch is not None else ""
        record = self._node_records.get(node)
        return render_usable(
            SOURCE, usable_chips(device.view.chips, record.status if record else "", switch_status)
        )

    def _refresh_usable(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            blocks = self._usable(node)
            if blocks is None:
                self.store.delete(self.group, NodeKey(SOURCE, _USABLE, node))
            else:
                self.store.set(self.group, NodeKey(SOURCE, _USABLE, node), blocks)

    def _update_time(self, node: str) -> float | None:
        """The newer of the node map's and the device shards' time for `node` (see the module doc)."""
        if not self.options.shard.owns_node(node):
            return None
        device = self.devices.winners.get(node)
        record = self._node_records.get(node)
        node_time = record.update_time if record else None
        times = [t for t in (node_time, device.view.update_time if device else None) if t]
        return max(times) if times else None

    def _refresh_time(self, nodes: Iterable[str]) -> None:
        for node in nodes:
            seconds = self._update_time(node)
            if seconds is None:
                self.store.delete(self.group, NodeKey(SOURCE, _TIME, node))
            else:
                self.store.set(self.group, NodeKey(SOURCE, _TIME, node), _time_blocks(node, seconds))


class ClusterdRelist:
    """One relist of ClusterD's maps: each ConfigMap is parsed as its page arrives (and its
    decoded JSON let go); the shards are merged when the list is complete."""

    def __init__(self, handler: ClusterdHandler) -> None:
        self.handler = handler
        self.items: dict[NodeKey, Blocks] = {}
        self.problem_items: dict[ProblemKey, Blocks] = {}
        self.device_shards: list[tuple[str, int, int, Mapping[str, clusterd.ClusterDeviceEntry]]] = []
        self.switch_shards: list[tuple[str, int, int, Mapping[str, clusterd.ClusterSwitchEntry]]] = []
        self.objects: set[tuple[str, str]] = set()
        self.node_records: dict[str, NodeStatusRecord] = {}

    def add(self, objects: list[dict[str, Any]]) -> None:
        handler = self.handler
        for obj in objects:
            namespace, name = object_name(obj)
            which = clusterd.classify(name)
            if which is None:
                continue
            parsed = run_steps(handler._parse_steps(obj, which.kind))
            if which.kind is Kind.NODE:
                for node, record in handler._own_records(parsed.records or {}).items():
                    self.items[NodeKey(SOURCE, _NODE, node)] = _node_blocks(record)
                    self.node_records[node] = record
            else:
                shards = self.device_shards if which.kind is Kind.DEVICE else self.switch_shards
                shards.append((name, which.index, _resource_version(obj), parsed.records or {}))
            self.objects.add((namespace, name))
            self.problem_items[handler.problem_key(namespace, name)] = handler.problem_blocks(
                obj, namespace, name, parsed.problems.items
            )

    def finish(self) -> None:
        self.handler._relisted(self)
