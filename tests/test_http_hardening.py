"""The exporter's HTTP server under concurrent, oversized, slow and wrong requests."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exporter.apiserver import KubeApiTestServer
from exporter.httpserver import HttpLimits, send_deadline_middleware
from tests.conftest import StartExporter
from tests.helpers import eventually, fixture, parse_exposition, select
from tests.web_helpers import exporter_with

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
