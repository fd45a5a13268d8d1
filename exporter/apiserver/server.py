"""aiohttp front end for ``Store`` speaking the kube-apiserver wire protocol for core/v1 configmaps and
events, plus hooks that let tests provoke what real clusters do to clients: compaction (410), dropped
streams, error bursts, throttling, slowness and credential rotation.

Run it in the test's own event loop::

    async with KubeApiTestServer(bookmark_interval=0.2) as api:
        api.store.apply("configmaps", {...})
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
"""

from __future__ import annotations

import asyncio
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from . import openapi
from .store import RESOURCES, ApiServerStatusError, Obj, Store, StoredObject, Watch, WatchEvent, bad_request

__all__ = ["KubeApiTestServer"]

CONTEXT_NAME = "kube-api-test"

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}

_OBJECT_TYPES = ("application/json",)  # bodies of POST and PUT

_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]

_EVENTS_PER_WRITE = 500  # batches synthetic ADDED events into few socket writes for large initial lists

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: int | None
    methods: frozenset[str] | None
    path: str | None

    def matches(self, request: web.Request) -> bool:
        return (self.methods is None or request.method in self.methods) and (
            self.path is None or self.path in request.path_qs
        )

    def error(self) -> ApiServerStatusError:
        if self.status == 429:
            message = "Too many requests, please try again later."
        else:
            message = f"injected failure (HTTP {self.status})"
        details = {"retryAfterSeconds": self.retry_after} if self.retry_after is not None else None
        return ApiServerStatusError(
            self.status, _REASONS.get(self.status, "Unknown"), message, details, self.retry_after
        )


@dataclass
class _Hang:
    remaining: int
    methods: frozenset[str] | None
    path: str | None

    def matches(self, request: web.Request) -> bool:
        return (self.methods is None or request.method in self.methods) and (
            self.path is None or self.path in request.path_qs
        )


ByteBudget = int | Callable[[], int]


@dataclass(eq=False)
class _Stream:
    """An open watch response, so hooks can end it."""

    watch: Watch
    transport: asyncio.Transport | None
    dropped: bool = False
    cut_after: int | None = None  # bytes still to send before the connection is cut (cut_watches)
    muted: bool = False  # open but silent: nothing more is written (mute_watches)


