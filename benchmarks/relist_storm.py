"""Relist storm: peak memory when every watch of a busy 5,000-node cluster relists at once.

The attack run of issue 16 found an Events relist that lost its continue token and fell back to
one unpaginated LIST of 33,003 Events, raising RSS to 463 MiB (90 % of the Deployment's 512Mi
limit). This script rebuilds that situation and prints the exporter's memory through it:

1. a simulated cluster at ``--rate-factor`` times the default fault rates, run for a simulated
   hour so the device plugin's fault Events pile up (about 33,000 at 5,000 nodes and 4x);
2. the exporter as its own process (``python3 -m exporter``) over real HTTP; RSS when ready;
3. ``--storms`` times: the API server compacts its history (every watch gets 410 and relists) and
   the next LISTs carrying a continue token find it expired, while the simulator keeps writing;
4. peak RSS (VmHWM) against the base manifest's memory limit with 30 % headroom.

    python3 -m benchmarks.relist_storm                  # 5,000 nodes, 4x rates (about 2 minutes)
    python3 -m benchmarks.relist_storm --nodes 2000 --storms 2

A report, not a test: it prints figures and exits 0 either way (1 only if the exporter failed).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.scale import free_port, memory_mb, stop_process, wait_ready
from exporter.apiserver import KubeApiTestServer
from exporter.simulator import ClusterSimulator, FaultRates

MIB = 1024 * 1024
MB = 1_000_000
LIMIT_MIB = 512  # deploy/kubernetes/base/deployment.yaml
HEADROOM = 1.3


def rates(factor: float) -> FaultRates:
    base = FaultRates()
    return dataclasses.replace(
        base,
        raise_per_node_hour=base.raise_per_node_hour * factor,
        network_per_node_hour=base.network_per_node_hour * factor,
        switch_per_node_hour=base.switch_per_node_hour * factor,
        noded_per_node_hour=base.noded_per_node_hour * factor,
        notice_per_node_hour=base.notice_per_node_hour * factor,
    )


def mib(pid: int, key: str) -> float:
    return memory_mb(pid, key) * MB / MIB


async def relisted(session: aiohttp.ClientSession, url: str, before: float) -> float:
    """The exporter's count of completed relists after a storm (from its own metrics)."""
    async with session.get(url) as resp:
        text = await resp.text()
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mindx_exporter_relists_total{") and 'reason="start"' not in line
    )
    return total - before


async def main_async(args: argparse.Namespace) -> int:
    async with KubeApiTestServer(bookmark_interval=1.0, max_history=5000) as api:
        simulator = ClusterSimulator(
            api.store,
            nodes=args.nodes,
            seed=args.seed,
            rates=rates(args.rate_factor),
            start_time=time.time() - 3600,
            clusterd_interval=None,
            volcano_interval=None,
        )
        started = time.perf_counter()
        simulator.populate()
        for _ in range(12):
            simulator.advance(300.0)
        simulator.report_clusterd()
        simulator.report_volcano()
        events = len(api.store.list("events", "kube-system"))
        configmaps = sum(len(api.store.list("configmaps", ns)) for ns in api.store.namespaces())
        print(
            f"cluster: {args.nodes} nodes, {args.rate_factor:g}x default fault rates, {events} Events, "
            f"{configmaps} ConfigMaps (built in {time.perf_counter() - started:.0f} s)"
        )
        with tempfile.TemporaryDirectory() as tmp:
            kubeconfig = api.write_kubeconfig(Path(tmp) / "kubeconfig")
            port = free_port()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "exporter",
                "--kubeconfig",
                str(kubeconfig),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--kube.page-size",
                str(args.page_size),
                "--log.level",
                "error",
            )
            try:
                base = f"http://127.0.0.1:{port}"
                _, ready = await wait_ready(proc, f"{base}/readyz", time.perf_counter(), 120)
                pid = proc.pid
                ready_rss = mib(pid, "VmRSS")
                print(
                    f"ready in {ready:.1f} s: RSS {ready_rss:.0f} MiB, "
                    f"peak so far {mib(pid, 'VmHWM'):.0f} MiB"
                )
                async with aiohttp.ClientSession() as session:
                    before = await relisted(session, f"{base}/metrics", 0.0)
                    peak_during = ready_rss
                    for storm in range(args.storms):
                        api.expire_continue_tokens(args.expire)
                        api.compact()
                        deadline = time.monotonic() + args.seconds
                        while time.monotonic() < deadline:
                            simulator.advance(60.0)
                            await asyncio.sleep(0.5)
                            peak_during = max(peak_during, mib(pid, "VmRSS"))
                        done = await relisted(session, f"{base}/metrics", before)
                        print(
                            f"storm {storm + 1}: {done:.0f} relists so far; RSS {mib(pid, 'VmRSS'):.0f} MiB, "
                            f"peak {mib(pid, 'VmHWM'):.0f} MiB"
                        )
                    lists = [p for m, p in api.request_log if m == "GET" and "watch=" not in p]
                    unpaginated = [p for p in lists if "limit=" not in p]
                peak = mib(pid, "VmHWM")
                budget = LIMIT_MIB / HEADROOM
                print(
                    f"\npeak RSS {peak:.0f} MiB (VmHWM; sampled RSS peak {peak_during:.0f} MiB); final RSS "
                    f"{mib(pid, 'VmRSS'):.0f} MiB"
                )
                print(
                    f"budget: {LIMIT_MIB} MiB limit / {HEADROOM} headroom = {budget:.0f} MiB -> "
                    f"{'within' if peak <= budget else 'OVER'} ({peak / LIMIT_MIB:.0%} of the limit)"
                )
                print(f"LIST requests: {len(lists)}, without a page limit: {len(unpaginated)}")
            finally:
                await stop_process(proc)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.relist_storm", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate-factor", type=float, default=4.0, help="times the default fault rates (4)")
    parser.add_argument("--storms", type=int, default=3, help="compactions, one after another (3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds after each compaction (20)")
    parser.add_argument("--expire", type=int, default=3, help="continue tokens expired per storm (3)")
    parser.add_argument("--page-size", type=int, default=500)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
