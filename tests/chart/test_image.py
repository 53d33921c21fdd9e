"""The image, without a Docker engine: its build steps (wheel from the build context, locked
dependencies, then the wheel, into a venv without pip) run here, and the result serves the
chart's rendered container args with the image's environment, outside the repository."""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from injector.service.sample import review

from .helm import (
    REPO_ROOT,
    ContainerProcess,
    ContainerRun,
    Endpoint,
    Helm,
    container_run,
    only,
    patched,
    running_container,
    serving_names,
    serving_secret,
)
from .test_contract import ENTRYPOINT, IMAGE_ENV, IMAGE_VENV
from .test_dockerfile import FINAL, STAGES

BUILD_TIMEOUT = 240
PIP_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_ROOT_USER_ACTION": "ignore"}


@dataclass
class Image:
    venv: Path
    wheel: Path
    context: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        [found] = self.venv.glob("lib/python3.*/site-packages")
        return found

    def pip(self, *args: str) -> str:
        """pip of the test's Python acting on the image's venv, as the build stage does."""
        return run(sys.executable, "-m", "pip", "--python", str(self.python), *args)


def run(*command: str, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")} | PIP_ENV
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=BUILD_TIMEOUT,
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build_context(directory: Path) -> Path:
    """The files the build stage COPYs (all the allow-listed context), without caches."""
    directory.mkdir()
    for instruction in STAGES[0].all("COPY"):
        assert not instruction.startswith("--")
        for source in instruction.split()[:-1]:
            origin, target = REPO_ROOT / source, directory / source
            if origin.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "*.py[cod]")
                shutil.copytree(origin, target, ignore=ignore)
            else:
                shutil.copy2(origin, target)
    return directory


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """The build stage's steps, in order, on a copy of the build context."""
    root = tmp_path_factory.mktemp("image")
    context = build_context(root / "context")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-w",
        str(root / "dist"),
        ".",
        cwd=context,
    )
    [wheel] = (root / "dist").glob("*.whl")
    built = Image(root / "venv", wheel, context)
    run(sys.executable, "-m", "venv", "--without-pip", str(built.venv))
    built.pip(
        "install",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        "-r",
        str(context / "requirements.txt"),
    )
    built.pip("install", "--no-deps", str(wheel))
    return built


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_wheel_holds_the_package_and_its_entry_point(image: Image) -> None:
    with zipfile.ZipFile(image.wheel) as archive:
        names = archive.namelist()
        [meta] = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        entry_points = configparser.ConfigParser()
        entry_points.read_string(archive.read(f"{meta}/entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == {"sidecar-injector": "injector.cli:main"}
    assert {n.split("/")[0] for n in names} == {"injector", meta}, "no tests, no stray modules"
    assert "injector/py.typed" in names


def test_the_venv_holds_exactly_the_lock_and_the_wheel(image: Image) -> None:
    listed = json.loads(image.pip("list", "--format=json"))
    installed = {canonical(p["name"]): p["version"] for p in listed}
    locked = {}
    for line in (image.context / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.split()[0].partition("==")
            locked[canonical(name)] = version
    assert installed == {**locked, "sidecar-injector": "0.1.0"}
    image.pip("check")  # the lock satisfies every Requires-Dist: --no-deps hid nothing
    assert not (image.site_packages / "tests").exists()
    assert not list(image.site_packages.glob("*.pth")), "no editable install, no path hooks"
    assert not (image.venv / "bin" / "pip").exists(), "no installer in the image's venv"


def test_the_chart_runs_the_image_as_its_user(helm: Helm) -> None:
    pod = only(helm.template(), "Deployment")["spec"]["template"]["spec"]
    user, _, group = FINAL.last("USER").partition(":")
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (
        int(user),
        int(group),
    )
    [container] = pod["containers"]
    assert container["args"][0] == json.loads(FINAL.last("CMD"))[0]


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path): (path.lstat().st_mtime_ns, path.lstat().st_size)
        for path in [directory, *directory.rglob("*")]
    }


@dataclass
class Started:
    run: ContainerRun
    process: ContainerProcess
    ca: trustme.CA
    endpoint: Endpoint


@pytest.fixture(scope="module")
def started(
    image: Image, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Started]:
    """The default release's container, run from the image's venv with the image's ENV only.

    The venv stands for the read-only root filesystem: it must not change while serving."""
    docs = helm.template()
    ca = trustme.CA()
    container = container_run(
        docs,
        tmp_path_factory.mktemp("pod"),
        secret=serving_secret(ca, serving_names(docs)),
        image_env=IMAGE_ENV,
        image_paths={IMAGE_VENV: image.venv},
        entrypoint=ENTRYPOINT,
    )
    config = only(docs, "MutatingWebhookConfiguration")
    endpoint = Endpoint.of(config["webhooks"][0], only(docs, "Service"))
    before = snapshot(image.venv)
    with running_container(container) as process:
        yield Started(container, process, ca, endpoint)
    assert process.proc.returncode == 0, process.stderr.text()
    assert snapshot(image.venv) == before, "the process wrote into the (read-only) image"
    assert not list(container.cwd.iterdir()), "the process wrote into its working directory"


def test_the_environment_cannot_reach_the_repository(started: Started, image: Image) -> None:
    assert Path(started.run.command[0]) == image.venv / "bin" / ENTRYPOINT[0]
    assert not {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} & started.run.env.keys()
    assert REPO_ROOT not in [started.run.cwd, *started.run.cwd.parents]
    where = subprocess.run(
        [
            str(image.python),
            "-c",
            "import injector, sys; print(injector.__file__); print(sys.path)",
        ],
        cwd=started.run.cwd,
        env=started.run.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module, path = where.splitlines()
    assert Path(module).is_relative_to(image.site_packages)
    assert str(REPO_ROOT) not in path


def test_the_image_becomes_ready_and_injects_over_tls(started: Started) -> None:
    started.process.wait_ready("/readyz")
    document = review("log-shipper")
    pod = document["request"]["object"]
    result = patched(pod, started.endpoint.review(started.process, started.ca, document))
    assert result["spec"]["containers"][-1]["name"] == "log-shipper"
    assert started.process.ops("/healthz").status_code == 200
