"""In-memory object store with a global resourceVersion, a bounded event history and watches.

Pure asyncio, no I/O. The HTTP layer (server.py) and in-process simulators call it from the same
event-loop thread, so every method runs to completion without interleaving and no locking is needed.

Stored objects are immutable: every write builds a new ``StoredObject`` and never touches the old one.
That lets list snapshots, the event history and watch queues share objects safely, and lets each
object cache its serialized JSON, which keeps LIST of tens of thousands of objects cheap.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import datetime
import heapq
import itertools
import uuid
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from exporter.kube.selectors import (
    SELECTABLE_FIELDS,
    FieldSelector,
    LabelSelector,
    SelectorError,
    field_of,
    parse_field_selector,
    parse_label_selector,
)

__all__ = [
    "RESOURCES",
    "ApiServerStatusError",
    "ListResult",
    "ResourceInfo",
    "Store",
    "StoredObject",
    "Watch",
    "WatchEvent",
]

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name) within one resource

ADDED, MODIFIED, DELETED, ERROR = "ADDED", "MODIFIED", "DELETED", "ERROR"

_CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new "
    "list without the continue parameter, or use the continue token in this response to retrieve the "
    "remainder of the results. Continuing with the provided token results in an inconsistent list - objects "
    "that were created, modified, or deleted between the time the first chunk was returned and now may show "
    "up in the list."
)


# -- resources ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceInfo:
    name: str
    singular: str
    kind: str
    short_names: tuple[str, ...]
    # Field selector label -> path inside the object; what the real apiserver supports per resource.
    fields: Mapping[str, tuple[str, ...]]
    string_maps: tuple[str, ...] = ()  # top-level fields typed map[string]string in the Go API
    api_version: str = "v1"  # group/version: "v1" (core) or e.g. "apps/v1"

    @property
    def list_kind(self) -> str:
        return self.kind + "List"


RESOURCES: dict[str, ResourceInfo] = {
    "configmaps": ResourceInfo(
        "configmaps", "configmap", "ConfigMap", ("cm",), SELECTABLE_FIELDS["configmaps"], ("data",)
    ),
    "events": ResourceInfo("events", "event", "Event", ("ev",), SELECTABLE_FIELDS["events"]),
    # Only for the exporter's own StatefulSet (automatic sharding reads its replicas).
    "statefulsets": ResourceInfo(
        "statefulsets", "statefulset", "StatefulSet", ("sts",), SELECTABLE_FIELDS["configmaps"], (), "apps/v1"
    ),
}


# -- errors ---------------------------------------------------------------------------------------------


class ApiServerStatusError(Exception):
    """An error the API server reports as a ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: Obj | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def status(self) -> Obj:
        status: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            status["details"] = self.details
        status["code"] = self.code
        return status


def bad_request(message: str) -> ApiServerStatusError:
    return ApiServerStatusError(400, "BadRequest", message)


def invalid(info: ResourceInfo, name: str, message: str) -> ApiServerStatusError:
    return ApiServerStatusError(
        422, "Invalid", f'{info.kind} "{name}" is invalid: {message}', {"name": name, "kind": info.kind}
    )


def _not_found(info: ResourceInfo, name: str) -> ApiServerStatusError:
    details = {"name": name, "kind": info.name}
    return ApiServerStatusError(404, "NotFound", f'{info.name} "{name}" not found', details)


def _too_old(requested: int, oldest: int) -> ApiServerStatusError:
    return ApiServerStatusError(410, "Expired", f"too old resource version: {requested} ({oldest})")


def _too_large(requested: int, current: int) -> ApiServerStatusError:
    # Real apiservers wait ~3s for the cache to catch up before answering this.
    return ApiServerStatusError(
        504,
        "Timeout",
        f"Too large resource version: {requested}, current: {current}",
        {
            "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
            "retryAfterSeconds": 1,
        },
    )


# -- objects --------------------------------------------------------------------------------------------


