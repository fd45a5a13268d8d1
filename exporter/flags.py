"""Every command-line flag of `mindx-fault-exporter` and its commands, and their conversion into the
typed configurations the commands run with (`ExporterConfig`, `DemoConfig`).

Values are checked here, before anything starts: a bad one is one line on stderr naming the flag,
the value and what is accepted, with exit status 2 (`CommandLineParser.error`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import NoReturn

from exporter import __version__, devices
from exporter.app import DEFAULT_LISTEN_ADDRESS, ExporterConfig, SourceSelection
from exporter.autoshard import PodNameError, statefulset_pod
from exporter.demo import DEMO_LISTEN_ADDRESS, DEMO_RATES, PROFILE_TIME_SCALE, DemoConfig
from exporter.handlers.base import HandlerOptions
from exporter.httpserver import HttpLimits
from exporter.kube.reflector import ReflectorOptions
from exporter.registry import SOURCES, SOURCES_BY_NAME
from exporter.server import parse_listen_address
from exporter.sharding import Shard
from exporter.simulator import ALERTS_MIN_NODES, FaultRates
from exporter.simulator.job_extra import JOB_NAMESPACES
from exporter.sources.limits import Limits
from exporter.webconfig import load_web_config

PROG = "mindx-fault-exporter"
RUN, DEMO, DEVICES = "run", "demo", "devices"
COMMANDS = (DEMO, DEVICES)

DESCRIPTION = """Prometheus exporter for Huawei MindX DL fault information (Ascend NPU clusters on
Kubernetes). With no command it watches the cluster and serves /metrics; the flags below are
that command's."""


class UsageError(Exception):
    """A flag value that is well-formed but unusable (e.g. an unreadable web config file)."""


class CommandLineParser(argparse.ArgumentParser):
    """argparse prints the whole usage before an error; one line naming the problem and where the
    options are explained is easier to read (and the same shape as every other error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


# --- value types: each raises ArgumentTypeError, which argparse prefixes with the flag's name ---


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int_at_least(low: int, high: int | None = None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected a whole number {allowed}, got {text}")
        return value

    return convert


def _number(low: float, high: float, *, above_low: bool = False) -> Callable[[str], float]:
    """A finite float in [low, high], or (low, high] when `above_low`."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if above_low else value < low
        if not math.isfinite(value) or too_low or value > high:
            bound = f"above {low:g}" if above_low else f"from {low:g}"
            allowed = f"{bound} up to {high:g}" if above_low else f"{bound} to {high:g}"
            raise argparse.ArgumentTypeError(f"expected a number {allowed}, got {text}")
        return value

    return convert


def _listen_address(text: str) -> str:
    try:
        _, port = parse_listen_address(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected [host]:port such as :9847, 127.0.0.1:9847 or [::1]:9847, got {text!r}"
        )
    return text


def _path(text: str) -> str:
    if not text.startswith("/") or "?" in text or "#" in text:
        raise argparse.ArgumentTypeError(f"expected a URL path starting with /, got {text!r}")
    return text


_SECONDS = _number(0.0, 86400.0, above_low=True)


# --- flag groups ------------------------------------------------------------------------------


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=None,
        help="kubeconfig file (default $KUBECONFIG, which may list several files separated by ':', "
        "then ~/.kube/config, then in-cluster)",
    )
    parser.add_argument("--context", default=None, help="kubeconfig context to use")


