"""`mindx_node_npu_usable_chips{source="device-plugin"}`: the vendor's procedure answered from
the device plugin (chip lists, `SwitchInfoCfg`) and NodeD (node status), for clusters where
ClusterD is not watched. It joins two sources, so it listens to both handlers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.metrics.store import MetricsStore
from exporter.metrics.views import render_usable
from exporter.sources.records import NodeStatusRecord, NodeView
from exporter.sources.usable import usable_chips

SOURCE = "device-plugin"
ObjectId = tuple[str, str]


class DevicePluginUsable:
    def __init__(self, store: MetricsStore) -> None:
        self.store = store
        self.group = ("usable", SOURCE)
        self._views: dict[str, NodeView] = {}
        self._view_owner: dict[ObjectId, str] = {}
        self._node_status: dict[str, str] = {}
        self._status_owner: dict[ObjectId, str] = {}

    def device_plugin(self, oid: ObjectId, records: Mapping[str, Any]) -> None:
        view = next((r for r in records.values() if isinstance(r, NodeView)), None)
        old = self._view_owner.pop(oid, None)
        if old is not None:
            self._views.pop(old, None)
        if view is not None:
            self._views[view.node] = view
            self._view_owner[oid] = view.node
        for node in {old, view.node if view else None} - {None}:
            assert node is not None
            self._refresh(node)

    def noded(self, oid: ObjectId, records: Mapping[str, Any]) -> None:
        record = next((r for r in records.values() if isinstance(r, NodeStatusRecord)), None)
        old = self._status_owner.pop(oid, None)
        if old is not None:
            self._node_status.pop(old, None)
        if record is not None:
            self._node_status[record.node] = record.status
            self._status_owner[oid] = record.node
        for node in {old, record.node if record else None} - {None}:
            assert node is not None
            self._refresh(node)

    def _refresh(self, node: str) -> None:
        view = self._views.get(node)
        key = (SOURCE, "usable", node)
        if view is None or view.chips is None:
            self.store.delete(self.group, key)
            return
        switch_status = view.switch.node_status if view.switch is not None else ""
        usable = usable_chips(view.chips, self._node_status.get(node, ""), switch_status)
        self.store.set(self.group, key, render_usable(SOURCE, usable))
