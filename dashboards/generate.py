#!/usr/bin/env python3
"""Generate the Grafana dashboards in dashboards/*.json with the Grafana Foundation SDK.

The JSON files are produced here and nowhere else; tests/test_dashboards.py fails when they
drift from this code. Run after every change (from the repository root):

    python3 -m dashboards.generate            # rewrite dashboards/*.json
    python3 -m dashboards.generate --check    # exit 1 if a file is out of date
    python3 -m dashboards.generate -o DIR     # write the dashboards somewhere else

Only a development tool: the exporter never imports it. Needs the `grafana-foundation-sdk`
pinned in pyproject.toml's `test` extras. PromQL lives in `queries.py`, colours and value
mappings in `style.py`; docs/dashboards.md describes every panel.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

if __package__ in (None, ""):  # run as a script: python3 dashboards/generate.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_models

from dashboards import queries as q
from dashboards import style

HERE = Path(__file__).resolve().parent
TAGS = ["mindx", "ascend", "npu"]
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
ALL = ".*"  # "All" of a multi-value variable: a regex that also matches a missing label

Panel = TypeVar("Panel", stat.Panel, timeseries.Panel, table.Panel, bargauge.Panel, statetimeline.Panel)


# --- targets and panels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str | None = None
    instant: bool = False
    table: bool = False  # format=table: one row per series, labels as columns


def now(expr: str, legend: str | None = None) -> Target:
    return Target(expr, legend, instant=True)


def rows(expr: str) -> Target:
    return Target(expr, instant=True, table=True)


def over_time(expr: str, legend: str | None = None) -> Target:
    return Target(expr, legend)


def _query(target: Target, ref_id: str) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(target.expr).ref_id(ref_id).datasource(DATASOURCE)
    query = query.editor_mode(prometheus_models.QueryEditorMode.CODE)
    query = query.instant() if target.instant else query.range()
    if target.table:
        return query.format(prometheus_models.PromQueryFormat.TABLE).legend_format("__auto")
    query = query.format(prometheus_models.PromQueryFormat.TIME_SERIES)
    return query.legend_format(target.legend or "__auto")


def panel(builder: Panel, title: str, description: str, w: int, h: int, *targets: Target) -> Panel:
    """Title, description, size, the datasource variable and the targets (refIds A, B, ...)."""
    builder = builder.title(title).description(description).span(w).height(h).datasource(DATASOURCE)
    return builder.targets([_query(t, chr(ord("A") + i)) for i, t in enumerate(targets)])


def _table(title: str, description: str, w: int, h: int, *targets: Target) -> table.Panel:
    return panel(table.Panel(), title, description, w, h, *targets).cell_height(common.TableCellHeight.SM)


def _organize(
    rename: dict[str, str], order: Sequence[str] = (), hide: Sequence[str] = ()
) -> model.DataTransformerConfig:
    """Table columns: drop Time (and `hide`), rename value columns, put `order` (original names)
    first."""
    return model.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {"Time": True, **{name: True for name in hide}},
            "renameByName": rename,
            "indexByName": {name: i for i, name in enumerate(order)},
        },
    )


MERGE = model.DataTransformerConfig(id_val="merge", options={})


def _sort(column: str, desc: bool) -> list[Builder[common.TableSortByFieldState]]:
    return [common_builders.TableSortByFieldState().display_name(column).desc(desc)]


def _stat(title: str, description: str, w: int, h: int, *targets: Target) -> stat.Panel:
    return (
        panel(stat.Panel(), title, description, w, h, *targets)
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def _timeseries(title: str, description: str, w: int, h: int, *targets: Target) -> timeseries.Panel:
    return (
        panel(timeseries.Panel(), title, description, w, h, *targets)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
    )


def _stacked(builder: timeseries.Panel) -> timeseries.Panel:
    return (
        builder.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .fill_opacity(70)
        .line_width(0)
        .min(0)
    )


def _bars(title: str, description: str, w: int, h: int, *targets: Target) -> bargauge.Panel:
    return (
        panel(bargauge.Panel(), title, description, w, h, *targets)
        .orientation(common.VizOrientation.HORIZONTAL)
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .value_mode(common.BarGaugeValueMode.TEXT)
        .name_placement(common.BarGaugeNamePlacement.LEFT)
        .show_unfilled(True)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .min(0)
    )


def _with_status_colors(builder: Panel, colors: dict[str, str]) -> Panel:
    for regex, properties in style.status_overrides(colors):
        builder = builder.override_by_regexp(regex, properties)
    return builder


def _level_panel(builder: Panel) -> Panel:
    """A panel whose values are chip levels: level names, colours and thresholds."""
    return (
        builder.mappings(style.level_mappings())
        .thresholds(style.level_thresholds())
        .color_scheme(style.thresholds_color())
        .min(-1)
        .max(9)
        .decimals(0)
    )


def _column(name: str, *properties: model.DynamicConfigValue) -> tuple[str, list[model.DynamicConfigValue]]:
    return name, list(properties)


def _prop(id_val: str, value: object) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=id_val, value=value)


def _with_columns(builder: table.Panel, *columns: tuple[str, list[model.DynamicConfigValue]]) -> table.Panel:
    for name, properties in columns:
        builder = builder.override_by_name(name, properties)
    return builder


COLOR_TEXT = _prop("custom.cellOptions", {"type": "color-text"})
COLOR_BACKGROUND = _prop("custom.cellOptions", {"type": "color-background", "mode": "basic"})


def _level_column(name: str) -> tuple[str, list[model.DynamicConfigValue]]:
    return _column(
        name,
        _prop("mappings", [m.to_json() for m in style.level_mappings()]),
        _prop("thresholds", style.level_thresholds().build().to_json()),
        _prop("color", {"mode": "thresholds"}),
        COLOR_BACKGROUND,
    )


def _text_colors_column(name: str, colors: dict[str, str]) -> tuple[str, list[model.DynamicConfigValue]]:
    return _column(name, _prop("mappings", [m.to_json() for m in style.text_mappings(colors)]), COLOR_TEXT)


def _age_columns(raised: str, age: str) -> list[tuple[str, list[model.DynamicConfigValue]]]:
    return [
        _column(
            raised,
            _prop("unit", "dateTimeAsIso"),
            _prop(
                "mappings",
                [model.ValueMap(options={"0": model.ValueMappingResult(text="not given")}).to_json()],
            ),
        ),
        _column(age, _prop("unit", "dtdurations")),
    ]


# --- template variables ---------------------------------------------------------------------------------


def datasource_variable() -> dash.DatasourceVariable:
    return dash.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(
    name: str, label: str, query: str, *, multi: bool, refresh_on_time: bool = False
) -> dash.QueryVariable:
    variable = (
        dash.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(
            model.VariableRefresh.ON_TIME_RANGE_CHANGED
            if refresh_on_time
            else model.VariableRefresh.ON_DASHBOARD_LOAD
        )
        .sort(model.VariableSort.NATURAL_ASC)
    )
    if multi:
        variable = (
            variable.multi(True)
            .include_all(True)
            .all_value(ALL)
            .current(model.VariableOption(selected=True, text="All", value="$__all"))
        )
    return variable


def cluster_variable() -> dash.QueryVariable:
    # Optional: without a `cluster` label the list is empty and "All" (.*) matches everything.
    return query_variable("cluster", "Cluster", q.VAR_CLUSTER, multi=True).description(
        'External label `cluster`, when several clusters share one Prometheus; "All" otherwise.'
    )


def source_variable() -> dash.QueryVariable:
    return query_variable("source", "Source", q.VAR_SOURCE, multi=True).description(
        "Producers whose view is shown (device-plugin, noded, clusterd, volcano, rdma-device-plugin)."
    )


def node_variable() -> dash.QueryVariable:
    return query_variable("node", "Node", q.VAR_NODE, multi=False, refresh_on_time=True)


def _dashboard(uid: str, title: str, description: str) -> dash.Dashboard:
    return (
        dash.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("1m")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(
            dash.DashboardLink("MindX DL dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["mindx"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


NODE_DETAIL_UID = "mindx-node-detail"
JOBS_UID = "mindx-jobs"
NODE_LINK = (
    f"/d/{NODE_DETAIL_UID}/mindx-dl-node-detail?${{__url_time_range}}&${{datasource:queryparam}}"
    "&${cluster:queryparam}&var-node=${__data.fields.node}"
)


# --- cluster overview -------------------------------------------------------------------------------------


def cluster_overview() -> dash.Dashboard:
    levels = [now(q.chips_at_level(rank), f"{rank} {name}") for rank, name, _ in style.CHIP_LEVELS]
    level_bars = _bars(
        "Chips by fault level",
        "How many chips are at each fault level now (each chip at the most severe level any selected "
        "source reports).",
        8,
        10,
        *levels,
    )
    for i, (_, _, color) in enumerate(style.CHIP_LEVELS):
        level_bars = level_bars.override_by_query(chr(ord("A") + i), [style.override_color(color)])

    level_history = _stacked(
        _timeseries(
            "Faulty chips by level over time",
            "Chips at each fault level other than 0 (healthy), stacked: when faults came and went and "
            "how severe they were.",
            16,
            10,
            over_time(q.FAULTY_CHIPS_BY_LEVEL, "{{level}}"),
        )
    ).decimals(0)
    for rank, name, color in style.CHIP_LEVELS:
        level_history = level_history.override_by_name(
            str(rank), [_prop("displayName", f"{rank} {name}"), style.override_color(color)]
        )

    nodes_table = _with_columns(
        _table(
            "Nodes with faulty chips",
            "Every node with a chip above level 0: its worst chip level and how many chips are faulty. "
            "The node name links to the node detail dashboard.",
            12,
            9,
            rows(q.NODE_WORST_LEVEL),
            rows(q.NODE_FAULTY_CHIPS),
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                {"Value #A": "Worst level", "Value #B": "Faulty chips"},
                ("cluster", "node", "Value #A", "Value #B"),
            )
        )
        .sort_by(_sort("Worst level", desc=True)),
        _level_column("Worst level"),
        _column("node", _prop("links", [{"title": "Node detail", "url": NODE_LINK}])),
    )

    return _overview_clusterd_reports_and_dpus(  # ClusterD's reports and DPUs: a row at the end
        _dashboard(
            "mindx-cluster-overview",
            "MindX DL / Cluster overview",
            "NPU chip, node, switch and job health of MindX DL clusters, from mindx-fault-exporter.",
        )
        .with_variable(datasource_variable())
        .with_variable(cluster_variable())
        .with_variable(source_variable())
        .with_row(dash.Row("Now"))
        .with_panel(
            _stat(
                "Usable chips",
                "Chips a job can use now across the cluster: free chips on nodes whose node and switch "
                "status are not UnHealthy (mindx_node_npu_usable_chips).",
                4,
                4,
                now(q.USABLE_CHIPS),
            ).color_scheme(style.fixed_color("green"))
        )
        .with_panel(
            _stat(
                "Faulty chips",
                "Chips whose level is not 0 (NormalNPU), including -1 (a level the exporter does not know).",
                4,
                4,
                now(q.FAULTY_CHIPS),
            ).thresholds(style.thresholds("green", (1, "yellow")))
        )
        .with_panel(
            _stat(
                "Separated chips",
                "Chips at SeparateNPU or ManuallySeparateNPU (level 8 or 9): isolated, need repair.",
                4,
                4,
                now(q.SEPARATED_CHIPS),
            ).thresholds(style.thresholds("green", (1, "red")))
        )
        .with_panel(
            _stat(
                "Unhealthy nodes",
                "Nodes NodeD or ClusterD reports as UnHealthy.",
                4,
                4,
                now(q.UNHEALTHY_NODES),
            ).thresholds(style.thresholds("green", (1, "red")))
        )
        .with_panel(
            _stat(
                "Unhealthy switches",
                "Nodes whose interconnect switch the device plugin or ClusterD reports as UnHealthy.",
                4,
                4,
                now(q.UNHEALTHY_SWITCHES),
            ).thresholds(style.thresholds("green", (1, "red")))
        )
        .with_panel(
            _stat(
                "Invalid ConfigMap keys",
                "Producer ConfigMap keys whose JSON, CheckCode or shape is invalid "
                "(mindx_configmap_invalid).",
                4,
                4,
                now(q.INVALID_CONFIGMAP_COUNT),
            ).thresholds(style.thresholds("green", (1, "orange")))
        )
        .with_panel(level_bars)
        .with_panel(level_history)
        .with_row(dash.Row("Nodes and switches"))
        .with_panel(
            _with_status_colors(
                _bars(
                    "Nodes by status",
                    "Nodes per status as NodeD and ClusterD report it. NodeD deletes its ConfigMap when a "
                    "node is healthy, so its Healthy count is small; ClusterD rewrites PreSeparate.",
                    6,
                    9,
                    now(q.NODES_BY_STATUS, "{{source}}: {{status}}"),
                ),
                style.STATUS_COLORS,
            ).decimals(0)
        )
        .with_panel(
            _with_status_colors(
                _bars(
                    "Switches by status",
                    "Nodes per interconnect switch status (device plugin and ClusterD; A3 super-pod nodes).",
                    6,
                    9,
                    now(q.SWITCHES_BY_STATUS, "{{source}}: {{status}}"),
                ),
                style.STATUS_COLORS,
            ).decimals(0)
        )
        .with_panel(nodes_table)
        .with_row(dash.Row("Faults"))
        .with_panel(
            _with_columns(
                _table(
                    "Top fault codes",
                    "The fault codes active on the most chips now (a chip counted once per code, whatever "
                    "the number of sources).",
                    8,
                    9,
                    rows(q.TOP_FAULT_CODES),
                )
                .with_transformation(
                    _organize({"Value": "Chips", "Value #A": "Chips"}, ("fault_code", "fault_type"))
                )
                .sort_by(_sort("Chips", desc=True)),
            )
        )
        .with_panel(
            _timeseries(
                "Fault events per hour",
                "Device-plugin fault Events by reason: Occur (raised), Recovery (recovered), Notice.",
                10,
                9,
                over_time(q.FAULT_EVENTS_PER_HOUR, "{{reason}}"),
            )
            .unit("suffix: /h")
            .min(0)
            .override_by_name("Occur", [style.override_color("red")])
            .override_by_name("Recovery", [style.override_color("green")])
            .override_by_name("Notice", [style.override_color("blue")])
        )
        .with_panel(
            _stat(
                "Fault events in range",
                "Device-plugin fault Events seen in the dashboard's time range, by reason.",
                6,
                9,
                now(q.FAULT_EVENTS_IN_RANGE, "{{reason}}"),
            )
            .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
            .color_mode(common.BigValueColorMode.VALUE)
            .decimals(0)
            .override_by_name("Occur", [style.override_color("red")])
            .override_by_name("Recovery", [style.override_color("green")])
            .override_by_name("Notice", [style.override_color("blue")])
        )
        .with_row(dash.Row("Jobs and producers"))
        .with_panel(
            _with_columns(
                _table(
                    "Jobs' remaining retries",
                    "Restarts left per training job before Volcano fails it for good (lowest first). Jobs "
                    "without a fault-retry-times label show 0.",
                    8,
                    9,
                    rows(q.JOB_RETRIES),
                )
                .with_transformation(
                    _organize(
                        {"Value": "Retries left", "Value #A": "Retries left"},
                        ("cluster", "namespace", "podgroup"),
                    )
                )
                .sort_by(_sort("Retries left", desc=False)),
                _column(
                    "Retries left",
                    _prop(
                        "thresholds", style.thresholds("red", (1, "orange"), (2, "green")).build().to_json()
                    ),
                    _prop("color", {"mode": "thresholds"}),
                    COLOR_BACKGROUND,
                ),
            )
        )
        .with_panel(
            _with_columns(
                _table(
                    "Oldest producer updates",
                    "Nodes whose producer wrote longest ago (the producer's own update time). The device "
                    "plugin rewrites at least every 5 minutes; NodeD and ClusterD only on change.",
                    8,
                    9,
                    rows(q.STALE_PRODUCERS),
                )
                .with_transformation(
                    _organize({"Value": "Age", "Value #A": "Age"}, ("cluster", "source", "node"))
                )
                .sort_by(_sort("Age", desc=True)),
                _column(
                    "Age",
                    _prop("unit", "dtdurations"),
                    _prop(
                        "thresholds",
                        style.thresholds("green", (900, "orange"), (3600, "red")).build().to_json(),
                    ),
                    _prop("color", {"mode": "thresholds"}),
                    COLOR_TEXT,
                ),
            )
        )
        .with_panel(
            _table(
                "Invalid ConfigMaps",
                "ConfigMap keys the exporter cannot use: reason json (not JSON), checkcode (CheckCode fails; "
                "ClusterD ignores such ConfigMaps too) or schema (unexpected shape).",
                8,
                9,
                rows(q.INVALID_CONFIGMAPS),
            ).with_transformation(
                _organize(
                    {}, ("cluster", "namespace", "configmap", "key", "reason"), hide=("Value", "Value #A")
                )
            )
        )
    )


# --- node detail -----------------------------------------------------------------------------------------


def node_detail() -> dash.Dashboard:
    chip_codes = _with_columns(
        _table(
            "Active chip fault codes",
            "Every fault code active on the node's chips: its level, when it was raised (earliest over the "
            "sources) and how long ago.",
            24,
            9,
            rows(q.NODE_CHIP_CODES_RAISED),
            rows(q.NODE_CHIP_CODES_AGE),
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                {"Value #A": "Raised", "Value #B": "Age"}, ("npu", "fault_type", "fault_code", "fault_level")
            )
        )
        .sort_by(_sort("Raised", desc=True)),
        _text_colors_column("fault_level", style.CODE_LEVEL_COLORS),
        *_age_columns("Raised", "Age"),
    )
    switch_codes = _with_columns(
        _table(
            "Switch faults",
            "Faults of the node's interconnect switch (A3): assembled fault code, switch chip and port, "
            "level, when raised.",
            12,
            8,
            rows(q.NODE_SWITCH_CODES_RAISED),
            rows(q.NODE_SWITCH_CODES_AGE),
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                {"Value #A": "Raised", "Value #B": "Age"},
                ("fault_code", "switch_chip_id", "switch_port_id", "fault_level"),
            )
        )
        .sort_by(_sort("Raised", desc=True)),
        _text_colors_column("fault_level", style.CODE_LEVEL_COLORS),
        *_age_columns("Raised", "Age"),
    )
    device_faults = _with_columns(
        _table(
            "Node device faults",
            "Faulty node devices NodeD reports (and ClusterD copies): device type and id, IPMI fault "
            "code, level.",
            12,
            8,
            rows(q.NODE_DEVICE_FAULTS),
        ).with_transformation(
            _organize(
                {},
                ("source", "device_type", "device_id", "fault_code", "fault_level"),
                hide=("Value", "Value #A"),
            )
        ),
        _text_colors_column("fault_level", style.CODE_LEVEL_COLORS),
    )
    return _node_clusterd_reports_and_dpus(  # ClusterD's reports and DPUs: a row at the end
        _dashboard(
            NODE_DETAIL_UID,
            "MindX DL / Node detail",
            "One node: its chips' fault levels and codes, node devices, switch, super-pod placement.",
        )
        .with_variable(datasource_variable())
        .with_variable(cluster_variable())
        .with_variable(node_variable())
        .with_variable(source_variable())
        .with_row(dash.Row("Node"))
        .with_panel(
            _stat(
                "Usable chips",
                "Chips a job can use on this node now (0 when its node or switch status is UnHealthy).",
                3,
                5,
                now(q.NODE_USABLE_CHIPS),
            ).thresholds(style.thresholds("red", (1, "green")))
        )
        .with_panel(
            _level_panel(
                _stat(
                    "Worst chip level",
                    "The most severe level of any chip on the node, as any selected source reports it.",
                    5,
                    5,
                    now(q.NODE_MAX_LEVEL),
                )
            ).no_value("no chip reported")
        )
        .with_panel(
            _with_status_colors(
                _stat(
                    "Node status",
                    "Node status from NodeD and ClusterD, and Volcano's node state. Nothing reported means "
                    "healthy: NodeD deletes its ConfigMap and ClusterD lists only faulty nodes.",
                    4,
                    5,
                    now(q.NODE_STATUS, "{{source}}: {{status}}"),
                    now(q.NODE_HEALTH_STATE, "{{source}}: {{state}}"),
                ).text_mode(common.BigValueTextMode.NAME),
                style.STATUS_COLORS,
            ).no_value("Healthy (not reported)")
        )
        .with_panel(
            _with_status_colors(
                _stat(
                    "Switch status",
                    "Interconnect switch status from the device plugin and ClusterD (A3 nodes).",
                    4,
                    5,
                    now(q.NODE_SWITCH_STATUS, "{{source}}: {{status}}"),
                ).text_mode(common.BigValueTextMode.NAME),
                style.STATUS_COLORS,
            ).no_value("no switch reported")
        )
        .with_panel(
            _table(
                "Super-pod placement",
                "Super pod, server index and rack of the node (A3/A5 super-pod nodes only).",
                8,
                5,
                rows(q.NODE_SUPERPOD),
            )
            .with_transformation(
                _organize(
                    {}, ("source", "super_pod_id", "server_index", "rack_id"), hide=("Value", "Value #A")
                )
            )
            .no_value("not in a super pod")
        )
        .with_panel(
            _with_status_colors(
                _bars(
                    "Chip lists",
                    "Chips in each of the producers' lists: available, unhealthy, network_unhealthy, "
                    "recovering, manually_separated (busy healthy chips are in none).",
                    8,
                    8,
                    now(q.NODE_CHIP_LISTS, "{{source}}: {{status}}"),
                ),
                style.LIST_COLORS,
            ).decimals(0)
        )
        .with_panel(
            _with_columns(
                _table(
                    "Last producer update",
                    "Time since each producer last wrote this node's data (its own update time).",
                    6,
                    8,
                    rows(q.NODE_FRESHNESS),
                ).with_transformation(_organize({"Value": "Age", "Value #A": "Age"}, ("source",))),
                _column("Age", _prop("unit", "dtdurations")),
            )
        )
        .with_panel(
            _timeseries(
                "Fault events on this node",
                "The node's device-plugin fault Events per hour by reason.",
                10,
                8,
                over_time(q.NODE_FAULT_EVENTS_PER_HOUR, "{{reason}}"),
            )
            .unit("suffix: /h")
            .min(0)
            .override_by_name("Occur", [style.override_color("red")])
            .override_by_name("Recovery", [style.override_color("green")])
            .override_by_name("Notice", [style.override_color("blue")])
        )
        .with_row(dash.Row("Chips"))
        .with_panel(
            _level_panel(
                panel(
                    statetimeline.Panel(),
                    "Chip levels over time",
                    "Every chip of the node a producer names (free, faulty or separated; busy healthy "
                    "chips are in no list) with its fault level over time, the most severe any selected "
                    "source reports, coloured by severity.",
                    24,
                    12,
                    over_time(q.NODE_CHIP_LEVELS, "{{npu}}"),
                )
                .show_value(common.VisibilityMode.NEVER)
                .merge_values(True)
                .row_height(0.8)
                .fill_opacity(80)
                .line_width(0)
            )
        )
        .with_panel(
            _level_panel(
                _stat(
                    "Chip levels now",
                    "The current level of every chip of the node a producer names, one tile per chip.",
                    24,
                    6,
                    now(q.NODE_CHIP_LEVELS, "{{npu}}"),
                )
                .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
                .orientation(common.VizOrientation.AUTO)
            )
        )
        .with_panel(chip_codes)
        .with_row(dash.Row("Node devices and switch"))
        .with_panel(device_faults)
        .with_panel(switch_codes)
    )


# --- cluster overview and node detail: ClusterD's reports and DPUs ---------------------------------------
# Public faults (statistic-fault-info), ClusterD's fault-frequency separations
# (clusterd-manual-info-cm) and the RDMA device plugin's DPUs/NICs (dpuinfo-<node>): a row of their
# own at the end of each dashboard.

PUBLIC_FAULTS_DESCRIPTION = (
    "faults other systems (CCAE, pingmesh, storage, network managers) sent to ClusterD's public-fault "
    "interface: chip id (empty when the fault names no chip), reporter, type, code, level, when raised"
)


def _fault_table(
    title: str,
    description: str,
    w: int,
    h: int,
    raised: str,
    age: str,
    order: Sequence[str],
    times: tuple[str, str] = ("Raised", "Age"),
    level_colors: dict[str, str] | None = style.CODE_LEVEL_COLORS,
) -> table.Panel:
    """A table of active codes: one row per code, when it was raised (ms) and how long ago; a
    `node` column links to the node detail dashboard."""
    columns = [*_age_columns(*times)]
    if level_colors:
        columns.append(_text_colors_column("fault_level", level_colors))
    if "node" in order:
        columns.append(_column("node", _prop("links", [{"title": "Node detail", "url": NODE_LINK}])))
    return _with_columns(
        _table(title, description, w, h, rows(raised), rows(age))
        .with_transformation(MERGE)
        .with_transformation(_organize({"Value #A": times[0], "Value #B": times[1]}, order))
        .sort_by(_sort(times[0], desc=True)),
        *columns,
    )


def _overview_clusterd_reports_and_dpus(board: dash.Dashboard) -> dash.Dashboard:
    by_level = (
        _stat(
            "Public faults by level",
            "Public faults active now per level (several senders of one code on a chip count once).",
            8,
            4,
            now(q.PUBLIC_FAULTS_BY_LEVEL, "{{fault_level}}"),
        )
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.VALUE)
        .decimals(0)
        .no_value("none")
    )
    for name, color in style.CODE_LEVEL_COLORS.items():
        by_level = by_level.override_by_name(name, [style.override_color(color)])
    detail_mappings: list[model.ValueMapping] = [
        model.ValueMap(
            options={
                "0": model.ValueMappingResult(text="complete", color="green", index=0),
                "1": model.ValueMappingResult(text="withheld: over 4,500 faults", color="red", index=1),
            }
        )
    ]
    return (
        board.with_row(dash.Row("Public faults, separations and DPUs"))
        .with_panel(
            _stat(
                "Public faults",
                "Public faults ClusterD holds now (its own count, publicFaultNum): it holds while the "
                "per-fault detail is withheld.",
                4,
                4,
                now(q.PUBLIC_FAULT_COUNT),
            )
            .thresholds(style.thresholds("green", (1, "orange")))
            .no_value("not reported")
        )
        .with_panel(by_level)
        .with_panel(
            _stat(
                "Public-fault detail",
                "Over 4,500 public faults ClusterD stops writing their detail; the exporter then withholds "
                "the per-fault series (a stale snapshot) and the tables below are empty.",
                4,
                4,
                now(q.PUBLIC_FAULTS_TRUNCATED),
            )
            .mappings(detail_mappings)
            .thresholds(style.thresholds("green", (1, "red")))
            .no_value("not reported")
        )
        .with_panel(
            _stat(
                "Chips separated by ClusterD",
                "Chips ClusterD isolated (ManuallySeparateNPU) because a fault code hit its "
                "fault-frequency threshold.",
                4,
                4,
                now(q.MANUALLY_SEPARATED_CHIPS),
            ).thresholds(style.thresholds("green", (1, "red")))
        )
        .with_panel(
            _stat(
                "Faulty DPUs",
                "DPUs/NICs the RDMA device plugin reports faulty, over all nodes.",
                4,
                4,
                now(q.FAULTY_DPUS),
            ).thresholds(style.thresholds("green", (1, "red")))
        )
        .with_panel(
            _fault_table(
                "Active public faults",
                f"Every active public fault: node, {PUBLIC_FAULTS_DESCRIPTION} and how long ago. The node "
                "name links to the node detail dashboard.",
                24,
                8,
                q.PUBLIC_FAULTS_RAISED,
                q.PUBLIC_FAULTS_AGE,
                ("cluster", "node", "id", "resource", "fault_type", "fault_code", "fault_level"),
            )
        )
        .with_panel(
            _fault_table(
                "Fault-frequency separations",
                "Chips ClusterD separated after repeated faults: node, chip, code, the last time the code "
                "hit its threshold and how long ago. The chip stays out until fault_free_hours after it "
                "or until an operator releases it.",
                12,
                8,
                q.MANUAL_SEPARATIONS_LAST_HIT,
                q.MANUAL_SEPARATIONS_AGE,
                ("cluster", "node", "npu", "id", "fault_code"),
                times=("Last threshold hit", "Since"),
                level_colors=None,
            )
        )
        .with_panel(
            _fault_table(
                "DPU faults",
                "Active DPU/NIC faults the RDMA device plugin reports: node, HCA (empty for a node-level "
                "fault such as a card drop), code, level, when raised.",
                12,
                8,
                q.DPU_FAULTS_RAISED,
                q.DPU_FAULTS_AGE,
                ("cluster", "node", "hca", "fault_code", "fault_level"),
                level_colors=style.DPU_LEVEL_COLORS,
            )
        )
    )


def _node_clusterd_reports_and_dpus(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Public faults, separations and DPUs"))
        .with_panel(
            _with_status_colors(
                _stat(
                    "DPUs",
                    "The node's DPUs/NICs per state (healthy, faulty), from the RDMA device plugin.",
                    6,
                    8,
                    now(q.NODE_DPUS, "{{source}}: {{status}}"),
                )
                .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
                .color_mode(common.BigValueColorMode.VALUE)
                .decimals(0),
                style.DPU_COLORS,
            ).no_value("no DPU reported")
        )
        .with_panel(
            _fault_table(
                "Public faults on this node",
                f"Public faults on this node: {PUBLIC_FAULTS_DESCRIPTION} and how long ago.",
                18,
                8,
                q.NODE_PUBLIC_FAULTS_RAISED,
                q.NODE_PUBLIC_FAULTS_AGE,
                ("id", "resource", "fault_type", "fault_code", "fault_level"),
            ).no_value("no public fault")
        )
        .with_panel(
            _fault_table(
                "Fault-frequency separations on this node",
                "Chips of this node ClusterD separated after repeated faults: chip, code, last threshold "
                "hit and how long ago.",
                12,
                8,
                q.NODE_MANUAL_SEPARATIONS_LAST_HIT,
                q.NODE_MANUAL_SEPARATIONS_AGE,
                ("npu", "id", "fault_code"),
                times=("Last threshold hit", "Since"),
                level_colors=None,
            ).no_value("no chip separated by ClusterD")
        )
        .with_panel(
            _fault_table(
                "DPU faults on this node",
                "Active faults of this node's DPUs/NICs: HCA (empty for a node-level fault), code, level, "
                "when raised.",
                12,
                8,
                q.NODE_DPU_FAULTS_RAISED,
                q.NODE_DPU_FAULTS_AGE,
                ("hca", "fault_code", "fault_level"),
                level_colors=style.DPU_LEVEL_COLORS,
            ).no_value("no DPU fault")
        )
    )


# --- jobs --------------------------------------------------------------------------------------------------


def namespace_variable() -> dash.QueryVariable:
    return query_variable("namespace", "Namespace", q.VAR_JOB_NAMESPACE, multi=True).description(
        "The jobs' namespaces."
    )


def jobs() -> dash.Dashboard:
    retries_column = _column(
        "Retries left",
        _prop("thresholds", style.thresholds("red", (1, "orange"), (2, "green")).build().to_json()),
        _prop("color", {"mode": "thresholds"}),
        COLOR_BACKGROUND,
    )
    last_hour_column = _column(
        "Last hour",
        _prop("thresholds", style.thresholds("green", (1, "yellow"), (3, "red")).build().to_json()),
        _prop("color", {"mode": "thresholds"}),
        COLOR_TEXT,
    )
    retry_budget = _with_columns(
        _table(
            "Retry budget and reschedules",
            "Per job (PodGroup): restarts left before Volcano fails it for good (0 also for a job "
            "without a fault-retry-times label), Volcano's count of reschedules, those of the last hour "
            "(3 or more: MindXJobRescheduledRepeatedly) and when the newest was.",
            14,
            9,
            rows(q.JOB_RETRIES_LEFT),
            rows(q.JOB_RESCHEDULES),
            rows(q.JOB_RESCHEDULES_LAST_HOUR),
            rows(q.JOB_LAST_RESCHEDULE_MS),
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                {
                    "Value #A": "Retries left",
                    "Value #B": "Reschedules",
                    "Value #C": "Last hour",
                    "Value #D": "Last reschedule",
                },
                ("cluster", "namespace", "podgroup", "Value #A", "Value #B", "Value #C", "Value #D"),
            )
        )
        .sort_by(_sort("Last reschedule", desc=True)),
        retries_column,
        last_hour_column,
        _column("Last reschedule", _prop("unit", "dateTimeAsIso")),
    )
    reasons = _with_columns(
        _table(
            "Last reschedule: reasons and nodes",
            "Why each job was last rescheduled and where: one row per reason and node of the faulty "
            "tasks of Volcano's newest record (a software fault has none). The node links to the node "
            "detail dashboard.",
            10,
            9,
            rows(q.LAST_RESCHEDULE_REASONS),
        )
        .with_transformation(
            _organize(
                {"Value": "When", "Value #A": "When"}, ("cluster", "namespace", "podgroup", "reason", "node")
            )
        )
        .sort_by(_sort("When", desc=True)),
        _column("When", _prop("unit", "dateTimeAsIso")),
        _column("node", _prop("links", [{"title": "Node detail", "url": NODE_LINK}])),
    )
    not_running = _with_columns(
        _table(
            "Jobs in a scheduling exception",
            "Jobs ClusterD reports in a scheduling exception: job type, PodGroup or job status, reason, "
            "and how much of the last hour it spent so (10 minutes: MindXJobSchedulingException). "
            "ClusterD's message is in cluster-system/scheduling-exception-report.",
            12,
            8,
            rows(q.SCHEDULING_EXCEPTIONS),
            rows(q.SCHEDULING_EXCEPTION_SECONDS),
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                {"Value #B": "Of the last hour"},
                ("cluster", "namespace", "job", "job_type", "status", "reason"),
                hide=("Value #A",),
            )
        )
        .sort_by(_sort("Of the last hour", desc=True)),
        _column(
            "Of the last hour",
            _prop("unit", "dtdurations"),
            _prop("thresholds", style.thresholds("yellow", (600, "red")).build().to_json()),
            _prop("color", {"mode": "thresholds"}),
            COLOR_TEXT,
        ),
    )
    recovery = _with_columns(
        _table(
            "Job recovery",
            "Per job with a reset-config-<job> file: ranks ClusterD is recovering now (status fault) and "
            "the file's RetryTime (Volcano's partial reschedules, or ClusterD's restart-all count).",
            12,
            8,
            rows(q.JOB_FAULT_RANKS),
            rows(q.JOB_RECOVERY_RETRIES),
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize({"Value #A": "Faulty ranks", "Value #B": "Retries"}, ("cluster", "namespace", "job"))
        )
        .sort_by(_sort("Faulty ranks", desc=True)),
        _column(
            "Faulty ranks",
            _prop("thresholds", style.thresholds("green", (1, "orange")).build().to_json()),
            _prop("color", {"mode": "thresholds"}),
            COLOR_TEXT,
        ),
    )
    return (
        _dashboard(
            JOBS_UID,
            "MindX DL / Jobs",
            "Training jobs: retry budgets, reschedules with their reasons and nodes, recovery in progress, "
            "jobs that do not get scheduled.",
        )
        .with_variable(datasource_variable())
        .with_variable(cluster_variable())
        .with_variable(namespace_variable())
        .with_row(dash.Row("Now"))
        .with_panel(
            _stat(
                "Jobs not running",
                "Jobs ClusterD reports in a scheduling exception now (pending, not enqueued, not "
                "initialised).",
                5,
                4,
                now(q.JOBS_NOT_SCHEDULED),
            ).thresholds(style.thresholds("green", (1, "orange")))
        )
        .with_panel(
            _stat(
                "Jobs rescheduled in the last hour",
                "Jobs whose newest reschedule record is less than an hour old.",
                5,
                4,
                now(q.JOBS_RESCHEDULED_LAST_HOUR),
            ).thresholds(style.thresholds("green", (1, "yellow")))
        )
        .with_panel(
            _stat(
                "Reschedules in the last hour",
                "Reschedules of all jobs within the last hour (Volcano's count now minus an hour ago).",
                5,
                4,
                now(q.RESCHEDULES_LAST_HOUR),
            ).thresholds(style.thresholds("green", (1, "yellow"), (3, "orange")))
        )
        .with_panel(
            _stat(
                "Jobs with one retry left",
                "Jobs that fail for good at their next fault (MindXJobRetriesLow).",
                4,
                4,
                now(q.JOBS_ONE_RETRY_LEFT),
            ).thresholds(style.thresholds("green", (1, "orange")))
        )
        .with_panel(
            _stat(
                "Jobs recovering",
                "Jobs whose recovery file lists faulty ranks now: a process-level recovery is running. "
                "No data without recovery files: the job-recovery source is off by default.",
                5,
                4,
                now(q.JOBS_RECOVERING),
            )
            .thresholds(style.thresholds("green", (1, "yellow")))
            .no_value("no recovery file")
        )
        .with_row(dash.Row("Scheduling exceptions"))
        .with_panel(not_running)
        .with_panel(
            _bars(
                "Not running, by reason",
                "Jobs in a scheduling exception now per reason (JobEnqueueFailed, PodPending, "
                "NotEnoughResources, JobNoInitialized, ...).",
                4,
                8,
                now(q.SCHEDULING_EXCEPTIONS_BY_REASON, "{{reason}}"),
            ).decimals(0)
        )
        .with_panel(
            _stacked(
                _timeseries(
                    "Jobs not running over time",
                    "Jobs in a scheduling exception, stacked by reason.",
                    8,
                    8,
                    over_time(q.SCHEDULING_EXCEPTIONS_BY_REASON, "{{reason}}"),
                )
            ).decimals(0)
        )
        .with_row(dash.Row("Retries and reschedules"))
        .with_panel(retry_budget)
        .with_panel(reasons)
        .with_panel(
            _bars(
                "Reschedule reasons",
                "Jobs whose newest reschedule names each reason (a job with several counts once per reason).",
                6,
                8,
                now(q.RESCHEDULE_REASONS, "{{reason}}"),
            ).decimals(0)
        )
        .with_panel(
            _bars(
                "Nodes in the latest reschedules",
                "The nodes named most often in the jobs' newest reschedule records: hardware that keeps "
                "taking jobs down.",
                6,
                8,
                now(q.RESCHEDULE_NODES, "{{node}}"),
            ).decimals(0)
        )
        .with_panel(
            _timeseries(
                "Reschedules in the last hour over time",
                "Reschedules of all jobs within the trailing hour, at each point in time.",
                12,
                8,
                over_time(q.RESCHEDULES_LAST_HOUR, "reschedules"),
            )
            .decimals(0)
            .min(0)
        )
        .with_row(dash.Row("Recovery"))
        .with_panel(recovery)
        .with_panel(
            _stacked(
                _timeseries(
                    "Ranks by recovery status",
                    "Ranks in the jobs' recovery files per status: fault (ClusterD recovering them), and "
                    "unrecovered, recovered, failed from device-plugin builds before 2026-05-28.",
                    12,
                    8,
                    over_time(q.RECOVERY_RANKS_BY_STATUS, "{{status}}"),
                )
            ).decimals(0)
        )
    )


# --- exporter health ---------------------------------------------------------------------------------------


def exporter_health() -> dash.Dashboard:
    instance = query_variable("instance", "Instance", q.VAR_INSTANCE, multi=True)
    watch_source = query_variable("source", "Watch", q.VAR_WATCH_SOURCE, multi=True).description(
        "The exporter's watches (device-plugin, device-plugin-events, noded, clusterd, volcano)."
    )
    up_mappings: list[model.ValueMapping] = [
        model.ValueMap(
            options={
                "0": model.ValueMappingResult(text="Down", color="red", index=0),
                "1": model.ValueMappingResult(text="Up", color="green", index=1),
            }
        )
    ]
    return (
        _dashboard(
            "mindx-exporter-health",
            "MindX DL / Exporter health",
            "Is mindx-fault-exporter watching every source, keeping up, and healthy?",
        )
        .with_variable(datasource_variable())
        .with_variable(cluster_variable())
        .with_variable(instance)
        .with_variable(watch_source)
        .with_row(dash.Row("Watches"))
        .with_panel(
            _table(
                "Exporters",
                "Running exporter instances with their version and Python version.",
                8,
                7,
                rows(q.EXPORTER_BUILD),
            ).with_transformation(
                _organize(
                    {}, ("cluster", "instance", "version", "python_version"), hide=("Value", "Value #A")
                )
            )
        )
        .with_panel(
            panel(
                statetimeline.Panel(),
                "Watches up",
                "Each watch: Up while synced and streaming, Down while listing or reconnecting.",
                16,
                7,
                over_time(q.WATCH_UP, "{{source}} {{namespace}} {{instance}}"),
            )
            .mappings(up_mappings)
            .thresholds(style.thresholds("red", (1, "green")))
            .color_scheme(style.thresholds_color())
            .show_value(common.VisibilityMode.NEVER)
            .merge_values(True)
            .fill_opacity(80)
            .line_width(0)
        )
        .with_panel(
            _timeseries(
                "Relists per hour",
                "Full re-lists by reason: start, expired (410 Gone), error, stalled. More than a few an "
                "hour means the watch keeps breaking.",
                12,
                8,
                over_time(q.RELISTS_PER_HOUR, "{{source}} {{reason}} {{instance}}"),
            )
            .unit("suffix: /h")
            .min(0)
        )
        .with_panel(
            _timeseries(
                "Parse errors per hour",
                "Values the exporter could not use (json, checkcode, schema), once per object version.",
                8,
                8,
                over_time(q.PARSE_ERRORS_PER_HOUR, "{{source}} {{reason}} {{instance}}"),
            )
            .unit("suffix: /h")
            .min(0)
        )
        .with_panel(
            _stat(
                "Parse errors in range",
                "Parse errors in the dashboard's time range, by source and reason.",
                4,
                8,
                now(q.PARSE_ERRORS_IN_RANGE, "{{source}} {{reason}}"),
            )
            .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
            .decimals(0)
            .thresholds(style.thresholds("green", (1, "orange")))
        )
        .with_panel(
            _timeseries(
                "Time since last full list",
                "Seconds since each watch last completed a LIST (it relists on start, on 410 Gone, after "
                "errors and stalls).",
                12,
                8,
                over_time(q.LAST_LIST_AGE, "{{source}} {{namespace}} {{instance}}"),
            ).unit("s")
        )
        .with_panel(
            _timeseries(
                "Objects cached",
                "ConfigMaps and Events held in each watch's cache.",
                12,
                8,
                over_time(q.OBJECTS_CACHED, "{{source}} {{namespace}} {{instance}}"),
            )
            .decimals(0)
            .min(0)
        )
        .with_row(dash.Row("Performance"))
        .with_panel(
            _timeseries(
                "Scrape render time",
                "Time to produce the data part of a /metrics body: median, 99th percentile and mean.",
                12,
                8,
                over_time(q.RENDER_P50, "p50 {{instance}}"),
                over_time(q.RENDER_P99, "p99 {{instance}}"),
                over_time(q.RENDER_MEAN, "mean {{instance}}"),
            )
            .unit("s")
            .min(0)
        )
        .with_panel(
            _timeseries(
                "Scrape duration",
                "How long Prometheus takes to scrape the exporter (scrape_duration_seconds); compare with "
                "the scrape timeout.",
                12,
                8,
                over_time(q.SCRAPE_DURATION, "{{instance}}"),
            )
            .unit("s")
            .min(0)
        )
        .with_panel(
            _timeseries(
                "Memory",
                "Resident memory of each exporter process (process_resident_memory_bytes).",
                12,
                8,
                over_time(q.MEMORY, "{{instance}}"),
            )
            .unit("bytes")
            .min(0)
        )
        .with_panel(
            _timeseries(
                "CPU",
                "CPU used by each exporter process, in cores.",
                12,
                8,
                over_time(q.CPU, "{{instance}}"),
            )
            .unit("short")
            .min(0)
        )
    )


# --- fault history ------------------------------------------------------------------------------------------


def fault_history() -> dash.Dashboard:
    """How often chips fault, how long faults last, which chips flap: the fault-history counter and
    histogram over the selected range, and the day-long recording rules over weeks."""
    top_chips = _with_columns(
        _table(
            "Chips with the most raises",
            "The 20 chips that raised fault codes most often in the selected range, cleared or not (each "
            "producer's raises summed, the most over producers): replacement candidates. Codes: distinct "
            "codes raised; Level now: the chip's current level. The node opens the node detail dashboard.",
            14,
            10,
            rows(q.TOP_RAISING_CHIPS),
            rows(q.TOP_RAISING_CHIPS_CODES),
            rows(q.TOP_RAISING_CHIPS_LEVEL),
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                {"Value #A": "Raises", "Value #B": "Codes", "Value #C": "Level now"},
                ("cluster", "node", "npu", "id", "Value #A", "Value #B", "Value #C"),
            )
        )
        .sort_by(_sort("Raises", desc=True)),
        _level_column("Level now"),
        _column("node", _prop("links", [{"title": "Node detail", "url": NODE_LINK}])),
    )

    per_code = _bars(
        "Raises per fault code",
        "The 15 fault codes raised most often in the selected range, with the level they were raised "
        "at (each producer's raises summed, the most over producers).",
        10,
        10,
        now(q.RAISES_PER_CODE, "{{fault_code}} ({{fault_level}})"),
    ).decimals(0)

    raises_by_level = (
        _stacked(
            _timeseries(
                "Raises over time by level",
                "Fault codes raised in each interval of the graph (one bar per step), by the level they were "
                "raised at, stacked.",
                24,
                8,
                over_time(q.RAISES_PER_INTERVAL_BY_LEVEL, "{{fault_level}}"),
            )
        )
        .draw_style(common.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .decimals(0)
    )
    chips_per_day = (
        _timeseries(
            "Chips faulted per day by level",
            "Chips that raised a fault code in the 24 hours before each point, by level (each chip once "
            "whichever producers saw it; recording rule fault_level:mindx_npu_chips_faulted:count24h).",
            12,
            8,
            over_time(q.CHIPS_FAULTED_PER_DAY, "{{fault_level}}"),
        )
        .decimals(0)
        .min(0)
    )
    for name, color in style.CODE_LEVEL_COLORS.items():
        raises_by_level = raises_by_level.override_by_name(name, [style.override_color(color)])
        chips_per_day = chips_per_day.override_by_name(name, [style.override_color(color)])

    duration = _prop("unit", "dtdurations")
    clear_times = _with_columns(
        _table(
            "Time to clear by level",
            "Fault codes that cleared in the selected range, per producer and level: how many, and how "
            "long they had lasted (median, 90th and 99th percentile from the histogram buckets, which "
            "run from 1 minute to 30 days; mean exact).",
            14,
            8,
            rows(q.CLEARED_BY_LEVEL),
            rows(q.CLEAR_TIME_P50),
            rows(q.CLEAR_TIME_P90),
            rows(q.CLEAR_TIME_P99),
            rows(q.CLEAR_TIME_MEAN),
        )
        .with_transformation(MERGE)
        .with_transformation(
            _organize(
                {
                    "Value #A": "Cleared",
                    "Value #B": "p50",
                    "Value #C": "p90",
                    "Value #D": "p99",
                    "Value #E": "Mean",
                },
                ("source", "fault_level", "Value #A", "Value #B", "Value #C", "Value #D", "Value #E"),
            )
        )
        .sort_by(_sort("p90", desc=True)),
        _text_colors_column("fault_level", style.CODE_LEVEL_COLORS),
        _column("Cleared", _prop("decimals", 0)),
        *(_column(name, duration) for name in ("p50", "p90", "p99", "Mean")),
    )

    return (
        _dashboard(
            "mindx-fault-history",
            "MindX DL / Fault history",
            "How often chips fault, how long faults take to clear, which chips flap, and how many chips "
            "the fleet had usable, from mindx-fault-exporter's fault counters.",
        )
        .time("now-7d", "now")
        .refresh("5m")
        .with_variable(datasource_variable())
        .with_variable(cluster_variable())
        .with_variable(source_variable())
        .with_row(dash.Row("Raises"))
        .with_panel(
            _stat(
                "Raises in range",
                "Fault codes raised on chips in the selected range, cleared or not (each producer's raises "
                "summed, the most over producers).",
                6,
                4,
                now(q.RAISES_IN_RANGE),
            )
            .color_scheme(style.fixed_color("orange"))
            .decimals(0)
        )
        .with_panel(
            _stat(
                "Chips that raised",
                "Chips that raised at least one fault code in the selected range.",
                6,
                4,
                now(q.CHIPS_RAISED_IN_RANGE),
            )
            .color_scheme(style.fixed_color("orange"))
            .decimals(0)
        )
        .with_panel(
            _stat(
                "Faults cleared in range",
                "Fault codes that cleared in the selected range (each producer's count, the most over "
                "producers).",
                6,
                4,
                now(q.CLEARED_IN_RANGE),
            )
            .color_scheme(style.fixed_color("green"))
            .decimals(0)
        )
        .with_panel(
            _stat(
                "Flapping chips",
                "Chips that raised fault codes 3 or more times in the last 24 hours, whatever the range "
                "(the MindXNPUChipFlapping alert's condition): candidates for replacement.",
                6,
                4,
                now(q.FLAPPING_CHIPS),
            )
            .thresholds(style.thresholds("green", (1, "orange")))
            .decimals(0)
        )
        .with_panel(top_chips)
        .with_panel(per_code)
        .with_panel(raises_by_level)
        .with_row(dash.Row("Time to clear"))
        .with_panel(clear_times)
        .with_panel(
            _timeseries(
                "Mean time to clear (24 h)",
                "Mean duration of the fault codes that cleared in the 24 hours before each point, per "
                "producer and level (recording rule fault_level:mindx_npu_fault_duration_seconds:mean24h).",
                10,
                8,
                over_time(q.CLEAR_TIME_MEAN_24H, "{{source}} {{fault_level}}"),
            )
            .unit("s")
            .min(0)
        )
        .with_row(dash.Row("Fleet"))
        .with_panel(chips_per_day)
        .with_panel(
            _timeseries(
                "Usable chip ratio",
                "Of the chips the producers list (busy chips are in no list), the share a job could use "
                "(recording rule cluster:mindx_npu_usable_chips:ratio).",
                12,
                8,
                over_time(q.USABLE_RATIO, "usable {{cluster}}"),
            )
            .unit("percentunit")
            .min(0)
            .max(1)
            .color_scheme(style.fixed_color("green"))
        )
    )


# --- output -------------------------------------------------------------------------------------------------

DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "mindx-cluster-overview.json": cluster_overview,
    "mindx-node-detail.json": node_detail,
    "mindx-exporter-health.json": exporter_health,
    "mindx-fault-history.json": fault_history,
    "mindx-jobs.json": jobs,
}


def _number_panels(panels: list[Any]) -> None:
    """Stable panel ids 1, 2, ... in layout order (rows and the panels inside collapsed rows too)."""
    next_id = 1
    for item in panels:
        item.id_val = next_id
        next_id += 1
        for inner in getattr(item, "panels", None) or ():
            inner.id_val = next_id
            next_id += 1


def render(builder: dash.Dashboard) -> str:
    board = builder.build()
    _number_panels(board.panels or [])
    return json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_all() -> dict[str, str]:
    return {name: render(factory()) for name, factory in DASHBOARDS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is out of date")
    parser.add_argument(
        "-o", "--output", type=Path, default=HERE, help="directory to write (default: dashboards/)"
    )
    args = parser.parse_args(argv)

    rendered = render_all()
    if args.check:
        stale = [name for name, text in rendered.items() if _read(args.output / name) != text]
        for name in stale:
            print(f"{args.output / name} is out of date: run python3 -m dashboards.generate", file=sys.stderr)
        return 1 if stale else 0
    args.output.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.output / name).write_text(text)
    return 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


if __name__ == "__main__":
    sys.exit(main())
