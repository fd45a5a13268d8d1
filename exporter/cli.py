"""Command line: `mindx-fault-exporter [flags]` runs the exporter; `mindx-fault-exporter demo`
runs it against a built-in simulated cluster."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence

from exporter import __version__, logs
from exporter.app import DEFAULT_LISTEN_ADDRESS, Exporter, ExporterConfig, SourceSelection
from exporter.kube.config import KubeConfigError, load_cluster_access
from exporter.kube.reflector import ReflectorOptions
from exporter.registry import SOURCES
from exporter.webconfig import WebConfigError, load_web_config

log = logging.getLogger("exporter")


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_exporter_flags(parser: argparse.ArgumentParser) -> None:
    web = parser.add_argument_group("web")
    web.add_argument(
        "--web.listen-address",
        dest="listen_address",
        default=DEFAULT_LISTEN_ADDRESS,
        help="address for /metrics, /healthz and /readyz (default %(default)s)",
    )
    web.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        default="/metrics",
        help="path under which to expose metrics (default %(default)s)",
    )
    web.add_argument(
        "--web.config.file",
        dest="web_config_file",
        default=None,
        metavar="FILE",
        help="exporter-toolkit web config (YAML) enabling TLS and/or basic auth (docs/security.md)",
    )
    kube = parser.add_argument_group("kubernetes")
    kube.add_argument(
        "--kube.page-size",
        dest="page_size",
        type=int,
        default=500,
        help="objects per LIST page (default %(default)s)",
    )
    kube.add_argument(
        "--kube.watch-timeout",
        dest="watch_timeout",
        type=float,
        default=300.0,
        help="server-side watch timeout in seconds, randomised up to twice this (default %(default)s)",
    )
    kube.add_argument(
        "--kube.stall-timeout",
        dest="stall_timeout",
        type=float,
        default=150.0,
        help="restart a watch with no event or bookmark for this many seconds (default %(default)s)",
    )
    kube.add_argument(
        "--kube.list-timeout",
        dest="list_timeout",
        type=float,
        default=60.0,
        help="abort and retry a LIST page that has not finished in this many seconds (default %(default)s)",
    )
    sources = parser.add_argument_group("sources")
    for spec in SOURCES:
        sources.add_argument(
            f"--source.{spec.name}.enabled",
            dest=f"enabled:{spec.name}",
            type=_bool,
            default=True,
            metavar="BOOL",
            help=f"watch {spec.description} (default true)",
        )
        sources.add_argument(
            f"--source.{spec.name}.namespace",
            dest=f"namespace:{spec.name}",
            default=spec.namespace,
            metavar="NAMESPACE",
            help="namespace to watch (default %(default)s)",
        )
    parser.add_argument(
        "--log.level", dest="log_level", default="info", choices=["debug", "info", "warning", "error"]
    )


def exporter_config(args: argparse.Namespace) -> ExporterConfig:
    values = vars(args)
    selection = SourceSelection(
        enabled={spec.name: values[f"enabled:{spec.name}"] for spec in SOURCES},
        namespaces={spec.name: values[f"namespace:{spec.name}"] for spec in SOURCES},
    )
    return ExporterConfig(
        listen_address=args.listen_address,
        telemetry_path=args.telemetry_path,
        sources=selection,
        web_config=load_web_config(args.web_config_file) if args.web_config_file else None,
        reflector=ReflectorOptions(
            page_size=args.page_size,
            watch_timeout=args.watch_timeout,
            stall_timeout=args.stall_timeout,
            list_timeout=args.list_timeout,
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mindx-fault-exporter", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig file (default $KUBECONFIG, ~/.kube/config, in-cluster)"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context to use")
    add_exporter_flags(parser)
    return parser


async def run_until_signalled(config: ExporterConfig, args: argparse.Namespace) -> None:
    access = load_cluster_access(args.kubeconfig, args.context)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with Exporter(access, config):
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "demo":
        from exporter.demo import main as demo_main

        return demo_main(argv[1:])
    if argv and argv[0] == "devices":
        from exporter.devices import main as devices_main

        return devices_main(argv[1:])
    args = build_parser().parse_args(argv)
    logs.setup(args.log_level)
    try:
        asyncio.run(run_until_signalled(exporter_config(args), args))
    except (KubeConfigError, WebConfigError) as err:
        print(f"mindx-fault-exporter: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
