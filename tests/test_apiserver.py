"""The in-memory kube-apiserver, exercised over real HTTP on 127.0.0.1 (aiohttp, the official
``kubernetes`` client and, when installed, kubectl)."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kubernetes
import orjson
import pytest
import pytest_asyncio

from exporter.apiserver import KubeApiTestServer, SelectorError, Store, parse_label_selector

CM = "/api/v1/namespaces/default/configmaps"


@pytest_asyncio.fixture
async def api() -> AsyncIterator[KubeApiTestServer]:
    async with KubeApiTestServer(bookmark_interval=0.2) as server:
        yield server


@pytest_asyncio.fixture
async def http(api: KubeApiTestServer) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=api.url) as session:
        yield session


def configmap(
    name: str, labels: dict[str, str] | None = None, namespace: str = "default", **data: str
) -> dict:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels is not None:
        metadata["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


async def read_event(response: aiohttp.ClientResponse, timeout: float = 5.0) -> dict | None:
    """The next watch event, or None at a clean end of stream."""
    line = await asyncio.wait_for(response.content.readline(), timeout)
    return orjson.loads(line) if line else None


async def read_live_event(response: aiohttp.ClientResponse) -> dict:
    """The next non-BOOKMARK event."""
    while True:
        event = await read_event(response)
        assert event is not None
        if event["type"] != "BOOKMARK":
            return event


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def list_names(http: aiohttp.ClientSession, path: str, **params: str) -> list[str]:
    async with http.get(path, params=params) as response:
        assert response.status == 200, await response.text()
        return [item["metadata"]["name"] for item in (await response.json())["items"]]


# -- CRUD -----------------------------------------------------------------------------------------------


async def test_create_get_update_patch_delete(http: aiohttp.ClientSession) -> None:
    async with http.post(CM, json=configmap("a", {"app": "x"}, k="1")) as response:
        assert response.status == 201
        created = await response.json()
    meta = created["metadata"]
    assert created["kind"] == "ConfigMap" and meta["uid"] and meta["creationTimestamp"]

    async with http.post(CM, json=configmap("a")) as response:
        assert response.status == 409
        status = await response.json()
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "AlreadyExists", 409)

    async with http.get(f"{CM}/a") as response:
        assert (await response.json()) == created

    stale = configmap("a", k="2")
    stale["metadata"]["resourceVersion"] = "1"
    async with http.put(f"{CM}/a", json=stale) as response:
        assert response.status == 409
        assert (await response.json())["reason"] == "Conflict"

    fresh = configmap("a", {"app": "x"}, k="2")
    fresh["metadata"]["resourceVersion"] = meta["resourceVersion"]
    async with http.put(f"{CM}/a", json=fresh) as response:
        updated = await response.json()
    assert updated["data"] == {"k": "2"} and updated["metadata"]["uid"] == meta["uid"]
    assert int(updated["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    async with http.put(f"{CM}/a", json=configmap("a", {"app": "x"}, k="2")) as response:
        assert (await response.json())["metadata"]["resourceVersion"] == updated["metadata"][
            "resourceVersion"
        ]

    merge = {"data": {"k": None, "m": "1"}}
    headers = {"Content-Type": "application/merge-patch+json"}
    async with http.patch(f"{CM}/a", data=orjson.dumps(merge), headers=headers) as response:
        assert (await response.json())["data"] == {"m": "1"}
    strategic = {"metadata": {"labels": {"tier": "web"}}}
    headers = {"Content-Type": "application/strategic-merge-patch+json"}
    async with http.patch(f"{CM}/a", data=orjson.dumps(strategic), headers=headers) as response:
        assert (await response.json())["metadata"]["labels"] == {"app": "x", "tier": "web"}
    json_patch = [
        {"op": "test", "path": "/data/m", "value": "1"},
        {"op": "replace", "path": "/data/m", "value": "2"},
    ]
    headers = {"Content-Type": "application/json-patch+json"}
    async with http.patch(f"{CM}/a", data=orjson.dumps(json_patch), headers=headers) as response:
        assert (await response.json())["data"] == {"m": "2"}

    async with http.delete(f"{CM}/a") as response:
        status = await response.json()
        assert status["status"] == "Success" and status["details"]["uid"] == meta["uid"]
    for method in ("GET", "DELETE", "PUT"):
        async with http.request(method, f"{CM}/a", json=configmap("a")) as response:
            assert response.status == 404
            assert (await response.json())["reason"] == "NotFound"


async def test_unknown_resource_and_bad_body(http: aiohttp.ClientSession) -> None:
    async with http.get("/api/v1/namespaces/default/secrets") as response:
        assert response.status == 404 and (await response.json())["kind"] == "Status"
    async with http.post(CM, data=b"{not json", headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400 and (await response.json())["reason"] == "BadRequest"
    async with http.post(CM, json={"metadata": {"name": "a"}, "data": {"k": 1}}) as response:
        assert response.status == 400 and "data" in (await response.json())["message"]


async def test_discovery(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    api.store.create("configmaps", configmap("a", namespace="mindx-dl"))
    async with http.get("/api/v1") as response:
        names = {resource["name"] for resource in (await response.json())["resources"]}
    assert names == {"configmaps", "events", "namespaces"}
    assert await list_names(http, "/api/v1/namespaces") == ["default", "mindx-dl"]
    async with http.get("/version") as response:
        assert (await response.json())["major"] == "1"


# -- LIST -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", ["a", "b", "c", "d"]),
        ("env=prod", ["a", "c"]),
        ("env==prod", ["a", "c"]),
        ("env!=prod", ["b", "d"]),
        ("tier", ["a", "b"]),
        ("!tier", ["c", "d"]),
        ("env in (dev, qa)", ["b"]),
        ("env notin (prod)", ["b", "d"]),
        ("env=prod,tier", ["a"]),
        ("env=prod,tier notin (web)", ["c"]),  # a missing label satisfies notin
    ],
)
async def test_list_label_selector(
    http: aiohttp.ClientSession, api: KubeApiTestServer, selector: str, expected: list[str]
) -> None:
    for name, labels in [
        ("d", {}),
        ("c", {"env": "prod"}),
        ("b", {"env": "dev", "tier": "db"}),
        ("a", {"env": "prod", "tier": "web"}),
    ]:
        api.store.create("configmaps", configmap(name, labels))
    assert await list_names(http, CM, labelSelector=selector) == expected


@pytest.mark.parametrize("selector", ["env in prod", "=x", "env=a b", "-bad-=x", "env notin (a"])
def test_label_selector_syntax_errors(selector: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


async def test_list_field_selector_and_namespaces(
    http: aiohttp.ClientSession, api: KubeApiTestServer
) -> None:
    for namespace in ("default", "other"):
        for name in ("a", "b"):
            api.store.create("configmaps", configmap(name, namespace=namespace))
    assert await list_names(http, CM, fieldSelector="metadata.name=a") == ["a"]
    assert await list_names(http, "/api/v1/configmaps", fieldSelector="metadata.name!=a") == ["b", "b"]
    async with http.get(
        "/api/v1/configmaps", params={"fieldSelector": "metadata.namespace=other"}
    ) as response:
        items = (await response.json())["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("other", "a"),
        ("other", "b"),
    ]
    assert "kind" not in items[0]  # list items carry no TypeMeta, as with a real apiserver
    async with http.get(CM, params={"fieldSelector": "data.x=1"}) as response:
        assert response.status == 400
        assert (await response.json())["message"] == "field label not supported: data.x"


async def test_events_list_kind_and_field_selector(
    http: aiohttp.ClientSession, api: KubeApiTestServer
) -> None:
    for name, kind in (("e1", "Pod"), ("e2", "Node")):
        event = {"metadata": {"name": name}, "involvedObject": {"kind": kind}, "reason": "Occur"}
        api.store.create("events", event, namespace="kube-system")
    async with http.get("/api/v1/events", params={"fieldSelector": "involvedObject.kind=Node"}) as response:
        body = await response.json()
    assert body["kind"] == "EventList" and [i["metadata"]["name"] for i in body["items"]] == ["e2"]


async def test_pagination_is_consistent_across_writes(
    http: aiohttp.ClientSession, api: KubeApiTestServer
) -> None:
    for index in range(10):
        api.store.create("configmaps", configmap(f"cm{index}", v="old"))

    async def page(token: str | None) -> dict:
        params = {"limit": "4", **({"continue": token} if token else {})}
        async with http.get(CM, params=params) as response:
            assert response.status == 200
            result: dict = await response.json()
            return result

    first = await page(None)
    snapshot_rv = first["metadata"]["resourceVersion"]
    assert first["metadata"]["remainingItemCount"] == 6
    # Writes between pages must not show up in the later pages of this list.
    api.store.delete("configmaps", "default", "cm8")
    api.store.patch("configmaps", "default", "cm5", {"data": {"v": "new"}})
    api.store.create("configmaps", configmap("cm99"))
    api.store.create("configmaps", configmap("cm0a"))

    second = await page(first["metadata"]["continue"])
    third = await page(second["metadata"]["continue"])
    assert "continue" not in third["metadata"] and "remainingItemCount" not in third["metadata"]
    items = first["items"] + second["items"] + third["items"]
    assert [item["metadata"]["name"] for item in items] == [f"cm{index}" for index in range(10)]
    assert {page["metadata"]["resourceVersion"] for page in (second, third)} == {snapshot_rv}
    assert all(int(item["metadata"]["resourceVersion"]) <= int(snapshot_rv) for item in items)
    assert {item["data"]["v"] for item in items} == {"old"}
    assert "cm99" in await list_names(http, CM)


async def test_continue_expires_after_compaction(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    for index in range(3):
        api.store.create("configmaps", configmap(f"cm{index}"))
    async with http.get(CM, params={"limit": "1"}) as response:
        first = await response.json()
    api.compact()
    async with http.get(CM, params={"limit": "1", "continue": first["metadata"]["continue"]}) as response:
        assert response.status == 410
        status = await response.json()
    assert (status["reason"], status["code"]) == ("Expired", 410)
    exact = {"resourceVersion": first["metadata"]["resourceVersion"], "resourceVersionMatch": "Exact"}
    async with http.get(CM, params=exact) as response:
        assert response.status == 410 and (await response.json())["reason"] == "Expired"


async def test_expire_continue_tokens_hook(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    for index in range(3):
        api.store.create("configmaps", configmap(f"cm{index}"))
    api.expire_continue_tokens(1)
    async with http.get(CM, params={"limit": "1"}) as response:  # first pages are not affected
        first = await response.json()
    token = {"limit": "1", "continue": first["metadata"]["continue"]}
    async with http.get(CM, params=token) as response:
        assert response.status == 410 and (await response.json())["reason"] == "Expired"
    async with http.get(CM, params={"limit": "1"}) as response:
        token["continue"] = (await response.json())["metadata"]["continue"]
    async with http.get(CM, params=token) as response:  # only one was expired
        assert response.status == 200 and len((await response.json())["items"]) == 1


async def test_refuse_hook_answers_like_rbac(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    api.store.create("configmaps", configmap("cm0"))
    api.refuse("default", "configmaps")
    for params in ({"limit": "5"}, {"watch": "1"}):
        async with http.get(CM, params=params) as response:
            assert response.status == 403
            status = await response.json()
        verb = "watch" if "watch" in params else "list"
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "Forbidden", 403)
        assert status["message"] == (
            'configmaps is forbidden: User "system:serviceaccount:mindx-fault-exporter:mindx-fault-exporter" '
            f'cannot {verb} resource "configmaps" in API group "" in the namespace "default"'
        )
    async with http.get(api.url + "/api/v1/namespaces/other/configmaps") as response:
        assert response.status == 200  # other namespaces are not refused
    api.refuse("", "events", status=404)  # cluster-wide Events
    async with http.get(api.url + "/api/v1/events") as response:
        assert response.status == 404 and (await response.json())["reason"] == "NotFound"
    api.allow()
    async with http.get(CM) as response:
        assert response.status == 200 and len((await response.json())["items"]) == 1


# -- WATCH ----------------------------------------------------------------------------------------------


async def test_watch_from_zero_then_live(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    api.store.create("configmaps", configmap("a"))
    api.store.create("configmaps", configmap("b"))
    async with http.get(CM, params={"watch": "1", "resourceVersion": "0"}) as response:
        assert response.headers["Content-Type"] == "application/json"
        initial = [await read_event(response) for _ in range(2)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in initial if e] == [
            ("ADDED", "a"),
            ("ADDED", "b"),
        ]
        assert initial[0] is not None and initial[0]["object"]["kind"] == "ConfigMap"

        api.store.patch("configmaps", "default", "a", {"data": {"x": "1"}})
        modified = await read_live_event(response)
        assert (modified["type"], modified["object"]["data"]) == ("MODIFIED", {"x": "1"})
        deleted_rv = api.store.delete("configmaps", "default", "b")["metadata"]["resourceVersion"]
        deleted = await read_live_event(response)
        assert (deleted["type"], deleted["object"]["metadata"]["resourceVersion"]) == ("DELETED", deleted_rv)


async def test_watch_from_list_resource_version(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    api.store.create("configmaps", configmap("a"))
    async with http.get(CM) as response:
        list_rv = (await response.json())["metadata"]["resourceVersion"]
    api.store.patch("configmaps", "default", "a", {"data": {"x": "1"}})
    api.store.create("configmaps", configmap("b"))
    async with http.get(CM, params={"watch": "true", "resourceVersion": list_rv}) as response:
        replayed = [await read_live_event(response) for _ in range(2)]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in replayed] == [
            ("MODIFIED", "a"),
            ("ADDED", "b"),
        ]
        api.store.create("configmaps", configmap("c"))
        assert (await read_live_event(response))["object"]["metadata"]["name"] == "c"


async def test_watch_bookmarks(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    params = {"watch": "1", "allowWatchBookmarks": "true", "resourceVersion": "0"}
    async with http.get(CM, params=params) as response:
        api.store.create("configmaps", configmap("a"))
        assert (await read_event(response) or {})["type"] == "ADDED"
        bookmark = await read_event(response)
    assert bookmark is not None and bookmark["type"] == "BOOKMARK"
    assert bookmark["object"] == {
        "kind": "ConfigMap",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": str(api.store.resource_version)},
    }


async def test_watch_timeout_seconds_ends_stream_cleanly(http: aiohttp.ClientSession) -> None:
    started = time.monotonic()
    async with http.get(CM, params={"watch": "1", "timeoutSeconds": "1"}) as response:
        assert await read_event(response) is None  # clean EOF, and no bookmarks were asked for
    assert 0.9 <= time.monotonic() - started < 3


async def test_compaction_expires_open_and_new_watches(
    http: aiohttp.ClientSession, api: KubeApiTestServer
) -> None:
    api.store.create("configmaps", configmap("a"))
    old_rv = str(api.store.resource_version)
    async with http.get(CM, params={"watch": "1", "resourceVersion": old_rv}) as response:
        await wait_until(lambda: api.open_watches == 1)
        api.compact()
        error = await read_event(response)
        assert await read_event(response) is None
    assert error is not None and error["type"] == "ERROR"
    assert (error["object"]["code"], error["object"]["reason"]) == (410, "Expired")
    assert error["object"]["message"].startswith(f"too old resource version: {old_rv} (")

    async with http.get(CM, params={"watch": "1", "resourceVersion": old_rv}) as response:
        assert response.status == 200  # like a real apiserver: the 410 comes inside the stream
        error = await read_event(response)
        assert await read_event(response) is None
    assert error is not None and (error["type"], error["object"]["code"]) == ("ERROR", 410)
    assert api.open_watches == 0


async def test_drop_streams_breaks_the_connection(
    http: aiohttp.ClientSession, api: KubeApiTestServer
) -> None:
    async with http.get(CM, params={"watch": "1"}) as response:
        await wait_until(lambda: api.open_watches == 1)
        api.drop_streams()
        with pytest.raises(aiohttp.ClientError):
            await read_event(response)
    await wait_until(lambda: api.open_watches == 0)


async def test_watch_label_selector_turns_relabel_into_delete(
    http: aiohttp.ClientSession, api: KubeApiTestServer
) -> None:
    async with http.get(CM, params={"watch": "1", "labelSelector": "app=x"}) as response:
        api.store.create("configmaps", configmap("other", {"app": "y"}))
        api.store.create("configmaps", configmap("a", {"app": "x"}))
        assert (await read_live_event(response))["type"] == "ADDED"
        relabelled = api.store.patch("configmaps", "default", "a", {"metadata": {"labels": {"app": "y"}}})
        deleted = await read_live_event(response)
        assert deleted["type"] == "DELETED"
        # The last matching content, stamped with the RV of the change that unmatched it.
        assert deleted["object"]["metadata"]["labels"] == {"app": "x"}
        assert deleted["object"]["metadata"]["resourceVersion"] == relabelled["metadata"]["resourceVersion"]
        api.store.patch("configmaps", "default", "a", {"metadata": {"labels": {"app": "x"}}})
        assert (await read_live_event(response))["type"] == "ADDED"


async def test_slow_watcher_is_dropped_not_blocking_writers() -> None:
    store = Store(watch_queue_size=3)
    watch = store.watch("configmaps")
    for index in range(5):
        store.create("configmaps", configmap(f"cm{index}"))
    assert watch.closed and await watch.next_batch(timeout=1) is None
    assert store.count("configmaps") == 5  # the writers were never held up


async def test_bounded_history_expires_old_resource_versions() -> None:
    store = Store(max_history=3)
    for index in range(5):
        store.create("configmaps", configmap(f"cm{index}"))
    oldest = store.compacted_resource_version
    assert oldest == store.resource_version - 3  # only the last three changes are kept
    expired = store.watch("configmaps", resource_version=str(oldest - 1))
    assert expired.closed and [event_type for event_type, _ in expired.initial] == ["ERROR"]
    replay = store.watch("configmaps", resource_version=str(oldest))
    assert [event_type for event_type, _ in replay.initial] == ["ADDED"] * 3


# -- hooks ----------------------------------------------------------------------------------------------


async def test_fail_next_with_500_and_429(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    api.fail_next(2, 500, methods={"GET"}, path="/configmaps")
    async with http.post(CM, json=configmap("a")) as response:
        assert response.status == 201  # POST is not matched
    for _ in range(2):
        async with http.get(CM) as response:
            assert response.status == 500
            assert (await response.json())["reason"] == "InternalError"
    async with http.get(CM) as response:
        assert response.status == 200

    api.fail_next(1, 429, retry_after=3)
    async with http.get(CM) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "3"
        status = await response.json()
    assert (status["reason"], status["details"]["retryAfterSeconds"]) == ("TooManyRequests", 3)
    async with http.get(CM) as response:
        assert response.status == 200


async def test_delay_and_request_log(http: aiohttp.ClientSession, api: KubeApiTestServer) -> None:
    api.delay = 0.3
    started = time.monotonic()
    async with http.get(CM, params={"labelSelector": "app=x"}) as response:
        assert response.status == 200
    assert time.monotonic() - started >= 0.3
    assert api.request_log == [("GET", f"{CM}?labelSelector=app%3Dx")]


async def test_bearer_token_required_and_rotated(api: KubeApiTestServer, http: aiohttp.ClientSession) -> None:
    api.token = "abc"
    async with http.get(CM) as response:
        assert response.status == 401
        assert (await response.json())["reason"] == "Unauthorized"
    async with http.get(CM, headers={"Authorization": "Bearer abc"}) as response:
        assert response.status == 200
    api.token = "def"
    for token, expected in (("abc", 401), ("def", 200)):
        async with http.get(CM, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == expected


# -- real clients ---------------------------------------------------------------------------------------


def kube_client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    """An ApiClient of its own, leaving the kubernetes package's global configuration alone."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return kubernetes.client.ApiClient(configuration)


