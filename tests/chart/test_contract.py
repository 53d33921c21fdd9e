"""The chart and the service agree: the rendered webhook container, run here on loopback with
its volumes laid out as the kubelet would, becomes ready and injects what the chart ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from injector.service.sample import review

from .helm import (
    CI_VALUES,
    ContainerProcess,
    ContainerRun,
    Endpoint,
    Helm,
    Manifest,
    container_run,
    flags,
    named,
    only,
    patched,
    running_container,
    serving_names,
    serving_secret,
    webhook_container,
    webhook_object,
)
from .test_dockerfile import FINAL
from .test_dockerfile import env as dockerfile_env

IMAGE_ENV = dockerfile_env(FINAL)
ENTRYPOINT: list[str] = json.loads(FINAL.last("ENTRYPOINT"))
[IMAGE_VENV] = [c.split()[-1] for c in FINAL.all("COPY") if c.startswith("--from=build ")]
"""Where the image keeps its venv (`COPY --from=build /opt/venv /opt/venv`)."""


def _creates_configmap(values: Path) -> bool:
    return not (yaml.safe_load(values.read_text()).get("templatesConfigMap") or {}).get("existing")


VALUE_SETS = [None, *(path for path in CI_VALUES if _creates_configmap(path))]
"""The defaults and every ci/ value set whose templates the chart renders (not an existing
ConfigMap, whose content the chart does not know)."""


@dataclass
class Release:
    """One rendered release whose webhook container runs here."""

    docs: list[Manifest]
    run: ContainerRun
    process: ContainerProcess
    ca: trustme.CA

    @property
    def flags(self) -> dict[str, str]:
        return flags(webhook_container(self.docs))

    @property
    def endpoints(self) -> list[Endpoint]:
        config = only(self.docs, "MutatingWebhookConfiguration")
        service = webhook_object(self.docs, "Service")
        return [Endpoint.of(webhook, service) for webhook in config["webhooks"]]

    @property
    def templates(self) -> dict[str, dict[str, Any]]:
        """The templates ConfigMap (the one the Pods mount), name -> parsed template."""
        pod = webhook_object(self.docs, "Deployment")["spec"]["template"]["spec"]
        [name] = [v["configMap"]["name"] for v in pod["volumes"] if v["name"] == "templates"]
        configmap = named(self.docs, "ConfigMap", name)
        return {
            key.removesuffix(".yaml"): yaml.safe_load(text)
            for key, text in configmap["data"].items()
        }

    def review(self, document: dict[str, Any]) -> dict[str, Any]:
        """Each webhook entry of the configuration is called the same way: one answer."""
        answers = [e.review(self.process, self.ca, document) for e in self.endpoints]
        assert all(a == answers[0] for a in answers)
        return answers[0]

    def ask(self, inject: str, namespace: str = "shop") -> tuple[dict[str, Any], dict[str, Any]]:
        """The sample review of a pod asking for `inject`, and the response."""
        document = review("")
        document["request"]["namespace"] = namespace
        pod = document["request"]["object"]
        pod["metadata"]["namespace"] = namespace
        pod["metadata"]["annotations"][f"{self.flags['--annotation-prefix']}/inject"] = inject
        return pod, self.review(document)

    def status(self, pod: Manifest) -> dict[str, Any]:
        annotation = pod["metadata"]["annotations"][f"{self.flags['--annotation-prefix']}/status"]
        status: dict[str, Any] = json.loads(annotation)
        return status


@pytest.fixture(
    scope="module",
    params=VALUE_SETS,
    ids=lambda path: path.name.removesuffix("-values.yaml") if path else "defaults",
)
def release(
    request: pytest.FixtureRequest, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    docs = helm.template(values_files=[request.param] if request.param else [])
    ca = trustme.CA()
    run = container_run(
        docs,
        tmp_path_factory.mktemp("pod"),
        secret=serving_secret(ca, serving_names(docs)),
        image_env=IMAGE_ENV,
        image_paths={IMAGE_VENV: Path(sys.prefix)},
        entrypoint=ENTRYPOINT,
    )
    with running_container(run) as process:
        process.wait_ready(webhook_container(docs)["readinessProbe"]["httpGet"]["path"])
        yield Release(docs, run, process, ca)
    assert process.proc.returncode == 0, process.stderr.text()


def test_runs_the_image_entry_point_with_the_rendered_args(release: Release) -> None:
    program, *args = release.run.command
    assert Path(program) == Path(sys.prefix) / "bin" / ENTRYPOINT[0]
    assert args[0] == "serve"
    assert release.run.env["HOME"] == str(release.run.volumes["/tmp"]), "HOME is writable"
    mounted = {f"--templates-dir={path}" for path in release.run.volumes.values()}
    assert mounted & set(args), "the templates are read from the mounted ConfigMap"


def test_probes_and_service_reach_the_right_listeners(release: Release) -> None:
    container = webhook_container(release.docs)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["https"] == int(release.flags["--port"])
    assert ports["metrics"] == int(release.flags["--metrics-port"])
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == "metrics"
        assert get.get("scheme", "HTTP") == "HTTP"
        release.process.wait_ready(get["path"])
    ready = release.process.ops(container["readinessProbe"]["httpGet"]["path"]).json()
    assert ready["ready"] is True
    service = webhook_object(release.docs, "Service")
    by_target = {p["targetPort"]: p["port"] for p in service["spec"]["ports"]}
    assert set(by_target) <= set(ports)
    config = only(release.docs, "MutatingWebhookConfiguration")
    for webhook in config["webhooks"]:
        if "service" in webhook["clientConfig"]:
            assert webhook["clientConfig"]["service"]["port"] == by_target["https"]


def test_every_template_in_the_configmap_is_injected(release: Release) -> None:
    assert "log-shipper" in release.templates
    for name, template in release.templates.items():
        pod, response = release.ask(name)
        result = patched(pod, response)
        assert [t["name"] for t in release.status(result)["templates"]] == [name]
        for kind in ("containers", "initContainers"):
            wanted = {c["name"] for c in template.get(kind, [])}
            assert wanted <= {c["name"] for c in result["spec"].get(kind, [])}, (name, kind)
        injected = {e["name"] for c in result["spec"]["containers"] for e in c.get("env", [])}
        assert {v["name"] for v in template.get("env", [])} <= injected, name


def test_default_templates_and_on_error_reach_the_service(release: Release) -> None:
    defaults = [n for n in release.flags["--default-templates"].split(",") if n]
    allow = release.flags["--on-error"] == "allow"
    pod, response = release.ask("true")
    if defaults:
        assert set(defaults) <= set(release.templates), "defaults the chart does not ship"
        assert [t["name"] for t in release.status(patched(pod, response))["templates"]] == defaults
    else:
        assert response["allowed"] is allow
    _, response = release.ask("no-such-template")
    assert response["allowed"] is allow
    assert "patch" not in response
    assert bool(response.get("warnings")) is allow, "an admitted failure is reported"


def run_check(pod: Manifest) -> subprocess.CompletedProcess[str]:
    """The helm test container's command, run here with that container's environment."""
    [container] = pod["spec"]["containers"]
    env = {"PATH": os.defpath}
    for variable in container.get("env", []):
        assert "$(" not in variable["value"], "no kubelet variable expansion here"
        env[variable["name"]] = variable["value"]
    return subprocess.run(
        [*container["command"], *container.get("args", [])],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=10,
    )


def test_the_helm_test_pod_gets_the_change_it_checks(release: Release) -> None:
    [pod] = [
        d
        for d in release.docs
        if d["kind"] == "Pod" and d["metadata"]["annotations"].get("helm.sh/hook") == "test"
    ]
    assert run_check(pod).returncode == 1, "the check must fail without the injection"
    document = review("")
    document["request"].update(
        namespace=pod["metadata"]["namespace"], name=pod["metadata"]["name"], object=pod
    )
    result = patched(pod, release.review(document))
    check = run_check(result)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("injected: SIDECAR_INJECTOR_HELM_TEST=injected:")
