"""The image, built from the Dockerfile with buildah and run with podman as the chart runs it:
the rendered container's args, its volumes mounted kubelet-style where the chart mounts them,
its security context (read-only root, no privilege escalation, no capabilities), loopback
and ephemeral ports only."""

from __future__ import annotations

import base64
import configparser
import importlib.metadata
import json
import os
import re
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from injector.service.sample import review

from .helm import (
    LOOPBACK_FLAGS,
    REPO_ROOT,
    ContainerProcess,
    ContainerRun,
    Endpoint,
    Helm,
    Manifest,
    Mount,
    flags,
    kubelet_volumes,
    only,
    patched,
    serving_names,
    serving_secret,
    webhook_container,
    webhook_object,
)
from .podman import BASE_ENV, HOST_CA, Engine, base_rootfs, unavailable
from .test_contract import ENTRYPOINT, IMAGE_ENV, IMAGE_VENV
from .test_dockerfile import ARGS

TAG = "localhost/sidecar-injector:test"
START_TIMEOUT = 60.0
"""podman copies the whole image for each container on vfs: seconds, not milliseconds."""
INSTALLERS = ("pip", "setuptools", "wheel")


@dataclass
class Image:
    config: dict[str, Any]
    root: Path
    """The image's root filesystem, in the engine's storage: to read, never to write."""
    base_root: Path
    """The stand-in base's, likewise."""

    @property
    def site_packages(self) -> Path:
        [found] = (self.root / IMAGE_VENV.lstrip("/")).glob("lib/python3.*/site-packages")
        return found


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    reason = unavailable()
    if reason:
        pytest.skip(f"the image is not built here: {reason}")
    engine = Engine.create()
    try:
        yield engine
    finally:
        engine.close()


@pytest.fixture(scope="module")
def image(engine: Engine) -> Image:
    base = ARGS["PYTHON_IMAGE"]
    assert "/" not in base, "an official image: the stand-in is named docker.io/library/..."
    engine.import_base(base_rootfs(), f"docker.io/library/{base}")
    base_root = engine.mount(base)
    version = re.match(r"python:(\d+\.\d+)\.", base)
    assert version and (base_root / f"usr/lib/python{version[1]}").is_dir(), (
        f"the stand-in base's Debian has no Python {version and version[1]}"
    )
    engine.build(TAG)
    inspected = engine.inspect(TAG)
    return Image(inspected["Config"], engine.mount(TAG), base_root)


