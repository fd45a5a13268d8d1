"""`mindx-fault-exporter demo`: the real exporter against a simulated MindX DL cluster.

An in-process Kubernetes API server (the project's test server, real list/watch HTTP on
127.0.0.1) holds what a simulated cluster's producers write — device plugin, its Events, NodeD,
ClusterD's shards, Volcano — and the exporter watches it through a kubeconfig, exactly as it
would watch a real cluster. Faults are raised, escalated and recovered as the demo runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from exporter import logs
from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter
from exporter.cli import add_exporter_flags, exporter_config
from exporter.kube.config import load_cluster_access
from exporter.logs import event
from exporter.simulator import ClusterSimulator, FaultRates
from exporter.webconfig import WebConfigError

log = logging.getLogger("exporter.demo")

DEMO_RATES = FaultRates()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mindx-fault-exporter demo", description=__doc__.split("\n\n")[0])
    demo = parser.add_argument_group("simulated cluster")
    demo.add_argument("--nodes", type=int, default=30, help="simulated nodes (default %(default)s)")
    demo.add_argument(
        "--seed", type=int, default=1, help="random seed; the same seed replays the same faults"
    )
    demo.add_argument(
        "--time-scale",
        type=float,
        default=60.0,
        help="simulated seconds per real second (default %(default)s: an hour a minute)",
    )
    demo.add_argument(
        "--fault-rate",
        type=float,
        default=DEMO_RATES.raise_per_node_hour,
        help="chip faults raised per node and simulated hour (default %(default)s)",
    )
    demo.add_argument(
        "--network-fault-rate",
        type=float,
        default=DEMO_RATES.network_per_node_hour,
        help="network faults per node and simulated hour (default %(default)s)",
    )
    demo.add_argument(
        "--switch-fault-rate",
        type=float,
        default=DEMO_RATES.switch_per_node_hour,
        help="switch faults per A3 node and simulated hour (default %(default)s)",
    )
    demo.add_argument(
        "--escalate-prob",
        type=float,
        default=DEMO_RATES.escalate_prob,
        help="chance a fault escalates when reviewed (default %(default)s)",
    )
    demo.add_argument(
        "--recover-prob",
        type=float,
        default=DEMO_RATES.recover_prob,
        help="chance a fault recovers when reviewed (default %(default)s)",
    )
    demo.add_argument(
        "--api.listen-address",
        dest="api_address",
        default="127.0.0.1:0",
        help="address of the simulated Kubernetes API (default a free port on 127.0.0.1)",
    )
    demo.add_argument(
        "--write-kubeconfig",
        dest="kubeconfig_out",
        default=None,
        metavar="PATH",
        help="also write the simulated API's kubeconfig here, for kubectl or a second exporter",
    )
    add_exporter_flags(parser)
    parser.set_defaults(listen_address="127.0.0.1:9847")
    return parser


def rates_from(args: argparse.Namespace) -> FaultRates:
    return FaultRates(
        raise_per_node_hour=args.fault_rate,
        network_per_node_hour=args.network_fault_rate,
        switch_per_node_hour=args.switch_fault_rate,
        escalate_prob=args.escalate_prob,
        recover_prob=args.recover_prob,
    )


async def run(args: argparse.Namespace, stop: asyncio.Event) -> None:
    host, _, port = args.api_address.rpartition(":")
    async with KubeApiTestServer(
        host=host or "127.0.0.1", port=int(port or 0), bookmark_interval=30.0
    ) as api:
        simulator = ClusterSimulator(
            api.store, nodes=args.nodes, seed=args.seed, rates=rates_from(args), time_scale=args.time_scale
        )
        simulator.populate()
        with tempfile.TemporaryDirectory(prefix="mindx-demo-") as workdir:
            kubeconfig = api.write_kubeconfig(Path(args.kubeconfig_out or Path(workdir) / "kubeconfig"))
            access = load_cluster_access(str(kubeconfig))
            async with simulator, Exporter(access, exporter_config(args)) as exporter:
                await exporter.wait_ready(30)
                scheme = "https" if exporter.config.web_config and exporter.config.web_config.tls else "http"
                url = f"{scheme}://{_display_host(args.listen_address)}:{exporter.port}{args.telemetry_path}"
                print(
                    f"mindx-fault-exporter demo: {args.nodes} simulated nodes, seed {args.seed}", flush=True
                )
                print(f"  metrics:             {url}", flush=True)
                print(f"  simulated API:       {api.url}  (kubeconfig {kubeconfig})", flush=True)
                print("  stop with Ctrl-C", flush=True)
                event(log, logging.INFO, "demo running", metrics=url, api=api.url, nodes=args.nodes)
                await stop.wait()


def _display_host(listen_address: str) -> str:
    host = listen_address.rpartition(":")[0].strip("[]")
    return host if host and host not in ("0.0.0.0", "::") else "127.0.0.1"


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level)

    async def guarded() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await run(args, stop)

    try:
        asyncio.run(guarded())
    except (OSError, WebConfigError) as err:
        print(f"mindx-fault-exporter demo: {err}", file=sys.stderr)
        return 2
    return 0
