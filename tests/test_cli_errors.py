"""Every mistake a user can make on the command line ends the real process (`python3 -m exporter`)
with exit status 2 and one line on stderr naming the cause and the fix — no traceback, and before
any watch starts. Also: `--help` lists every command, and `$KUBECONFIG` merges several files."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.apiserver import KubeApiTestServer
from exporter.kube.config import load_cluster_access

ROOT = Path(__file__).parent.parent


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["HOME"] = env.get("HOME", "/nonexistent")
    env.pop("KUBERNETES_SERVICE_HOST", None)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env or cli_env(),
        cwd=ROOT,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit status 2, exactly one line on stderr containing every fragment, no traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.returncode == 2, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert lines[0].startswith("mindx-fault-exporter")
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def kubeconfig_for(
    path: Path, server: str = "http://127.0.0.1:1", name: str = "test", **cluster: str
) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, **cluster}}],
        "users": [{"name": name, "user": {"token": "t0ken"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config))
    return path


# --- the exporter -------------------------------------------------------------------------------


def test_help_lists_every_command() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "mindx-fault-exporter demo [flags]" in result.stdout
    assert "mindx-fault-exporter devices [flags]" in result.stdout
    for command in ("demo", "devices"):
        sub = run_cli(command, "--help")
        assert sub.returncode == 0 and f"usage: mindx-fault-exporter {command}" in sub.stdout


def test_missing_ca_file_names_the_file(tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(
        tmp_path / "kc.json", server="https://127.0.0.1:1", **{"certificate-authority": "ca.crt"}
    )
    result = run_cli("--kubeconfig", str(kubeconfig))
    assert_user_error(result, f"File does not exist: {tmp_path / 'ca.crt'}", "--kubeconfig")


def test_missing_kubeconfig_file(tmp_path: Path) -> None:
    result = run_cli("--kubeconfig", str(tmp_path / "kc.json"))
    assert_user_error(result, f"kubeconfig {tmp_path / 'kc.json'}: no such file", "--kubeconfig")


def test_unknown_context_lists_the_defined_ones(tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(tmp_path / "kc.json", name="prod")
    result = run_cli("--kubeconfig", str(kubeconfig), "--context", "staging")
    assert_user_error(result, "context 'staging' is not defined (contexts: prod)", "--context")


def test_kubeconfig_that_is_not_yaml(tmp_path: Path) -> None:
    broken = tmp_path / "kc.yaml"
    broken.write_text("clusters: [\n  - name: x\n")
    assert_user_error(run_cli("--kubeconfig", str(broken)), "not valid YAML at line")


def test_kubeconfig_env_naming_no_existing_file(tmp_path: Path) -> None:
    listed = f"{tmp_path / 'a'}:{tmp_path / 'b'}"
    result = run_cli(env=cli_env(KUBECONFIG=listed))
    assert_user_error(result, listed, "none of these files exists", "$KUBECONFIG")


def test_kubeconfig_env_merges_several_files_as_kubectl_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubectl: the first file that sets current-context wins, the first definition of a name
    wins, and listed files that do not exist are skipped."""
    first = {"contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}], "current-context": "c"}
    second = json.loads(
        kubeconfig_for(tmp_path / "tmp.json", server="http://127.0.0.1:2", name="other").read_text()
    )
    second["clusters"].append({"name": "k", "cluster": {"server": "http://127.0.0.1:3"}})
    second["users"].append({"name": "u", "user": {"token": "second"}})
    third = {
        "clusters": [{"name": "k", "cluster": {"server": "http://127.0.0.1:4"}}],
        "current-context": "other",
    }
    paths = [tmp_path / "first", tmp_path / "missing", tmp_path / "second", tmp_path / "third"]
    for path, content in zip([paths[0], *paths[2:]], (first, second, third), strict=True):
        path.write_text(json.dumps(content))
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(map(str, paths)))
    access = load_cluster_access()
    assert access.host == "http://127.0.0.1:3"
    assert access.authorization() == "Bearer second"
    assert "context c" in access.description
    assert load_cluster_access(context="other").host == "http://127.0.0.1:2"


def test_listen_address_without_colon() -> None:
    result = run_cli("--web.listen-address", "9847")
    assert_user_error(result, "--web.listen-address", "expected [host]:port", "'9847'")


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--kube.page-size", "0", "from 1 to 100000"),
        ("--kube.watch-timeout", "-5", "above 0"),
        ("--kube.list-timeout", "inf", "above 0"),
        ("--web.telemetry-path", "metrics", "starting with /"),
        ("--limits.chips-per-node", "0", "from 1 to 1000000"),
        ("--counters.idle-timeout", "-1", "from 0"),
        ("--total-shards", "0", "from 1 to 10000"),
    ],
)
def test_exporter_flag_ranges(flag: str, value: str, expected: str) -> None:
    assert_user_error(run_cli(flag, value), flag, expected)


