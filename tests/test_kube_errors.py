"""The kube client's failures are typed (exporter.kube.errors), through real HTTP: the project's
Kubernetes API test server, or a tiny 127.0.0.1 server for bodies a real API server never sends.
And a paginated LIST whose continue token expires starts its pages again instead of asking for
the whole collection in one response."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from exporter.apiserver import KubeApiTestServer
from exporter.kube import client as client_module
from exporter.kube.client import KubeClient
from exporter.kube.config import load_cluster_access
from exporter.kube.errors import (
    KubeConnectionError,
    KubeError,
    KubeExpiredError,
    KubeInvalidResponse,
    KubeStalledError,
    KubeStatusError,
    KubeTimeoutError,
)
from exporter.kube.listing import MAX_LIST_RESTARTS, list_all

NAMESPACE = "kube-system"
CM_PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


def configmap(index: int) -> dict[str, object]:
    return {"metadata": {"name": f"cm-{index:03d}", "namespace": NAMESPACE}, "data": {"n": str(index)}}


@pytest.fixture
async def client(api: KubeApiTestServer, tmp_path: Path) -> AsyncIterator[KubeClient]:
    access = load_cluster_access(str(api.write_kubeconfig(tmp_path / "kubeconfig")))
    async with KubeClient(access) as kube:
        yield kube


async def first_error(kube: KubeClient, params: dict[str, str], idle_timeout: float = 5.0) -> KubeError:
    """Watch until the stream fails; the error it fails with."""
    with pytest.raises(KubeError) as caught:
        async for _ in kube.watch(CM_PATH, params, idle_timeout=idle_timeout):
            pass
    return caught.value


# --- status errors ------------------------------------------------------------------------------


async def test_status_errors_carry_code_reason_message_and_retry_after(
    api: KubeApiTestServer, client: KubeClient
) -> None:
    api.refuse(NAMESPACE, "configmaps")
    with pytest.raises(KubeStatusError) as forbidden:
        await client.get_json(CM_PATH, {"limit": "5"})
    err = forbidden.value
    assert (err.code, err.reason, err.category) == (403, "Forbidden", "forbidden")
    assert 'cannot list resource "configmaps"' in err.message and not err.in_stream
    assert str(err).startswith("403 Forbidden: configmaps is forbidden")
    api.allow()

    api.fail_next(1, 429, retry_after=7)
    with pytest.raises(KubeStatusError) as throttled:
        await client.get_json(CM_PATH, {})
    assert (throttled.value.category, throttled.value.retry_after) == ("throttled", 7.0)

    for status, category in (
        (500, "server_error"),
        (503, "server_error"),
        (404, "not_found"),
        (400, "client_error"),
    ):
        api.fail_next(1, status)
        with pytest.raises(KubeStatusError) as failed:
            await client.get_json(CM_PATH, {})
        assert (failed.value.code, failed.value.category) == (status, category)
        assert not isinstance(failed.value, KubeExpiredError)


async def test_expired_resource_version_on_list_and_in_a_watch_stream(
    api: KubeApiTestServer, client: KubeClient
) -> None:
    api.store.apply("configmaps", configmap(1))
    old = str(api.store.resource_version)
    api.store.apply("configmaps", configmap(2))
    api.compact()
    with pytest.raises(KubeExpiredError) as on_list:
        await client.get_json(CM_PATH, {"resourceVersion": old, "resourceVersionMatch": "Exact"})
    assert (on_list.value.code, on_list.value.category, on_list.value.in_stream) == (410, "expired", False)

    # A watch from a compacted resourceVersion: the server answers 200, then an ERROR event.
    in_stream = await first_error(client, {"resourceVersion": old})
    assert isinstance(in_stream, KubeExpiredError) and in_stream.in_stream
    assert in_stream.category == "expired"


# --- connection failures ------------------------------------------------------------------------


async def test_unreachable_server_is_a_connection_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with KubeApiTestServer(port=port) as gone:
        kubeconfig = gone.write_kubeconfig(tmp_path / "kubeconfig")
    async with KubeClient(load_cluster_access(str(kubeconfig))) as kube:
        with pytest.raises(KubeConnectionError) as caught:
            await kube.get_json(CM_PATH, {})
    assert isinstance(caught.value, ConnectionError) and caught.value.category == "connection"
    assert not isinstance(caught.value, KubeTimeoutError)


async def test_list_that_does_not_finish_is_a_timeout(api: KubeApiTestServer, client: KubeClient) -> None:
    api.hang_next(1)
    with pytest.raises(KubeTimeoutError) as caught:
        await client.get_json(CM_PATH, {"limit": "5"}, timeout=0.3)
    err = caught.value
    assert isinstance(err, TimeoutError) and isinstance(err, KubeConnectionError)
    assert err.category == "connection"


async def test_watch_cut_mid_event_and_silent_watch(api: KubeApiTestServer, client: KubeClient) -> None:
    api.store.apply("configmaps", configmap(1))
    api.cut_watches(30, count=1)
    cut = await first_error(client, {})
    assert type(cut) is KubeConnectionError and cut.category == "connection"

    opened = asyncio.Event()
    received: list[tuple[str, dict[str, object]]] = []

    async def watch() -> None:
        async for watch_event in client.watch(CM_PATH, {}, idle_timeout=0.5, on_open=opened.set):
            received.append(watch_event)
            api.mute_watches()

    with pytest.raises(KubeStalledError) as stalled:
        await asyncio.wait_for(watch(), 10)
    assert opened.is_set() and [kind for kind, _ in received] == ["ADDED"]
    assert stalled.value.category == "stalled" and isinstance(stalled.value, TimeoutError)


# --- invalid responses: a 127.0.0.1 server that answers 200 with what no API server sends -----


@pytest.fixture
async def garbage(tmp_path: Path) -> AsyncIterator[tuple[KubeClient, dict[str, bytes]]]:
    bodies: dict[str, bytes] = {}

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        await response.write(bodies[request.path])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    server = KubeApiTestServer(port=port)  # only for its kubeconfig writer; never started
    access = load_cluster_access(str(server.write_kubeconfig(tmp_path / "kubeconfig")))
    try:
        async with KubeClient(access) as kube:
            yield kube, bodies
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("body", "detail"),
    [(b"<html>proxy error</html>", "not JSON"), (b'["a", "list"]', "not an object")],
)
async def test_list_body_that_is_no_object(
    garbage: tuple[KubeClient, dict[str, bytes]], body: bytes, detail: str
) -> None:
    kube, bodies = garbage
    bodies[CM_PATH] = body
    with pytest.raises(KubeInvalidResponse) as caught:
        await kube.get_json(CM_PATH, {})
    assert detail in str(caught.value) and caught.value.category == "invalid_response"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("stream", "detail"),
    [
        (b"{not json\n", "not JSON"),
        (b"42\n", "not an object"),
        (b'{"type":"ADDED"}\n', "without object"),
        (b'{"type":"ADDED","object":"text"}\n', "without object"),
        (b'{"type":"ADDED","object":{"metadata":{"name":"x"' + b" " * 2048, "exceeds"),
    ],
)
async def test_watch_lines_that_are_no_event(
    garbage: tuple[KubeClient, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    stream: bytes,
    detail: str,
) -> None:
    kube, bodies = garbage
    monkeypatch.setattr(client_module, "MAX_WATCH_LINE", 1024)
    good = b'{"type":"ADDED","object":{"metadata":{"name":"first"}}}\n'
    bodies[CM_PATH] = good + stream
    received = []
    with pytest.raises(KubeInvalidResponse) as caught:
        async for watch_event in kube.watch(CM_PATH, {}, idle_timeout=5):
            received.append(watch_event)
    assert received == [("ADDED", {"metadata": {"name": "first"}})]
    assert detail in str(caught.value) and caught.value.category == "invalid_response"


async def test_error_event_with_another_code_is_a_status_error_in_stream(
    garbage: tuple[KubeClient, dict[str, bytes]],
) -> None:
    kube, bodies = garbage
    status = b'{"kind":"Status","status":"Failure","reason":"InternalError","message":"etcd down","code":500}'
    bodies[CM_PATH] = b'{"type":"ERROR","object":' + status + b"}\n"
    with pytest.raises(KubeStatusError) as caught:
        async for _ in kube.watch(CM_PATH, {}, idle_timeout=5):
            pass
    err = caught.value
    assert (err.code, err.reason, err.message, err.in_stream) == (500, "InternalError", "etcd down", True)
    assert err.category == "server_error"


# --- pagination when a continue token expires ---------------------------------------------------


def lists_of(api: KubeApiTestServer, since: int) -> list[str]:
    return [path for method, path in api.request_log[since:] if method == "GET" and path.startswith(CM_PATH)]


async def test_expired_continue_token_restarts_the_pages(api: KubeApiTestServer, client: KubeClient) -> None:
    for index in range(10):
        api.store.apply("configmaps", configmap(index))
    api.expire_continue_tokens(2)  # the first two lists each lose their token on page 2
    restarts: list[KubeExpiredError] = []
    since = len(api.request_log)
    result = await list_all(client, CM_PATH, {}, page_size=3, on_restart=restarts.append)
    assert sorted(obj["metadata"]["name"] for obj in result.objects) == [f"cm-{i:03d}" for i in range(10)]
    assert result.resource_version == str(api.store.resource_version)
    assert len(restarts) == 2 and all(err.category == "expired" for err in restarts)
    paths = lists_of(api, since)
    assert all("limit=3" in path for path in paths), paths
    first_pages = [path for path in paths if "continue=" not in path]
    assert len(first_pages) == 3  # started twice again, then 4 pages of 3


async def test_continue_tokens_that_keep_expiring_give_up_without_an_unpaginated_list(
    api: KubeApiTestServer, client: KubeClient
) -> None:
    for index in range(10):
        api.store.apply("configmaps", configmap(index))
    api.expire_continue_tokens(1000)
    since = len(api.request_log)
    with pytest.raises(KubeExpiredError):
        await list_all(client, CM_PATH, {}, page_size=3)
    paths = lists_of(api, since)
    assert all("limit=3" in path for path in paths), paths
    assert len([path for path in paths if "continue=" not in path]) == MAX_LIST_RESTARTS + 1
