"""The container image: the Dockerfile built with buildah and run as its non-root user against the
demo's Kubernetes API, serving the same chip series as the exporter the demo runs on the host.

No image registry is reachable from CI, so the base image is a stand-in made by
`deploy/image/build-stand-in-base.sh` (Debian minbase + Debian's Python, committed under the
Dockerfile's base name) and the build never pulls; see docs/deployment.md for what this proves.

Slow (about a minute with the debootstrap cache warm, a few more cold): tests/conftest.py runs the
`image` marker last. Needs root, buildah and debootstrap: without them it is skipped, except in CI
(CI=true), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter import __version__
from tests.helpers import parse_exposition
from tests.prometheus_process import free_port

ROOT = Path(__file__).resolve().parent.parent
IMAGE_DIR = ROOT / "deploy" / "image"
BUILDAH = [str(IMAGE_DIR / "buildah.sh")]
CHIP_SERIES = "mindx_npu_chip_fault_level"
KUBECONFIG_IN_IMAGE = "/etc/mindx-fault-exporter/kubeconfig"

_missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
_cannot_build = (
    f"{' and '.join(_missing)} not installed: apt-get install buildah debootstrap (see .ci/run)"
    if _missing
    else "building the stand-in base needs root (debootstrap)"
    if os.geteuid() != 0
    else ""
)

pytestmark = [
    pytest.mark.image,
    # In CI nothing is skipped: a missing tool fails the build below with the script's own message.
    pytest.mark.skipif(bool(_cannot_build) and not os.environ.get("CI"), reason=_cannot_build),
]


def buildah(*args: str, timeout: float = 120) -> str:
    proc = subprocess.run([*BUILDAH, *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"buildah {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The ID of the image built from this checkout (its name may be retagged by another build)."""
    iidfile = tmp_path_factory.mktemp("image") / "iid"
    proc = subprocess.run(
        [str(IMAGE_DIR / "build.sh"), "--iidfile", str(iidfile)],
        capture_output=True,
        text=True,
        timeout=480,
        cwd=ROOT,
    )
    assert proc.returncode == 0, f"deploy/image/build.sh failed:\n{proc.stderr}"
    return iidfile.read_text().strip()


@pytest.fixture(scope="module")
def image_config(image: str) -> dict:
    config: dict = json.loads(buildah("inspect", "--type", "image", image))["OCIv1"]["config"]
    return config


def dockerfile_user() -> tuple[int, int]:
    (user,) = [
        line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("USER ")
    ]
    uid, _, gid = user.partition(":")
    return int(uid), int(gid)


def test_image_config(image_config: dict) -> None:
    uid, gid = dockerfile_user()
    assert image_config["User"] == f"{uid}:{gid}"
    assert image_config["Entrypoint"] == ["mindx-fault-exporter"]
    assert "9847/tcp" in image_config["ExposedPorts"]
    assert image_config["Labels"]["org.opencontainers.image.version"] == __version__


@pytest.fixture
def container(image: str) -> Iterator[str]:
    name = buildah("from", "--quiet", "--pull=never", image).strip()
    try:
        yield name
    finally:
        buildah("rm", name)


class Started:
    """A process in a session of its own, so that stopping it stops its children (buildah's
    chroot helpers and the exporter under them) too."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=ROOT
            )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def scrape(port: int) -> dict[frozenset[tuple[str, str]], float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    except OSError:
        return None
    return {labels: value for (name, labels), value in parse_exposition(body).items() if name == CHIP_SERIES}


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cmdlines(pids: list[int]) -> dict[int, list[bytes]]:
    found = {}
    for pid in pids:
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:  # exited meanwhile
            continue
    return found


def ids(pid: int) -> tuple[list[int], list[int]]:
    """Real, effective, saved and filesystem UIDs and GIDs of a process, as the host sees them."""
    status = dict(
        line.split(":", 1) for line in (Path("/proc") / str(pid) / "status").read_text().splitlines()
    )
    return [int(x) for x in status["Uid"].split()], [int(x) for x in status["Gid"].split()]


def test_image_serves_chip_series_as_non_root(container: str, image_config: dict, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    demo_port, image_port = free_port(), free_port()
    demo = Started(
        [
            sys.executable, "-m", "exporter", "demo",
            "--write-kubeconfig", str(kubeconfig),
            "--web.listen-address", f"127.0.0.1:{demo_port}",
        ],
        tmp_path / "demo.log",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    exporter: Started | None = None
    try:
        deadline = time.monotonic() + 60
        while scrape(demo_port) is None:
            assert demo.proc.poll() is None and time.monotonic() < deadline, demo.output()
            time.sleep(0.2)
        # Readable by the image's user whatever the umask (the demo's kubeconfig holds no secret).
        kubeconfig.chmod(0o644)
        # The image's own entrypoint, run as the image's configured user (no --user here), its
        # network the host's (chroot isolation): the kubeconfig's 127.0.0.1 API is reachable.
        exporter = Started(
            [
                *BUILDAH, "run", "--isolation", "chroot",
                "--volume", f"{kubeconfig}:{KUBECONFIG_IN_IMAGE}:ro",
                container, "--",
                *image_config["Entrypoint"],
                "--kubeconfig", KUBECONFIG_IN_IMAGE,
                "--web.listen-address", f"127.0.0.1:{image_port}",
            ],
            tmp_path / "image.log",
        )  # fmt: skip

        # Both exporters watch the same simulated cluster, which keeps changing: wait for two
        # back-to-back scrapes to agree.
        deadline = time.monotonic() + 90
        while True:
            from_image, from_host = scrape(image_port), scrape(demo_port)
            if from_image and from_image == from_host:
                break
            assert exporter.proc.poll() is None, f"the image's exporter exited:\n{exporter.output()}"
            assert time.monotonic() < deadline, (
                f"image served {len(from_image or {})} {CHIP_SERIES} series, the host "
                f"{len(from_host or {})}:\n{exporter.output()}"
            )
            time.sleep(0.5)
        assert {dict(labels)["node"] for labels in from_image} and all(
            dict(labels)["id"].isdigit() for labels in from_image
        )

        # The process serving them, as the host sees it: the exporter, not root.
        serving = [
            pid
            for pid, argv in cmdlines(descendants(exporter.proc.pid)).items()
            if argv[0].startswith(b"/opt/venv/bin/python") and f"127.0.0.1:{image_port}".encode() in argv
        ]
        assert len(serving) == 1, serving
        uid, gid = dockerfile_user()
        assert ids(serving[0]) == ([uid] * 4, [gid] * 4)
    finally:
        if exporter is not None:
            exporter.stop()
        demo.stop()