def test_the_image_config_is_what_the_chart_and_the_contract_test_expect(
    image: Image, default_docs: list[Manifest]
) -> None:
    config, container = image.config, webhook_container(default_docs)
    pod = webhook_object(default_docs, "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert config["User"] == f"{pod['runAsUser']}:{pod['runAsGroup']}", "numeric, the chart's"
    assert config["Entrypoint"] == ENTRYPOINT
    assert config["Cmd"] == container["args"][:1], "CMD is the chart's sub-command"
    assert set(config["ExposedPorts"]) == {f"{p['containerPort']}/tcp" for p in container["ports"]}
    env = dict(variable.split("=", 1) for variable in config["Env"])
    base_path = dict(variable.split("=", 1) for variable in BASE_ENV)["PATH"]
    assert {name: env.get(name) for name in IMAGE_ENV} == {
        name: value.replace("$PATH", base_path) for name, value in IMAGE_ENV.items()
    }, "test_contract runs the service with this environment"
    assert not [name for name in env if name.startswith("PIP_") or "TOKEN" in name]


def test_the_venv_holds_exactly_the_lock_and_the_wheel(image: Image) -> None:
    installed = {
        canonical(d.metadata["Name"]): d.version
        for d in importlib.metadata.distributions(path=[str(image.site_packages)])
    }
    locked = {}
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.split()[0].partition("==")
            locked[canonical(name)] = version
    assert installed == {**locked, "sidecar-injector": "0.1.0"}
    assert not list(image.site_packages.glob("*.pth")), "no editable install, no path hooks"
    assert not (image.site_packages / "tests").exists()

    [own] = importlib.metadata.distributions(
        name="sidecar-injector", path=[str(image.site_packages)]
    )
    files = [str(f) for f in own.files or []]
    [metadata] = [f.split("/")[0] for f in files if f.endswith(".dist-info/METADATA")]
    assert {f.split("/")[0] for f in files if not f.startswith("..")} == {
        "injector",
        metadata,
    }, "the package and its metadata, no tests, no stray modules"
    assert sorted(f for f in files if f.startswith("..")) == [
        "../../../bin/kubectl-sidecar_injector",
        "../../../bin/sidecar-injector",
    ], "the command, and the same as a kubectl plugin"
    assert "injector/py.typed" in files
    entry_points = configparser.ConfigParser()
    entry_points.read_string(own.read_text("entry_points.txt") or "")
    assert dict(entry_points["console_scripts"]) == {
        "sidecar-injector": "injector.cli:main",
        "kubectl-sidecar_injector": "injector.cli:plugin",
    }


def test_the_image_ships_no_installers_and_nothing_from_the_build(image: Image) -> None:
    """No pip, setuptools or wheel, neither in the venv nor in the base's own Python; the CA
    bundle mounted for the build did not stay; no caches or temporary files."""
    assert installers(image.root) == []
    assert installers(image.base_root), "the check would see the base's installers"
    assert (image.root / HOST_CA.relative_to("/")).read_bytes() == (
        image.base_root / HOST_CA.relative_to("/")
    ).read_bytes()
    assert not list((image.root / "tmp").iterdir())
    assert not (image.root / "root" / ".cache").exists()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installers(root: Path) -> list[str]:
    """Every pip, setuptools or wheel package, distribution or command under `root`."""
    found = []
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        for name in dirs:
            package = name in INSTALLERS and (here / name / "__init__.py").exists()
            if package or re.fullmatch(rf"({'|'.join(INSTALLERS)})-.*\.(dist|egg)-info", name):
                found.append(str((here / name).relative_to(root)))
        for name in files:
            if re.fullmatch(r"(pip|wheel|easy_install)[0-9.-]*", name):
                found.append(str((here / name).relative_to(root)))
    return sorted(found)


# --- The image run as the chart runs it ---


@dataclass
class Pod:
    docs: list[Manifest]
    ca: trustme.CA
    mounts: list[Mount]

    @property
    def container(self) -> Manifest:
        return webhook_container(self.docs)


@pytest.fixture(scope="module")
def pod(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Pod:
    """The default release's webhook container with its volumes laid out kubelet-style."""
    docs = helm.template()
    ca = trustme.CA()
    secret = serving_secret(ca, serving_names(docs))
    return Pod(docs, ca, kubelet_volumes(docs, tmp_path_factory.mktemp("pod"), secret))


def run_options(container: Manifest, mounts: Sequence[Mount]) -> list[str]:
    """`podman run` options for the container's security context and volumes; the image's own
    USER runs (the chart's runAsUser is checked against it, not forced)."""
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    options = ["--read-only", "--security-opt=no-new-privileges"]
    options += [f"--cap-drop={c}" for c in security.get("capabilities", {}).get("drop", [])]
    for mount in mounts:
        if "emptyDir" in mount.volume:
            options.append(f"--tmpfs={mount.path}:{tmpfs_options(mount.volume['emptyDir'])}")
        else:
            # The kubelet mounts ConfigMap and Secret volumes read-only whatever readOnly says.
            options.append(f"--volume={mount.local}:{mount.path}:ro")
    return options


def tmpfs_options(empty_dir: Manifest) -> str:
    assert empty_dir.get("medium") == "Memory", "a memory-backed emptyDir is a tmpfs"
    options = ["rw", "nosuid", "nodev", "mode=1777"]
    if "sizeLimit" in empty_dir:
        limit = re.fullmatch(r"(\d+)([KMG])i", empty_dir["sizeLimit"])
        assert limit, empty_dir["sizeLimit"]
        options.append(f"size={limit[1]}{limit[2].lower()}")
    return ",".join(options)


@contextmanager
def podman_run(
    engine: Engine, name: str, options: Sequence[str], args: Sequence[str]
) -> Iterator[ContainerProcess]:
    """`podman run` in the foreground: SIGTERM to it reaches the container, its exit code is
    the container's. The container is removed whatever happens."""
    command = engine.podman_command(
        "run",
        "--rm",
        "--pull=never",
        f"--name={name}",
        "--network=host",  # the service binds 127.0.0.1 itself, on ports the kernel picks
        # The default rlimits are refused here.
        "--ulimit=nofile=20000:20000",
        "--ulimit=nproc=32768:32768",
        *options,
        TAG,
        *args,
    )
    process = ContainerProcess(ContainerRun(command, engine.env, engine.scratch, {}))
    try:
        process.wait_listening(START_TIMEOUT)
        yield process
    finally:
        process.stop()
        engine.podman("rm", "--force", "--ignore", "--time=0", name)


@dataclass
class Served:
    process: ContainerProcess
    pid: int
    """The container's main process, as this machine sees it."""
    args: list[str]


@pytest.fixture(scope="module")
def served(engine: Engine, image: Image, pod: Pod) -> Iterator[Served]:
    """The chart's rendered args on loopback with kernel-picked ports, nothing else changed:
    paths, shutdown delay and graceful timeout are the chart's."""
    rendered = flags(pod.container)
    assert LOOPBACK_FLAGS.keys() <= rendered.keys()
    args = [pod.container["args"][0]]
    args += [f"{name}={LOOPBACK_FLAGS.get(name, value)}" for name, value in rendered.items()]
    name = f"sidecar-injector-test-{os.getpid()}"
    with podman_run(engine, name, run_options(pod.container, pod.mounts), args) as process:
        pid = int(engine.podman("inspect", "--format={{.State.Pid}}", name))
        yield Served(process, pid, args)


def proc(pid: int, name: str) -> str:
    return Path(f"/proc/{pid}/{name}").read_text()


def test_runs_the_entry_point_as_the_charts_user_on_a_read_only_root(
    served: Served, pod: Pod
) -> None:
    cmdline = proc(served.pid, "cmdline").split("\0")[:-1]
    assert cmdline[1:] == [f"{IMAGE_VENV}/bin/{ENTRYPOINT[0]}", *served.args]
    status = dict(line.split(":\t", 1) for line in proc(served.pid, "status").splitlines())
    security = webhook_object(pod.docs, "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert status["Uid"].split() == [str(security["runAsUser"])] * 4
    assert status["Gid"].split() == [str(security["runAsGroup"])] * 4
    assert int(status["CapEff"], 16) == 0, "every capability dropped"
    assert status["NoNewPrivs"] == "1"

    mounted = {}
    for line in proc(served.pid, "mountinfo").splitlines():
        fields, _, filesystem = line.partition(" - ")
        mounted[fields.split()[4]] = (fields.split()[5].split(","), filesystem.split()[0])
    assert "ro" in mounted["/"][0], "read-only root filesystem"
    for mount in pod.mounts:
        options, filesystem = mounted[mount.path]
        if "emptyDir" in mount.volume:
            assert (options[0], filesystem) == ("rw", "tmpfs")
        else:
            assert options[0] == "ro", mount.path


def test_becomes_ready_and_injects_over_tls(served: Served, pod: Pod) -> None:
    served.process.wait_ready(pod.container["readinessProbe"]["httpGet"]["path"])
    assert served.process.ops(pod.container["livenessProbe"]["httpGet"]["path"]).is_success
    config = only(pod.docs, "MutatingWebhookConfiguration")
    endpoint = Endpoint.of(config["webhooks"][0], webhook_object(pod.docs, "Service"))
    document = review("log-shipper")
    result = patched(
        document["request"]["object"], endpoint.review(served.process, pod.ca, document)
    )
    assert result["spec"]["containers"][-1]["name"] == "log-shipper"


def test_stops_cleanly_on_sigterm_within_the_charts_grace_period(served: Served, pod: Pod) -> None:
    """Last of the tests on `served`: it stops the container."""
    grace = webhook_object(pod.docs, "Deployment")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    started = time.monotonic()
    code = served.process.stop(timeout=grace)
    elapsed = time.monotonic() - started
    assert code == 0, served.process.stderr.text()
    assert elapsed < grace
    [drain] = served.process.events("shutdown_started")
    assert drain["drain_seconds"] == float(flags(pod.container)["--shutdown-delay"])
    assert served.process.events("stopped")


@dataclass(frozen=True)
class PemCA:
    """A CA certificate from PEM, trusted as `trustme.CA.configure_trust` would."""

    pem: str

    def configure_trust(self, context: ssl.SSLContext) -> None:
        context.load_verify_locations(cadata=self.pem)


def test_dev_mode_runs_from_the_image_alone(engine: Engine, image: Image, pod: Pod) -> None:
    """docs/chart.md's `docker run ... serve --dev` and the two `docker exec` that fetch the CA
    and the sample review; `--host 0.0.0.0` and `-p` are left out only because the container
    shares this machine's network here."""
    examples = image.root / image.config["WorkingDir"].lstrip("/") / "examples" / "templates"
    shipped = {path.name: path.read_bytes() for path in examples.iterdir()}
    repository = REPO_ROOT / "examples" / "templates"
    assert shipped == {path.name: path.read_bytes() for path in repository.iterdir()}

    tmp = [mount for mount in pod.mounts if "emptyDir" in mount.volume]
    name = f"sidecar-injector-test-{os.getpid()}-dev"
    args = ["serve", "--dev", "--port=0", "--metrics-port=0", "--shutdown-delay=0"]
    with podman_run(engine, name, run_options(pod.container, tmp), args) as process:
        banner = process.stderr.wait_for(lambda line: "caBundle:" in line)
        assert banner, process.stderr.text()

        def dev_file(file: str) -> str:
            return engine.podman(
                "exec", name, "sh", "-c", f"cat /tmp/sidecar-injector-dev-*/{file}"
            )

        ca = dev_file("ca.crt")
        assert base64.b64decode(banner.split()[-1]).decode() == ca
        document = json.loads(dev_file("review.json"))
        process.wait_ready()
        answer = Endpoint("localhost", "/mutate", 10).review(process, PemCA(ca), document)
        result = patched(document["request"]["object"], answer)
        assert result["spec"]["containers"][-1]["name"] == "log-shipper"
        assert process.stop() == 0, process.stderr.text()