class StoredObject:
    """One immutable version of an object.

    ``body`` excludes ``kind``/``apiVersion`` because list items omit them; ``raw()`` splices them back in.
    """

    __slots__ = ("_full_raw", "_item_raw", "body", "info")

    def __init__(self, info: ResourceInfo, body: Obj) -> None:
        self.info = info
        self.body = body
        self._item_raw: bytes | None = None
        self._full_raw: bytes | None = None

    @property
    def metadata(self) -> Obj:
        meta: Obj = self.body["metadata"]
        return meta

    @property
    def resource_version(self) -> int:
        return int(self.metadata["resourceVersion"])

    @property
    def labels(self) -> dict[str, str]:
        return self.metadata.get("labels") or {}

    def field_value(self, label: str) -> str:
        return field_of(self.body, self.info.fields[label])

    def item_raw(self) -> bytes:
        """JSON as a list item: no kind/apiVersion."""
        if self._item_raw is None:
            self._item_raw = orjson.dumps(self.body)
        return self._item_raw

    def raw(self) -> bytes:
        """JSON as a standalone object (GET, watch events): with kind/apiVersion."""
        if self._full_raw is None:
            # body always has metadata, so item_raw is a non-empty JSON object we can splice into.
            prefix = b'{"kind":"%s","apiVersion":"%s",' % (
                self.info.kind.encode(),
                self.info.api_version.encode(),
            )
            self._full_raw = prefix + self.item_raw()[1:]
        return self._full_raw

    def to_dict(self) -> Obj:
        """A private deep copy of the full object."""
        result: Obj = orjson.loads(self.raw())
        return result

    def with_resource_version(self, rv: int) -> StoredObject:
        return StoredObject(
            self.info, {**self.body, "metadata": {**self.metadata, "resourceVersion": str(rv)}}
        )


@dataclass(slots=True)
class Change:
    """One history entry. ``prev`` is the version before the change (None for ADDED); for DELETED,
    ``obj`` is the last version stamped with the deletion's resourceVersion."""

    rv: int
    type: str
    key: Key
    obj: StoredObject
    prev: StoredObject | None
    _prev_at_rv: StoredObject | None = None

    def prev_at_rv(self) -> StoredObject:
        """The previous content carrying this change's RV: what a watcher whose selector stopped
        matching receives as DELETED (cached because every such watcher needs the same object)."""
        assert self.prev is not None
        if self._prev_at_rv is None:
            self._prev_at_rv = self.prev.with_resource_version(self.rv)
        return self._prev_at_rv


@dataclass(frozen=True, slots=True)
class _Filter:
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector

    def matches(self, obj: StoredObject) -> bool:
        if self.namespace is not None and obj.metadata.get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj.labels) and self.fields.matches(obj.field_value)


# -- watches --------------------------------------------------------------------------------------------

WatchEvent = tuple[str, StoredObject | ApiServerStatusError]


