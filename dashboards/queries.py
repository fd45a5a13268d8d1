"""Every PromQL expression the dashboards run, written once.

Panels take their queries from here, so two panels that show the same thing (a bar gauge of "now"
and a time series of "over time", a stat on the overview and a column in a table) run the same
expression. Expressions use the dashboards' template variables:

- ``$cluster``: an external label that tells clusters apart (``cluster=~"$cluster"``; the
  variable's "All" value is ``.*``, which also matches series without the label, so the
  dashboards work unchanged on a Prometheus that has no such label);
- ``$source``: the producer (device-plugin, noded, clusterd, volcano) or, on the exporter
  health dashboard, the watch; multi-value, "All" = ``.*``;
- ``$node``: one Kubernetes node (node detail);
- ``$instance``: exporter instances (exporter health); multi-value, "All" = ``.*``;
- Grafana's ``$__rate_interval`` and ``$__range``.

The same fact reported by several producers gives several series (docs/metrics.md): chip levels
are taken as the maximum over sources per chip, as the alert rules do. Aggregations keep
``cluster`` so one dashboard can show several clusters without mixing their nodes.
"""

from __future__ import annotations

CLUSTER = 'cluster=~"$cluster"'
SOURCE = 'source=~"$source"'
NODE = 'node="$node"'
INSTANCE = 'instance=~"$instance"'

# Per-hour rates: fault and relist counters move a few times an hour, not per second.
PER_HOUR = 3600


def selector(metric: str, *matchers: str) -> str:
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


# --- chips ------------------------------------------------------------------------------------------


def chip_levels(*matchers: str) -> str:
    """Each chip's level: the most severe any selected source reports (the alerts' rule)."""
    series = selector("mindx_npu_chip_fault_level", CLUSTER, SOURCE, *matchers)
    return f"max by (cluster, node, npu) ({series})"


CHIP_LEVELS = chip_levels()


def chips_at_level(rank: int) -> str:
    """Chips whose level is ``rank`` now (0 when none, so every bar is drawn)."""
    return f"count(({CHIP_LEVELS}) == {rank}) or vector(0)"


FAULTY_CHIPS_BY_LEVEL = f'count_values("level", ({CHIP_LEVELS}) != 0)'
FAULTY_CHIPS = f"count(({CHIP_LEVELS}) != 0) or vector(0)"
SEPARATED_CHIPS = f"count(({CHIP_LEVELS}) >= 8) or vector(0)"
USABLE_CHIPS = f"sum({selector('mindx_node_npu_usable_chips', CLUSTER)})"

# Nodes with at least one faulty chip: the worst level and how many chips (table, joined on node).
_FAULTY = f"({CHIP_LEVELS}) != 0"
NODE_WORST_LEVEL = f"max by (cluster, node) ({_FAULTY})"
NODE_FAULTY_CHIPS = f"count by (cluster, node) ({_FAULTY})"

_CHIP_CODES = selector("mindx_npu_chip_fault_code", CLUSTER, SOURCE)
TOP_FAULT_CODES = (
    f"topk(15, count by (fault_code, fault_type) (count by (cluster, node, npu, fault_code, fault_type) "
    f"({_CHIP_CODES})))"
)

# --- nodes and switches --------------------------------------------------------------------------------

NODES_BY_STATUS = f"sum by (source, status) ({selector('mindx_node_status', CLUSTER, SOURCE)})"
SWITCHES_BY_STATUS = f"sum by (source, status) ({selector('mindx_switch_status', CLUSTER, SOURCE)})"


def _unhealthy(metric: str) -> str:
    series = selector(metric, CLUSTER, SOURCE, 'status="UnHealthy"')
    return f"count(max by (cluster, node) ({series}) == 1) or vector(0)"


UNHEALTHY_NODES = _unhealthy("mindx_node_status")
UNHEALTHY_SWITCHES = _unhealthy("mindx_switch_status")

