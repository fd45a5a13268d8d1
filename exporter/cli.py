"""Command line: `mindx-fault-exporter [flags]` runs the exporter; `mindx-fault-exporter demo` runs
it against a built-in simulated cluster; `mindx-fault-exporter devices` prints the usable chips.

Flags and their checks live in `exporter.flags`. Every error a user can fix is one line on stderr
with exit status 2, printed before any watch starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from exporter import demo, devices, logs
from exporter.app import AutoshardError, Exporter, ListenError
from exporter.flags import DEMO, DEVICES, PROG, UsageError, build_parser, demo_config, exporter_config, parse
from exporter.kube.config import KubeConfigError, load_cluster_access
from exporter.webconfig import WebConfigError

__all__ = ["build_parser", "exporter_config", "main", "until_signalled"]

# Errors the user can fix (a flag, a file, a busy port): one line, exit status 2.
USER_ERRORS = (UsageError, KubeConfigError, WebConfigError, ListenError, AutoshardError, demo.DemoError)


async def until_signalled(body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `body(stop)`; SIGINT and SIGTERM set `stop`. The one signal loop of every long-running
    command: the body shuts its servers down cleanly when `stop` is set."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread / platform
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await body(stop)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def run_exporter(args: argparse.Namespace) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Load every file the flags name first (web config, kubeconfig): their errors come before
    the exporter listens or watches."""
    config = exporter_config(args)
    access = load_cluster_access(args.kubeconfig, args.context)

    async def body(stop: asyncio.Event) -> None:
        async with Exporter(access, config):
            await stop.wait()

    return body


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(list(sys.argv[1:] if argv is None else argv))
    prog = PROG if args.command not in (DEMO, DEVICES) else f"{PROG} {args.command}"
    if args.command == DEVICES:
        return devices.main(args)
    logs.setup(args.log_level)
    try:
        if args.command == DEMO:
            config = demo_config(args)
            asyncio.run(until_signalled(lambda stop: demo.run(config, stop)))
        else:
            asyncio.run(until_signalled(run_exporter(args)))
    except USER_ERRORS as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    except demo.DemoFailed as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