class Watch:
    """One open watch: a replay (``initial``) followed by live events from a bounded buffer.

    A deque plus an asyncio.Event rather than an asyncio.Queue: the consumer drains everything pending
    in one go (one socket write per burst), and closing must work even when the buffer is full.
    """

    def __init__(self, store: Store, resource: str, flt: _Filter, start_rv: int, max_pending: int) -> None:
        self.resource = resource
        self.initial: list[WatchEvent] = []
        self.closed = False
        # RV of the newest change this watch has seen (delivered or filtered out); used in 410 messages.
        self.last_rv = start_rv
        # Every change up to this RV has been handed to the consumer: safe RV for a BOOKMARK.
        self.progress_rv = start_rv
        self._store = store
        self._filter = flt
        self._pending: deque[WatchEvent] = deque()
        self._max_pending = max_pending
        self._wakeup = asyncio.Event()

    def convert(self, change: Change) -> WatchEvent | None:
        """What this watcher sees of a change, applying selectors like the real watch cache does:
        an object that starts matching is ADDED, one that stops matching is DELETED."""
        now = change.type != DELETED and self._filter.matches(change.obj)
        before = change.prev is not None and self._filter.matches(change.prev)
        if change.type == DELETED:
            return (DELETED, change.obj) if before else None
        if now:
            return (MODIFIED if before else ADDED, change.obj)
        return (DELETED, change.prev_at_rv()) if before else None

    def offer(self, change: Change) -> None:
        self.last_rv = change.rv
        event = self.convert(change)
        if event is None or self.closed:
            return
        if len(self._pending) >= self._max_pending:
            # Like the real apiserver with an unresponsive consumer: drop the watch, the client re-lists.
            self._pending.clear()
            self.close()
            return
        self._pending.append(event)
        self._wakeup.set()

    def expire(self, oldest_rv: int) -> None:
        """History was compacted underneath this watch: deliver what is pending, then a 410 ERROR."""
        self._pending.append((ERROR, _too_old(self.last_rv, oldest_rv)))
        self.close()

    def close(self) -> None:
        self.closed = True
        self._wakeup.set()

    async def next_batch(self, timeout: float | None) -> list[WatchEvent] | None:
        """Everything pending, waiting up to ``timeout`` seconds for something (``[]`` on timeout);
        None once closed and drained."""
        if not self._pending and not self.closed:
            self._wakeup.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()
            except TimeoutError:
                pass
        # Changes are pushed synchronously as they happen, so draining now covers everything so far.
        self.progress_rv = max(self.progress_rv, self._store.resource_version)
        if self._pending:
            batch = list(self._pending)
            self._pending.clear()
            return batch
        return None if self.closed else []


# -- store ----------------------------------------------------------------------------------------------


@dataclass
class ListResult:
    resource_version: int
    items: list[StoredObject]
    continue_token: str = ""
    remaining: int | None = None  # remainingItemCount; only for unfiltered paginated lists, like real k8s


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_rv(text: str) -> int:
    if not text.isdigit():
        raise bad_request(f'invalid resource version "{text}"')
    return int(text)


def _encode_continue(rv: int, key: Key) -> str:
    # Same shape as the real token: {"v": ..., "rv": ..., "start": "<key after the last item>\x00"}.
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": f"{key[0]}/{key[1]}\x00"}
    return base64.urlsafe_b64encode(orjson.dumps(token)).rstrip(b"=").decode()


def _decode_continue(token: str) -> tuple[int, Key]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rv, start = data["rv"], data["start"]
        namespace, _, name = start.rstrip("\x00").partition("/")
        if not isinstance(rv, int) or rv <= 0 or not name:
            raise ValueError(token)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from None
    return rv, (namespace, name)


def _bounds(keys: list[Key], namespace: str | None, after: Key | None) -> tuple[int, int]:
    """Index range of ``keys`` inside ``namespace`` (None: all) and strictly after ``after``."""
    lo, hi = 0, len(keys)
    if namespace is not None:
        lo = bisect_left(keys, (namespace, ""))
        hi = bisect_left(keys, (namespace + "\x00", ""))
    if after is not None:
        lo = max(lo, bisect_right(keys, after))
    return lo, max(lo, hi)


def _in_range(key: Key, namespace: str | None, after: Key | None) -> bool:
    return (namespace is None or key[0] == namespace) and (after is None or key > after)


def _comparable(body: Obj) -> Obj:
    """The body without server-managed bookkeeping, for the no-op update check."""
    meta = {k: v for k, v in body["metadata"].items() if k not in ("resourceVersion", "managedFields")}
    return {**body, "metadata": meta}


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch; builds new containers along patched paths, shares the rest."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path.split("/")[1:]]