# --- events, jobs, freshness, integrity ---------------------------------------------------------------


def fault_events_per_hour(*matchers: str) -> str:
    series = selector("mindx_npu_fault_events_total", CLUSTER, *matchers)
    return f"sum by (reason) (rate({series}[$__rate_interval])) * {PER_HOUR}"


def fault_events_in_range(*matchers: str) -> str:
    series = selector("mindx_npu_fault_events_total", CLUSTER, *matchers)
    return f"sum by (reason) (increase({series}[$__range]))"


FAULT_EVENTS_PER_HOUR = fault_events_per_hour()
FAULT_EVENTS_IN_RANGE = fault_events_in_range()

_RETRIES = selector("mindx_job_remaining_retries", CLUSTER)
JOB_RETRIES = f"sort(max by (cluster, namespace, podgroup, job_uid) ({_RETRIES}))"

_UPDATES = selector("mindx_source_update_timestamp_seconds", CLUSTER, SOURCE)
STALE_PRODUCERS = f"topk(20, time() - max by (cluster, source, node) ({_UPDATES}))"

_INVALID = selector("mindx_configmap_invalid", CLUSTER)
INVALID_CONFIGMAPS = f"max by (cluster, namespace, configmap, key, reason) ({_INVALID})"
INVALID_CONFIGMAP_COUNT = f"count({_INVALID}) or vector(0)"

# --- one node (node detail) -----------------------------------------------------------------------------

NODE_CHIP_LEVELS = f"max by (npu) ({selector('mindx_npu_chip_fault_level', CLUSTER, SOURCE, NODE)})"
NODE_MAX_LEVEL = f"max({selector('mindx_npu_chip_fault_level', CLUSTER, SOURCE, NODE)})"
NODE_USABLE_CHIPS = f"sum({selector('mindx_node_npu_usable_chips', CLUSTER, NODE)})"
NODE_CHIP_LISTS = f"max by (source, status) ({selector('mindx_node_npu_chips', CLUSTER, SOURCE, NODE)})"
NODE_STATUS = f"max by (source, status) ({selector('mindx_node_status', CLUSTER, SOURCE, NODE)}) == 1"
NODE_SWITCH_STATUS = (
    f"max by (source, status) ({selector('mindx_switch_status', CLUSTER, SOURCE, NODE)}) == 1"
)
NODE_HEALTH_STATE = f"max by (source, state) ({selector('mindx_node_health_state', CLUSTER, SOURCE, NODE)})"
NODE_SUPERPOD = (
    "max by (source, super_pod_id, server_index, rack_id) "
    f"({selector('mindx_node_superpod_info', CLUSTER, SOURCE, NODE)})"
)
NODE_FRESHNESS = (
    f"time() - max by (source) ({selector('mindx_source_update_timestamp_seconds', CLUSTER, SOURCE, NODE)})"
)


def _raised_ms(series: str, by: str) -> str:
    """When each code was raised (earliest over sources), in milliseconds for Grafana's time
    units; 0 where the producer gave no time."""
    return f"min by ({by}) ({series}) * 1000"


def _age(series: str, by: str) -> str:
    """Seconds since each code was raised (codes without a time left out)."""
    return f"time() - min by ({by}) ({series} > 0)"


_NODE_CHIP_CODES = selector("mindx_npu_chip_fault_code", CLUSTER, SOURCE, NODE)
_CHIP_CODE_BY = "npu, fault_type, fault_code, fault_level"
NODE_CHIP_CODES_RAISED = _raised_ms(_NODE_CHIP_CODES, _CHIP_CODE_BY)
NODE_CHIP_CODES_AGE = _age(_NODE_CHIP_CODES, _CHIP_CODE_BY)

