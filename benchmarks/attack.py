"""Attack benchmark: clients that never read /metrics, a password flood and a malformed-request flood
against the exporter, running as its own process with basic auth, watching a simulated cluster.

The benchmark process runs the project's in-memory Kubernetes API server and the cluster simulator
(A3 nodes, all sources), writes a web config with bcrypt users, and starts ``python3 -m exporter``
on 127.0.0.1. Phases, in order:

1. baseline: RSS and the latency of authenticated scrapes (gzip, as Prometheus asks);
2. slow readers: ``--slow-readers`` clients send ``GET /metrics`` (half plain, half gzip) with a
   4 KiB receive buffer and never read. Meanwhile a scraper scrapes every second as Prometheus
   would (10 s timeout). Reported: RSS before / peak / after, when the exporter cut the clients
   off, the scraper's statuses and latencies, the kernel's TCP memory;
3. password flood: ``--flood-clients`` clients send wrong passwords (half for the configured user,
   half for unknown users) as fast as they are answered, for ``--flood-seconds``. Meanwhile
   users the exporter has never verified log in with the right password, one every 0.5 s
   (Prometheus' first scrape after a restart). Reported: their statuses and latencies, the
   flood's statuses, the exporter's CPU use;
4. malformed requests: ``--malformed`` requests with a 64 KiB header; reported: log lines and bytes.

Figures are a report, never a test. Run from the repository root::

    python3 -m benchmarks.attack                  # 5,000 nodes, 200 slow readers, 40 guessers
    python3 -m benchmarks.attack --nodes 1000 --slow-readers 50 --json attack.json

docs/benchmarks.md holds the measured results; docs/security.md the guarantees they check.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import yaml

from benchmarks.scale import cpu_seconds, free_port, log, memory_mb, stop_process, wait_ready
from exporter.apiserver import KubeApiTestServer, Store
from exporter.simulator import ClusterSimulator, FaultRates

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "attack-benchmark-password"
TCP_ESTABLISHED = 1
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Result:
    nodes: int
    settings: dict[str, Any]
    body_plain_mb: float = 0.0
    body_gzip_mb: float = 0.0
    rss_ready_mb: float = 0.0
    baseline_ms: dict[str, float] = field(default_factory=dict)
    slow: dict[str, Any] = field(default_factory=dict)
    flood: dict[str, Any] = field(default_factory=dict)
    malformed: dict[str, Any] = field(default_factory=dict)


def summary(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {}
    ms = sorted(x * 1000 for x in latencies_s)
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
        "max_ms": round(ms[-1], 1),
    }


def tcp_memory_mb() -> float:
    """The kernel's memory for TCP buffers, system-wide (both ends of loopback connections)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * PAGE / 1e6
    return 0.0


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def stalled_request(port: int, gzip: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    encoding = "Accept-Encoding: gzip\r\n" if gzip else ""
    request = (
        f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {basic('prometheus', PASSWORD)}\r\n"
        f"{encoding}\r\n"
    )
    sock.sendall(request.encode())
    return sock


async def scrape(
    session: aiohttp.ClientSession, url: str, user: str = "prometheus"
) -> tuple[int, float, int]:
    """(status, seconds, body bytes); status 0 for a timeout or a broken connection."""
    headers = {"Authorization": basic(user, PASSWORD), "Accept-Encoding": "gzip"}
    started = time.perf_counter()
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            body = await resp.read()
            return resp.status, time.perf_counter() - started, len(body)
    except (aiohttp.ClientError, TimeoutError):
        return 0, time.perf_counter() - started, 0


def statuses(values: list[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    return dict(sorted(counts.items()))


async def rejections(url: str) -> dict[str, float]:
    """The exporter's mindx_exporter_http_rejected_total by reason."""
    headers = {"Authorization": basic("prometheus", PASSWORD), "Accept-Encoding": "identity"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        text = await resp.text()
    counts = {}
    for line in text.splitlines():
        if line.startswith("mindx_exporter_http_rejected_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            counts[reason] = float(line.rsplit(" ", 1)[1])
    return counts


def log_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return data.count(b"\n"), len(data)


async def slow_readers(result: Result, args: argparse.Namespace, port: int, pid: int, log_path: Path) -> None:
    url = f"http://127.0.0.1:{port}/metrics"
    rss_before, tcp_before = memory_mb(pid, "VmRSS"), tcp_memory_mb()
    lines0, bytes0 = log_size(log_path)
    rejected0 = await rejections(url)
    log(f"slow readers: opening {args.slow_readers} clients that never read")
    started = time.monotonic()
    sockets = [await asyncio.to_thread(stalled_request, port, i % 2 == 1) for i in range(args.slow_readers)]
    closed_at: dict[int, float] = {}
    rss_peak, tcp_peak = rss_before, tcp_before
    scrapes: list[tuple[int, float, int]] = []
    stop = asyncio.Event()

    async def scraper() -> None:
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            while not stop.is_set():
                scrapes.append(await scrape(session, url))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    task = asyncio.create_task(scraper())
    limit = started + args.send_timeout + 20
    while time.monotonic() < limit and len(closed_at) < len(sockets):
        for i, sock in enumerate(sockets):
            if i not in closed_at and tcp_state(sock) != TCP_ESTABLISHED:
                closed_at[i] = time.monotonic() - started
        rss_peak = max(rss_peak, memory_mb(pid, "VmRSS"))
        tcp_peak = max(tcp_peak, tcp_memory_mb())
        await asyncio.sleep(0.25)
    stop.set()
    await task
    for sock in sockets:
        sock.close()
    await asyncio.sleep(args.settle)
    lines1, bytes1 = log_size(log_path)
    rejected1 = await rejections(url)
    cut = sorted(closed_at.values())
    ok = [s for s in scrapes if s[0] == 200]
    result.slow = {
        "clients": len(sockets),
        "rss_before_mb": round(rss_before, 1),
        "rss_peak_mb": round(rss_peak, 1),
        "rss_after_mb": round(memory_mb(pid, "VmRSS"), 1),
        "tcp_mem_before_mb": round(tcp_before, 1),
        "tcp_mem_peak_mb": round(tcp_peak, 1),
        "tcp_mem_after_mb": round(tcp_memory_mb(), 1),
        "cut_off": len(cut),
        "cut_off_first_s": round(cut[0], 1) if cut else None,
        "cut_off_last_s": round(cut[-1], 1) if cut else None,
        "still_open": len(sockets) - len(cut),
        "rejected": {
            k: rejected1[k] - rejected0.get(k, 0) for k in rejected1 if rejected1[k] != rejected0.get(k, 0)
        },
        "scrapes": statuses([s[0] for s in scrapes]),
        "scrape_latency": summary([s[1] for s in ok]),
        "log_lines": lines1 - lines0,
        "log_bytes": bytes1 - bytes0,
    }


async def password_flood(
    result: Result, args: argparse.Namespace, port: int, pid: int, log_path: Path
) -> None:
    url = f"http://127.0.0.1:{port}/metrics"
    stop = asyncio.Event()
    flood_statuses: list[int] = []
    logins: list[tuple[int, float, int]] = []
    lines0, bytes0 = log_size(log_path)
    connector = aiohttp.TCPConnector(limit=args.flood_clients + 4)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:

        async def guesser(number: int) -> None:
            user = "prometheus" if number % 2 else f"admin{number}"
            attempt = 0
            while not stop.is_set():
                attempt += 1
                headers = {"Authorization": basic(user, f"guess-{number}-{attempt}")}
                try:
                    async with session.get(url, headers=headers) as resp:
                        await resp.read()
                        flood_statuses.append(resp.status)
                except aiohttp.ClientError:
                    flood_statuses.append(0)

        log(f"password flood: {args.flood_clients} clients for {args.flood_seconds:.0f} s")
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        flood = [asyncio.create_task(guesser(n)) for n in range(args.flood_clients)]
        await asyncio.sleep(1.0)  # the flood is running before the first login
        deadline = time.perf_counter() + args.flood_seconds - 1.0
        fresh = 0
        while time.perf_counter() < deadline and fresh < args.fresh_users:
            logins.append(await scrape(session, url, f"fresh{fresh:02d}"))
            fresh += 1
            await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*flood)
        cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0)
    lines1, bytes1 = log_size(log_path)
    result.flood = {
        "clients": args.flood_clients,
        "exporter_cpu_cores": round(cpu, 2),
        "flood_requests": statuses(flood_statuses),
        "fresh_logins": statuses([s[0] for s in logins]),
        "fresh_login_latency": summary([s[1] for s in logins if s[0] == 200]),
        "log_lines": lines1 - lines0,
        "log_bytes": bytes1 - bytes0,
    }


async def malformed(result: Result, args: argparse.Namespace, port: int, log_path: Path) -> None:
    lines0, bytes0 = log_size(log_path)
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"f" * 65536 + b"\r\n\r\n"
    answered: list[int] = []
    log(f"malformed requests: {args.malformed} with a 64 KiB header")
    for _ in range(args.malformed):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            response = await asyncio.wait_for(reader.read(), 10)
            answered.append(int(response.split(b" ", 2)[1]) if response else 0)
        except (ConnectionError, TimeoutError):
            answered.append(0)
        finally:
            writer.close()
    await asyncio.sleep(0.5)
    lines1, bytes1 = log_size(log_path)
    result.malformed = {
        "requests": args.malformed,
        "statuses": statuses(answered),
        "log_lines": lines1 - lines0,
        "log_bytes": bytes1 - bytes0,
    }


def limit_flags(args: argparse.Namespace) -> list[str]:
    """The HTTP limit flags, left out at their defaults so that `--repo` can run an exporter from
    before they existed (for a before/after comparison)."""
    flags = []
    if args.send_timeout != 60.0:
        flags += ["--web.send-timeout", str(args.send_timeout)]
    if args.max_scrapes != 10:
        flags += ["--web.max-scrapes", str(args.max_scrapes)]
    return flags


async def run(args: argparse.Namespace, workdir: Path) -> Result:
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "json"}
    result = Result(args.nodes, settings)
    store = Store()
    async with KubeApiTestServer(store=store, bookmark_interval=5.0) as api:
        ClusterSimulator(store, nodes=args.nodes, seed=1, mix={"A3": 1.0}, rates=FaultRates.calm()).populate()
        kubeconfig = api.write_kubeconfig(workdir / "kubeconfig")
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(args.bcrypt_cost)).decode()
        users = {"prometheus": hashed, **{f"fresh{i:02d}": hashed for i in range(args.fresh_users)}}
        web_config = workdir / "web.yml"
        web_config.write_text(yaml.safe_dump({"basic_auth_users": users}))
        port = free_port()
        log_path = workdir / "exporter.log"
        log(f"{args.nodes} nodes in the API; starting the exporter (log: {log_path})")
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "exporter", "--kubeconfig", str(kubeconfig),
            "--web.listen-address", f"127.0.0.1:{port}", "--web.config.file", str(web_config),
            *limit_flags(args), cwd=args.repo, env={**os.environ, "PYTHONPATH": str(args.repo)},
            stdout=asyncio.subprocess.DEVNULL, stderr=log_path.open("wb"),
        )  # fmt: skip
        try:
            await wait_ready(proc, f"http://127.0.0.1:{port}/readyz", started, 300)
            url = f"http://127.0.0.1:{port}/metrics"
            auth = {"Authorization": basic("prometheus", PASSWORD)}
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                async with session.get(url, headers={**auth, "Accept-Encoding": "identity"}) as resp:
                    result.body_plain_mb = round(len(await resp.read()) / 1e6, 1)
                async with session.get(url, headers={**auth, "Accept-Encoding": "gzip"}) as resp:
                    result.body_gzip_mb = round(len(await resp.read()) / 1e6, 1)
                baseline = [await scrape(session, url) for _ in range(20)]
            result.rss_ready_mb = round(memory_mb(proc.pid, "VmRSS"), 1)
            result.baseline_ms = summary([s[1] for s in baseline])
            await slow_readers(result, args, port, proc.pid, log_path)
            await password_flood(result, args, port, proc.pid, log_path)
            await malformed(result, args, port, log_path)
        finally:
            await stop_process(proc)
    return result