class KubeApiTestServer:
    """In-memory kube-apiserver on ``host:port`` (port 0 picks a free one), served from the current loop.

    Test hooks: ``compact()``, ``drop_streams()``, ``cut_watches()``, ``mute_watches()``,
    ``fail_next()``, ``hang_next()``, ``expire_continue_tokens()``, ``refuse()``, ``delay``, ``token``,
    ``request_log``, ``timed_request_log`` and ``open_watches``. The store is ``store``; writes
    through it reach open watches.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        bookmark_interval: float = 1.0,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        store: Store | None = None,
        max_history: int = 100_000,
        watch_queue_size: int = 1000,
    ) -> None:
        self.store = (
            store if store is not None else Store(max_history=max_history, watch_queue_size=watch_queue_size)
        )
        self.host = host
        self.port = port
        self.bookmark_interval = bookmark_interval
        self.token = token  # None: no authentication; may be changed at runtime to simulate rotation
        self.ssl_context = ssl_context
        self.delay = 0.0  # seconds every request waits before being answered
        self.request_log: list[tuple[str, str]] = []  # (method, path with raw query string)
        # The same requests with the time.monotonic() at which each arrived (before `delay`).
        self.timed_request_log: list[tuple[float, str, str]] = []
        self._failures: list[_Failure] = []
        self._hangs: list[_Hang] = []
        self._cuts: list[tuple[int, ByteBudget]] = []  # [remaining streams, budget] for new watches
        self._expire_continues = 0  # expire_continue_tokens()
        self._refused: dict[tuple[str, str | None], int] = {}  # refuse(): (namespace, resource) -> status
        self._released = asyncio.Event()  # set by stop(): hung requests end
        self._streams: set[_Stream] = set()
        self._runner: web.AppRunner | None = None
        self.app = self._make_app()

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._released = asyncio.Event()
        # handler_cancellation: a client hanging up on a watch must end its handler promptly.
        self._runner = web.AppRunner(
            self.app, handler_cancellation=True, access_log=None, shutdown_timeout=2.0
        )
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        """End open watches cleanly, then shut the listener and connections down."""
        for stream in list(self._streams):
            self.store.unwatch(stream.watch)
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> KubeApiTestServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.ssl_context else 'http'}://{host}:{self.port}"

    def write_kubeconfig(
        self,
        path: str | Path,
        token: str | None = None,
        ca_file: str | Path | None = None,
        client_cert: str | Path | None = None,
        client_key: str | Path | None = None,
    ) -> Path:
        """Write a kubeconfig (JSON, which is valid YAML) whose current context targets this server.
        ``token`` defaults to the server's current token. Without ``ca_file`` a TLS server is trusted
        blindly (insecure-skip-tls-verify)."""
        cluster: Obj = {"server": self.url}
        if ca_file is not None:
            cluster["certificate-authority"] = str(ca_file)
        elif self.ssl_context is not None:
            cluster["insecure-skip-tls-verify"] = True
        user: Obj = {}
        token = token if token is not None else self.token
        if token:
            user["token"] = token
        if client_cert is not None:
            user["client-certificate"] = str(client_cert)
        if client_key is not None:
            user["client-key"] = str(client_key)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT_NAME, "cluster": cluster}],
            "users": [{"name": CONTEXT_NAME, "user": user}],
            "contexts": [
                {
                    "name": CONTEXT_NAME,
                    "context": {"cluster": CONTEXT_NAME, "user": CONTEXT_NAME, "namespace": "default"},
                }
            ],
            "current-context": CONTEXT_NAME,
            "preferences": {},
        }
        path = Path(path)
        path.write_bytes(orjson.dumps(config, option=orjson.OPT_INDENT_2))
        return path

    # -- test hooks -------------------------------------------------------------------------------------

    @property
    def open_watches(self) -> int:
        return len(self._streams)

    def compact(self) -> None:
        """Compact history to now: open watches get a 410 ERROR event and end; older RVs and
        outstanding continue tokens become too old."""
        self.store.compact()

    def drop_streams(self) -> None:
        """Abort every open watch connection abruptly (no terminating chunk), like a network cut."""
        for stream in list(self._streams):
            stream.dropped = True
            if stream.transport is not None:
                stream.transport.abort()
            self.store.unwatch(stream.watch)

    def cut_watches(self, after_bytes: ByteBudget, count: int = 0, *, open_streams: bool = True) -> None:
        """Cut watch connections after ``after_bytes`` more bytes of the stream (so mid-line, inside
        an object, unless the count happens to end on a line): every open watch when
        ``open_streams``, and the next ``count`` watches opened. ``after_bytes`` may be a callable,
        asked once per stream (random cut points). The cut flushes the partial bytes, then closes
        the connection without the terminating chunk, as a broken proxy or network would."""
        if open_streams:
            for stream in self._streams:
                if not stream.dropped:
                    stream.cut_after = _budget(after_bytes)
        if count > 0:
            self._cuts.append((count, after_bytes))

    def mute_watches(self) -> None:
        """Every open watch stays open but goes silent: no events, no bookmarks, no end (a stuck
        proxy or apiserver). Its events are lost to it; watches opened later are not affected."""
        for stream in self._streams:
            stream.muted = True

    def hang_next(
        self, count: int = 1, *, methods: Iterable[str] | None = None, path: str | None = None
    ) -> None:
        """The next ``count`` requests matching ``methods`` and ``path`` (as in ``fail_next``) get a
        200 status and the first bytes of a body, then nothing more: a response that never finishes
        until the client gives up or the server stops."""
        method_set = frozenset(method.upper() for method in methods) if methods is not None else None
        self._hangs.append(_Hang(count, method_set, path))

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        retry_after: int | None = None,
        methods: Iterable[str] | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests matching ``methods`` (e.g. {"GET"}) and ``path`` (a
        substring of path + query, e.g. "watch=") with an error Status of ``status``, plus a
        ``Retry-After`` header when ``retry_after`` is given. Rules are consumed in the order added."""
        method_set = frozenset(method.upper() for method in methods) if methods is not None else None
        self._failures.append(_Failure(count, status, retry_after, method_set, path))

    def clear_failures(self) -> None:
        """Forget every pending `fail_next`, `hang_next` and `cut_watches` rule for new requests."""
        self._failures.clear()
        self._hangs.clear()
        self._cuts.clear()

    def expire_continue_tokens(self, count: int = 1) -> None:
        """The next ``count`` LISTs carrying a continue token find the history compacted just before
        they are served, so the token is too old (410 Expired), as when etcd compacts during a long
        paginated list. Open watches get their 410 ERROR event as well."""
        self._expire_continues += count

    def refuse(self, namespace: str, resource: str | None = None, status: int = 403) -> None:
        """Answer every request for ``resource`` (any when None) in ``namespace`` ("" for
        cluster-wide requests) with ``status`` until ``allow()``: 403 as RBAC without a Role does,
        404 as for a namespace or resource that does not exist."""
        self._refused[(namespace, resource)] = status

    def allow(self) -> None:
        """Forget every ``refuse`` rule."""
        self._refused.clear()

    def set_delay(self, seconds: float) -> None:
        self.delay = seconds

    # -- HTTP plumbing ----------------------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        # Real apiservers accept ~3 MiB request bodies (ConfigMaps themselves are capped at 1 MiB).
        app = web.Application(middlewares=[self._middleware], client_max_size=3 * 1024 * 1024)
        router = app.router
        router.add_get("/version", self._version)
        router.add_get("/api", self._api_versions)
        router.add_get("/apis", self._api_groups)
        router.add_get("/openapi/v3", self._openapi_paths)
        router.add_get("/openapi/v3/api/v1", self._openapi_core)
        router.add_get("/api/v1", self._api_resources)
        router.add_get("/api/v1/namespaces", self._list_namespaces)
        router.add_get("/api/v1/namespaces/{namespace}", self._get_namespace)
        router.add_get("/api/v1/{resource}", self._collection)
        router.add_route("*", "/api/v1/namespaces/{namespace}/{resource}", self._collection)
        router.add_route("*", "/api/v1/namespaces/{namespace}/{resource}/{name}", self._item)
        router.add_route("*", "/apis/apps/v1/namespaces/{namespace}/{resource}", self._collection)
        router.add_route("*", "/apis/apps/v1/namespaces/{namespace}/{resource}/{name}", self._item)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.request_log.append((request.method, request.path_qs))
        self.timed_request_log.append((time.monotonic(), request.method, request.path_qs))
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        try:
            self._inject_failure(request)
            self._authenticate(request)
            self._check_refused(request)
            if self._take_hang(request):
                return await self._hang(request)
            return await handler(request)
        except ApiServerStatusError as err:
            return _error_response(err)
        except web.HTTPException as exc:  # aiohttp's own 404/405 for unknown paths and methods
            message = {
                404: "the server could not find the requested resource",
                405: "the server does not allow this method on the requested resource",
            }.get(exc.status, exc.reason)
            return _error_response(
                ApiServerStatusError(exc.status, _REASONS.get(exc.status, "Unknown"), message)
            )

    def _inject_failure(self, request: web.Request) -> None:
        for failure in self._failures:
            if failure.matches(request):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                raise failure.error()

    def _check_refused(self, request: web.Request) -> None:
        if not self._refused:
            return
        namespace = request.match_info.get("namespace", "")
        resource = request.match_info.get("resource")
        status = self._refused.get((namespace, resource), self._refused.get((namespace, None)))
        if status is None or resource is None:
            return
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        if status == 404:
            if namespace:
                message, details = (
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
                raise ApiServerStatusError(404, "NotFound", message, details)
            raise ApiServerStatusError(404, "NotFound", "the server could not find the requested resource")
        verb = "watch" if _flag(request.query, "watch") else "list"
        user = "system:serviceaccount:mindx-fault-exporter:mindx-fault-exporter"
        message = f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}"'
        message += f' in API group ""{where}'
        raise ApiServerStatusError(status, _REASONS.get(status, "Unknown"), message, {"kind": resource})

    def _take_hang(self, request: web.Request) -> bool:
        for hang in self._hangs:
            if hang.matches(request):
                hang.remaining -= 1
                if hang.remaining <= 0:
                    self._hangs.remove(hang)
                return True
        return False

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"kind":"List","apiVersion":"v1","metadata":{"resourceVersion":"')
        await self._released.wait()
        # The server is stopping: cut the connection rather than end a half-written body cleanly.
        if request.transport is not None:
            request.transport.abort()
        return response

    def _authenticate(self, request: web.Request) -> None:
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            raise ApiServerStatusError(401, "Unauthorized", "Unauthorized")

    # -- discovery --------------------------------------------------------------------------------------

    async def _version(self, request: web.Request) -> web.Response:
        return _json_response(
            {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-kube-api-test",
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2024-08-13T00:00:00Z",
                "goVersion": "go1.22.5",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    async def _api_versions(self, request: web.Request) -> web.Response:
        return _json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": request.host}],
            }
        )

    async def _api_groups(self, request: web.Request) -> web.Response:
        return _json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def _openapi_paths(self, request: web.Request) -> web.Response:
        """OpenAPI v3 discovery. kubectl's `apply`/`create`/`replace -f` fetch it to learn that the
        server validates fields itself (`fieldValidation`); without it they stop with "failed to
        download openapi"."""
        return _json_response(
            {"paths": {"api/v1": {"serverRelativeURL": f"/openapi/v3/api/v1?hash={openapi.HASH}"}}}
        )

    async def _openapi_core(self, request: web.Request) -> web.Response:
        return web.Response(body=openapi.BODY, content_type="application/json")

    async def _api_resources(self, request: web.Request) -> web.Response:
        resources: list[Obj] = [
            {
                "name": info.name,
                "singularName": info.singular,
                "namespaced": True,
                "kind": info.kind,
                "verbs": _VERBS,
                "shortNames": list(info.short_names),
            }
            for info in RESOURCES.values()
            if info.api_version == "v1"
        ]
        resources.append(
            {
                "name": "namespaces",
                "singularName": "namespace",
                "namespaced": False,
                "kind": "Namespace",
                "verbs": ["get", "list"],
                "shortNames": ["ns"],
            }
        )
        return _json_response({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})

    # -- namespaces (derived from the objects present, read-only) ---------------------------------------

    def _namespace(self, name: str) -> Obj:
        return {
            "metadata": {
                "name": name,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"kube-api-test/namespaces/{name}")),
                "creationTimestamp": self.store.created_at,
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }

    async def _list_namespaces(self, request: web.Request) -> web.Response:
        items = [self._namespace(name) for name in self.store.namespaces()]
        metadata = {"resourceVersion": str(self.store.resource_version)}
        return _json_response(
            {"kind": "NamespaceList", "apiVersion": "v1", "metadata": metadata, "items": items}
        )

    async def _get_namespace(self, request: web.Request) -> web.Response:
        name = request.match_info["namespace"]
        if name not in self.store.namespaces():
            details = {"name": name, "kind": "namespaces"}
            raise ApiServerStatusError(404, "NotFound", f'namespaces "{name}" not found', details)
        return _json_response({"kind": "Namespace", "apiVersion": "v1", **self._namespace(name)})

    # -- configmaps and events --------------------------------------------------------------------------

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        resource = _resource_of(request)
        namespace = request.match_info.get("namespace")
        if request.method == "GET":
            if _flag(request.query, "watch"):
                return await self._watch(request, resource, namespace)
            return self._list(request.query, resource, namespace)
        if request.method == "POST" and namespace is not None:
            _refuse_dry_run(request)
            body = await _object_body(request, resource)
            created = self.store.create(resource, body, namespace=namespace)
            return _json_response(created, status=201)
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])

    async def _item(self, request: web.Request) -> web.Response:
        resource = _resource_of(request)
        namespace = request.match_info["namespace"]
        name = request.match_info["name"]
        if request.method == "GET":
            return _json_response(self.store.get(resource, namespace, name))
        _refuse_dry_run(request)
        if request.method == "PUT":
            body = await _object_body(request, resource)
            metadata = body.get("metadata") if isinstance(body, dict) else None
            if isinstance(metadata, dict) and metadata.setdefault("name", name) != name:
                raise bad_request(
                    f"the name of the object ({metadata['name']}) does not match the name on the URL ({name})"
                )
            return _json_response(self.store.update(resource, body, namespace=namespace))
        if request.method == "PATCH":
            patch_type = _PATCH_TYPES.get(request.content_type)
            if patch_type is None:
                hint = (
                    "; server-side apply is not supported: use client-side `kubectl apply` (the default)"
                    if request.content_type == "application/apply-patch+yaml"
                    else ""
                )
                raise ApiServerStatusError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format ({request.content_type}) - "
                    f"accepted media types include: {', '.join(_PATCH_TYPES)}{hint}",
                )
            patch = await _json_body(request)
            _check_fields(request, resource, _patched_fields(patch, patch_type))
            patched = self.store.patch(resource, namespace, name, patch, patch_type)
            return _json_response(patched)
        if request.method == "DELETE":
            if request.can_read_body:  # DeleteOptions: kubectl sends dryRun here, not in the query
                options = await _json_body(request)
                if isinstance(options, dict) and options.get("dryRun"):
                    _refuse_dry_run(request, forced=True)
            deleted = self.store.delete(resource, namespace, name)
            # The real apiserver answers an immediate delete of these types with a success Status.
            details = {"name": name, "kind": resource, "uid": deleted["metadata"]["uid"]}
            return _json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }
            )
        raise web.HTTPMethodNotAllowed(request.method, ["GET", "PUT", "PATCH", "DELETE"])

    def _list(self, query: Mapping[str, str], resource: str, namespace: str | None) -> web.Response:
        if self._expire_continues > 0 and query.get("continue"):
            self._expire_continues -= 1
            self.store.compact()
        result = self.store.list_page(
            resource,
            namespace,
            label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", ""),
            limit=_int(query, "limit"),
            continue_token=query.get("continue", ""),
            resource_version=query.get("resourceVersion", ""),
            resource_version_match=query.get("resourceVersionMatch", ""),
        )
        metadata: Obj = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            metadata["continue"] = result.continue_token
        if result.remaining is not None:
            metadata["remainingItemCount"] = result.remaining
        # Items are spliced in from each object's cached JSON rather than re-serialized.
        body = b'{"kind":"%s","apiVersion":"%s","metadata":%s,"items":[%s]}' % (
            RESOURCES[resource].list_kind.encode(),
            RESOURCES[resource].api_version.encode(),
            orjson.dumps(metadata),
            b",".join(obj.item_raw() for obj in result.items),
        )
        return web.Response(body=body, content_type="application/json")

    async def _watch(self, request: web.Request, resource: str, namespace: str | None) -> web.StreamResponse:
        query = request.query
        timeout = _int(query, "timeoutSeconds")
        bookmarks = _flag(query, "allowWatchBookmarks")
        watch = self.store.watch(
            resource,
            namespace,
            label_selector=query.get("labelSelector", ""),
            field_selector=query.get("fieldSelector", ""),
            resource_version=query.get("resourceVersion", ""),
        )
        stream = _Stream(watch, request.transport, cut_after=self._take_cut())
        self._streams.add(stream)
        response = web.StreamResponse(
            headers={"Content-Type": "application/json", "Cache-Control": "no-cache"}
        )
        response.enable_chunked_encoding()
        try:
            await response.prepare(request)
            await self._pump(response, stream, RESOURCES[resource].kind, timeout, bookmarks)
            if not stream.dropped:
                await response.write_eof()
        except ConnectionError:
            pass  # the client went away (or drop_streams cut it off); nothing left to tell it
        finally:
            self._streams.discard(stream)
            self.store.unwatch(watch)
        return response

    def _take_cut(self) -> int | None:
        if not self._cuts:
            return None
        remaining, budget = self._cuts[0]
        if remaining <= 1:
            self._cuts.pop(0)
        else:
            self._cuts[0] = (remaining - 1, budget)
        return _budget(budget)

    async def _send(self, response: web.StreamResponse, stream: _Stream, data: bytes) -> None:
        """Write watch bytes, honouring a `cut_watches` budget."""
        budget = stream.cut_after
        if budget is not None and len(data) >= budget:
            if budget > 0:
                await response.write(data[:budget])
            stream.dropped = True
            if stream.transport is not None:
                stream.transport.close()  # flushes the partial line, then FIN without the last chunk
            self.store.unwatch(stream.watch)
            raise ConnectionResetError("watch cut by cut_watches()")
        if budget is not None:
            stream.cut_after = budget - len(data)
        await response.write(data)

    async def _pump(
        self, response: web.StreamResponse, stream: _Stream, kind: str, timeout: int, bookmarks: bool
    ) -> None:
        """Write the replay, then live events until the watch closes or ``timeout`` seconds pass,
        interleaving BOOKMARKs every ``bookmark_interval`` when the client allows them."""
        loop = asyncio.get_running_loop()
        watch = stream.watch
        deadline = loop.time() + timeout if timeout > 0 else None
        next_bookmark = loop.time() + self.bookmark_interval if bookmarks else None
        for chunk in _event_chunks(watch.initial):
            await self._send(response, stream, chunk)
        while True:
            wake_at = min((t for t in (deadline, next_bookmark) if t is not None), default=None)
            batch = await watch.next_batch(None if wake_at is None else max(0.0, wake_at - loop.time()))
            if batch is None:
                return
            if stream.muted:
                # Silent until the watch is closed (server stop, client gone): drain and discard.
                while await watch.next_batch(None) is not None:
                    pass
                return
            for chunk in _event_chunks(batch):
                await self._send(response, stream, chunk)
            now = loop.time()
            if deadline is not None and now >= deadline:
                return
            if next_bookmark is not None and now >= next_bookmark:
                # progress_rv was taken when this batch was drained: the client has seen everything up to it.
                bookmark = {
                    "kind": kind,
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": str(watch.progress_rv)},
                }
                line = orjson.dumps({"type": "BOOKMARK", "object": bookmark}) + b"\n"
                await self._send(response, stream, line)
                next_bookmark = now + self.bookmark_interval