def add_exporter_flags(parser: argparse.ArgumentParser) -> None:
    web = parser.add_argument_group("web")
    web.add_argument(
        "--web.listen-address",
        dest="listen_address",
        type=_listen_address,
        default=DEFAULT_LISTEN_ADDRESS,
        help="address for /metrics, /healthz and /readyz (default %(default)s)",
    )
    web.add_argument(
        "--web.telemetry-path",
        dest="telemetry_path",
        type=_path,
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
    web.add_argument(
        "--web.send-timeout",
        dest="send_timeout",
        type=_SECONDS,
        default=HttpLimits.send_timeout,
        metavar="SECONDS",
        help="a response must be sent within this of its request, else the connection is reset "
        "(default %(default)s)",
    )
    web.add_argument(
        "--web.max-scrapes",
        dest="max_scrapes",
        type=_int_at_least(1, 10_000),
        default=HttpLimits.max_scrapes,
        metavar="N",
        help="metrics responses sent at once; more wait briefly, then get 503 (default %(default)s)",
    )
    kube = parser.add_argument_group("kubernetes")
    kube.add_argument(
        "--kube.page-size",
        dest="page_size",
        type=_int_at_least(1, 100_000),
        default=500,
        help="objects per LIST page (default %(default)s)",
    )
    kube.add_argument(
        "--kube.watch-timeout",
        dest="watch_timeout",
        type=_SECONDS,
        default=300.0,
        help="server-side watch timeout in seconds, randomised up to twice this (default %(default)s)",
    )
    kube.add_argument(
        "--kube.stall-timeout",
        dest="stall_timeout",
        type=_SECONDS,
        default=150.0,
        help="restart a watch with no event or bookmark for this many seconds (default %(default)s)",
    )
    kube.add_argument(
        "--kube.list-timeout",
        dest="list_timeout",
        type=_SECONDS,
        default=60.0,
        help="abort and retry a LIST page that has not finished in this many seconds (default %(default)s)",
    )
    kube.add_argument(
        "--kube.denied-grace",
        dest="denied_grace",
        type=_SECONDS,
        default=60.0,
        help="a source refused with 403/404 for this many seconds stops holding back readiness "
        "(default %(default)s)",
    )
    limits = parser.add_argument_group("per-object limits (what goes over is cut off, reason=limit)")
    defaults = Limits()
    for name, what in (
        ("chips_per_node", "chip names per node"),
        ("resources_per_node", "resource names per node"),
        ("fault_entries_per_chip", "fault entries per chip"),
        ("codes_per_entry", "fault codes per fault entry or NodeD device"),
        ("devices_per_node", "NodeD fault devices per node"),
    ):
        limits.add_argument(
            f"--limits.{name.replace('_', '-')}",
            dest=f"limit:{name}",
            type=_int_at_least(1, 1_000_000),
            default=getattr(defaults, name),
            metavar="N",
            help=f"{what} (default %(default)s)",
        )
    series = parser.add_argument_group("series")
    series.add_argument(
        "--counters.idle-timeout",
        dest="counter_idle_seconds",
        type=_number(0.0, 365 * 86400.0),
        default=HandlerOptions().counter_idle_seconds,
        metavar="SECONDS",
        help="drop a node's fault-Event counters after this long without a new Event; 0 keeps them "
        "(default %(default)s)",
    )
    shards = parser.add_argument_group("sharding (each shard serves its part of the series)")
    shards.add_argument(
        "--shard",
        type=_int_at_least(0, 9_999),
        default=0,
        help="this process's shard, 0 to --total-shards minus 1 (default %(default)s)",
    )
    shards.add_argument(
        "--total-shards",
        type=_int_at_least(1, 10_000),
        default=1,
        help="number of shards; 1 serves everything (default %(default)s)",
    )
    shards.add_argument(
        "--pod",
        default=None,
        metavar="NAME",
        help="automatic sharding: this StatefulSet pod's name (downward API metadata.name); the shard "
        "is its ordinal, the number of shards its StatefulSet's replicas, followed when scaled",
    )
    shards.add_argument(
        "--pod-namespace",
        default=None,
        metavar="NAMESPACE",
        help="automatic sharding: the pod's namespace (downward API metadata.namespace)",
    )
    sources = parser.add_argument_group("sources")
    for spec in SOURCES:
        sources.add_argument(
            f"--source.{spec.name}.enabled",
            dest=f"enabled:{spec.name}",
            type=_bool,
            default=spec.enabled_by_default,
            metavar="BOOL",
            help=f"watch {spec.description} (default {str(spec.enabled_by_default).lower()})",
        )
        sources.add_argument(
            f"--source.{spec.name}.namespace",
            dest=f"namespace:{spec.name}",
            default=spec.namespace,
            metavar="NAMESPACE[,...]",
            help="namespace to watch, or a comma-separated list: one watch each (default %(default)s)",
        )
    parser.add_argument(
        "--log.level", dest="log_level", default="info", choices=["debug", "info", "warning", "error"]
    )


def add_demo_flags(parser: argparse.ArgumentParser) -> None:
    demo = parser.add_argument_group("simulated cluster")
    demo.add_argument(
        "--nodes",
        type=_int_at_least(1, 20_000),
        default=30,
        help="simulated nodes, 1 to 20000 (default %(default)s)",
    )
    demo.add_argument(
        "--seed", type=int, default=1, help="random seed; the same seed replays the same faults"
    )
    demo.add_argument(
        "--profile",
        choices=sorted(PROFILE_TIME_SCALE),
        default="random",
        help="random (default): random faults, an hour a minute; alerts: real-time speed and a script "
        "that makes every chip, node, switch and job alert of deploy/prometheus/alerts.yaml fire "
        f"within 15 minutes (RestartFaultPersists: 40) and both staleness alerts; needs --nodes "
        f"{ALERTS_MIN_NODES} or more (docs/alerts.md: Try the alerts locally)",
    )
    demo.add_argument(
        "--time-scale",
        type=_number(0.0, 86400.0, above_low=True),
        default=None,
        help="simulated seconds per real second, above 0 up to 86400 (default 60: an hour a minute; "
        "1 with --profile alerts)",
    )
    rate = _number(0.0, 3600.0)
    demo.add_argument(
        "--fault-rate",
        type=rate,
        default=DEMO_RATES.raise_per_node_hour,
        help="chip faults raised per node and simulated hour, 0 to 3600 (default %(default)s)",
    )
    demo.add_argument(
        "--network-fault-rate",
        type=rate,
        default=DEMO_RATES.network_per_node_hour,
        help="network faults per node and simulated hour, 0 to 3600 (default %(default)s)",
    )
    demo.add_argument(
        "--switch-fault-rate",
        type=rate,
        default=DEMO_RATES.switch_per_node_hour,
        help="switch faults per A3 node and simulated hour, 0 to 3600 (default %(default)s)",
    )
    probability = _number(0.0, 1.0)
    demo.add_argument(
        "--escalate-prob",
        type=probability,
        default=DEMO_RATES.escalate_prob,
        help="chance a fault escalates when reviewed, 0 to 1 (default %(default)s)",
    )
    demo.add_argument(
        "--recover-prob",
        type=probability,
        default=DEMO_RATES.recover_prob,
        help="chance a fault recovers when reviewed, 0 to 1 (default %(default)s)",
    )
    demo.add_argument(
        "--api.listen-address",
        dest="api_address",
        type=_listen_address,
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


def add_devices_flags(parser: argparse.ArgumentParser) -> None:
    add_cluster_flags(parser)
    parser.add_argument(
        "--from-file",
        metavar="PATH",
        default=None,
        help="read `kubectl get configmaps,events -A -o json` output instead of the cluster ('-' = stdin)",
    )
    parser.add_argument(
        "--source",
        choices=["auto", devices.CLUSTERD, devices.DEVICE_PLUGIN],
        default="auto",
        help="clusterd: ClusterD's views; device-plugin: device plugin + NodeD; auto (default): "
        "clusterd when ClusterD objects exist",
    )
    parser.add_argument(
        "--node",
        dest="nodes",
        action="append",
        default=[],
        metavar="NAME",
        help="only this node (repeatable)",
    )
    parser.add_argument("--output", "-o", choices=["table", "json"], default="table", help="output format")
    parser.add_argument(
        "--now",
        type=_number(0.0, 1e11),
        default=None,
        metavar="SECONDS",
        help="unix time the fault ages are measured from",
    )
    parser.add_argument(
        "--kube.page-size",
        dest="page_size",
        type=_int_at_least(1, 100_000),
        default=500,
        metavar="N",
        help="objects per LIST page (default 500)",
    )
    for name in devices.USED_SOURCES:
        spec = SOURCES_BY_NAME[name]
        parser.add_argument(
            f"--source.{name}.namespace",
            dest=f"namespace:{name}",
            default=spec.namespace,
            metavar="NAMESPACE",
            help=f"namespace of {spec.description} (default %(default)s)",
        )


# --- parsers ----------------------------------------------------------------------------------


def build_parser() -> CommandLineParser:
    """The whole command line: the exporter's flags at the top (no command runs the exporter, as
    before commands existed) and one sub-parser per command."""
    usage = "%(prog)s [flags]\n       %(prog)s demo [flags]\n       %(prog)s devices [flags]"
    parser = CommandLineParser(prog=PROG, usage=usage, description=DESCRIPTION, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        dest="command",
        title="commands",
        metavar="COMMAND",
        description="with no command the exporter runs; `%(prog)s COMMAND --help` explains each command",
        parser_class=CommandLineParser,
    )
    demo = commands.add_parser(
        DEMO,
        prog=f"{PROG} {DEMO}",
        help="run the exporter against a built-in simulated MindX DL cluster",
        description="The real exporter against a simulated MindX DL cluster: an in-process Kubernetes "
        "API server holds what the simulated producers write, and the exporter watches it.",
        allow_abbrev=False,
    )
    add_demo_flags(demo)
    add_exporter_flags(demo)
    demo.set_defaults(listen_address=DEMO_LISTEN_ADDRESS)
    # The simulated jobs' recovery files: the opt-in source, on for the jobs' namespaces.
    demo.set_defaults(**{"enabled:job-recovery": True, "namespace:job-recovery": ",".join(JOB_NAMESPACES)})
    listing = commands.add_parser(
        DEVICES,
        prog=f"{PROG} {DEVICES}",
        help="print which NPU chips of each node a job can use now",
        description="Which NPU chips of each node a job can use now (the vendor's available-devices "
        "procedure), read once from the cluster or from a kubectl dump.",
        epilog="Exit status: 0 every named node (or every node) has a usable chip; 1 otherwise or a "
        "named node was not found; 2 error.",
        allow_abbrev=False,
    )
    add_devices_flags(listing)
    # After the commands, so that --help lists them before the exporter's many flags.
    add_cluster_flags(parser)
    add_exporter_flags(parser)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a whole command line; `args.command` is RUN, DEMO or DEVICES."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    command = _commands(parser).get(args.command or "", parser)
    if unknown:  # reported by the command's parser, so the message names the command
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        args.command = RUN
    elif argv and argv[0] != args.command:
        # argparse would let the command's defaults silently replace flags given before it.
        parser.error(f"flags before the command are not used: put them after it ({PROG} {args.command} …)")
    return args


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps sub-parsers only in its (private) action list
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


# --- conversion ------------------------------------------------------------------------------


def exporter_config(args: argparse.Namespace) -> ExporterConfig:
    """Raises `WebConfigError` for an unusable `--web.config.file` (one line, no secret)."""
    values = vars(args)
    autoshard = None
    if args.pod is not None or args.pod_namespace is not None:
        if args.shard != 0 or args.total_shards != 1:
            raise UsageError(
                "--pod/--pod-namespace choose the shard automatically: drop --shard and --total-shards"
            )
        try:
            autoshard = statefulset_pod(args.pod or "", args.pod_namespace or "")
        except PodNameError as err:
            raise UsageError(str(err)) from None
    if args.shard >= args.total_shards:
        raise UsageError(
            f"--shard {args.shard} is not below --total-shards {args.total_shards}: "
            "shards are numbered 0 to --total-shards minus 1"
        )
    selection = SourceSelection(
        enabled={spec.name: values[f"enabled:{spec.name}"] for spec in SOURCES},
        namespaces={spec.name: values[f"namespace:{spec.name}"] for spec in SOURCES},
    )
    return ExporterConfig(
        listen_address=args.listen_address,
        telemetry_path=args.telemetry_path,
        sources=selection,
        web_config=load_web_config(args.web_config_file) if args.web_config_file else None,
        http=HttpLimits(send_timeout=args.send_timeout, max_scrapes=args.max_scrapes),
        reflector=ReflectorOptions(
            page_size=args.page_size,
            watch_timeout=args.watch_timeout,
            stall_timeout=args.stall_timeout,
            list_timeout=args.list_timeout,
            denied_grace=args.denied_grace,
        ),
        handlers=HandlerOptions(
            limits=Limits(**{field: values[f"limit:{field}"] for field in Limits.__slots__}),
            counter_idle_seconds=args.counter_idle_seconds,
            shard=Shard(args.shard, args.total_shards),
        ),
        autoshard=autoshard,
    )


def demo_config(args: argparse.Namespace) -> DemoConfig:
    rates = FaultRates(
        raise_per_node_hour=args.fault_rate,
        network_per_node_hour=args.network_fault_rate,
        switch_per_node_hour=args.switch_fault_rate,
        escalate_prob=args.escalate_prob,
        recover_prob=args.recover_prob,
    )
    if rates.escalate_prob + rates.recover_prob > 1.0:
        raise UsageError(
            f"--escalate-prob {rates.escalate_prob:g} and --recover-prob {rates.recover_prob:g} add up to "
            "more than 1: a reviewed fault escalates, recovers or stays, so lower one of them"
        )
    if args.profile == "alerts" and args.nodes < ALERTS_MIN_NODES:
        raise UsageError(
            f"--profile alerts needs --nodes {ALERTS_MIN_NODES} or more (got {args.nodes}): "
            "its script drives 5 nodes of its own"
        )
    return DemoConfig(
        nodes=args.nodes,
        seed=args.seed,
        time_scale=args.time_scale if args.time_scale is not None else PROFILE_TIME_SCALE[args.profile],
        profile=args.profile,
        rates=rates,
        api_address=args.api_address,
        kubeconfig_out=args.kubeconfig_out,
        exporter=exporter_config(args),
    )
