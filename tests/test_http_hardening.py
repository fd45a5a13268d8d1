"""The exporter's HTTP server under concurrent, oversized, slow and wrong requests."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exporter.apiserver import KubeApiTestServer
from exporter.flags import exporter_config, parse
from exporter.httpserver import HttpLimits, send_deadline_middleware
from exporter.kube.reflector import ReflectorOptions
from exporter.logs import JsonFormatter
from exporter.metrics.store import MetricsStore
from exporter.simulator import ClusterSimulator
from exporter.sources.nodeview import NPU_CHIP_FAULT_CODE
from exporter.webconfig import load_web_config
from tests.conftest import StartExporter
from tests.helpers import eventually, fixture, parse_exposition, select
from tests.web_helpers import (
    TCP_ESTABLISHED,
    basic_auth,
    bcrypt_hash,
    exporter_with,
    stalled_request,
    tcp_state,
    write_web_config,
)

SCRAPERS = 50


async def raw_exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


async def test_concurrent_scrapes_succeed_while_watch_events_are_applied(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    for name in ("deviceinfo-node133.json", "deviceinfo-node135-a3-switchfault.json"):
        api.store.apply("configmaps", fixture(name))
    exporter = await start_exporter()
    url = exporter.url + "/metrics"
    stop = asyncio.Event()
    barrier = asyncio.Barrier(SCRAPERS + 1)
    statuses: list[int] = []
    seen_update = asyncio.Event()

    async def scraper(session: aiohttp.ClientSession) -> None:
        await barrier.wait()  # all 50 start together
        while not stop.is_set():
            async with session.get(url) as resp:
                body = await resp.text()
                statuses.append(resp.status)
            if 'node="node134"' in body:
                seen_update.set()

    connector = aiohttp.TCPConnector(limit=SCRAPERS * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(scraper(session)) for _ in range(SCRAPERS)]
        await barrier.wait()
        # Written while the 50 scrapers hammer /metrics: the watch must still deliver and apply it,
        # and a scrape must then serve it.
        api.store.apply("configmaps", fixture("deviceinfo-node134-healthy.json"))
        try:
            await asyncio.wait_for(seen_update.wait(), 15)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    assert len(statuses) >= SCRAPERS
    assert set(statuses) == {200}
    series = await exporter.scrape()
    assert select(series, "mindx_npu_chip_fault_level", node="node134")


async def test_only_get_and_head_on_known_paths(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter()
    for path in ("/nope", "/metrics/extra", "/healthz/x", "/../etc/passwd"):
        assert (await exporter.get(path))[0] == 404, path
    async with exporter.session.head(exporter.url + "/metrics") as resp:
        assert resp.status == 200 and await resp.read() == b""
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        async with exporter.session.request(method, exporter.url + "/metrics", data=b"x" * 10_000) as resp:
            assert resp.status == 405, method
            assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
    # A GET with a body is answered; the body is never read.
    status, body, _ = await exporter.get("/metrics", data=b"x" * 100_000)
    assert status == 200 and parse_exposition(body.decode())


async def test_oversized_request_heads_are_refused(
    api: KubeApiTestServer, start_exporter: StartExporter
) -> None:
    exporter = await start_exporter()
    port = exporter.exporter.port
    limits = HttpLimits()
    long_line = b"GET /metrics?" + b"a" * (limits.max_line_size + 10) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    big_value = b"b" * (limits.max_field_size + 10)
    long_field = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + big_value + b"\r\n\r\n"
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(limits.max_headers + 10))
    many_fields = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n"
    for request in (long_line, long_field, many_fields):
        response = await raw_exchange(port, request)
        assert status_of(response) in (400, 413, 414, 431), response[:200]
        assert b"mindx_" not in response
    # The server is fine afterwards.
    assert (await exporter.get("/metrics"))[0] == 200


async def test_slow_and_silent_clients_are_disconnected(api: KubeApiTestServer, tmp_path: Path) -> None:
    limits = HttpLimits(keepalive_timeout=0.5)
    async with exporter_with(api, tmp_path, http=limits) as exporter:
        port = exporter.port

        # 1. Connects and sends nothing.
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert time.monotonic() - started < 5
        writer.close()

        # 2. Sends its request head one byte every 50 ms and would never finish in time.
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"s" * 1000 + b"\r\n\r\n"
        closed = False
        for byte in head:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                closed = True
                break
            if reader.at_eof() or (await _eof_within(reader, 0.05)):
                closed = True
                break
        assert closed, "the server waited for the whole slow request head"
        assert time.monotonic() - started < 5
        writer.close()

        # 3. Idle keep-alive connection after a response.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.readuntil(b"ok\n"), 5)
        assert response.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        assert time.monotonic() - started < 5
        writer.close()

        # Normal clients are unaffected.
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            assert resp.status == 200


async def _eof_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return False
    return data == b""


async def test_a_client_that_does_not_read_the_response_is_cut_off(caplog: pytest.LogCaptureFixture) -> None:
    """aiohttp has no send timeout; the exporter's outermost middleware bounds the time a response
    may take to be handed over, so a scraper that never reads cannot pin the body in memory."""
    body = b"x" * (32 * 1024 * 1024)  # far more than both sockets' buffers on loopback
    finished: list[str] = []

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application(middlewares=[send_deadline_middleware(0.5)])
    app.router.add_get("/big", big)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        # A normal client receives everything through the middleware.
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/big") as resp:
            assert len(await resp.read()) == len(body)
            finished.append("normal")
        # A client that sends the request and then never reads.
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        server = runner.server
        assert server is not None

        async def cut_off() -> None:
            assert not server.connections

        with caplog.at_level(logging.WARNING, logger="exporter.web"):
            await eventually(cut_off, timeout=10)
        assert any("too slow to read" in r.getMessage() for r in caplog.records)
        sock.close()
    finally:
        await runner.cleanup()
    assert finished == ["normal"]


# --- clients that request /metrics and never read: the real handler, multi-MB bodies ---------------

SIMULATED_NODES = 2000  # ~8 MB of exposition
LIST_FAST = ReflectorOptions(
    page_size=500, watch_timeout=30, stall_timeout=10, backoff_initial=0.02, backoff_max=0.2
)


def add_random_series(store: MetricsStore, nodes: int) -> None:
    """Series whose label values are random (as pod UIDs are): gzip shrinks them only by half, so
    the compressed body too is larger than what the kernel buffers for a client that never reads."""
    rng = random.Random(7)
    for i in range(nodes):
        value = base64.b64encode(rng.randbytes(16 * 192)).decode()
        block = "".join(
            f'mindx_npu_chip_fault_code{{source="noise",node="n{i:06d}",npu="{chip}",id="{chip}",'
            f'fault_type="x",fault_code="{value[chip * 256 : (chip + 1) * 256]}",fault_level="x"}} 1\n'
            for chip in range(16)
        )
        store.set("noise", ("noise", f"n{i:06d}"), {NPU_CHIP_FAULT_CODE: block.encode()})


def metrics_request(gzip: bool) -> bytes:
    encoding = b"Accept-Encoding: gzip\r\n" if gzip else b""
    return b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n" + encoding + b"\r\n"


async def rejections(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """mindx_exporter_http_rejected_total by reason, from a scrape (only those lines are parsed:
    the rest of a 28 MB body would take the parser seconds)."""
    async with session.get(url, headers={"Accept-Encoding": "identity"}) as resp:
        assert resp.status == 200
        text = await resp.text()
    family = "mindx_exporter_http_rejected_total"
    lines = "".join(line + "\n" for line in text.splitlines() if line.startswith(family))
    series = parse_exposition(lines)
    return {dict(labels)["reason"]: value for (_, labels), value in series.items()}


@pytest.mark.parametrize(
    ("gzip", "big"),
    [(False, True), (True, True), (True, False)],
    ids=["plain", "gzip", "gzip-within-kernel-buffers"],
)
async def test_a_scraper_that_never_reads_metrics_is_cut_off_at_the_deadline(
    api: KubeApiTestServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, gzip: bool, big: bool
) -> None:
    """The real /metrics handler streams its body itself; the send deadline still applies to it,
    plain and gzip, and other scrapes are served meanwhile. A body small enough to fit in the
    kernel's buffers (the simulated cluster's 0.4 MB gzip) is not sent until the client has it."""
    ClusterSimulator(api.store, nodes=SIMULATED_NODES, seed=3).populate()
    limits = HttpLimits(send_timeout=2.0)
    async with exporter_with(api, tmp_path, http=limits, reflector=LIST_FAST) as exporter:
        if big:
            add_random_series(exporter.store, 3300)
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.get(url, headers=headers) as resp:
                size = len(await resp.read())
            assert resp.status == 200 and (size > 10_000_000 if big else size < 1_000_000)

            with caplog.at_level(logging.WARNING, logger="exporter.web"):
                stalled = await asyncio.to_thread(stalled_request, exporter.port, metrics_request(gzip))
                try:
                    # Other scrapes are served in full while that one is stuck.
                    for _ in range(3):
                        async with session.get(url, headers=headers) as resp:
                            assert resp.status == 200
                            assert len(await resp.read()) == int(resp.headers["Content-Length"])

                    async def closed_by_server() -> None:
                        assert tcp_state(stalled) != TCP_ESTABLISHED

                    await eventually(closed_by_server, timeout=30)
                finally:
                    stalled.close()
            too_slow = [r for r in caplog.records if "too slow to read" in r.getMessage()]
            assert len(too_slow) == 1
            counts = await rejections(session, url)
        assert counts["send_timeout"] == 1
        assert counts["too_many_scrapes"] == 0


async def test_scrapes_that_find_every_turn_taken_by_stalled_clients_cut_them_off(
    api: KubeApiTestServer, tmp_path: Path
) -> None:
    """Clients that stopped reading cannot keep Prometheus out for the whole send deadline."""
    ClusterSimulator(api.store, nodes=SIMULATED_NODES, seed=3).populate()
    limits = HttpLimits(send_timeout=600.0, max_scrapes=2)
    async with exporter_with(api, tmp_path, http=limits, reflector=LIST_FAST) as exporter:
        add_random_series(exporter.store, 3300)
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            async with session.get(url) as resp:
                assert resp.status == 200  # builds the body once
            stalled = [
                await asyncio.to_thread(stalled_request, exporter.port, metrics_request(gzip))
                for gzip in (False, True)
            ]
            try:
                # Both turns are held by clients that do not read; two scrapes at once cut both off.
                async def scrape() -> None:
                    async with session.get(url) as resp:
                        assert resp.status == 200
                        assert len(await resp.read()) == int(resp.headers["Content-Length"])

                await asyncio.gather(scrape(), scrape())

                async def cut_off() -> None:
                    assert all(tcp_state(sock) != TCP_ESTABLISHED for sock in stalled)

                await eventually(cut_off, timeout=30)
            finally:
                for sock in stalled:
                    sock.close()
            counts = await rejections(session, url)
        assert counts["stalled_scrape"] == 2
        assert counts["send_timeout"] == counts["too_many_scrapes"] == 0


def slow_reader(port: int, stop: threading.Event) -> None:
    """Reads /metrics at about 1 MB/s: slow, but never stalled."""
    sock = socket.create_connection(("127.0.0.1", port))
    try:
        sock.sendall(metrics_request(False))
        while not stop.is_set() and sock.recv(65536):
            time.sleep(0.05)
    except OSError:
        pass
    finally:
        sock.close()


async def test_scrapes_beyond_the_limit_get_503_while_the_others_progress(
    api: KubeApiTestServer, tmp_path: Path
) -> None:
    ClusterSimulator(api.store, nodes=SIMULATED_NODES, seed=3).populate()
    limits = HttpLimits(send_timeout=20.0, max_scrapes=1)
    async with exporter_with(api, tmp_path, http=limits, reflector=LIST_FAST) as exporter:
        add_random_series(exporter.store, 3300)
        url = f"http://127.0.0.1:{exporter.port}/metrics"
        stop = threading.Event()
        reader = asyncio.create_task(asyncio.to_thread(slow_reader, exporter.port, stop))
        try:
            async with aiohttp.ClientSession() as session:
                await asyncio.sleep(0.5)  # the slow reader has the only turn (28 MB at 1 MB/s)
                async with session.get(url) as resp:
                    assert resp.status == 503
                    assert resp.headers["Retry-After"] == "1"
                    assert "too many scrapes in progress (limit 1, --web.max-scrapes)" in await resp.text()
                async with session.get(f"http://127.0.0.1:{exporter.port}/healthz") as resp:
                    assert resp.status == 200  # not a scrape
                stop.set()
                await reader
                counts = await eventually(lambda: rejections(session, url), timeout=10)
        finally:
            stop.set()
            await reader
        assert counts["too_many_scrapes"] == 1
        assert counts["stalled_scrape"] == counts["send_timeout"] == 0


# --- malformed requests: one rate-limited line, never the request's bytes ------------------------------

SECRET_PASSWORD = "hunter2-log-canary-5d1c"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record from every logger, at debug level, formatted as the exporter writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def test_a_flood_of_malformed_requests_logs_a_few_lines_without_their_bytes(
    api: KubeApiTestServer, tmp_path: Path, captured: io.StringIO
) -> None:
    users = {"basic_auth_users": {"prometheus": bcrypt_hash(SECRET_PASSWORD)}}
    web_config = load_web_config(write_web_config(tmp_path / "web.yml", users))
    async with exporter_with(api, tmp_path, web_config=web_config) as exporter:
        port = exporter.port
        captured.seek(0)
        captured.truncate()
        # An Authorization header over the 8,190-byte limit: refused before auth runs, and the
        # parser's error quotes the line, base64 of user:password.
        credentials = basic_auth("prometheus", SECRET_PASSWORD + "#" * 9000)
        oversized_auth = f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {credentials}\r\n\r\n".encode()
        response = await raw_exchange(port, oversized_auth)
        assert status_of(response) in (400, 431)
        # 300 requests with a 64 KiB header, and 100 with a request line over the limit.
        big_header = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"f" * 65536 + b"\r\n\r\n"
        long_line = b"GET /" + b"p" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        for request in [big_header] * 300 + [long_line] * 100:
            assert status_of(await raw_exchange(port, request)) in (400, 414, 431)

        log_text = captured.getvalue()
        lines = log_text.splitlines()
        records = [json.loads(line) for line in lines]  # structured: one JSON object per line
        refused = [r for r in records if r["msg"] == "bad HTTP request refused"]
        assert len(refused) == 1  # one line per 10 s however many requests
        assert refused[0]["level"] == "warning" and refused[0]["status"] == 400
        assert refused[0]["error"] in ("LineTooLong", "BadHttpMessage")
        assert len(lines) <= 3, lines
        assert "Traceback" not in log_text and "aiohttp.server" not in log_text
        encoded = credentials.removeprefix("Basic ")
        for leak in (SECRET_PASSWORD, encoded[:24], encoded[100:124], "fffffff", "ppppppp"):
            assert leak not in log_text

        # Counted, and the server is fine afterwards (the right password works).
        status, body, _ = await fetch_with_auth(port, basic_auth("prometheus", SECRET_PASSWORD))
        assert status == 200
        assert select(
            parse_exposition(body.decode()), "mindx_exporter_http_rejected_total", reason="bad_request"
        ) == {frozenset({("reason", "bad_request")}): 401.0}


async def fetch_with_auth(port: int, authorization: str) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{port}/metrics"
        async with session.get(url, headers={"Authorization": authorization}) as resp:
            return resp.status, await resp.read(), dict(resp.headers)


def test_http_limit_flags(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["--web.send-timeout", "5", "--web.max-scrapes", "3"])
    assert exporter_config(args).http == HttpLimits(send_timeout=5.0, max_scrapes=3)
    assert exporter_config(parse([])).http == HttpLimits()
    for flag, value in (("--web.send-timeout", "0"), ("--web.max-scrapes", "x")):
        with pytest.raises(SystemExit) as exited:
            parse([flag, value])
        assert exited.value.code == 2
        assert f"argument {flag}: expected a" in capsys.readouterr().err
    # The real command: status 2, one line, no traceback.
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--web.max-scrapes", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "argument --web.max-scrapes: expected a whole number from 1 to 10000, got -1" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