def _event_line(event: WatchEvent) -> bytes:
    event_type, obj = event
    payload = obj.raw() if isinstance(obj, StoredObject) else orjson.dumps(obj.status())
    return b'{"type":"%s","object":%s}\n' % (event_type.encode(), payload)


def _event_chunks(events: list[WatchEvent]) -> Iterator[bytes]:
    for start in range(0, len(events), _EVENTS_PER_WRITE):
        yield b"".join(_event_line(event) for event in events[start : start + _EVENTS_PER_WRITE])


def _budget(after_bytes: ByteBudget) -> int:
    return max(0, after_bytes() if callable(after_bytes) else after_bytes)


def _json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _error_response(err: ApiServerStatusError) -> web.Response:
    headers = {"Retry-After": str(err.retry_after)} if err.retry_after is not None else None
    return web.Response(
        body=orjson.dumps(err.status()), status=err.code, content_type="application/json", headers=headers
    )


async def _json_body(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"the body of the request was in an unknown format: {exc}") from None


def _refuse_dry_run(request: web.Request, *, forced: bool = False) -> None:
    """Writing what a client asked only to try would be worse than refusing it."""
    if forced or request.query.get("dryRun"):
        raise bad_request("dryRun is not supported by this API server: leave out --dry-run=server")


async def _object_body(request: web.Request, resource: str) -> Any:
    """The object of a POST or PUT: JSON only (kubectl sends JSON for `-f` manifests)."""
    # No Content-Type, or `*/*` (the official Python client's), is read as JSON.
    declared = request.headers.get("Content-Type", "*/*").strip()
    if declared != "*/*" and request.content_type not in _OBJECT_TYPES:
        hint = (
            "; this server reads JSON only: for `kubectl create configmap` add `--dry-run=client -o json"
            " | kubectl create -f -`"
            if "protobuf" in request.content_type
            else ""
        )
        raise ApiServerStatusError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format ({request.content_type}) - "
            f"accepted media types include: {', '.join(_OBJECT_TYPES)}{hint}",
        )
    body = await _json_body(request)
    if isinstance(body, dict):
        _check_fields(request, resource, [[key] for key in body] + _metadata_fields(body.get("metadata")))
    return body