async def test_official_kubernetes_client(api: KubeApiTestServer, tmp_path: Path) -> None:
    api.token = "s3cret"
    client = kube_client(api.write_kubeconfig(tmp_path / "kubeconfig"))
    v1 = kubernetes.client.CoreV1Api(client)
    body = kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name="a", labels={"app": "x"}), data={"k": "v"}
    )
    created = await asyncio.to_thread(v1.create_namespaced_config_map, "mindx-dl", body)
    assert created.metadata is not None and created.metadata.uid
    api.store.create("configmaps", configmap("b", {"app": "y"}, namespace="mindx-dl"))
    listed = await asyncio.to_thread(v1.list_namespaced_config_map, "mindx-dl", label_selector="app=x")
    assert [item.metadata and item.metadata.name for item in listed.items] == ["a"]
    assert listed.metadata is not None
    list_rv = listed.metadata.resource_version

    def watch() -> list[tuple[str, str]]:
        stream = kubernetes.watch.Watch().stream(
            v1.list_namespaced_config_map,
            "mindx-dl",
            resource_version=list_rv,
            timeout_seconds=1,
        )
        return [(event["type"], event["object"].metadata.name) for event in stream]

    watching = asyncio.create_task(asyncio.to_thread(watch))
    await wait_until(lambda: api.open_watches == 1)
    api.store.patch("configmaps", "mindx-dl", "a", {"data": {"k": "w"}})
    api.store.delete("configmaps", "mindx-dl", "b")
    assert await watching == [("MODIFIED", "a"), ("DELETED", "b")]

    api.compact()
    with pytest.raises(kubernetes.client.ApiException) as raised:
        await asyncio.to_thread(watch)
    assert raised.value.status == 410
    client.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_tls_with_official_client(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = (
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
        f"-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout {key} -out {cert}"
    )
    process = await asyncio.create_subprocess_exec(*command.split(), stderr=asyncio.subprocess.DEVNULL)
    assert await process.wait() == 0
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with KubeApiTestServer(ssl_context=context) as api:
        assert api.url.startswith("https://")
        api.store.create("configmaps", configmap("a"))
        client = kube_client(api.write_kubeconfig(tmp_path / "kubeconfig", ca_file=cert))
        listed = await asyncio.to_thread(
            kubernetes.client.CoreV1Api(client).list_namespaced_config_map, "default"
        )
        client.close()
    assert [item.metadata and item.metadata.name for item in listed.items] == ["a"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl")
async def test_kubectl_get_configmaps_all_namespaces(api: KubeApiTestServer, tmp_path: Path) -> None:
    api.store.create("configmaps", configmap("mindx-dl-deviceinfo-node1", namespace="kube-system"))
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    process = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), "get", "cm", "-A", "-o", "name",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().split() == ["configmap/mindx-dl-deviceinfo-node1"]
