"""What the benchmark sends and loads: AdmissionReviews of realistic shapes and sizes, and
template directories of 10, 100 and 1,000 templates.

The large pods grow the sample pod (injector/service/sample.py, the ~6 KB review of a
ReplicaSet's Pod) the way real pods grow: more containers, each with a long environment
(URLs, feature flags, JSON settings), its own config volume and mount, and per-container
annotations. They stay valid Pods: unique DNS-1123 container and volume names, C-identifier env
names, annotations well under the 256 KiB limit.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.servers import REPO
from injector.service.sample import review

KIB = 1024
MIB = 1024 * KIB
EXAMPLES = REPO / "examples" / "templates"
ONE_TEMPLATE = "log-shipper"
THREE_TEMPLATES = "log-shipper,trace-agent,envoy-proxy"
WORKER_BYTES = 20 * KIB
"""Roughly what one added container (spec, env, volume, annotation) weighs in a large pod."""


@dataclass(frozen=True)
class Scenario:
    """One request shape: a key for file names, a title for the report, the body on the wire."""

    key: str
    title: str
    templates: str
    body: bytes


def scenarios() -> list[Scenario]:
    """The four request shapes of the load matrix, smallest first."""
    return [
        Scenario("6kb-1t", "6 KB pod, 1 template", ONE_TEMPLATE, _encode(review(ONE_TEMPLATE))),
        Scenario(
            "6kb-3t", "6 KB pod, 3 templates", THREE_TEMPLATES, _encode(review(THREE_TEMPLATES))
        ),
        Scenario("100kb", "100 KB pod, 1 template", ONE_TEMPLATE, scaled(100 * KIB)),
        Scenario("1mib", "1 MiB pod, 1 template", ONE_TEMPLATE, scaled(MIB)),
    ]


def _encode(document: dict[str, Any]) -> bytes:
    return orjson.dumps(document)


def scaled(target: int, inject: str = ONE_TEMPLATE) -> bytes:
    """An AdmissionReview of at least `target` bytes (within 1%), a valid Pod inside."""
    document = review(inject)
    pod = document["request"]["object"]
    spec = pod["spec"]
    app = spec["containers"][0]
    workers = max(1, target // WORKER_BYTES)
    for index in range(workers):
        _add_worker(pod, app, index)
    size = len(_encode(document))
    envs = [container["env"] for container in spec["containers"][2:]]
    counter = 0
    while size < target:
        env = envs[counter % len(envs)]
        entry = _setting(counter)
        env.append(entry)
        size += len(_encode(entry)) + 1
        counter += 1
        if size >= target:  # the estimate ignores nothing but rounding: confirm it
            size = len(_encode(document))
    return _encode(document)


def _add_worker(pod: dict[str, Any], app: dict[str, Any], index: int) -> None:
    """A queue-worker container built from the app container, with its own config volume."""
    name = f"worker-{index:03d}"
    worker = copy.deepcopy(app)
    worker["name"] = name
    worker["args"] = ["work", f"--queue=orders-{index}", "--config=/etc/shop/config.yaml"]
    for key in ("ports", "readinessProbe", "livenessProbe"):
        worker.pop(key)
    worker["env"] = [e for e in worker["env"] if e["name"] != "POD_IP"] + [
        {"name": "WORKER_QUEUE", "value": f"orders-{index}"},
        {"name": "WORKER_CONCURRENCY", "value": "8"},
    ]
    worker["resources"] = {"requests": {"cpu": "100m", "memory": "128Mi"}}
    worker["volumeMounts"].append({"name": f"{name}-config", "mountPath": f"/etc/{name}"})
    pod["spec"]["containers"].append(worker)
    pod["spec"]["volumes"].append(
        {"name": f"{name}-config", "configMap": {"name": f"shop-{name}", "defaultMode": 420}}
    )
    pod["metadata"]["annotations"][f"ad.datadoghq.com/{name}.logs"] = orjson.dumps(
        [{"source": "shop", "service": name, "log_processing_rules": []}]
    ).decode()


def _setting(counter: int) -> dict[str, str]:
    """One env var of a worker: the kinds of values real deployments carry."""
    kind = counter % 4
    if kind == 0:
        value = f"https://partner-{counter}.shop.svc.cluster.local:8443/api/v2/orders"
    elif kind == 1:
        value = orjson.dumps(
            {
                "retries": 3,
                "backoff": "250ms",
                "queue": f"orders-{counter}",
                "batch": {"size": 500, "linger": "20ms"},
                "dlq": f"orders-{counter}-dead-letter",
            }
        ).decode()
    elif kind == 2:
        value = "checkout-v2,fast-search,new-pricing,gift-cards,one-click,express-shipping"
    else:
        value = f"{counter * 7919 % 100000:05d}-{counter:06d}"
    return {"name": f"SHOP_SETTING_{counter:05d}", "value": value}


# --- template directories ---


def generated_template(index: int) -> str:
    """A realistic template (parameters, templated strings, env, volumes, labels) of ~1.5 KB."""
    name = f"gen-{index:04d}"
    return f"""\
description: Generated agent {index} for the templates-loaded benchmark
parameters:
  image:
    type: string
    default: "registry.example.com/agents/agent-{index}:1.{index % 50}.0"
  port:
    type: int
    default: {10000 + index}
    min: 1024
    max: 65535
  logLevel:
    type: string
    enum: [debug, info, warn, error]
    default: info
  cpu:
    type: quantity
    default: "{10 + index % 90}m"
containers:
  - name: {name}-agent
    image: "{{{{ params.image }}}}"
    args:
      - "--log-level={{{{ params.logLevel }}}}"
      - "--listen=127.0.0.1:{{{{ params.port }}}}"
      - "--tag={{{{ pod.namespace }}}}.{{{{ pod.name }}}}"
    ports:
      - {{name: agent, containerPort: "{{{{ params.port }}}}"}}
    resources:
      requests: {{cpu: "{{{{ params.cpu }}}}", memory: 32Mi}}
      limits: {{memory: 64Mi}}
    securityContext:
      runAsNonRoot: true
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
    volumeMounts:
      - {{name: {name}-data, mountPath: /var/lib/agent}}
volumes:
  - name: {name}-data
    emptyDir: {{sizeLimit: 64Mi}}
env:
  - {{name: AGENT_{index}_ADDR, value: "127.0.0.1:{{{{ params.port }}}}"}}
  - {{name: AGENT_{index}_SERVICE, value: "{{{{ pod.labels.get('app', pod.name) }}}}"}}
labels:
  agents.example.com/{name}: "enabled"
annotations:
  agents.example.com/{name}-port: "{{{{ params.port }}}}"
"""


def template_dir(root: Path, count: int) -> Path:
    """`count` templates: the example log-shipper (which the request asks for) and
    `count - 1` generated ones, laid out as the kubelet mounts a ConfigMap (`..data`)."""
    directory = root / f"templates-{count}"
    data = directory / "..2024_10_01_09_30_00.000000000"
    data.mkdir(parents=True)
    shutil.copy(EXAMPLES / f"{ONE_TEMPLATE}.yaml", data / f"{ONE_TEMPLATE}.yaml")
    for index in range(1, count):
        (data / f"gen-{index:04d}.yaml").write_text(generated_template(index))
    (directory / "..data").symlink_to(data.name)
    for entry in sorted(data.iterdir()):
        (directory / entry.name).symlink_to(Path("..data") / entry.name)
    return directory
