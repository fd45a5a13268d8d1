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

# --- ClusterD's reports and DPUs (overview and node detail) ---------------------------------------------
# Public faults (statistic-fault-info), fault-frequency separations (clusterd-manual-info-cm) and
# the RDMA device plugin's DPUs/NICs (dpuinfo-<node>). Several senders of one code on a chip are one
# row (max over `source`, as the alerts do).

_PUBLIC = selector("mindx_public_fault", CLUSTER, SOURCE)
_PUBLIC_BY = "cluster, node, id, resource, fault_type, fault_code, fault_level"
PUBLIC_FAULTS_RAISED = _raised_ms(_PUBLIC, _PUBLIC_BY)
PUBLIC_FAULTS_AGE = _age(_PUBLIC, _PUBLIC_BY)
PUBLIC_FAULTS_BY_LEVEL = f"count by (fault_level) (max by ({_PUBLIC_BY}) ({_PUBLIC}))"
# ClusterD's own count: it holds while the per-fault detail is withheld (over 4,500 faults).
PUBLIC_FAULT_COUNT = f"sum(max by (cluster) ({selector('mindx_public_faults', CLUSTER, SOURCE)}))"
PUBLIC_FAULTS_TRUNCATED = f"max({selector('mindx_public_faults_truncated', CLUSTER, SOURCE)})"

_MANUAL = selector("mindx_npu_chip_manual_separation", CLUSTER, SOURCE)
_MANUAL_BY = "cluster, node, npu, id, fault_code"
MANUAL_SEPARATIONS_LAST_HIT = _raised_ms(_MANUAL, _MANUAL_BY)
MANUAL_SEPARATIONS_AGE = _age(_MANUAL, _MANUAL_BY)
MANUALLY_SEPARATED_CHIPS = f"count(count by (cluster, node, npu) ({_MANUAL})) or vector(0)"

_DPU_CODES = selector("mindx_dpu_fault_code", CLUSTER, SOURCE)
_DPU_CODE_BY = "cluster, node, hca, fault_code, fault_level"
DPU_FAULTS_RAISED = _raised_ms(_DPU_CODES, _DPU_CODE_BY)
DPU_FAULTS_AGE = _age(_DPU_CODES, _DPU_CODE_BY)
_FAULTY_DPUS = selector("mindx_node_dpus", CLUSTER, SOURCE, 'status="faulty"')
FAULTY_DPUS = f"sum({_FAULTY_DPUS}) or vector(0)"

# One node.
_NODE_PUBLIC = selector("mindx_public_fault", CLUSTER, SOURCE, NODE)
_NODE_PUBLIC_BY = "id, resource, fault_type, fault_code, fault_level"
NODE_PUBLIC_FAULTS_RAISED = _raised_ms(_NODE_PUBLIC, _NODE_PUBLIC_BY)
NODE_PUBLIC_FAULTS_AGE = _age(_NODE_PUBLIC, _NODE_PUBLIC_BY)
_NODE_MANUAL = selector("mindx_npu_chip_manual_separation", CLUSTER, SOURCE, NODE)
_NODE_MANUAL_BY = "npu, id, fault_code"
NODE_MANUAL_SEPARATIONS_LAST_HIT = _raised_ms(_NODE_MANUAL, _NODE_MANUAL_BY)
NODE_MANUAL_SEPARATIONS_AGE = _age(_NODE_MANUAL, _NODE_MANUAL_BY)
NODE_DPUS = f"max by (source, status) ({selector('mindx_node_dpus', CLUSTER, SOURCE, NODE)})"
_NODE_DPU_CODES = selector("mindx_dpu_fault_code", CLUSTER, SOURCE, NODE)
_NODE_DPU_CODE_BY = "hca, fault_code, fault_level"
NODE_DPU_FAULTS_RAISED = _raised_ms(_NODE_DPU_CODES, _NODE_DPU_CODE_BY)
NODE_DPU_FAULTS_AGE = _age(_NODE_DPU_CODES, _NODE_DPU_CODE_BY)

# --- jobs (the Jobs dashboard) ---------------------------------------------------------------------------
# Volcano names a job by its PodGroup (`podgroup`: retries, reschedules), ClusterD and the recovery
# file by its name (`job`, kept by honor_labels in place of the scrape job). `$namespace` selects
# the jobs' namespaces.

NAMESPACE = 'namespace=~"$namespace"'
_JOB_BY = "cluster, namespace, podgroup"

