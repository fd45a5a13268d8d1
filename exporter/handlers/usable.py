"""`mindx_node_npu_usable_chips{source="device-plugin"}`: the vendor's procedure answered from
the device plugin (chip lists, `SwitchInfoCfg`) and NodeD (node status), for clusters where
ClusterD is not watched. It joins two sources, so it listens to both handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from exporter.metrics.store import MetricsStore
from exporter.metrics.views import render_usable
from exporter.sources.records import NodeStatusRecord, NodeView
from exporter.sources.usable import usable_chips

SOURCE = "device-plugin"
ObjectId = tuple[str, str]
V = TypeVar("V")


class _PerNode(Generic[V]):
    """One value per node, remembered under the object that gave it, so a deleted or renamed
    object takes its node's value with it."""

    def __init__(self) -> None:
        self.by_node: dict[str, V] = {}
        self._node_of: dict[ObjectId, str] = {}

    def put(self, oid: ObjectId, node: str | None, value: V | None) -> set[str]:
        """Replace what `oid` says (nothing when `node` is None); returns the nodes touched."""
        touched = set()
        old = self._node_of.pop(oid, None)
        if old is not None:
            self.by_node.pop(old, None)
            touched.add(old)
        if node is not None and value is not None:
            self.by_node[node] = value
            self._node_of[oid] = node
            touched.add(node)
        return touched


class DevicePluginUsable:
    def __init__(self, store: MetricsStore) -> None:
        self.store = store
        self.group = ("usable", SOURCE)
        self._views: _PerNode[NodeView] = _PerNode()
        self._node_status: _PerNode[str] = _PerNode()

    def device_plugin(self, oid: ObjectId, records: Mapping[str, Any]) -> None:
        view = next((r for r in records.values() if isinstance(r, NodeView)), None)
        self._refresh(self._views.put(oid, view.node if view else None, view))

    def noded(self, oid: ObjectId, records: Mapping[str, Any]) -> None:
        record = next((r for r in records.values() if isinstance(r, NodeStatusRecord)), None)
        self._refresh(
            self._node_status.put(oid, record.node if record else None, record.status if record else None)
        )

    def _refresh(self, nodes: set[str]) -> None:
        for node in nodes:
            view = self._views.by_node.get(node)
            key = (SOURCE, "usable", node)
            if view is None or view.chips is None:
                self.store.delete(self.group, key)
                continue
            switch_status = view.switch.node_status if view.switch is not None else ""
            usable = usable_chips(view.chips, self._node_status.by_node.get(node, ""), switch_status)
            self.store.set(self.group, key, render_usable(SOURCE, usable))
