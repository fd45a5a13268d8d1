"""The long-running commands as a user runs them: `mindx-fault-exporter [flags]` (no command, as
before commands existed) and `mindx-fault-exporter demo` serve /metrics and stop cleanly, exit
status 0, on SIGTERM or SIGINT — the one signal loop both share."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import aiohttp

from exporter.apiserver import KubeApiTestServer
from tests.helpers import fixture
from tests.test_cli_errors import ROOT, cli_env


async def start(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "exporter",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
        cwd=ROOT,
    )


async def started_port(proc: asyncio.subprocess.Process) -> int:
    """The port from the "exporter started" log line (the exporter listens on port 0 here)."""
    assert proc.stderr is not None
    while line := await asyncio.wait_for(proc.stderr.readline(), 60):
        record = json.loads(line)
        if record.get("msg") == "exporter started":
            return int(record["port"])
    raise AssertionError("the exporter ended without starting")


async def stop(proc: asyncio.subprocess.Process, sig: signal.Signals) -> tuple[int, str]:
    proc.send_signal(sig)
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


async def test_exporter_without_a_command_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with KubeApiTestServer() as api:
        api.store.apply("configmaps", fixture("deviceinfo-node133.json"))
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        proc = await start("--kubeconfig", str(kubeconfig), "--web.listen-address", "127.0.0.1:0")
        port = await started_port(proc)
        async with aiohttp.ClientSession() as http:
            for _ in range(600):
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        break
                await asyncio.sleep(0.1)
            async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                body = await resp.text()
        assert 'mindx_npu_chip_fault_level{source="device-plugin",node="node133"' in body
        code, stderr = await stop(proc, signal.SIGTERM)
        assert code == 0 and "Traceback" not in stderr


async def test_demo_serves_and_stops_on_sigint() -> None:
    proc = await start("demo", "--nodes", "3", "--web.listen-address", "127.0.0.1:0")
    assert proc.stdout is not None
    url = ""
    while line := (await asyncio.wait_for(proc.stdout.readline(), 60)).decode():
        if line.strip().startswith("metrics:"):
            url = line.split()[-1]
            break
    assert url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200 and "mindx_npu_chip_fault_level{" in await resp.text()
    code, stderr = await stop(proc, signal.SIGINT)
    assert code == 0 and "Traceback" not in stderr
