"""Families of a node's hardware status (`NodeStatusRecord`): NodeD's own ConfigMap and ClusterD's
copy of it in `cluster-info-node-cm` share this table."""

from __future__ import annotations

from collections.abc import Iterator

from exporter.metrics.exposition import Family
from exporter.sources.base import Metric, Sample
from exporter.sources.common import NODE_STATUSES
from exporter.sources.nodeview import SOURCE_UPDATE_TIMESTAMP, status_set
from exporter.sources.records import NodeStatusRecord

NODE_STATUS = Family(
    "mindx_node_status",
    "gauge",
    "Node status as a 0/1 set over Healthy, PreSeparate, UnHealthy (raw value added if unknown).",
    ("source", "node", "status"),
    order=200,
)
NODE_FAULT_CODE = Family(
    "mindx_node_fault_code",
    "gauge",
    "1 per faulty node device and fault code (active only).",
    ("source", "node", "device_type", "device_id", "fault_code", "fault_level"),
    order=210,
)


def node_status(source: str, record: NodeStatusRecord) -> Iterator[Sample]:
    if record.status:
        yield from status_set(source, record.node, record.status, NODE_STATUSES)


def node_fault_codes(source: str, record: NodeStatusRecord) -> Iterator[Sample]:
    for dev in record.devices:
        for code in dev.fault_codes:
            yield (source, record.node, dev.device_type, dev.device_id, code, dev.fault_level), 1


def update_time(source: str, record: NodeStatusRecord) -> Iterator[Sample]:
    if record.update_time is not None:
        yield (source, record.node), record.update_time


NODE_STATUS_METRICS: tuple[Metric[NodeStatusRecord], ...] = (
    Metric(NODE_STATUS, node_status),
    Metric(NODE_FAULT_CODE, node_fault_codes),
)
# NodeD's own ConfigMap also says when NodeD last wrote it.
NODE_STATUS_METRICS_WITH_TIME: tuple[Metric[NodeStatusRecord], ...] = (
    *NODE_STATUS_METRICS,
    Metric(SOURCE_UPDATE_TIMESTAMP, update_time),
)
