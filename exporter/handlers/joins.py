"""Series computed per node from several sources, as the sources declared them (`Join`, `Feed`):
the core keeps the latest value each feeding object gave for its role and node, and recomputes a
node whenever one of its inputs changes. No source is named here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from exporter.handlers.base import ObjectId, RecordListener
from exporter.metrics.store import Group, MetricsStore
from exporter.sharding import ALL, Shard
from exporter.sources.base import Feed, Join


class JoinKey(NamedTuple):
    """Store key of one node's joined series."""

    join: str
    node: str


class _PerNode:
    """One value per node, remembered under the object that gave it, so a deleted or renamed
    object takes its node's value with it."""

    def __init__(self) -> None:
        self.by_node: dict[str, object] = {}
        self._node_of: dict[ObjectId, str] = {}

    def put(self, oid: ObjectId, given: tuple[str, object] | None) -> set[str]:
        """Replace what `oid` says (nothing when `given` is None); returns the nodes touched."""
        touched = set()
        old = self._node_of.pop(oid, None)
        if old is not None:
            self.by_node.pop(old, None)
            touched.add(old)
        if given is not None:
            node, value = given
            self.by_node[node] = value
            self._node_of[oid] = node
            touched.add(node)
        return touched


class JoinState:
    def __init__(self, join: Join, store: MetricsStore, shard: Shard = ALL) -> None:
        self.join = join
        self.shard = shard
        self.store = store
        self.group = Group(join.name, "join")
        self._roles = {role: _PerNode() for role in join.roles}

    def listener(self, feed: Feed[Any]) -> RecordListener:
        """The record listener for one source's feed (see ObjectHandler.listen)."""
        values = self._roles[feed.role]

        def listen(oid: ObjectId, records: Mapping[str, Any], counting: bool) -> None:
            given = feed.extract(records) if records else None
            if given is not None and not self.shard.owns_node(given[0]):
                given = None  # another shard's node: its joined series are never rendered here
            self._refresh(values.put(oid, given))

        return listen

    def _refresh(self, nodes: set[str]) -> None:
        for node in nodes:
            if not self.shard.owns_node(node):
                continue
            inputs = {
                role: per_node.by_node[node]
                for role, per_node in self._roles.items()
                if node in per_node.by_node
            }
            blocks = self.join.compute(node, inputs)
            key = JoinKey(self.join.name, node)
            if blocks is None:
                self.store.delete(self.group, key)
            else:
                self.store.set(self.group, key, blocks)
