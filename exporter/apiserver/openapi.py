"""The OpenAPI v3 document of the test server's core/v1 group: ConfigMap and Event, their paths, and
the `fieldValidation` query parameter on every write.

kubectl needs it for writes from manifests: `apply`, `create -f` and `replace -f` ask
`/openapi/v3` whether the server checks fields itself (a `fieldValidation` parameter on the kind's
PATCH operation, found through `x-kubernetes-group-version-kind`); if it does not find that, they
validate the manifest on the client against the schemas, and without a document they stop with
"failed to download openapi". The schemas are minimal but true: the fields these kinds have.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from .store import RESOURCES

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
CORE = "io.k8s.api.core.v1"

_STRING = {"type": "string"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string", "default": ""}}
_TIME = {"type": "string", "format": "date-time"}
_OBJECT = {"type": "object"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


OBJECT_META: dict[str, Any] = {
    "annotations": _STRING_MAP,
    "creationTimestamp": _TIME,
    "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
    "deletionTimestamp": _TIME,
    "finalizers": {"type": "array", "items": _STRING},
    "generateName": _STRING,
    "generation": {"type": "integer", "format": "int64"},
    "labels": _STRING_MAP,
    "managedFields": {"type": "array", "items": _OBJECT},
    "name": _STRING,
    "namespace": _STRING,
    "ownerReferences": {"type": "array", "items": _OBJECT},
    "resourceVersion": _STRING,
    "selfLink": _STRING,
    "uid": _STRING,
}

_TYPE_META = {"apiVersion": _STRING, "kind": _STRING, "metadata": _ref(f"{META}.ObjectMeta")}

KINDS: dict[str, dict[str, Any]] = {
    "ConfigMap": {
        **_TYPE_META,
        "binaryData": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
        "data": _STRING_MAP,
        "immutable": {"type": "boolean"},
    },
    "Event": {
        **_TYPE_META,
        "action": _STRING,
        "count": {"type": "integer", "format": "int32"},
        "eventTime": {"type": "string", "format": "date-time"},
        "firstTimestamp": _TIME,
        "involvedObject": _OBJECT,
        "lastTimestamp": _TIME,
        "message": _STRING,
        "reason": _STRING,
        "related": _OBJECT,
        "reportingComponent": _STRING,
        "reportingInstance": _STRING,
        "series": _OBJECT,
        "source": {"type": "object", "properties": {"component": _STRING, "host": _STRING}},
        "type": _STRING,
    },
}

# Field names per kind and for ObjectMeta, for `fieldValidation=Strict`.
FIELDS: dict[str, frozenset[str]] = {kind: frozenset(props) for kind, props in KINDS.items()}
FIELDS["ObjectMeta"] = frozenset(OBJECT_META)

PATCH_CONTENT_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)


def _parameter(name: str, where: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "description": description,
        "schema": _STRING,
        **({"required": True} if where == "path" else {}),
    }


_FIELD_VALIDATION = _parameter(
    "fieldValidation", "query", "Ignore, Warn or Strict: what to do with unknown fields in the request"
)
_FIELD_MANAGER = _parameter("fieldManager", "query", "name of the actor making the change")


def _operation(kind: str, verb: str, action: str, body: dict[str, Any] | None) -> dict[str, Any]:
    schema = _ref(f"{CORE}.{kind}")
    operation: dict[str, Any] = {
        "operationId": f"{verb}CoreV1Namespaced{kind}",
        "tags": ["core_v1"],
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
    }
    if body is not None:
        operation["requestBody"] = {"content": body, "required": True}
        operation["parameters"] = [_FIELD_MANAGER, _FIELD_VALIDATION]  # no dryRun: refused
    return operation


def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        f"{META}.ObjectMeta": {"type": "object", "properties": OBJECT_META},
        f"{META}.Patch": {"type": "object"},
    }
    paths: dict[str, Any] = {}
    namespace = _parameter("namespace", "path", "object name and auth scope, such as for teams and projects")
    name_param = _parameter("name", "path", "name of the object")
    for info in (info for info in RESOURCES.values() if info.api_version == "v1"):  # the core group only
        kind = info.kind
        schemas[f"{CORE}.{kind}"] = {
            "type": "object",
            "properties": KINDS[kind],
            "x-kubernetes-group-version-kind": [{"group": "", "kind": kind, "version": "v1"}],
        }
        json_body = {"application/json": {"schema": _ref(f"{CORE}.{kind}")}}
        patch_body = {content: {"schema": _ref(f"{META}.Patch")} for content in PATCH_CONTENT_TYPES}
        collection = f"/api/v1/namespaces/{{namespace}}/{info.name}"
        paths[collection] = {
            "parameters": [namespace],
            "get": _operation(kind, "list", "list", None),
            "post": _operation(kind, "create", "post", json_body),
        }
        paths[f"{collection}/{{name}}"] = {
            "parameters": [name_param, namespace],
            "get": _operation(kind, "read", "get", None),
            "put": _operation(kind, "replace", "put", json_body),
            "patch": _operation(kind, "patch", "patch", patch_body),
            "delete": _operation(kind, "delete", "delete", None),
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kube-api-test)", "version": "v1.31.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


BODY = orjson.dumps(document())
HASH = hashlib.sha256(BODY).hexdigest()[:32].upper()
