"""A paginated LIST (`limit` + `continue`), shared by the reflector and the one-shot `devices`
command."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.kube.client import KubeClient
from exporter.kube.errors import KubeExpiredError


@dataclass(frozen=True, slots=True)
class ListResult:
    objects: list[dict[str, Any]]  # every object; empty when they were handed to `on_page`
    resource_version: str  # the list's resourceVersion, from the last page
    count: int  # how many objects the list held


# How many times one LIST starts again from its first page when a continue token expires.
MAX_LIST_RESTARTS = 3


async def list_all(
    client: KubeClient,
    path: str,
    params: Mapping[str, str],
    page_size: int,
    timeout: float | None = None,
    *,
    restarts: int = MAX_LIST_RESTARTS,
    on_restart: Callable[[KubeExpiredError], None] | None = None,
    on_page: Callable[[list[dict[str, Any]]], None] | None = None,
) -> ListResult:
    """Every page of one LIST (`page_size` 0: one unpaginated request). Raises a `KubeError` as
    `KubeClient.get_json` does, each page limited to `timeout` seconds.

    A continue token that expires (410: the server compacted its history while we paginated)
    leaves pages that are no consistent snapshot: they are dropped and the list starts again from
    its first page, at most `restarts` times (each reported to `on_restart`); then the
    `KubeExpiredError` is raised for the caller to retry later. Unlike client-go's pager, which
    falls back to one unpaginated LIST, this never asks for the whole collection in one response
    body: 33,000 Events in one body cost hundreds of MiB to receive and decode.

    With `on_page`, each page's objects go to it as they arrive instead of being collected (after
    a restart, the pages start again: `on_restart` is the caller's cue to drop what it got)."""
    base = dict(params)
    if page_size > 0:
        base["limit"] = str(page_size)
    objects: list[dict[str, Any]] = []
    count = 0
    continue_token = ""
    restarted = 0
    while True:
        page_params = dict(base, **({"continue": continue_token} if continue_token else {}))
        try:
            page = await client.get_json(path, page_params, timeout=timeout)
        except KubeExpiredError as err:
            if not continue_token or restarted >= restarts:
                raise
            restarted += 1
            if on_restart is not None:
                on_restart(err)
            objects, count, continue_token = [], 0, ""  # let the inconsistent pages go before asking again
            continue
        meta = page.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        items = page.get("items")
        page_objects = [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
        del page, items  # the page's objects are all that is kept of it
        count += len(page_objects)
        if on_page is None:
            objects.extend(page_objects)
        else:
            on_page(page_objects)
            del page_objects
        continue_token = str(meta.get("continue") or "")
        if not continue_token:
            return ListResult(objects, str(meta.get("resourceVersion") or ""), count)
