"""A simulated MindX DL cluster for the demo, the tests and the benchmarks.

``ClusterModel`` (model.py) holds a seeded, pure cluster state that faults live and change in;
``producers`` turns it into the exact objects of every MindX DL producer (docs/mindx-sources.md);
``ClusterSimulator`` (runner.py) writes them into an ``exporter.apiserver.Store``::

    store = Store()
    async with ClusterSimulator(store, nodes=200, seed=1, time_scale=10) as sim:
        ...  # serve `store` with KubeApiTestServer and point the exporter at it

``scenario`` holds scripted scenarios (``script=AlertsScenario()``: every alert of
deploy/prometheus/alerts.yaml fires once).
"""

from exporter.simulator.model import (
    DEFAULT_MIX,
    DEFAULT_START_TIME,
    KINDS,
    ChipKind,
    ClusterModel,
    FaultRates,
    FaultTransition,
    Job,
    Node,
    Outage,
    StepResult,
)
from exporter.simulator.producers import (
    SHARD_LIMIT,
    ClusterDProducer,
    VolcanoProducer,
    deviceplugin_configmap,
    fault_event,
    go_dumps,
    noded_configmap,
    split_by_size,
)
from exporter.simulator.runner import ClusterSimulator, SimulatorStats
from exporter.simulator.scenario import ALERTS_MIN_NODES, SCENARIOS, AlertsScenario

__all__ = [
    "ALERTS_MIN_NODES",
    "DEFAULT_MIX",
    "DEFAULT_START_TIME",
    "KINDS",
    "SCENARIOS",
    "SHARD_LIMIT",
    "AlertsScenario",
    "ChipKind",
    "ClusterDProducer",
    "ClusterModel",
    "ClusterSimulator",
    "FaultRates",
    "FaultTransition",
    "Job",
    "Node",
    "Outage",
    "SimulatorStats",
    "StepResult",
    "VolcanoProducer",
    "deviceplugin_configmap",
    "fault_event",
    "go_dumps",
    "noded_configmap",
    "split_by_size",
]