def _pointer_get(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def _pointer_add(doc: Any, tokens: list[str], value: Any) -> None:
    parent, last = _pointer_get(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        parent[last] = value


def _pointer_remove(doc: Any, tokens: list[str]) -> Any:
    parent, last = _pointer_get(doc, tokens[:-1]), tokens[-1]
    return parent.pop(int(last) if isinstance(parent, list) else last)


def _json_patch(doc: Obj, operations: Any) -> Obj:
    """RFC 6902 JSON patch applied in place to a private copy (the whole document cannot be replaced)."""
    if not isinstance(operations, list):
        raise ValueError("a JSON patch must be a list of operations")
    for operation in operations:
        op, tokens = operation["op"], _pointer(operation["path"])
        if not tokens:
            raise ValueError("patching the document root is not supported")
        if op == "add":
            _pointer_add(doc, tokens, operation["value"])
        elif op == "remove":
            _pointer_remove(doc, tokens)
        elif op == "replace":
            _pointer_remove(doc, tokens)
            _pointer_add(doc, tokens, operation["value"])
        elif op in ("move", "copy"):
            source = _pointer(operation["from"])
            value = _pointer_remove(doc, source) if op == "move" else copy.deepcopy(_pointer_get(doc, source))
            _pointer_add(doc, tokens, value)
        elif op == "test":
            if _pointer_get(doc, tokens) != operation["value"]:
                raise ValueError(f"test operation failed at {operation['path']}")
        else:
            raise ValueError(f"unknown JSON patch operation {op!r}")
    return doc


PATCH_TYPES = ("merge", "strategic", "json")


class Store:
    """Objects of every resource in ``RESOURCES``, keyed by (namespace, name), sharing one RV counter.

    The synchronous methods are the in-process API (simulators, tests); they notify open watches
    immediately. Object arguments are copied and returned dicts are private copies.
    """

    def __init__(self, *, max_history: int = 100_000, watch_queue_size: int = 1000) -> None:
        if max_history < 1 or watch_queue_size < 1:
            raise ValueError("max_history and watch_queue_size must be positive")
        self.created_at = _now()
        self._rv = 1
        # History holds every change with rv > _compacted_rv; older states cannot be reconstructed.
        self._compacted_rv = 1
        self._history: deque[Change] = deque(maxlen=max_history)
        self._objects: dict[str, dict[Key, StoredObject]] = {name: {} for name in RESOURCES}
        self._keys: dict[str, list[Key]] = {name: [] for name in RESOURCES}  # sorted, for ordered lists
        self._watches: dict[str, set[Watch]] = {name: set() for name in RESOURCES}
        self._watch_queue_size = watch_queue_size

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted_resource_version(self) -> int:
        return self._compacted_rv

    def count(self, resource: str) -> int:
        return len(self._objects[_info(resource).name])

    def namespaces(self) -> list[str]:
        """Namespaces holding any object, plus ``default`` (namespaces are not stored objects here)."""
        names = {key[0] for keys in self._keys.values() for key in keys}
        return sorted(names | {"default"})

    # -- writes -----------------------------------------------------------------------------------------

    def create(self, resource: str, obj: Obj, *, namespace: str | None = None) -> Obj:
        """Create ``obj``; its namespace defaults to ``namespace`` or "default". System fields
        (uid, creationTimestamp, resourceVersion) are assigned, whatever the body says."""
        info = _info(resource)
        body = _body_copy(info, obj)
        meta = body["metadata"]
        namespace = _check_namespace(meta, namespace)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if not meta.get("name"):
            raise invalid(info, "", "metadata.name: Required value: name or generateName is required")
        key = (namespace, meta["name"])
        if key in self._objects[info.name]:
            details = {"name": key[1], "kind": info.name}
            raise ApiServerStatusError(
                409, "AlreadyExists", f'{info.name} "{key[1]}" already exists', details
            )
        rv = self._next_rv()
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=_now(), resourceVersion=str(rv))
        stored = StoredObject(info, body)
        self._objects[info.name][key] = stored
        insort(self._keys[info.name], key)
        self._record(info, Change(rv, ADDED, key, stored, None))
        return stored.to_dict()

    def update(self, resource: str, obj: Obj, *, namespace: str | None = None) -> Obj:
        """Replace an existing object (PUT). A non-empty metadata.resourceVersion must match the
        stored one (optimistic concurrency); an update that changes nothing is a no-op."""
        info = _info(resource)
        body = _body_copy(info, obj)
        key = (_check_namespace(body["metadata"], namespace), body["metadata"].get("name") or "")
        return self._replace(info, key, body).to_dict()

    def apply(self, resource: str, obj: Obj, *, namespace: str | None = None) -> Obj:
        """Create or unconditionally update: convenient for simulators replaying fixtures."""
        info = _info(resource)
        body = _body_copy(info, obj)
        body["metadata"].pop("resourceVersion", None)
        key = (_check_namespace(body["metadata"], namespace), body["metadata"].get("name") or "")
        if key in self._objects[info.name]:
            return self._replace(info, key, body).to_dict()
        return self.create(resource, body, namespace=key[0])

    def patch(self, resource: str, namespace: str, name: str, patch: Any, patch_type: str = "merge") -> Obj:
        """Apply a ``merge``, ``strategic`` (treated as merge for these types) or ``json`` (RFC 6902) patch.
        A patch that sets metadata.resourceVersion is a precondition, as in Kubernetes."""
        info = _info(resource)
        current = self._stored(info, namespace, name)
        try:
            if patch_type == "json":
                patched = _json_patch(current.to_dict(), patch)
            elif patch_type in PATCH_TYPES:
                if not isinstance(patch, dict):
                    raise ValueError("a merge patch must be a JSON object")
                patched = _merge_patch(current.to_dict(), patch)
            else:
                raise ApiServerStatusError(
                    415, "UnsupportedMediaType", f"unsupported patch type {patch_type!r}"
                )
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            message = f"the server rejected our request due to an error in our request: {exc}"
            raise ApiServerStatusError(422, "Invalid", message) from None
        body = _body_copy(info, patched)
        meta = body["metadata"]
        if meta.get("name") != name or meta.get("namespace") != namespace:
            raise bad_request("metadata.name and metadata.namespace cannot be changed by a patch")
        return self._replace(info, (namespace, name), body).to_dict()

    def delete(self, resource: str, namespace: str, name: str) -> Obj:
        """Delete an object; returns its last state, stamped with the deletion's resourceVersion."""
        info = _info(resource)
        current = self._stored(info, namespace, name)
        key = (namespace, name)
        rv = self._next_rv()
        last = current.with_resource_version(rv)
        del self._objects[info.name][key]
        keys = self._keys[info.name]
        del keys[bisect_left(keys, key)]
        self._record(info, Change(rv, DELETED, key, last, current))
        return last.to_dict()

    def compact(self) -> None:
        """Forget all history: older RVs and continue tokens become too old, open watches get 410.

        Bumps the RV first, as the real compactor's write to etcd does, so even the RV that a
        client saw last is gone afterwards."""
        self._rv += 1
        self._compacted_rv = self._rv
        self._history.clear()
        for watches in self._watches.values():
            for watch in watches:
                watch.expire(self._compacted_rv)
            watches.clear()

    # -- reads ------------------------------------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Obj:
        return self._stored(_info(resource), namespace, name).to_dict()

    def list(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        result = self.list_page(
            resource, namespace, label_selector=label_selector, field_selector=field_selector
        )
        return [obj.to_dict() for obj in result.items]

    def list_page(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
    ) -> ListResult:
        """One page of a LIST, with real-apiserver semantics for limit/continue/resourceVersion."""
        info = _info(resource)
        flt = _make_filter(info, namespace, label_selector, field_selector)
        after: Key | None = None
        if continue_token:
            if resource_version:
                raise bad_request("specifying resource version is not allowed when using continue")
            snapshot_rv, after = _decode_continue(continue_token)
            overlay = self._overlay(info.name, snapshot_rv)
            if overlay is None:
                raise ApiServerStatusError(410, "Expired", _CONTINUE_EXPIRED)
        else:
            snapshot_rv = self._list_rv(resource_version, resource_version_match)
            overlay = self._overlay(info.name, snapshot_rv)
            if overlay is None:
                raise _too_old(snapshot_rv, self._compacted_rv)
        items: list[StoredObject] = []
        for key, obj in self._iter_snapshot(info.name, namespace, after, overlay):
            if flt.matches(obj):
                items.append(obj)
                if len(items) == limit:
                    remaining = self._count_after(info.name, namespace, key, overlay)
                    if remaining:
                        unfiltered = not flt.labels and not flt.fields
                        token = _encode_continue(snapshot_rv, key)
                        return ListResult(snapshot_rv, items, token, remaining if unfiltered else None)
                    break
        return ListResult(snapshot_rv, items)

    def _list_rv(self, resource_version: str, match: str) -> int:
        if match not in ("", "NotOlderThan", "Exact"):
            raise bad_request(f"unsupported resourceVersionMatch: {match!r}")
        if match and not resource_version:
            raise bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if not resource_version or (resource_version == "0" and match != "Exact"):
            return self._rv
        requested = _parse_rv(resource_version)
        if requested > self._rv:
            raise _too_large(requested, self._rv)
        return requested if match == "Exact" else self._rv

    def _overlay(self, resource: str, rv: int) -> dict[Key, StoredObject | None] | None:
        """How ``resource`` at ``rv`` differs from now: key -> object then (None: absent then).
        None when ``rv`` is compacted away."""
        if rv == self._rv:
            return {}
        if rv < self._compacted_rv:
            return None
        overlay: dict[Key, StoredObject | None] = {}
        # Walking backwards, the oldest change after ``rv`` is written last and so wins.
        for change in reversed(self._history):
            if change.rv <= rv:
                break
            if change.obj.info.name == resource:
                overlay[change.key] = change.prev
        return overlay

    def _iter_snapshot(
        self, resource: str, namespace: str | None, after: Key | None, overlay: dict[Key, StoredObject | None]
    ) -> Iterator[tuple[Key, StoredObject]]:
        """Objects of a snapshot in key order: current objects corrected by ``overlay``."""
        objects, keys = self._objects[resource], self._keys[resource]
        lo, hi = _bounds(keys, namespace, after)
        revived = sorted(
            key
            for key, obj in overlay.items()
            if obj is not None and key not in objects and _in_range(key, namespace, after)
        )
        for key in heapq.merge(itertools.islice(keys, lo, hi), revived):
            obj = overlay[key] if key in overlay else objects[key]
            if obj is not None:
                yield key, obj

    def _count_after(
        self, resource: str, namespace: str | None, after: Key, overlay: dict[Key, StoredObject | None]
    ) -> int:
        objects, keys = self._objects[resource], self._keys[resource]
        lo, hi = _bounds(keys, namespace, after)
        count = hi - lo
        for key, obj in overlay.items():
            if _in_range(key, namespace, after):
                count += (obj is not None and key not in objects) - (obj is None and key in objects)
        return count

    # -- watch ------------------------------------------------------------------------------------------

    def watch(
        self,
        resource: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
    ) -> Watch:
        """Open a watch. Unset/"0" RV: synthetic ADDED for every matching object, then live events.
        RV N: every change after N from history, then live. A compacted N yields a closed watch
        holding a single 410 ERROR event, as the real apiserver answers."""
        info = _info(resource)
        flt = _make_filter(info, namespace, label_selector, field_selector)
        if not resource_version or resource_version == "0":
            watch = Watch(self, info.name, flt, self._rv, self._watch_queue_size)
            watch.initial = [
                (ADDED, obj)
                for _, obj in self._iter_snapshot(info.name, namespace, None, {})
                if flt.matches(obj)
            ]
        else:
            start = _parse_rv(resource_version)
            watch = Watch(self, info.name, flt, start, self._watch_queue_size)
            if start < self._compacted_rv:
                watch.initial = [(ERROR, _too_old(start, self._compacted_rv))]
                watch.close()
                return watch
            watch.initial = [
                event
                for change in self._history_after(start)
                if change.obj.info is info and (event := watch.convert(change)) is not None
            ]
            watch.last_rv = watch.progress_rv = max(start, self._rv)
        self._watches[info.name].add(watch)
        return watch

    def unwatch(self, watch: Watch) -> None:
        watch.close()
        self._watches[watch.resource].discard(watch)

    def _history_after(self, rv: int) -> Iterator[Change]:
        start = bisect_right(self._history, rv, key=lambda change: change.rv)
        return itertools.islice(self._history, start, None)

    # -- internals --------------------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _stored(self, info: ResourceInfo, namespace: str, name: str) -> StoredObject:
        obj = self._objects[info.name].get((namespace, name))
        if obj is None:
            raise _not_found(info, name)
        return obj

    def _replace(self, info: ResourceInfo, key: Key, body: Obj) -> StoredObject:
        current = self._objects[info.name].get(key)
        if current is None:
            raise _not_found(info, key[1])
        meta = body["metadata"]
        expected = meta.get("resourceVersion")
        if expected and expected != current.metadata["resourceVersion"]:
            message = (
                f'Operation cannot be fulfilled on {info.name} "{key[1]}": the object has been modified; '
                "please apply your changes to the latest version and try again"
            )
            raise ApiServerStatusError(409, "Conflict", message, {"name": key[1], "kind": info.name})
        for name in ("uid", "creationTimestamp"):
            meta[name] = current.metadata[name]
        if _comparable(body) == _comparable(current.body):
            return current  # real apiservers skip no-op updates: no new RV, no event
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        stored = StoredObject(info, body)
        self._objects[info.name][key] = stored
        self._record(info, Change(rv, MODIFIED, key, stored, current))
        return stored

    def _record(self, info: ResourceInfo, change: Change) -> None:
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].rv  # the deque is about to drop this change
        self._history.append(change)
        watches = self._watches[info.name]
        for watch in watches:
            watch.offer(change)
        for watch in [watch for watch in watches if watch.closed]:
            watches.discard(watch)


def _info(resource: str) -> ResourceInfo:
    info = RESOURCES.get(resource)
    if info is None:
        raise ApiServerStatusError(404, "NotFound", "the server could not find the requested resource")
    return info


def _body_copy(info: ResourceInfo, obj: Any) -> Obj:
    """A private deep copy of ``obj`` without kind/apiVersion, after checking they fit the resource."""
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
        raise bad_request("the body of the request must be a JSON object with an object metadata")
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind not in (None, "", info.kind) or api_version not in (None, "", info.api_version):
        raise bad_request(
            f"the API version in the data ({api_version}) and kind ({kind}) do not match "
            f"the expected {info.api_version} {info.kind}"
        )
    body: Obj = orjson.loads(orjson.dumps({k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}))
    meta = body.setdefault("metadata", {})
    # The real apiserver decodes into Go structs and rejects mistyped fields; checking the ones the
    # store relies on keeps a sloppy simulator from corrupting the key order or selector matching.
    for name in ("name", "namespace", "generateName", "resourceVersion"):
        if not isinstance(meta.get(name, ""), str):
            raise bad_request(f"metadata.{name}: must be a string")
    maps = [(f"metadata.{name}", meta.get(name)) for name in ("labels", "annotations")]
    for path, value in [*maps, *((name, body.get(name)) for name in info.string_maps)]:
        if value is not None and not (
            isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        ):
            raise bad_request(f"{path}: must be a map of string to string")
    return body


def _check_namespace(meta: Obj, namespace: str | None) -> str:
    """Resolve the object's namespace against the request's (which wins when the body has none)."""
    body_namespace = meta.get("namespace") or ""
    if namespace and body_namespace and body_namespace != namespace:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    resolved: str = namespace or body_namespace or "default"
    meta["namespace"] = resolved
    return resolved


def _make_filter(
    info: ResourceInfo, namespace: str | None, label_selector: str, field_selector: str
) -> _Filter:
    try:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
    except SelectorError as exc:
        raise bad_request(f"unable to parse requirement: {exc}") from None
    unsupported = sorted(fields.fields - info.fields.keys())
    if unsupported:
        raise bad_request(f"field label not supported: {unsupported[0]}")
    return _Filter(namespace, labels, fields)
