"""Every source the exporter can watch: where its objects live, how to select them, and which
parser and renderer turn one object into series. The deployment's RBAC is checked against
this table, so a source added here without RBAC fails the tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.metrics.views import Blocks, render_node_view
from exporter.sources import deviceplugin
from exporter.sources.common import Problems


@dataclass(frozen=True, slots=True)
class Parsed:
    record: Any | None  # None: the object is not one of this source's objects
    problems: Problems


@dataclass(frozen=True, slots=True)
class SourceSpec:
    name: str  # the `source` label and the flag name
    resource: str  # "configmaps" | "events"
    namespace: str  # the producer's namespace (default of --source.<name>.namespace)
    label_selector: str
    name_prefix: str  # filtered client-side where no selector exists
    parse: Callable[[Mapping[str, Any]], Parsed]
    render: Callable[[str, Any], Blocks]
    description: str


def _parse_deviceplugin(obj: Mapping[str, Any]) -> Parsed:
    result = deviceplugin.parse_configmap(obj)
    return Parsed(result.view, result.problems)


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        name="device-plugin",
        resource="configmaps",
        namespace="kube-system",
        label_selector="mx-consumer-cim=true",
        name_prefix=deviceplugin.NAME_PREFIX,
        parse=_parse_deviceplugin,
        render=render_node_view,
        description="Ascend Device Plugin per-node ConfigMaps mindx-dl-deviceinfo-<node>",
    ),
)

SOURCES_BY_NAME = {spec.name: spec for spec in SOURCES}
