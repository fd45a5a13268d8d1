"""Fixtures that run the real exporter against the project's Kubernetes API test server over
HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.app import Exporter, ExporterConfig, SourceSelection
from exporter.kube.config import load_cluster_access
from exporter.kube.reflector import ReflectorOptions
from tests.helpers import Series, parse_exposition

# Fast reconnects so recovery tests take milliseconds, not seconds.
TEST_REFLECTOR = ReflectorOptions(
    page_size=2, watch_timeout=30, stall_timeout=10, backoff_initial=0.02, backoff_max=0.2
)


class RunningExporter:
    def __init__(self, exporter: Exporter, session: aiohttp.ClientSession) -> None:
        self.exporter = exporter
        self.session = session

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.exporter.port}"

    async def get(self, path: str, **kwargs: Any) -> tuple[int, bytes, dict[str, str]]:
        async with self.session.get(self.url + path, **kwargs) as resp:
            return resp.status, await resp.read(), dict(resp.headers)

    async def scrape(self) -> Series:
        status, body, _ = await self.get("/metrics")
        assert status == 200
        return parse_exposition(body.decode())


StartExporter = Callable[..., Any]


@pytest.fixture
async def api() -> AsyncIterator[KubeApiTestServer]:
    async with KubeApiTestServer(host="127.0.0.1", port=0, bookmark_interval=0.2) as server:
        yield server


@pytest.fixture
async def start_exporter(api: KubeApiTestServer, tmp_path: Path) -> AsyncIterator[StartExporter]:
    """Start the exporter against `api` through a kubeconfig file, as a user would."""
    async with AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession())

        async def start(
            reflector: ReflectorOptions = TEST_REFLECTOR,
            sources: SourceSelection | None = None,
            wait_ready: bool = True,
            kubeconfig_token: str | None = None,
        ) -> RunningExporter:
            path = api.write_kubeconfig(tmp_path / "kubeconfig", token=kubeconfig_token)
            access = load_cluster_access(str(path))
            config = ExporterConfig(
                listen_address="127.0.0.1:0", reflector=reflector, sources=sources or SourceSelection()
            )
            exporter = await stack.enter_async_context(Exporter(access, config))
            if wait_ready:
                await exporter.wait_ready(10)
            return RunningExporter(exporter, session)

        yield start


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "image: builds and runs the container image (minutes); runs last")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The slow image build last, so every quick failure shows first. sort() is stable.
    items.sort(key=lambda item: item.get_closest_marker("image") is not None)
