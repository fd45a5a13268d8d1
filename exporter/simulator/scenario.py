"""The `alerts` scenario: a script that makes every chip, node, switch and job alert of
deploy/prometheus/alerts.yaml fire once, plus both staleness alerts, on a few reserved nodes.

Random faults come and go faster than the rules' `for:` windows and never leave a producer
silent, so the demo's random cluster cannot show most alerts. The script places long-lived faults
by hand instead (times in simulated seconds after the start; at time scale 1 they are real
seconds; "chips" and "switch" are A3 nodes)::

    time    node       what                                                alert MindX... (scale 1)
    0       quiet      device plugin down from -10 min to +15 min          DevicePluginStale ~5 min
    0       job        a job on all its chips, 2 fault retries
    30 s    chips      chip 0 SeparateNPU                                  NPUChipSeparated at once
    30 s    chips      chip 1 NotHandleFault, PreSeparateNPU from 60 s     NPUChipPreSeparate ~6 min
    30 s    chips      chip 2 at FutureLevelNPU (no MindX DL level)        NPUChipUnknownFaultHandling ~6 min
    30 s    chips      chip 3 public fault 220001001 (ClusterD)            NPUChipPublicFault,
                                                                           PublicFaultSeparateNPU at once
    30 s    —          a job ClusterD reports as pending (too few NPUs)    JobSchedulingException ~10.5 min
    30 s    chips      link 81078607 of chip 4 down 8 s in every 20 s      NPUChipFlapping ~1.5 min,
                                                                           NPUFaultEventsFlapping ~8 min
    30 s    chips      switch SubHealthFault                               SwitchDegraded ~5.5 min
    30 s    switch     switch SeparateFault                                SwitchUnhealthy ~1.5 min
    30 s    node-down  NodeD SeparateFault                                 NodeUnhealthy ~1.5 min
    30 s    job        NodeD PreSeparateFault (busy: ClusterD: Healthy)    NodePreSeparate ~5.5 min
    3 min   job        chip 0 RestartBusiness: job restarts, 1 retry left  JobRetriesLow at once,
                                                                           NPUChipRestartFaultPersists ~33 min
    7 min   job        chip 1 RestartBusiness: 0 retries left              JobRetriesExhausted at once
    16 min             Volcano writes no session for 10 min                VolcanoStale ~21 min
    50 min  all        everything recovers, the job ends                   every scripted alert resolves

Each condition holds for its whole span, so each alert fires once and resolves once. The other
nodes keep their random faults (which never touch the reserved nodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.simulator.model import (
    NODED_PRE_SEPARATE,
    NODED_SEPARATE,
    NOT_HANDLE,
    PRE_SEPARATE,
    RESTART_BUSINESS,
    SEPARATE,
    SWITCH_SEPARATE,
    SWITCH_SUB_HEALTH,
    ClusterModel,
    Job,
    Node,
    Outage,
)

__all__ = ["ALERTS_MIN_NODES", "SCENARIOS", "UNKNOWN_LEVEL", "AlertsRoles", "AlertsScenario"]

ALERTS_MIN_NODES = 5  # with the default kind mix, 5 nodes include the 2 A3 nodes the script needs
UNKNOWN_LEVEL = "FutureLevelNPU"  # stands in for a level a newer MindX DL might add
UNKNOWN_CODE = "80FF0001"

START = 30.0  # the scripted faults begin, simulated seconds after the start
END = 3000.0  # everything scripted recovers (after MindXNPUChipRestartFaultPersists' 30 minutes)
DP_DOWN_BEFORE = 600.0  # the quiet node's device plugin died this long before the start ...
DP_DOWN_UNTIL = 900.0  # ... and comes back this long after it
VOLCANO_DOWN = (960.0, 1560.0)
FLAP_PERIOD, FLAP_DOWN = 20.0, 8.0  # 3 raises a minute: 3 a day at once, > 20 Events an hour in 8 min
STUCK_JOB = "alerts-demo-pending"  # ClusterD reports it: it needs more NPUs than the cluster has
STUCK_JOB_KEY = f"{STUCK_JOB}.6f1d0c7e-0000-4000-8000-00000000a1e7"
JOB_FAULTS = (180.0, 420.0)  # restart faults on two of the job's chips (Prometheus saw 2 retries first)


@dataclass(frozen=True, slots=True)
class AlertsRoles:
    chips: Node  # chip faults and a degraded switch (A3)
    switch: Node  # an UnHealthy switch (A3)
    node_down: Node  # NodeD SeparateFault
    job: Node  # runs the job; NodeD PreSeparateFault
    quiet: Node  # device plugin down


class AlertsScenario:
    """The script of the table above; one instance per model (``reserve`` picks the roles)."""

    name = "alerts"

    def __init__(self) -> None:
        self.roles: AlertsRoles | None = None
        self.job: Job | None = None
        self.start = 0.0  # simulated time of the start (``install``)

    def reserve(self, model: ClusterModel) -> list[Node]:
        a3 = [node for node in model.nodes if node.kind.switch == "faults"]
        if len(a3) < 2 or len(model.nodes) < ALERTS_MIN_NODES:
            raise ValueError(
                f"the alerts scenario needs at least {ALERTS_MIN_NODES} nodes, 2 of them A3 "
                f"(got {len(model.nodes)} nodes, {len(a3)} A3)"
            )
        rest = [node for node in model.nodes if node not in a3[:2]]
        rest.sort(key=lambda node: node.kind.switch == "faults")  # other kinds first
        self.roles = AlertsRoles(a3[0], a3[1], rest[0], rest[1], rest[2])
        return [self.roles.chips, self.roles.switch, rest[0], rest[1], rest[2]]

    def install(self, model: ClusterModel) -> None:
        roles = self.roles
        assert roles is not None, "reserve() first"
        start = self.start = model.now
        model.outages.append(
            Outage("device-plugin", roles.quiet.index, start - DP_DOWN_BEFORE, start + DP_DOWN_UNTIL)
        )
        model.outages.append(Outage("volcano", None, start + VOLCANO_DOWN[0], start + VOLCANO_DOWN[1]))
        self.job = model.start_job([roles.job], "training", "alerts-demo", times=2)
        model.at(START, self._raise)
        model.at(START + 30.0, self._pre_separate)
        model.at(START, self._flap)
        for chip, at in enumerate(JOB_FAULTS):
            model.at(at, _job_fault(roles.job, chip))
        model.at(END, self._recover)

    def _raise(self, model: ClusterModel) -> None:
        roles = self.roles
        assert roles is not None
        chips = roles.chips
        model.raise_chip_code(chips, 0, "80E18402", SEPARATE)
        model.raise_chip_code(chips, 1, "80E18401", NOT_HANDLE)
        model.raise_chip_code(chips, 2, UNKNOWN_CODE, UNKNOWN_LEVEL)
        model.raise_public_fault(chips, 3, "220001001", SEPARATE)
        model.raise_switch_fault(chips, "[0x00f103b6,155908,na,na]", SWITCH_SUB_HEALTH)
        model.raise_switch_fault(roles.switch, "[0x00f103b0,155907,na,na]", SWITCH_SEPARATE)
        model.raise_node_fault(roles.node_down, "2C000031", NODED_SEPARATE)
        model.raise_node_fault(roles.job, "0000001D", NODED_PRE_SEPARATE)
        model.stuck_jobs[STUCK_JOB_KEY] = ("training", STUCK_JOB)

    def _pre_separate(self, model: ClusterModel) -> None:
        assert self.roles is not None
        model.upgrade_chip_code(self.roles.chips, 1, "80E18401", PRE_SEPARATE, "FaultDuration")

    def _flap(self, model: ClusterModel) -> None:
        assert self.roles is not None
        if model.now - self.start >= END:
            return
        node = self.roles.chips
        model.raise_chip_code(node, 4, "81078607", NOT_HANDLE, network=True)
        model.at(FLAP_DOWN, lambda m: m.clear_chip(node, 4, network=True))
        model.at(FLAP_PERIOD, self._flap)

    def _recover(self, model: ClusterModel) -> None:
        roles = self.roles
        assert roles is not None
        for chip in range(4):
            model.clear_chip(roles.chips, chip)
            model.clear_chip(roles.job, chip)
        model.clear_public_fault(roles.chips, 3)
        model.clear_switch_faults(roles.chips)
        model.clear_switch_faults(roles.switch)
        model.clear_node_faults(roles.node_down)
        model.clear_node_faults(roles.job)
        if self.job is not None:
            model.end_job(self.job)
        model.stuck_jobs.pop(STUCK_JOB_KEY, None)


def _job_fault(node: Node, chip: int) -> Callable[[ClusterModel], None]:
    codes = ("8C204E00", "A8028802")
    return lambda model: model.raise_chip_code(node, chip, codes[chip], RESTART_BUSINESS)


SCENARIOS: dict[str, Callable[[], AlertsScenario]] = {"alerts": AlertsScenario}
