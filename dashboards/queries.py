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
- Grafana's ``$__rate_interval``, ``$__interval`` (the graph's step) and ``$__range``.

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

# --- fault history ----------------------------------------------------------------------------------------
# `mindx_npu_chip_faults_total` series appear with value 1 at a chip's first raise of a code, a step
# increase() cannot see; so raises in a window are the growth of the series that existed at its start
# plus the whole value of those that did not (docs/alerts.md, as the recording rules count them). The
# same raise seen by several producers counts once: per chip and per code the maximum over sources of
# each source's sum, as MindXNPUChipFlapping takes it.


def in_window(series: str, window: str = "$__range") -> str:
    """What a counter (or a histogram's _bucket/_count/_sum) gained in the `window` before the
    evaluation time, series born inside it counted whole. An exporter restart inside the window
    counts 0 for the series it had before (clamped, never negative)."""
    return (
        f"(clamp_min({series} - {series} offset {window}, 0) or ({series} unless {series} offset {window}))"
    )


_RAISED = in_window(selector("mindx_npu_chip_faults_total", CLUSTER, SOURCE))
_CHIP = "cluster, node, npu, id"
CHIP_RAISES = f"max by ({_CHIP}) (sum by (source, {_CHIP}) ({_RAISED}))"
TOP_RAISING_CHIPS = f"topk(20, {CHIP_RAISES} > 0)"
TOP_RAISING_CHIPS_CODES = (
    f"count by ({_CHIP}) (max by ({_CHIP}, fault_code) ({_RAISED}) > 0) and on ({_CHIP}) {TOP_RAISING_CHIPS}"
)
TOP_RAISING_CHIPS_LEVEL = (
    f"max by ({_CHIP}) ({selector('mindx_npu_chip_fault_level', CLUSTER, SOURCE)}) "
    f"and on ({_CHIP}) {TOP_RAISING_CHIPS}"
)
RAISES_IN_RANGE = f"sum(max by (cluster) (sum by (cluster, source) ({_RAISED}))) or vector(0)"
CHIPS_RAISED_IN_RANGE = f"count({CHIP_RAISES} > 0) or vector(0)"
RAISES_PER_CODE = (
    "sort_desc(topk(15, sum by (fault_code, fault_level) (max by (cluster, fault_code, fault_level) "
    f"(sum by (cluster, source, fault_code, fault_level) ({_RAISED}))) > 0))"
)
# Raises in each step of the graph ($__interval is Grafana's step, so the windows tile the range).
RAISES_PER_INTERVAL_BY_LEVEL = (
    "sum by (fault_level) (max by (cluster, fault_level) (sum by (cluster, source, fault_level) "
    f"({in_window(selector('mindx_npu_chip_faults_total', CLUSTER, SOURCE), '$__interval')})))"
)
# Chips raising 3 or more times in 24 hours: MindXNPUChipFlapping's expression.
_RAISED_24H = selector("chip_code:mindx_npu_chip_faults:raised24h", CLUSTER)
FLAPPING_CHIPS = f"count(max by ({_CHIP}) (sum by (source, {_CHIP}) ({_RAISED_24H})) >= 3) or vector(0)"

# Cleared faults' durations in the range, per source and level (each producer times its own view).
_DURATION = "mindx_npu_fault_duration_seconds"
_CLEARED = in_window(selector(f"{_DURATION}_count", CLUSTER, SOURCE))
CLEARED_IN_RANGE = f"sum(max by (cluster) (sum by (cluster, source) ({_CLEARED}))) or vector(0)"
CLEARED_BY_LEVEL = f"sum by (source, fault_level) ({_CLEARED}) > 0"


def clear_time_quantile(quantile: float) -> str:
    buckets = in_window(selector(f"{_DURATION}_bucket", CLUSTER, SOURCE))
    # NaN (no clear of that level in the range) is dropped by the comparison.
    return f"histogram_quantile({quantile}, sum by (source, fault_level, le) ({buckets})) >= 0"


CLEAR_TIME_P50 = clear_time_quantile(0.5)
CLEAR_TIME_P90 = clear_time_quantile(0.9)
CLEAR_TIME_P99 = clear_time_quantile(0.99)
CLEAR_TIME_MEAN = (
    f"sum by (source, fault_level) ({in_window(selector(f'{_DURATION}_sum', CLUSTER, SOURCE))}) "
    f"/ sum by (source, fault_level) ({_CLEARED}) >= 0"
)

# Recording rules (deploy/prometheus/alerts.yaml, group mindx-fault-history): day-long windows over
# weeks of history. They aggregate within one Prometheus; `cluster` comes from its external label.
CLEAR_TIME_MEAN_24H = selector("fault_level:mindx_npu_fault_duration_seconds:mean24h", CLUSTER, SOURCE)
CHIPS_FAULTED_PER_DAY = (
    f"sum by (fault_level) ({selector('fault_level:mindx_npu_chips_faulted:count24h', CLUSTER)})"
)
USABLE_RATIO = selector("cluster:mindx_npu_usable_chips:ratio", CLUSTER)

# --- template variables -----------------------------------------------------------------------------------

VAR_CLUSTER = "label_values(mindx_exporter_build_info, cluster)"
VAR_NODE = f"label_values({selector('mindx_source_update_timestamp_seconds', CLUSTER)}, node)"
VAR_SOURCE = f"label_values({selector('mindx_source_update_timestamp_seconds', CLUSTER)}, source)"
VAR_WATCH_SOURCE = f"label_values({_exporter('mindx_exporter_watch_up')}, source)"
VAR_INSTANCE = f"label_values({selector('mindx_exporter_build_info', CLUSTER)}, instance)"
