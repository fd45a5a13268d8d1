"""A simulated MindX DL cluster for the demo, the tests and the benchmarks.

``ClusterModel`` (model.py) holds a seeded, pure cluster state that faults live and change in;
``producers`` turns it into the exact objects of every MindX DL producer (docs/mindx-sources.md);
``ClusterSimulator`` (runner.py) writes them into an ``exporter.apiserver.Store``::

    store = Store()
    async with ClusterSimulator(store, nodes=200, seed=1, time_scale=10) as sim:
        ...  # serve `store` with KubeApiTestServer and point the exporter at it
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

__all__ = [
    "DEFAULT_MIX",
    "DEFAULT_START_TIME",
    "KINDS",
    "SHARD_LIMIT",
    "ChipKind",
    "ClusterDProducer",
    "ClusterModel",
    "ClusterSimulator",
    "FaultRates",
    "FaultTransition",
    "Job",
    "Node",
    "SimulatorStats",
    "StepResult",
    "VolcanoProducer",
    "deviceplugin_configmap",
    "fault_event",
    "go_dumps",
    "noded_configmap",
    "split_by_size",
]
