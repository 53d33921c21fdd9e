"""Run the real helm binary on the chart and hand back parsed manifests."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import jsonpatch
import orjson
import trustme
import yaml

from tests.k8s import assert_valid
from tests.service.process import START_TIMEOUT, Service
from tests.service.support import KubeletVolume

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "sidecar-injector"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*.yaml"))
RELEASE = "sidecar-injector"
NAMESPACE = "sidecar-injector"

Manifest = dict[str, Any]
Values = Mapping[str, Any]


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module: `scripts` is not a package (mypy checks each file as a
    top-level module), so it is loaded by path rather than imported."""
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader, name
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class HelmError(AssertionError):
    """helm exited non-zero; the message carries its stderr."""


@dataclass
class Helm:
    """The helm binary, with renders cached: every test may ask for the same output."""

    binary: Path
    _cache: dict[str, list[Manifest]] = field(default_factory=dict)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, check=False, timeout=60
        )

    def template(
        self,
        values: Values | None = None,
        *,
        values_files: Sequence[Path] = (),
        show_only: Iterable[str] = (),
        release: str = RELEASE,
        namespace: str = NAMESPACE,
        kube_version: str | None = None,
    ) -> list[Manifest]:
        """`helm template` output as parsed objects (never compared as text); `kube_version`
        is the cluster version the chart sees (helm's own default otherwise)."""
        only = tuple(show_only)
        key = json.dumps(
            [values or {}, [str(f) for f in values_files], only, release, namespace, kube_version],
            sort_keys=True,
        )
        if key not in self._cache:
            args = ["template", release, str(CHART_DIR), "--namespace", namespace]
            if kube_version is not None:
                args += ["--kube-version", kube_version]
            for path in only:
                args += ["--show-only", path]
            result = self._with_values(args, values, values_files)
            if result.returncode != 0:
                raise HelmError(result.stderr)
            self._cache[key] = [d for d in yaml.safe_load_all(result.stdout) if d]
        return self._cache[key]

    def template_error(self, values: Values) -> str:
        """The error helm reports for values the chart must refuse."""
        args = ["template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
        result = self._with_values(args, values, ())
        if result.returncode == 0:
            raise AssertionError(f"helm accepted values it should refuse: {values}")
        return result.stderr

    def lint(self, values_files: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
        args = ["lint", "--strict", str(CHART_DIR), "--namespace", NAMESPACE]
        return self._with_values(args, None, values_files)

    def _with_values(
        self, args: list[str], values: Values | None, values_files: Sequence[Path]
    ) -> subprocess.CompletedProcess[str]:
        for path in values_files:
            args += ["--values", str(path)]
        if not values:
            return self.run(*args)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
            yaml.safe_dump(dict(values), extra)
            extra.flush()
            return self.run(*args, "--values", extra.name)


def only(docs: Iterable[Manifest], kind: str) -> Manifest:
    """The single object of this kind."""
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def webhook_object(docs: Iterable[Manifest], kind: str) -> Manifest:
    """The single object of this kind that belongs to the webhook (not, say, to the audit)."""
    return only((d for d in docs if component(d) == "webhook"), kind)


def component(doc: Manifest) -> str | None:
    labels: dict[str, str] = doc["metadata"].get("labels") or {}
    return labels.get("app.kubernetes.io/component")


def named(docs: Iterable[Manifest], kind: str, name: str) -> Manifest:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def kinds(docs: Iterable[Manifest]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def webhook_container(docs: Iterable[Manifest]) -> Manifest:
    containers: list[Manifest] = webhook_object(docs, "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    assert len(containers) == 1
    return containers[0]


REPEATABLE_FLAGS = frozenset({"--profile"})
"""Given once per value; the service reads them as one ';'-separated list, like their
environment variable (SIDECAR_INJECTOR_PROFILES)."""


def flags(container: Manifest) -> dict[str, str]:
    """The container's `--flag=value` arguments as a dict; the sub-command is args[0]."""
    args: list[str] = container["args"]
    out: dict[str, str] = {}
    for arg in args[1:]:
        name, sep, value = arg.partition("=")
        assert arg.startswith("--") and sep, f"argument {arg!r} is not --flag=value"
        if name in out and name in REPEATABLE_FLAGS:
            value = f"{out[name]};{value}"
        else:
            assert name not in out, f"{name} given twice"
        out[name] = value
    return out


# --- The webhook container run on this machine, as the kubelet and the image would run it ---

LOOPBACK_FLAGS = {"--host": "127.0.0.1", "--port": "0", "--metrics-port": "0"}
"""Loopback and ephemeral ports: what a run on this machine must change in any case."""
LOCAL_FLAGS = {**LOOPBACK_FLAGS, "--shutdown-delay": "0"}
"""The only arguments changed besides paths: loopback, ephemeral ports, no drain period."""
AUDIT_KINDS = [
    "ClusterRole",
    "ClusterRoleBinding",
    "ConfigMap",
    "Deployment",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
]
"""The kinds the chart renders for the audit (audit.enabled, the default), sorted."""

PATH_FLAGS = frozenset({"--templates-dir", "--last-good-dir", "--tls-cert", "--tls-key"})
"""The arguments that point into the container's volumes."""


@dataclass
class ContainerRun:
    """The webhook container's process as it would start, with its paths remapped here."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    volumes: dict[str, Path]
    """mountPath in the container -> the local directory standing in for it."""


def remap(value: str, table: Mapping[str, Path]) -> str:
    """`value` with a leading path from `table` replaced by its local stand-in."""
    for prefix, local in table.items():
        if value == prefix or value.startswith(prefix.rstrip("/") + "/"):
            return str(local) + value[len(prefix) :]
    return value


@dataclass(frozen=True)
class Mount:
    """One of the webhook container's volumeMounts, with the local directory standing in for
    its volume."""

    path: str
    volume: Manifest
    local: Path


def kubelet_volumes(docs: Sequence[Manifest], root: Path, secret: Mapping[str, str]) -> list[Mount]:
    """The webhook container's volumes laid out under `root` as the kubelet would: ConfigMap
    and Secret (`secret` stands for its data) volumes in the kubelet's `..data` layout, an
    emptyDir as an empty directory."""
    pod = webhook_object(docs, "Deployment")["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = []
    for mount in webhook_container(docs)["volumeMounts"]:
        volume, local = volumes[mount["name"]], root / "volumes" / mount["name"]
        assert "subPath" not in mount
        if "configMap" in volume:
            configmap = named(docs, "ConfigMap", volume["configMap"]["name"])
            KubeletVolume(local).write(configmap.get("data") or {})
        elif "secret" in volume:
            KubeletVolume(local).write(secret)
        else:
            assert "emptyDir" in volume, volume
            local.mkdir(parents=True)
        mounts.append(Mount(mount["mountPath"], volume, local))
    return mounts


def container_run(
    docs: Sequence[Manifest],
    root: Path,
    *,
    secret: Mapping[str, str],
    image_env: Mapping[str, str],
    image_paths: Mapping[str, Path],
    entrypoint: Sequence[str],
) -> ContainerRun:
    """The rendered webhook container as a local process under `root`: its volumes laid out
    as the kubelet would (`secret` stands for the mounted Secret), the image's environment
    (`image_paths` maps image directories such as the venv to local ones) plus the
    container's, and the image's entry point with the rendered args, of which only
    LOCAL_FLAGS and the PATH_FLAGS paths are changed."""
    container = webhook_container(docs)
    assert "command" not in container, "the image's ENTRYPOINT must run, with the chart's args"
    mounts = {m.path: m.local for m in kubelet_volumes(docs, root, secret)}

    rendered = flags(container)
    assert LOCAL_FLAGS.keys() <= rendered.keys()
    args = [container["args"][0]]
    for name, value in rendered.items():
        local = LOCAL_FLAGS.get(name) or remap(value, mounts)
        if name not in LOCAL_FLAGS:
            assert (local != value) == (name in PATH_FLAGS), f"{name}={value}"
        args.append(f"{name}={local}")

    paths = {**image_paths, **mounts}
    env = {
        name: ":".join(remap(part, paths) for part in value.split(":"))
        for name, value in image_env.items()
    }
    env["PATH"] = env.get("PATH", "$PATH").replace("$PATH", os.defpath)
    for variable in container.get("env", []):
        env[variable["name"]] = variable["value"]
    program = shutil.which(entrypoint[0], path=env["PATH"])
    assert program, f"{entrypoint[0]} is not on the image's PATH {env['PATH']}"
    cwd = root / "workdir"  # stands for the image's WORKDIR: not the repository
    cwd.mkdir()
    return ContainerRun([program, *entrypoint[1:], *args], env, cwd, mounts)


class ContainerProcess(Service):
    """The container's process, started from a ContainerRun and stopped like any `Service`."""

    def __init__(self, run: ContainerRun) -> None:
        super().__init__((), env=run.env, command=run.command, cwd=run.cwd)

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """The ports from the `listening` line, logged as JSON or for the console."""
        line = self.stdout.wait_for(lambda text: LISTENING.search(text) is not None, timeout)
        if line is None:
            self.stop()
            raise AssertionError(
                f"service did not start:\n{self.stdout.text()}\n{self.stderr.text()}"
            )
        if line.startswith("{"):
            event = json.loads(line)
            self.port, self.metrics_port = event["port"], event["metrics_port"]
        else:
            ports = dict(re.findall(r"\b(port|metrics_port)=(\d+)", line))
            self.port, self.metrics_port = int(ports["port"]), int(ports["metrics_port"])

    def ops(self, path: str) -> httpx.Response:
        """GET on the plain HTTP (metrics) listener, as the kubelet's probes do."""
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5)

    def wait_ready(self, path: str = "/readyz", timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                answer = self.ops(path)
                if answer.status_code == 200:
                    return
                detail = f"{answer.status_code} {answer.text}"
            except httpx.TransportError as exc:
                detail = repr(exc)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(
                    f"{path} never answered 200 (last: {detail}):\n{self.stdout.text()}\n"
                    f"{self.stderr.text()}"
                )
            time.sleep(0.05)


LISTENING = re.compile(r'"event":"listening"|^\S+ \[\w+\s*\] listening ')


@contextmanager
def running_container(run: ContainerRun) -> Iterator[ContainerProcess]:
    """A started container process, stopped (killed if need be) whatever happens."""
    process = ContainerProcess(run)
    try:
        process.wait_listening()
        yield process
    finally:
        process.stop()


class Trust(Protocol):
    """What a client needs to verify the server: a `trustme.CA`, or a CA certificate alone."""

    def configure_trust(self, ctx: ssl.SSLContext) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    """How the kube-apiserver calls the webhook: the TLS name it verifies, path and timeout."""

    hostname: str
    path: str
    timeout_seconds: int

    @classmethod
    def of(cls, webhook: Manifest, service: Manifest) -> Endpoint:
        """From one rendered webhook entry: the Service's DNS name, or the URL's host."""
        client = webhook["clientConfig"]
        if "url" in client:
            url = urlsplit(client["url"])
            assert url.scheme == "https" and url.hostname
            return cls(url.hostname, url.path, webhook["timeoutSeconds"])
        ref = client["service"]
        assert (ref["name"], ref["namespace"]) == (
            service["metadata"]["name"],
            service["metadata"]["namespace"],
        )
        return cls(f"{ref['name']}.{ref['namespace']}.svc", ref["path"], webhook["timeoutSeconds"])

    def review(
        self, process: ContainerProcess, ca: Trust, document: Mapping[str, Any]
    ) -> dict[str, Any]:
        """POST an AdmissionReview over TLS verified for `hostname`; its `response`."""
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with httpx.Client(verify=context, timeout=10) as client:
            answer = client.post(
                f"https://127.0.0.1:{process.port}{self.path}",
                params={"timeout": f"{self.timeout_seconds}s"},
                content=orjson.dumps(document),
                headers={"content-type": "application/json"},
                extensions={"sni_hostname": self.hostname},
            )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["apiVersion"], body["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
        response: dict[str, Any] = body["response"]
        assert response["uid"] == document["request"]["uid"]
        return response


def serving_secret(ca: trustme.CA, dns_names: Sequence[str]) -> dict[str, str]:
    """A Secret as cert-manager writes it (tls.crt chain, tls.key, ca.crt), from `ca`."""
    leaf = ca.issue_cert(*dns_names)
    return {
        "tls.crt": "".join(blob.bytes().decode() for blob in leaf.cert_chain_pems),
        "tls.key": leaf.private_key_pem.bytes().decode(),
        "ca.crt": ca.cert_pem.bytes().decode(),
    }


def serving_names(docs: list[Manifest]) -> list[str]:
    """The DNS names of the mounted serving certificate: the rendered Certificate's, or (with an
    existing Secret) the Service's own name."""
    service = webhook_object(docs, "Service")["metadata"]
    name = f"{service['name']}.{service['namespace']}.svc"
    volumes = webhook_object(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    [secret] = [v["secret"]["secretName"] for v in volumes if "secret" in v]
    certificates = [
        d for d in docs if d["kind"] == "Certificate" and d["spec"]["secretName"] == secret
    ]
    if not certificates:
        return [name]
    [certificate] = certificates
    names: list[str] = certificate["spec"]["dnsNames"]
    assert name in names
    return names


def patched(pod: Manifest, response: dict[str, Any]) -> dict[str, Any]:
    """The pod after the response's JSON patch, valid for Kubernetes."""
    assert response["allowed"] is True, response
    assert response["patchType"] == "JSONPatch"
    ops = orjson.loads(base64.b64decode(response["patch"]))
    result: dict[str, Any] = jsonpatch.apply_patch(pod, ops)
    assert_valid(result)
    return result