def test_shard_must_be_below_total_shards() -> None:
    assert_user_error(run_cli("--shard", "3", "--total-shards", "3"), "--shard 3", "--total-shards 3", "0 to")


def test_bad_web_config(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: /nonexistent/cert.pem\n  key_file: /nonexistent/key.pem\n"
    )
    result = run_cli("--web.config.file", str(web), "--kubeconfig", str(tmp_path / "never-read"))
    assert_user_error(result, "tls_server_config.cert_file")


def test_flags_before_a_command_are_refused() -> None:
    assert_user_error(run_cli("--log.level", "debug", "demo"), "put them after it")


async def test_port_in_use_is_reported_before_any_watch(tmp_path: Path, busy_port: int) -> None:
    async with KubeApiTestServer() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "exporter",
            "--kubeconfig",
            str(kubeconfig),
            "--web.listen-address",
            f"127.0.0.1:{busy_port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=cli_env(),
            cwd=ROOT,
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        result = subprocess.CompletedProcess(proc.args if hasattr(proc, "args") else [], proc.returncode or 0)
        result.stdout, result.stderr = stdout.decode(), stderr.decode()
        assert_user_error(
            result, f"cannot listen on 127.0.0.1:{busy_port}: Address already in use", "--web.listen-address"
        )
        assert "Unclosed" not in result.stderr
        assert api.request_log == []  # nothing was listed or watched


def test_listen_address_not_on_this_machine(tmp_path: Path) -> None:
    kubeconfig = kubeconfig_for(tmp_path / "kc.json")
    # 192.0.2.0/24 is TEST-NET-1: documentation only, never a local address.
    result = run_cli("--kubeconfig", str(kubeconfig), "--web.listen-address", "192.0.2.1:9847")
    assert_user_error(result, "cannot listen on 192.0.2.1:9847: Cannot assign requested address")


# --- demo ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--nodes", "0"], "argument --nodes: expected a whole number from 1 to 20000, got 0"),
        (["--time-scale", "0"], "argument --time-scale: expected a number above 0"),
        (["--time-scale", "-1"], "argument --time-scale: expected a number above 0"),
        (["--fault-rate", "-1"], "argument --fault-rate: expected a number from 0 to 3600"),
        (["--network-fault-rate", "1e9"], "argument --network-fault-rate: expected a number from 0"),
        (["--switch-fault-rate", "x"], "argument --switch-fault-rate: expected a number, got 'x'"),
        (["--recover-prob", "7"], "argument --recover-prob: expected a number from 0 to 1, got 7"),
        (["--escalate-prob", "0.6", "--recover-prob", "0.6"], "add up to more than 1"),
        (["--api.listen-address", "8080"], "argument --api.listen-address: expected [host]:port"),
        (["--web.listen-address", "localhost"], "argument --web.listen-address: expected [host]:port"),
        (["--nodse", "3"], "unrecognized arguments: --nodse 3"),
    ],
)
def test_demo_arguments_are_checked(args: list[str], expected: str) -> None:
    line = assert_user_error(run_cli("demo", *args), expected)
    assert line.startswith("mindx-fault-exporter demo: ")


def test_demo_api_port_in_use(busy_port: int) -> None:
    result = run_cli("demo", "--api.listen-address", f"127.0.0.1:{busy_port}")
    assert_user_error(result, "Address already in use", "--api.listen-address")


def test_demo_metrics_port_in_use(busy_port: int) -> None:
    result = run_cli("demo", "--nodes", "2", "--web.listen-address", f"127.0.0.1:{busy_port}")
    assert_user_error(result, "Address already in use", "--web.listen-address")


def test_demo_kubeconfig_path_not_writable(tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "kubeconfig"
    result = run_cli(
        "demo", "--nodes", "2", "--web.listen-address", "127.0.0.1:0", "--write-kubeconfig", str(target)
    )
    assert_user_error(result, f"cannot write the kubeconfig to {target}", "--write-kubeconfig")


def test_demo_stops_when_its_simulator_dies() -> None:
    """No flag value can make the simulator fail (they are all checked), so a fault is planted in
    the model; the real CLI runs in a real process and must stop with the reason."""
    program = (
        "import sys\n"
        "from exporter.simulator import ClusterSimulator\n"
        "def broken(self, *args, **kwargs):\n"
        "    raise ValueError('planted: time does not run backwards')\n"
        "ClusterSimulator.advance = broken\n"
        "from exporter.cli import main\n"
        "args = ['demo', '--nodes', '2', '--web.listen-address', '127.0.0.1:0', '--log.level', 'error']\n"
        "sys.exit(main(args))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=cli_env(),
        cwd=ROOT,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert "metrics:" in result.stdout  # it was serving ...
    assert result.stderr.strip().splitlines()[-1] == (  # ... and then stopped, saying why
        "mindx-fault-exporter demo: the simulated cluster stopped: "
        "ValueError: planted: time does not run backwards"
    )