def _metadata_fields(metadata: Any) -> list[list[str]]:
    return [["metadata", key] for key in metadata] if isinstance(metadata, dict) else []


def _patched_fields(patch: Any, patch_type: str) -> list[list[str]]:
    """The top-level and metadata field names a patch writes."""
    if patch_type == "json":
        ops = patch if isinstance(patch, list) else []
        paths = [op.get("path") for op in ops if isinstance(op, dict) and op.get("op") in ("add", "replace")]
        return [p.lstrip("/").split("/")[:2] for p in paths if isinstance(p, str) and p.strip("/")]
    if not isinstance(patch, dict):
        return []
    return [[key] for key in patch] + _metadata_fields(patch.get("metadata"))


def _check_fields(request: web.Request, resource: str, fields: list[list[str]]) -> None:
    """`fieldValidation=Strict` (what kubectl sends by default, the OpenAPI document announcing it)
    refuses unknown top-level and metadata fields, as the real apiserver refuses unknown fields."""
    if request.query.get("fieldValidation", "").lower() != "strict":
        return
    kind = RESOURCES[resource].kind
    known = {(): openapi.FIELDS[kind], ("metadata",): openapi.FIELDS["ObjectMeta"]}
    unknown = [
        ".".join(path)
        for path in fields
        if not path[-1].startswith("$") and path[-1] not in known.get(tuple(path[:-1]), {path[-1]})
    ]
    if unknown:
        raise bad_request(
            f'{kind} in version "v1" cannot be handled as a {kind}: strict decoding error: '
            + ", ".join(f'unknown field "{field}"' for field in unknown)
        )


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("1", "true")


def _int(query: Mapping[str, str], name: str) -> int:
    text = query.get(name, "")
    try:
        return int(text) if text else 0
    except ValueError:
        raise bad_request(f"invalid value for {name}: {text!r}") from None


def _resource_of(request: web.Request) -> str:
    """The URL's resource, if it is served under the URL's group/version (core `/api/v1/...`,
    `/apis/apps/v1/...`); else 404 as a real API server answers."""
    resource = request.match_info["resource"]
    info = RESOURCES.get(resource)
    group_version = "v1" if request.path.startswith("/api/v1/") else request.path.split("/")[2] + "/v1"
    if info is None or info.api_version != group_version:
        raise ApiServerStatusError(404, "NotFound", "the server could not find the requested resource")
    return resource
