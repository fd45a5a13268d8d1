"""The metric contract: every data family the exporter serves, in exposition order.

`docs/metrics.md` is checked against this table (tests/test_docs_metrics.py), so adding a family
here without documenting it fails the suite.
"""

from __future__ import annotations

from exporter.metrics.exposition import Family

CHIP = ("source", "node", "npu", "id")

NPU_CHIP_FAULT_LEVEL = Family(
    "mindx_npu_chip_fault_level",
    "gauge",
    "Rank of the chip's most severe current fault_handling: 0 NormalNPU .. 9 ManuallySeparateNPU; "
    "-1 when only levels unknown to the exporter are present.",
    CHIP,
)
NPU_CHIP_FAULT = Family(
    "mindx_npu_chip_fault",
    "gauge",
    "1 for each current fault entry of a chip (active only).",
    (*CHIP, "fault_type", "fault_handling"),
)
NPU_CHIP_FAULT_CODE = Family(
    "mindx_npu_chip_fault_code",
    "gauge",
    "Unix seconds when the fault code was raised (0 if the producer gave no time), active only.",
    (*CHIP, "fault_type", "fault_code", "fault_level"),
)
NPU_CHIP_STATUS = Family(
    "mindx_npu_chip_status",
    "gauge",
    "1 for each non-available chip list the chip is in (active only).",
    (*CHIP, "status"),
)
NODE_NPU_CHIPS = Family(
    "mindx_node_npu_chips",
    "gauge",
    "Number of chips in each of the producer's lists per node and resource name.",
    ("source", "node", "resource", "status"),
)
NODE_NPU_USABLE_CHIPS = Family(
    "mindx_node_npu_usable_chips",
    "gauge",
    "Chips a job can use now by the vendor's procedure: the available chips, or 0 when the node's "
    "status or its switch status is UnHealthy.",
    ("source", "node", "resource"),
)
NODE_SUPERPOD_INFO = Family(
    "mindx_node_superpod_info",
    "gauge",
    "Super-pod placement of a node (1); rack_id is empty where the producer gives none.",
    ("source", "node", "super_pod_id", "server_index", "rack_id"),
)
NODE_STATUS = Family(
    "mindx_node_status",
    "gauge",
    "Node status as a 0/1 set over Healthy, PreSeparate, UnHealthy (raw value added if unknown).",
    ("source", "node", "status"),
)
NODE_FAULT_CODE = Family(
    "mindx_node_fault_code",
    "gauge",
    "1 per faulty node device and fault code (active only).",
    ("source", "node", "device_type", "device_id", "fault_code", "fault_level"),
)
NODE_HEALTH_STATE = Family(
    "mindx_node_health_state",
    "gauge",
    "Volcano's NodeHealthState for nodes in fault-node (1, active only).",
    ("source", "node", "state"),
)
SWITCH_STATUS = Family(
    "mindx_switch_status",
    "gauge",
    "Interconnect switch status of a node as a 0/1 set over Healthy, SubHealthy, PreSeparate, UnHealthy.",
    ("source", "node", "status"),
)
SWITCH_FAULT_LEVEL = Family(
    "mindx_switch_fault_level",
    "gauge",
    "1 while the node's switch reports a non-empty FaultLevel (active only).",
    ("source", "node", "fault_level"),
)
SWITCH_FAULT_CODE = Family(
    "mindx_switch_fault_code",
    "gauge",
    "Unix seconds when the switch fault was raised, active only.",
    ("source", "node", "fault_code", "switch_chip_id", "switch_port_id", "fault_level"),
)
JOB_REMAINING_RETRIES = Family(
    "mindx_job_remaining_retries",
    "gauge",
    "Remaining fault-retry budget of a job (Times from Volcano's remain-retry-times).",
    ("namespace", "podgroup", "job_uid"),
)
NPU_FAULT_EVENTS = Family(
    "mindx_npu_fault_events_total",
    "counter",
    "Device-plugin fault Events seen since the exporter started (an Event's count increments it too).",
    ("node", "reason", "fault_level"),
)
SOURCE_UPDATE_TIMESTAMP = Family(
    "mindx_source_update_timestamp_seconds",
    "gauge",
    "The producer's own update time for the node, in unix seconds.",
    ("source", "node"),
)
CONFIGMAP_INVALID = Family(
    "mindx_configmap_invalid",
    "gauge",
    "1 while the current version of a ConfigMap data key fails (reason json, checkcode or schema).",
    ("namespace", "configmap", "key", "reason"),
)

ALL_FAMILIES: tuple[Family, ...] = (
    NPU_CHIP_FAULT_LEVEL,
    NPU_CHIP_FAULT,
    NPU_CHIP_FAULT_CODE,
    NPU_CHIP_STATUS,
    NODE_NPU_CHIPS,
    NODE_NPU_USABLE_CHIPS,
    NODE_STATUS,
    NODE_FAULT_CODE,
    NODE_HEALTH_STATE,
    NODE_SUPERPOD_INFO,
    SWITCH_STATUS,
    SWITCH_FAULT_LEVEL,
    SWITCH_FAULT_CODE,
    JOB_REMAINING_RETRIES,
    NPU_FAULT_EVENTS,
    SOURCE_UPDATE_TIMESTAMP,
    CONFIGMAP_INVALID,
)
