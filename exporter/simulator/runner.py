"""Drive a ``ClusterModel`` and write what its producers would write into an apiserver ``Store``.

``ClusterSimulator`` can be used synchronously (``populate()``, ``advance(dt)``,
``report_clusterd()``, ``report_volcano()``: deterministic, for tests and benchmarks) or as an
asyncio service (``async with ClusterSimulator(store, ...)``) that ticks the model on the wall
clock, rewrites the device-plugin ConfigMaps of changed nodes, creates fault Events, creates /
updates / deletes NodeD ConfigMaps, writes ClusterD's shards one after another every
``clusterd_interval`` and Volcano's ConfigMap every ``volcano_interval`` seconds.

Store methods are synchronous and run on the event-loop thread, as the Store requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.apiserver.store import ApiServerStatusError, Store
from exporter.simulator.clusterd_extra import ClusterDExtraProducer
from exporter.simulator.dpu import DpuProducer
from exporter.simulator.job_extra import JobRecords
from exporter.simulator.model import ClusterModel, FaultRates, FaultTransition, Script, StepResult
from exporter.simulator.producers import (
    DEVICEPLUGIN_NAMESPACE,
    NODED_NAMESPACE,
    SHARD_LIMIT,
    ClusterDProducer,
    VolcanoProducer,
    deviceplugin_configmap,
    fault_event,
    noded_configmap,
    noded_name,
)

__all__ = ["ClusterSimulator", "SimulatorStats"]

log = logging.getLogger("exporter.simulator")

# Written times lag the wall clock by this much when running as a service, so that the few
# milliseconds an Event time is moved on to stay unique per chip (model._event_ms) cannot put it
# in the future either.
STAMP_LAG = 0.05


@dataclass(slots=True)
class SimulatorStats:
    """Counters of what the simulator wrote (writes that changed nothing are still counted)."""

    ticks: int = 0
    dp_writes: int = 0  # device-plugin ConfigMap writes, content changes and heartbeats
    dp_quiet_skips: int = 0  # device-plugin writes not done because the node's plugin is down (Outage)
    dp_heartbeats: int = 0  # of which forced rewrites (5-minute resync / writes_per_second filler)
    noded_writes: int = 0
    noded_deletes: int = 0
    events_written: int = 0
    events_dropped: int = 0  # over the per-node rate limit, or a name already taken
    events_expired: int = 0  # deleted after event_ttl, like the apiserver's event TTL
    clusterd_reports: int = 0
    clusterd_writes: int = 0
    volcano_writes: int = 0
    volcano_skips: int = 0  # sessions not written because Volcano is down (Outage)
    write_errors: int = 0


class ClusterSimulator:
    """A simulated MindX DL cluster writing into ``store``.

    Options:
      nodes, seed, mix, rates, warmup, start_time, script: the model (see ``ClusterModel``); ``model``
        replaces them with a ready one. ``start_time`` None = the wall clock.
      time_scale: simulated seconds per wall-clock second when running as a service. Running as a
        service, the written times (UpdateTime, fault and Event times, ...) advance with the
        simulated clock but never past the wall clock: a fast simulation compresses how often things
        happen, never writes a time in the future. The synchronous API writes simulated times.
      tick: wall-clock seconds between model steps.
      clusterd_interval, volcano_interval: wall-clock seconds between ClusterD reports / Volcano
        sessions (None disables that producer); shard_limit: ClusterD's split size in bytes.
      dp_resync_interval: simulated seconds after which the device plugin rewrites an unchanged
        ConfigMap (its 5-minute heartbeat; None disables).
      writes_per_second: when set, device-plugin writes are paced at this rate (wall clock) and
        filled up with heartbeat rewrites of the least recently written nodes, so a benchmark gets
        a steady stream of ConfigMap updates. Each filler rewrite advances the node's UpdateTime by
        at least one second so it is a real update; with fewer nodes than writes per second the
        UpdateTimes therefore run ahead of the simulated clock.
      events, events_per_minute, event_ttl: fault Events on/off, the device plugin's per-node rate
        limit, and the simulated lifetime after which Events are deleted.
      noded: NodeD ConfigMaps on/off.
    The model's ``outages`` (set by a script) silence a node's device plugin or Volcano for a while.
    """

    def __init__(
        self,
        store: Store,
        *,
        nodes: int = 50,
        seed: int = 0,
        mix: Mapping[str, float] | None = None,
        rates: FaultRates | None = None,
        model: ClusterModel | None = None,
        start_time: float | None = None,
        warmup: float = 3600.0,
        time_scale: float = 1.0,
        tick: float = 0.5,
        clusterd_interval: float | None = 5.0,
        volcano_interval: float | None = 1.0,
        dp_resync_interval: float | None = 300.0,
        writes_per_second: float | None = None,
        shard_limit: int = SHARD_LIMIT,
        events: bool = True,
        events_per_minute: int = 10,
        event_ttl: float = 3600.0,
        noded: bool = True,
        script: Script | None = None,
    ) -> None:
        if model is None:
            model = ClusterModel(
                nodes,
                seed=seed,
                mix=mix,
                rates=rates,
                start_time=time.time() if start_time is None else start_time,
                warmup=warmup,
                script=script,
            )
        self.store = store
        self.model = model
        self.time_scale = time_scale
        self.tick = tick
        self.clusterd_interval = clusterd_interval
        self.volcano_interval = volcano_interval
        self.dp_resync_interval = dp_resync_interval
        self.writes_per_second = writes_per_second
        self.events = events
        self.events_per_minute = events_per_minute
        self.event_ttl = event_ttl
        self.noded = noded
        self.stats = SimulatorStats()
        self.clusterd = ClusterDProducer(model.seed, shard_limit)
        self.volcano = VolcanoProducer(model.seed)
        self.clusterd_extra = ClusterDExtraProducer(model.seed)  # public faults, separations, exceptions
        self.job_records = JobRecords(model.seed)  # job-reschedule-reason, reset-config-<job>
        self.dpus = DpuProducer(model)  # dpuinfo-<node>
        self._rng = random.Random(f"runner-{model.seed}")
        self._populated = False
        self._dp_pending: dict[int, None] = {}  # changed nodes waiting for a paced write
        self._dp_written: dict[int, float] = {}  # node → sim time of last write, oldest first
        self._dp_stamp: dict[int, int] = {}  # node → UpdateTime of its last write
        self._noded_present: set[int] = set()
        self._event_times: dict[int, deque[float]] = {}  # node → sim times of recent events
        self._event_expiry: deque[tuple[float, str]] = deque()
        self._quiet: dict[int, float] = {}  # node → sim time its device plugin writes again
        self._outages = sorted(
            (o for o in model.outages if o.producer == "device-plugin" and o.node is not None),
            key=lambda o: o.start,
        )
        self._tasks: list[asyncio.Task[None]] = []

    # -- synchronous API ----------------------------------------------------------------------------------

    def populate(self) -> None:
        """Write the initial state: every device-plugin ConfigMap, NodeD ConfigMaps of faulty nodes,
        one ClusterD report and one Volcano ConfigMap."""
        model = self.model
        now = int(model.stamp())
        # Heartbeat phases spread over the resync interval, as independent DaemonSet pods would be.
        spread = self.dp_resync_interval or 0.0
        phases = sorted((model.now - self._rng.uniform(0, spread), node.index) for node in model.nodes)
        for phase, index in phases:
            self._apply(deviceplugin_configmap(model.nodes[index], now))
            self._dp_stamp[index] = now
            self._dp_written[index] = phase  # heartbeats come due spread out, oldest first
        self.stats.dp_writes += len(model.nodes)
        self._start_outages(populating=True)
        if self.noded:
            for node in model.nodes:
                self._write_noded(node.index)
        for obj in self.job_records.start(model) + self.dpus.start(model):
            self._apply(obj)
        if self.clusterd_interval is not None:
            self.report_clusterd()
        if self.volcano_interval is not None:
            self.report_volcano()
        self._populated = True

    def advance(self, dt: float, stamp_until: float | None = None) -> StepResult:
        """Step the model by ``dt`` simulated seconds and write what changed (device-plugin
        ConfigMaps at once unless ``writes_per_second`` paces them, Events, NodeD ConfigMaps).
        ``stamp_until`` caps the written times (``ClusterModel.step``)."""
        result = self.model.step(dt, stamp_until)
        self.stats.ticks += 1
        self._start_outages(populating=False)
        for index, until in list(self._quiet.items()):
            if until <= self.model.now:
                # The plugin is back: it writes its node's current state at once.
                del self._quiet[index]
                self._write_dp(index)
        paced = self.writes_per_second is not None
        for index in result.dp_changed:
            if paced:
                self._dp_pending[index] = None
            else:
                self._write_dp(index)
        if self.noded:
            for index in result.noded_changed:
                self._write_noded(index)
        if self.events:
            for transition in result.transitions:
                self._write_event(transition.node, transition)
            self._expire_events()
        if not paced and self.dp_resync_interval is not None:
            self._heartbeats(self.model.now - self.dp_resync_interval, limit=None)
        self._write_extra()
        return result

    def report_clusterd(self) -> None:
        """One full ClusterD report, written at once."""
        for obj in self.clusterd.report(self.model):
            self._apply(obj)
            self.stats.clusterd_writes += 1
        self.clusterd_extra.write(self.store, self.model)
        self.stats.clusterd_reports += 1

    async def report_clusterd_async(self) -> None:
        """One ClusterD report written one ConfigMap after another, yielding in between so readers
        can see a node in two shards or in none, as with the real (non-atomic) ClusterD."""
        steps = self.clusterd.report_steps(self.model)
        while True:  # built in steps: the API server shares this event loop
            try:
                next(steps)
            except StopIteration as done:
                objects: list[dict[str, Any]] = done.value
                break
            await asyncio.sleep(0)
        for obj in objects:
            self._apply(obj)
            self.stats.clusterd_writes += 1
            await asyncio.sleep(0)
        self.clusterd_extra.write(self.store, self.model)
        self.stats.clusterd_reports += 1

    def report_volcano(self) -> None:
        now = self.model.now
        if any(o.producer == "volcano" and o.start <= now < o.end for o in self.model.outages):
            self.stats.volcano_skips += 1
            return
        self._apply(self.volcano.configmap(self.model))
        self._apply(self.job_records.reschedule_configmap(self.model))  # same session close
        self.stats.volcano_writes += 1

    def flush(self, limit: int | None = None) -> int:
        """Write up to ``limit`` pending (paced) device-plugin ConfigMaps; returns how many."""
        written = 0
        while self._dp_pending and (limit is None or written < limit):
            self._write_dp(next(iter(self._dp_pending)))
            written += 1
        return written

    # -- asyncio service ----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    @property
    def failure(self) -> BaseException | None:
        """Why a service task ended, if one did: they run until `stop()`, so any end is a failure."""
        for task in self._tasks:
            if task.done() and not task.cancelled():
                return task.exception() or RuntimeError(f"{task.get_name()} ended")
        return None

    async def start(self) -> None:
        if self._tasks:
            raise RuntimeError("simulator already started")
        if not self._populated:
            self.populate()
        self._tasks.append(asyncio.create_task(self._tick_loop(), name="simulator-tick"))
        if self.writes_per_second is not None:
            self._tasks.append(asyncio.create_task(self._writer_loop(), name="simulator-writer"))
        if self.clusterd_interval is not None:
            interval = self.clusterd_interval
            self._tasks.append(
                asyncio.create_task(
                    self._every(interval, self.report_clusterd_async), name="simulator-clusterd"
                )
            )
        if self.volcano_interval is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._every(self.volcano_interval, self._volcano_async), name="simulator-volcano"
                )
            )

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def __aenter__(self) -> ClusterSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.tick)
            now = loop.time()
            self.advance((now - last) * self.time_scale, stamp_until=time.time() - STAMP_LAG)
            last = now

    async def _writer_loop(self) -> None:
        assert self.writes_per_second is not None
        rate = self.writes_per_second
        interval = min(0.05, 1.0 / rate)
        loop = asyncio.get_running_loop()
        last = loop.time()
        budget = 0.0
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            budget = min(budget + (now - last) * rate, max(rate, 1.0))  # at most one second of burst
            last = now
            count = int(budget)
            budget -= count
            written = self.flush(count)
            if count > written:
                self._heartbeats(None, limit=count - written)

    async def _every(self, interval: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            await action()

    async def _volcano_async(self) -> None:
        self.report_volcano()

    # -- writers ------------------------------------------------------------------------------------------

    def _apply(self, obj: dict[str, Any]) -> None:
        try:
            self.store.apply("configmaps", obj)
        except ApiServerStatusError as err:
            self.stats.write_errors += 1
            log.warning(
                "simulator write failed", extra={"object": obj["metadata"]["name"], "error": err.message}
            )

    def _start_outages(self, populating: bool) -> None:
        """Silence the device plugins whose outage has begun: no write until it ends. At populate,
        a plugin already down rewrites its ConfigMap with the time it went down (in written-time
        terms: ``time_scale`` simulated seconds a written second), as if written back then."""
        now = self.model.now
        while self._outages and self._outages[0].start <= now:
            outage = self._outages.pop(0)
            index = outage.node
            assert index is not None
            if outage.end <= now:
                continue
            if populating:
                went_down = int(self.model.stamp() - (now - outage.start) / self.time_scale)
                self._dp_stamp[index] = went_down
                self._apply(deviceplugin_configmap(self.model.nodes[index], went_down))
            self._quiet[index] = outage.end
            self._dp_written.pop(index, None)
            self._dp_pending.pop(index, None)

    def _write_extra(self) -> None:
        """The producers of simulator/job_extra.py and simulator/dpu.py."""
        writes, deletes = self.job_records.step(self.model)
        for obj in writes + self.dpus.step(self.model):
            self._apply(obj)
        for namespace, name in deletes:
            with contextlib.suppress(ApiServerStatusError):
                self.store.delete("configmaps", namespace, name)

    def _write_dp(self, index: int, heartbeat: bool = False) -> None:
        model = self.model
        self._dp_pending.pop(index, None)
        if index in self._quiet:
            self.stats.dp_quiet_skips += 1
            return
        stamp = int(model.stamp())
        if heartbeat and self.writes_per_second is not None:
            # A paced filler write must be an update: UpdateTime moves on by at least a second.
            stamp = max(stamp, self._dp_stamp.get(index, 0) + 1)
        self._dp_stamp[index] = stamp
        self._apply(deviceplugin_configmap(model.nodes[index], stamp))
        self._dp_written.pop(index, None)
        self._dp_written[index] = model.now
        self.stats.dp_writes += 1
        if heartbeat:
            self.stats.dp_heartbeats += 1

    def _heartbeats(self, older_than: float | None, limit: int | None) -> None:
        """Rewrite the least recently written nodes: those written before ``older_than`` (None: any),
        at most ``limit`` (None: all)."""
        written = 0
        while self._dp_written and (limit is None or written < limit):
            index, at = next(iter(self._dp_written.items()))
            if older_than is not None and at > older_than:
                break
            self._write_dp(index, heartbeat=True)
            written += 1

    def _write_noded(self, index: int) -> None:
        node = self.model.nodes[index]
        obj = noded_configmap(node, self.model.noded_owner_uid)
        if obj is not None:
            self._apply(obj)
            self._noded_present.add(index)
            self.stats.noded_writes += 1
        elif index in self._noded_present:
            self._noded_present.discard(index)
            with contextlib.suppress(ApiServerStatusError):
                self.store.delete("configmaps", NODED_NAMESPACE, noded_name(node))
            self.stats.noded_deletes += 1

    def _write_event(self, index: int, transition: FaultTransition) -> None:
        now = self.model.now
        recent = self._event_times.setdefault(index, deque())
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if len(recent) >= self.events_per_minute:
            self.stats.events_dropped += 1  # DP's limiter: 10 events/min, excess dropped (spec §3)
            return
        event = fault_event(self.model.nodes[index], transition)
        try:
            self.store.create("events", event)
        except ApiServerStatusError:
            self.stats.events_dropped += 1
            return
        recent.append(now)
        self._event_expiry.append((now + self.event_ttl, event["metadata"]["name"]))
        self.stats.events_written += 1

    def _expire_events(self) -> None:
        now = self.model.now
        expiry = self._event_expiry
        while expiry and expiry[0][0] <= now:
            _, name = expiry.popleft()
            with contextlib.suppress(ApiServerStatusError):
                self.store.delete("events", DEVICEPLUGIN_NAMESPACE, name)
            self.stats.events_expired += 1