def report(result: Result) -> str:
    s, f, m = result.slow, result.flood, result.malformed
    lines = [
        f"exporter at {result.nodes:,} nodes: /metrics {result.body_plain_mb} MB plain, "
        f"{result.body_gzip_mb} MB gzip; RSS {result.rss_ready_mb} MB; "
        f"scrape p50 {result.baseline_ms.get('p50_ms')} ms, max {result.baseline_ms.get('max_ms')} ms",
        "",
        f"slow readers ({s['clients']} clients, --web.send-timeout {result.settings['send_timeout']}, "
        f"--web.max-scrapes {result.settings['max_scrapes']}):",
        f"  exporter RSS        before {s['rss_before_mb']} MB, peak {s['rss_peak_mb']} MB, "
        f"after {s['rss_after_mb']} MB",
        f"  kernel TCP memory   before {s['tcp_mem_before_mb']} MB, peak {s['tcp_mem_peak_mb']} MB, "
        f"after {s['tcp_mem_after_mb']} MB (system-wide)",
        f"  cut off             {s['cut_off']} of {s['clients']}, first after {s['cut_off_first_s']} s, "
        f"last after {s['cut_off_last_s']} s; still open: {s['still_open']}",
        f"  exporter counted    {s['rejected']} (mindx_exporter_http_rejected_total)",
        f"  other scrapes       {s['scrapes']}, latency {s['scrape_latency']}",
        f"  log                 {s['log_lines']} lines, {s['log_bytes']} bytes",
        "",
        f"password flood ({f['clients']} clients):",
        f"  never-verified logins with the right password: {f['fresh_logins']}, "
        f"latency {f['fresh_login_latency']}",
        f"  flood requests      {f['flood_requests']}",
        f"  exporter CPU        {f['exporter_cpu_cores']} cores",
        f"  log                 {f['log_lines']} lines, {f['log_bytes']} bytes",
        "",
        f"malformed requests ({m['requests']} with a 64 KiB header): {m['statuses']}, "
        f"log {m['log_lines']} lines, {m['log_bytes']} bytes",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.attack", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--nodes", type=int, default=5000, help="simulated A3 nodes (default %(default)s)")
    parser.add_argument(
        "--slow-readers", type=int, default=200, help="clients that never read (default %(default)s)"
    )
    parser.add_argument(
        "--send-timeout", type=float, default=60.0, help="--web.send-timeout (default %(default)s)"
    )
    parser.add_argument("--max-scrapes", type=int, default=10, help="--web.max-scrapes (default %(default)s)")
    parser.add_argument(
        "--flood-clients", type=int, default=40, help="password guessers (default %(default)s)"
    )
    parser.add_argument(
        "--flood-seconds", type=float, default=15.0, help="flood duration (default %(default)s)"
    )
    parser.add_argument(
        "--fresh-users", type=int, default=28, help="never-verified logins (default %(default)s)"
    )
    parser.add_argument(
        "--bcrypt-cost", type=int, default=10, help="cost of the users' hashes (default %(default)s)"
    )
    parser.add_argument(
        "--malformed", type=int, default=1000, help="malformed requests (default %(default)s)"
    )
    parser.add_argument(
        "--settle", type=float, default=10.0, help="seconds before RSS 'after' (default %(default)s)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every figure here")
    parser.add_argument(
        "--repo", type=Path, default=REPO, help="source tree of the exporter to attack (default this one)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mindx-attack-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