_EXCEPTIONS = selector("mindx_job_scheduling_exception", CLUSTER, NAMESPACE)
_EXCEPTION_BY = "cluster, namespace, job, job_type, status, reason"
JOBS_NOT_SCHEDULED = f"count(max by (cluster, namespace, job) ({_EXCEPTIONS})) or vector(0)"
SCHEDULING_EXCEPTIONS = f"max by ({_EXCEPTION_BY}) ({_EXCEPTIONS})"
# Seconds of the last hour each job spent in its current exception (jobs that still have it), in
# 5 s steps: the series carries no start time, and Prometheus ends it with a staleness marker.
EXCEPTION_STEP = 5
SCHEDULING_EXCEPTION_SECONDS = (
    f"count_over_time(({SCHEDULING_EXCEPTIONS})[1h:{EXCEPTION_STEP}s]) * {EXCEPTION_STEP} "
    f"and on ({_EXCEPTION_BY}) {SCHEDULING_EXCEPTIONS}"
)
SCHEDULING_EXCEPTIONS_BY_REASON = f"count by (reason) ({SCHEDULING_EXCEPTIONS})"

_RETRIES_NS = selector("mindx_job_remaining_retries", CLUSTER, NAMESPACE)
JOB_RETRIES_LEFT = f"max by ({_JOB_BY}) ({_RETRIES_NS})"
JOBS_ONE_RETRY_LEFT = f"count(({JOB_RETRIES_LEFT}) == 1) or vector(0)"

_RESCHEDULES = f"max by ({_JOB_BY}) ({selector('mindx_job_reschedules_total', CLUSTER, NAMESPACE)})"
_RESCHEDULES_HOUR_AGO = (
    f"max by ({_JOB_BY}) ({selector('mindx_job_reschedules_total', CLUSTER, NAMESPACE)} offset 1h)"
)
JOB_RESCHEDULES = _RESCHEDULES
# Volcano's count now minus an hour ago, or all of it for a job first seen within the hour
# (increase() would miss its first reschedules): the MindXJobRescheduledRepeatedly rule's count.
JOB_RESCHEDULES_LAST_HOUR = f"{_RESCHEDULES} - ({_RESCHEDULES_HOUR_AGO} or {_RESCHEDULES} * 0)"
RESCHEDULES_LAST_HOUR = f"sum({JOB_RESCHEDULES_LAST_HOUR}) or vector(0)"
_LAST_RESCHEDULE = (
    f"max by ({_JOB_BY}) ({selector('mindx_job_last_reschedule_timestamp_seconds', CLUSTER, NAMESPACE)})"
)
JOB_LAST_RESCHEDULE_MS = f"{_LAST_RESCHEDULE} * 1000"
JOBS_RESCHEDULED_LAST_HOUR = f"count({_LAST_RESCHEDULE} > time() - 3600) or vector(0)"

_REASONS = selector("mindx_job_last_reschedule_reason", CLUSTER, NAMESPACE)
# Each (reason, node) of a job's newest reschedule, with that reschedule's time (ms).
LAST_RESCHEDULE_REASONS = (
    f"max by ({_JOB_BY}, reason, node) ({_REASONS}) * on ({_JOB_BY}) group_left {JOB_LAST_RESCHEDULE_MS}"
)
RESCHEDULE_REASONS = f"count by (reason) (max by ({_JOB_BY}, reason) ({_REASONS}))"
RESCHEDULE_NODES = f"topk(10, count by (cluster, node) (max by ({_JOB_BY}, node) ({_REASONS})))"

_RANKS = selector("mindx_job_recovery_ranks", CLUSTER, NAMESPACE)
_RECOVERY_BY = "cluster, namespace, job"
# `fault`: ranks ClusterD is recovering now (always emitted, 0 when none).
_FAULT_RANKS = selector("mindx_job_recovery_ranks", CLUSTER, NAMESPACE, 'status="fault"')
JOB_FAULT_RANKS = f"sum by ({_RECOVERY_BY}) ({_FAULT_RANKS})"
JOB_RECOVERY_RETRIES = (
    f"max by ({_RECOVERY_BY}) ({selector('mindx_job_recovery_retries', CLUSTER, NAMESPACE)})"
)
# No data (rather than 0) when there is no recovery file: the source is off by default.
JOBS_RECOVERING = f"count(({JOB_FAULT_RANKS}) > 0) or count({JOB_FAULT_RANKS}) * 0"
RECOVERY_RANKS_BY_STATUS = f"sum by (status) ({_RANKS})"

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
VAR_JOB_NAMESPACE = f'label_values({{__name__=~"mindx_job_.+", {CLUSTER}}}, namespace)'
VAR_INSTANCE = f"label_values({selector('mindx_exporter_build_info', CLUSTER)}, instance)"