_NODE_SWITCH_CODES = selector("mindx_switch_fault_code", CLUSTER, SOURCE, NODE)
_SWITCH_CODE_BY = "fault_code, switch_chip_id, switch_port_id, fault_level"
NODE_SWITCH_CODES_RAISED = _raised_ms(_NODE_SWITCH_CODES, _SWITCH_CODE_BY)
NODE_SWITCH_CODES_AGE = _age(_NODE_SWITCH_CODES, _SWITCH_CODE_BY)

NODE_DEVICE_FAULTS = (
    "max by (source, device_type, device_id, fault_code, fault_level) "
    f"({selector('mindx_node_fault_code', CLUSTER, SOURCE, NODE)})"
)
NODE_FAULT_EVENTS_PER_HOUR = fault_events_per_hour(NODE)

# --- the exporter itself ---------------------------------------------------------------------------------


def _exporter(metric: str, *matchers: str) -> str:
    return selector(metric, CLUSTER, INSTANCE, *matchers)


def _only_exporters(series: str) -> str:
    """Process and scrape series of the exporters only (they carry no mindx_ name)."""
    return f"{series} and on (cluster, job, instance) {_exporter('mindx_exporter_build_info')}"


EXPORTER_BUILD = (
    f"max by (cluster, instance, version, python_version) ({_exporter('mindx_exporter_build_info')})"
)
WATCH_UP = f"max by (cluster, instance, source, namespace) ({_exporter('mindx_exporter_watch_up', SOURCE)})"
LAST_LIST_AGE = (
    "time() - max by (cluster, instance, source, namespace) "
    f"({_exporter('mindx_exporter_last_sync_timestamp_seconds', SOURCE)})"
)
RELISTS_PER_HOUR = (
    "sum by (cluster, instance, source, reason) "
    f"(rate({_exporter('mindx_exporter_relists_total', SOURCE)}[$__rate_interval])) * {PER_HOUR}"
)
PARSE_ERRORS_PER_HOUR = (
    "sum by (cluster, instance, source, reason) "
    f"(rate({_exporter('mindx_exporter_parse_errors_total', SOURCE)}[$__rate_interval])) * {PER_HOUR}"
)
PARSE_ERRORS_IN_RANGE = (
    f"sum by (source, reason) (increase({_exporter('mindx_exporter_parse_errors_total', SOURCE)}[$__range]))"
)
OBJECTS_CACHED = (
    f"max by (cluster, instance, source, namespace) ({_exporter('mindx_exporter_objects', SOURCE)})"
)

_RENDER = "mindx_exporter_scrape_render_seconds"


def render_quantile(quantile: float) -> str:
    buckets = _exporter(f"{_RENDER}_bucket")
    return (
        f"histogram_quantile({quantile}, sum by (cluster, instance, le) (rate({buckets}[$__rate_interval])))"
    )


RENDER_P50 = render_quantile(0.5)
RENDER_P99 = render_quantile(0.99)
RENDER_MEAN = (
    f"sum by (cluster, instance) (rate({_exporter(f'{_RENDER}_sum')}[$__rate_interval])) / "
    f"sum by (cluster, instance) (rate({_exporter(f'{_RENDER}_count')}[$__rate_interval]))"
)
SCRAPE_DURATION = _only_exporters(_exporter("scrape_duration_seconds"))
MEMORY = _only_exporters(_exporter("process_resident_memory_bytes"))
CPU = _only_exporters(f"rate({_exporter('process_cpu_seconds_total')}[$__rate_interval])")

# --- template variables -----------------------------------------------------------------------------------

VAR_CLUSTER = "label_values(mindx_exporter_build_info, cluster)"
VAR_NODE = f"label_values({selector('mindx_source_update_timestamp_seconds', CLUSTER)}, node)"
VAR_SOURCE = f"label_values({selector('mindx_source_update_timestamp_seconds', CLUSTER)}, source)"
VAR_WATCH_SOURCE = f"label_values({_exporter('mindx_exporter_watch_up')}, source)"
VAR_INSTANCE = f"label_values({selector('mindx_exporter_build_info', CLUSTER)}, instance)"
