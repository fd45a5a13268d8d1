"""Every source the exporter can watch: where its objects live, how to select them, and which
parser, renderer and handler turn its objects into series. The deployment's RBAC is checked
against this table, so a source added here without RBAC fails the tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exporter.handlers.base import Parsed, SourceSpec
from exporter.handlers.clusterd import ClusterdHandler
from exporter.handlers.events import EventCounter
from exporter.handlers.objects import ObjectHandler
from exporter.metrics.views import (
    Blocks,
    render_health_state,
    render_job_retries,
    render_node_status,
    render_node_view,
)
from exporter.sources import clusterd, deviceplugin, noded, volcano
from exporter.sources.records import NodeView


def _parse_deviceplugin(obj: Mapping[str, Any]) -> Parsed:
    result = deviceplugin.parse_configmap(obj)
    return Parsed(None if result.view is None else {"node": result.view}, result.problems)


def _parse_noded(obj: Mapping[str, Any]) -> Parsed:
    result = noded.parse_configmap(obj)
    return Parsed(None if result.record is None else {"node": result.record}, result.problems)


def _parse_volcano(obj: Mapping[str, Any]) -> Parsed:
    result = volcano.parse_configmap(obj)
    if result.nodes is None and result.retries is None:
        return Parsed(None, result.problems)
    # Sub-keys are strings: store keys are tuples of strings, sorted to order the exposition.
    records: dict[str, Any] = {f"node/{n.view.node}": n for n in result.nodes or ()}
    records.update({f"job/{j.namespace}/{j.podgroup}": j for j in result.retries or ()})
    return Parsed(records, result.problems)


def _render_view(source: str, view: NodeView) -> Blocks:
    return render_node_view(source, view)


def _render_volcano(source: str, record: volcano.VolcanoNode | volcano.JobRetries) -> Blocks:
    if isinstance(record, volcano.JobRetries):
        return render_job_retries(record.namespace, record.podgroup, record.job_uid, record.times)
    blocks = render_node_view(source, record.view)
    render_health_state(blocks, source, record.view.node, record.health_state)
    return blocks


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        name="device-plugin",
        resource="configmaps",
        namespace="kube-system",
        label_selector="mx-consumer-cim=true",
        field_selector="",
        name_prefixes=(deviceplugin.NAME_PREFIX,),
        description="Ascend Device Plugin ConfigMaps mindx-dl-deviceinfo-<node>",
        handler=ObjectHandler,
        parse=_parse_deviceplugin,
        render=_render_view,
    ),
    SourceSpec(
        name="noded",
        resource="configmaps",
        namespace="mindx-dl",
        label_selector="mx-consumer-cim=true",
        field_selector="",
        name_prefixes=(noded.NAME_PREFIX,),
        description="NodeD ConfigMaps mindx-dl-nodeinfo-<node>",
        handler=ObjectHandler,
        parse=_parse_noded,
        render=render_node_status,
    ),
    SourceSpec(
        name="clusterd",
        resource="configmaps",
        namespace="mindx-dl",
        label_selector="mx-consumer-volcano=true",
        field_selector="",
        name_prefixes=(clusterd.NODE_CM_NAME, clusterd.DEVICE_PREFIX, clusterd.SWITCH_PREFIX),
        description="ClusterD ConfigMaps cluster-info-node-cm, -device-<m>, -switch-<m>",
        handler=ClusterdHandler,
    ),
    SourceSpec(
        name="volcano",
        resource="configmaps",
        namespace="volcano-system",
        label_selector="",  # Volcano sets no labels: select the one object by name
        field_selector=f"metadata.name={volcano.NAME}",
        name_prefixes=(volcano.NAME,),
        description="Volcano's vcjob-fault-npu-cm (fault nodes, job retry budgets)",
        handler=ObjectHandler,
        parse=_parse_volcano,
        render=_render_volcano,
    ),
    SourceSpec(
        name="device-plugin-events",
        resource="events",
        namespace="kube-system",
        label_selector="",
        # Events cannot be selected by message; the device plugin is their reporting component.
        field_selector="source=device-plugin",
        name_prefixes=("",),
        description="Ascend Device Plugin fault Events",
        handler=EventCounter,
    ),
)

SOURCES_BY_NAME = {spec.name: spec for spec in SOURCES}
