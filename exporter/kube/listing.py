"""A paginated LIST (`limit` + `continue`), shared by the reflector and the one-shot `devices`
command."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.kube.client import KubeClient


@dataclass(frozen=True, slots=True)
class ListResult:
    objects: list[dict[str, Any]]
    resource_version: str  # the list's resourceVersion, from the last page


async def list_all(
    client: KubeClient,
    path: str,
    params: Mapping[str, str],
    page_size: int,
    timeout: float | None = None,
) -> ListResult:
    """Every page of one LIST (`page_size` 0: one unpaginated request). Raises `ApiError` as
    `KubeClient.get_json` does, each page limited to `timeout` seconds; an expired continue token
    (410) is raised too, so the caller restarts (the pages would not be one consistent snapshot)."""
    objects: list[dict[str, Any]] = []
    base = dict(params)
    if page_size > 0:
        base["limit"] = str(page_size)
    continue_token = ""
    while True:
        page_params = dict(base, **({"continue": continue_token} if continue_token else {}))
        page = await client.get_json(path, page_params, timeout=timeout)
        items = page.get("items")
        if isinstance(items, list):
            objects.extend(item for item in items if isinstance(item, dict))
        meta = page.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        continue_token = str(meta.get("continue") or "")
        if not continue_token:
            return ListResult(objects, str(meta.get("resourceVersion") or ""))
