"""The real `sidecar-injector` console script: inject and validate, as operators run them."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from injector.manifests import POD_TEMPLATE_PATHS
from tests.k8s import assert_valid

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
COMMAND = str(Path(sys.executable).parent / "sidecar-injector")


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COMMAND, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def inject(*args: str, stdin: str | None = None) -> list[Any]:
    result = run("inject", "--templates-dir", str(EXAMPLES / "templates"), *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


def names(containers: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in containers]


def test_inject_a_pod_manifest() -> None:
    (pod,) = inject("-f", str(EXAMPLES / "manifests" / "pod.yaml"))
    assert_valid(pod)
    assert names(pod["spec"]["containers"]) == ["app", "log-shipper", "trace-agent"]
    assert "--log-level=debug" in pod["spec"]["containers"][1]["args"]
    assert "sidecar-injector.io/status" in pod["metadata"]["annotations"]


def test_inject_a_deployment_and_pass_other_kinds_through() -> None:
    deployment, service = inject("-f", str(EXAMPLES / "manifests" / "deployment.yaml"))
    assert_valid(deployment)
    template = deployment["spec"]["template"]
    assert names(template["spec"]["initContainers"]) == ["envoy-proxy"]
    assert "--concurrency=4" in template["spec"]["initContainers"][0]["args"]
    assert "generateName" not in template["metadata"]
    source = list(yaml.safe_load_all((EXAMPLES / "manifests" / "deployment.yaml").read_text()))
    assert service == source[1]


WORKLOADS = """
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        metadata: {annotations: {sidecar-injector.io/inject: log-shipper}}
        spec:
          restartPolicy: OnFailure
          containers: [{name: job, image: "busybox:1.36"}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}, annotations: {sidecar-injector.io/inject: trace-agent}}
    spec: {containers: [{name: db, image: "postgres:16"}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec: {containers: [{name: agent, image: "agent:1"}]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {a: b}
"""


def test_inject_reads_stdin_and_handles_every_workload_kind() -> None:
    cronjob, statefulset, daemonset, configmap = inject("-f", "-", stdin=WORKLOADS)
    for obj in (cronjob, statefulset, daemonset, configmap):
        assert_valid(obj)
    job_pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert names(job_pod["containers"]) == ["job", "log-shipper"]
    assert names(statefulset["spec"]["template"]["spec"]["containers"]) == ["db", "trace-agent"]
    source = list(yaml.safe_load_all(WORKLOADS))
    assert daemonset == source[2]
    assert configmap == source[3]


def test_inject_is_idempotent_on_its_own_output() -> None:
    first = run(
        "inject",
        "--templates-dir",
        str(EXAMPLES / "templates"),
        "-f",
        str(EXAMPLES / "manifests" / "pod.yaml"),
    )
    second = run(
        "inject", "--templates-dir", str(EXAMPLES / "templates"), "-f", "-", stdin=first.stdout
    )
    assert second.returncode == 0
    assert yaml.safe_load(second.stdout) == yaml.safe_load(first.stdout)


def test_inject_errors_name_the_object_and_print_nothing() -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: typo, annotations: {sidecar-injector.io/inject: log-shiper}}\nspec: {containers: [{name: a, image: b}]}\n"
    result = run("inject", "--templates-dir", str(EXAMPLES / "templates"), "-f", "-", stdin=pod)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: Pod/typo: template 'log-shiper' not found; available: db-proxy, envoy-proxy, log-shipper, trace-agent\n"
    )


def test_inject_warnings_go_to_stderr() -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: w, annotations: {sidecar-injector.io/inject: trace-agent}}\nspec: {containers: [{name: a, image: b, env: [{name: OTEL_SERVICE_NAME, value: mine}]}]}\n"
    result = run("inject", "--templates-dir", str(EXAMPLES / "templates"), "-f", "-", stdin=pod)
    assert result.returncode == 0
    assert (
        "warning: Pod/w: template 'trace-agent': container 'a' already has env var OTEL_SERVICE_NAME"
        in result.stderr
    )


def test_inject_usage_errors() -> None:
    assert run("inject", "--templates-dir", "/nonexistent", "-f", "-", stdin="").returncode == 2
    result = run(
        "inject", "--templates-dir", str(EXAMPLES / "templates"), "-f", "/nonexistent.yaml"
    )
    assert result.returncode == 2
    assert "cannot read /nonexistent.yaml" in result.stderr
    bad = run("inject", "--templates-dir", str(EXAMPLES / "templates"), "-f", "-", stdin="a: [")
    assert bad.returncode == 2
    assert run().returncode == 2


def test_validate_accepts_the_examples() -> None:
    result = run("validate", str(EXAMPLES / "templates"))
    assert result.returncode == 0, result.stdout
    assert result.stderr == "4 template(s) valid, 0 broken\n"


def test_validate_prints_one_line_per_problem(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text("containers: [{name: s, image: x}]\n")
    (tmp_path / "bad.yaml").write_text(
        "containers:\n  - name: S\n    image: '{{ params.img }}'\nsidekicks: []\n"
    )
    result = run("validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "bad.yaml:2: containers[0].name: container name 'S' must be a literal DNS-1123 label (lower-case letters, digits, '-'; no expressions)",
        "bad.yaml:3: containers[0].image: params.img is not declared in parameters (declared: none)",
        "bad.yaml:4: sidekicks: unknown key; allowed: annotations, containers, description, env, hidden, imagePullSecrets, initContainers, labels, namespaces, parameters, sidecars, targetContainers, volumeMounts, volumes",
    ]
    assert result.stderr == "1 template(s) valid, 1 broken\n"


def test_validate_a_configmap_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\ndata:\n"
        "  ok.yaml: |\n    containers: [{name: s, image: x}]\n"
        "  broken.yaml: |\n    containers:\n      - name: s\n        image: x\n        imagePullPolicy: Always\n    labels: {a: 1}\n"
    )
    result = run("validate", str(manifest))
    assert result.returncode == 1
    assert (
        result.stdout
        == f"{manifest}[broken.yaml]:12: labels.a: value 1 must be a string; quote it\n"
    )


def test_validate_missing_path() -> None:
    result = run("validate", "/nonexistent")
    assert result.returncode == 2
    assert "does not exist" in result.stderr


BARE_POD = (
    "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}\n"
)


def test_inject_as_if_the_namespace_carried_a_profile_label() -> None:
    (pod,) = inject(
        "--profile", "obs=trace-agent,log-shipper", "--namespace-label", "obs", "-f", "-",
        stdin=BARE_POD,
    )  # fmt: skip
    assert names(pod["spec"]["containers"]) == ["a", "trace-agent", "log-shipper"]
    status = yaml.safe_load(pod["metadata"]["annotations"]["sidecar-injector.io/status"])
    assert status["profile"] == "obs"
    annotated = BARE_POD.replace(
        "{name: p}", "{name: p, annotations: {sidecar-injector.io/inject: log-shipper}}"
    )
    (own,) = inject(
        "--profile", "obs=trace-agent", "--namespace-label", "obs", "-f", "-", stdin=annotated
    )
    assert names(own["spec"]["containers"]) == ["a", "log-shipper"], "the pod's annotation decides"
    (untouched,) = inject("--namespace-label", "disabled", "-f", "-", stdin=annotated)
    assert untouched == yaml.safe_load(annotated)


def test_inject_reports_a_label_that_names_no_profile() -> None:
    result = run(
        "inject", "--templates-dir", str(EXAMPLES / "templates"), "--profile", "obs=trace-agent",
        "--namespace-label", "obz", "--namespace", "shop", "-f", "-", stdin=BARE_POD,
    )  # fmt: skip
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith(
        "error: Pod/p: namespace 'shop' is labeled sidecar-injector.io/inject with a value that "
        "names no profile"
    )
    assert "label it sidecar-injector.io/inject=<one of: obs, disabled>" in result.stderr


def test_inject_checks_allow_lists_against_each_object_s_namespace(tmp_path: Path) -> None:
    (tmp_path / "pay.yaml").write_text(
        "namespaces: [payments-*]\ncontainers: [{name: pay, image: 'pay:1'}]\n"
    )
    pod = BARE_POD.replace("{name: p}", "{name: p, annotations: {sidecar-injector.io/inject: pay}}")
    args = ("inject", "--templates-dir", str(tmp_path), "-f", "-")
    assert run(*args, "--namespace", "payments-eu", stdin=pod).returncode == 0
    refused = run(*args, stdin=pod)
    assert refused.returncode == 1
    assert (
        "template 'pay' is not allowed in namespace 'default' (allowed: payments-*)"
        in refused.stderr
    )
    namespaced = pod.replace("{name: p,", "{name: p, namespace: payments-us,")
    assert run(*args, "--namespace", "dev", stdin=namespaced).returncode == 0


def test_inject_refuses_bad_profiles_and_namespaces() -> None:
    base = ("inject", "--templates-dir", str(EXAMPLES / "templates"), "-f", "-")
    reserved = run(*base, "--profile", "enabled=log-shipper", stdin=BARE_POD)
    assert reserved.returncode == 2
    assert "error: --profile: profile name 'enabled' is reserved" in reserved.stderr
    empty = run(*base, "--profile", "obs=", stdin=BARE_POD)
    assert "profile 'obs' names no templates" in empty.stderr
    namespace = run(*base, "--namespace", "Shop", stdin=BARE_POD)
    assert namespace.returncode == 2
    assert "expected a namespace name" in namespace.stderr


def test_validate_names_tenancy_and_placement_mistakes_by_line(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("sidecars: [{name: s, image: x}]\n")
    (tmp_path / "agent.yaml").write_text(
        "namespaces: [Payments-*]\n"
        "parameters:\n"
        "  endpoint: {type: string, default: x, overridable: 'no'}\n"
        "sidecars:\n"
        "  - {name: agent, image: x, restartPolicy: Always}\n"
    )
    result = run("validate", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "agent.yaml:1: namespaces[0]: 'Payments-*' is not a namespace glob: use lower-case "
        "letters, digits and '-' with the wildcards *, ? and [...] (e.g. payments-*)",
        "agent.yaml:3: parameters.endpoint.overridable: must be true or false (unquoted), got 'no'",
        "agent.yaml:5: sidecars[0].restartPolicy: may not be set: the placement owns it: "
        "--native-sidecars makes each sidecar an init container with restartPolicy: Always, or "
        "a regular container",
    ]
    assert result.stderr == "1 template(s) valid, 1 broken\n"


def test_inject_places_sidecars_as_asked() -> None:
    job = str(EXAMPLES / "manifests" / "job.yaml")
    (native,) = inject("--native-sidecars", "-f", job)
    (classic,) = inject("--native-sidecars=false", "-f", job)
    assert native == inject("--native-sidecars=true", "-f", job)[0]
    for manifest in (native, classic):
        assert_valid(manifest)
    spec = native["spec"]["template"]["spec"]
    assert names(spec["containers"]) == ["migrate"]
    assert [(c["name"], c["restartPolicy"]) for c in spec["initContainers"]] == [
        ("db-proxy", "Always")
    ]
    spec = classic["spec"]["template"]["spec"]
    assert names(spec["containers"]) == ["migrate", "db-proxy"]
    assert "initContainers" not in spec
    assert inject("-f", job) == [classic], "classic is the default"
    bad = run(
        "inject",
        "--templates-dir",
        str(EXAMPLES / "templates"),
        "--native-sidecars=auto",
        "-f",
        job,
    )
    assert bad.returncode == 2 and "expected true or false" in bad.stderr


DEPLOYMENT_CONFIG = """\
apiVersion: apps.openshift.io/v1
kind: DeploymentConfig
metadata: {name: legacy, namespace: shop}
spec:
  replicas: 2
  selector: {app: legacy}
  template:
    metadata:
      labels: {app: legacy}
      annotations: {sidecar-injector.io/inject: log-shipper}
    spec:
      containers: [{name: app, image: registry.example.com/legacy:7}]
"""


def test_inject_handles_openshift_deployment_configs_like_deployments() -> None:
    (config,) = inject("-f", "-", stdin=DEPLOYMENT_CONFIG)
    template = config["spec"]["template"]
    assert names(template["spec"]["containers"]) == ["app", "log-shipper"]
    assert "--tag=shop.legacy-" in template["spec"]["containers"][1]["args"]
    assert "sidecar-injector.io/status" in template["metadata"]["annotations"]
    assert config["apiVersion"] == "apps.openshift.io/v1" and config["spec"]["replicas"] == 2


def test_validate_reads_binary_data_and_refuses_a_configmap_without_templates(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "cm.yaml"
    encoded = base64.b64encode(b"containers: [").decode()
    good = base64.b64encode(b"containers: [{name: s, image: x}]").decode()
    manifest.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\n"
        f"binaryData:\n  bad.yaml: {encoded}\n  good.yaml: {good}\n"
    )
    result = run("validate", str(manifest))
    assert result.returncode == 1
    assert result.stdout.startswith(f"{manifest}[binaryData bad.yaml]:2: invalid YAML")
    assert result.stderr == "1 template(s) valid, 1 broken\n"
    empty = tmp_path / "empty.yaml"
    empty.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\ndata: {}\n")
    nothing = run("validate", str(empty))
    assert nothing.returncode == 1
    assert nothing.stderr == f"error: {empty} holds no template (keys named <template>.yaml)\n"


def test_explain_and_inject_refuse_unreadable_or_odd_manifests(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe kind: Pod")
    templates = ("--templates-dir", str(EXAMPLES / "templates"))
    for command in ("inject", "explain"):
        result = run(command, *templates, "-f", str(binary))
        assert result.returncode == 2, result.stderr
        assert f"error: cannot read {binary}: 'utf-8' codec can't decode" in result.stderr
    validated = run("validate", str(binary))
    assert validated.returncode == 2, validated.stderr
    assert validated.stderr.startswith(f"error: cannot read {binary}: 'utf-8' codec can't decode")
    odd = "kind: Deployment\nmetadata: web\nspec: {template: {metadata: x, spec: {}}}\n"
    explained = run("explain", *templates, "-f", "-", stdin=odd)
    assert explained.returncode == 1, explained.stderr
    assert "spec.containers must list at least one container" in explained.stdout
    assert "Traceback" not in explained.stderr + explained.stdout
    injected = run("inject", *templates, "-f", "-", stdin=odd)
    assert injected.returncode == 1
    assert (
        injected.stderr == "error: Deployment/?: spec.containers must list at least one container\n"
    )


# --- Lists (kind: List and typed <Kind>Lists) ---

DEPLOYMENTS_LIST = """
apiVersion: v1
kind: List
metadata: {resourceVersion: ""}
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: web, namespace: shop}
  spec:
    selector: {matchLabels: {app: web}}
    template:
      metadata: {labels: {app: web}, annotations: {sidecar-injector.io/inject: log-shipper}}
      spec: {containers: [{name: app, image: "nginx:1.27"}]}
- apiVersion: apps/v1
  kind: DeploymentList
  items:
  - metadata: {name: plain}
    spec:
      selector: {matchLabels: {app: plain}}
      template:
        metadata: {labels: {app: plain}}
        spec: {containers: [{name: app, image: "nginx:1.27"}]}
"""


def test_explain_names_each_item_of_a_list_by_its_place() -> None:
    templates = ("--templates-dir", str(EXAMPLES / "templates"))
    result = run("explain", *templates, "-f", "-", stdin=DEPLOYMENTS_LIST)
    assert result.returncode == 1, result.stderr  # one of them would not be injected
    heads = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert heads == [
        "List[0] Deployment shop/web: injected",
        "List[1] DeploymentList[0] Deployment default/plain: not injected",
    ]
    as_json = run("explain", *templates, "-f", "-", "-o", "json", stdin=DEPLOYMENTS_LIST)
    found = yaml.safe_load(as_json.stdout)
    assert [(e["target"], e["injected"]) for e in found] == [
        ("List[0] Deployment shop/web", True),
        ("List[1] DeploymentList[0] Deployment default/plain", False),
    ]


def test_explain_and_inject_take_an_empty_list() -> None:
    empty = "apiVersion: v1\nkind: List\nmetadata: {resourceVersion: ''}\nitems: []\n"
    templates = ("--templates-dir", str(EXAMPLES / "templates"))
    explained = run("explain", *templates, "-f", "-", stdin=empty)
    assert explained.returncode == 2
    assert explained.stderr == (
        "sidecar-injector explain: error: - holds no Pod and no workload with a pod template (Lists included)\n"
    )
    assert inject("-f", "-", stdin=empty) == [yaml.safe_load(empty)]


HOSTILE = {
    "a List holding itself": "&a {apiVersion: v1, kind: List, items: [*a]}\n",
    "Lists 40 deep": "{kind: List, items: [" * 40 + "]}" * 40 + "\n",
}


def test_lists_nested_too_deep_are_one_clear_error_in_every_command(tmp_path: Path) -> None:
    templates = ("--templates-dir", str(EXAMPLES / "templates"))
    said = "List[0]: Lists nested more than 16 deep (does a List hold itself through a YAML alias?)"
    for what, text in HOSTILE.items():
        path = tmp_path / "hostile.yaml"
        path.write_text(text)
        injected = run("inject", *templates, "-f", str(path))
        assert (injected.returncode, injected.stdout) == (1, ""), what
        assert injected.stderr == f"error: document 1: {said}\n", what
        explained = run("explain", *templates, "-f", str(path))
        assert explained.returncode == 2, what
        assert explained.stderr == (
            f"sidecar-injector explain: error: {path}: document 1: {said}\n"
        ), what
        validated = run("validate", str(path))
        assert validated.returncode == 1, what
        assert validated.stderr == f"error: {path}: {said}\n", what


def test_values_nested_deeper_than_the_parser_goes_are_refused_without_a_traceback(
    tmp_path: Path,
) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("{kind: List, items: [" * 3000 + "]}" * 3000 + "\n")
    templates = ("--templates-dir", str(EXAMPLES / "templates"))
    for command in ("inject", "explain"):
        result = run(command, *templates, "-f", str(path))
        assert result.returncode == 2, result.stderr
        assert f"cannot read {path}: values nested too deeply" in result.stderr
    validated = run("validate", str(path))
    assert validated.returncode == 1
    assert "Traceback" not in validated.stderr + validated.stdout
    assert "nest" in validated.stdout + validated.stderr


CONFIGMAPS_LIST = """\
apiVersion: v1
kind: List
metadata:
  resourceVersion: ""
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: kube-root-ca.crt, namespace: sidecar-injector}
  data: {ca.crt: "-----BEGIN CERTIFICATE-----"}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: sidecar-injector-templates, namespace: sidecar-injector}
  data:
    ok.yaml: |
      containers: [{name: s, image: x}]
    broken.yaml: |
      containers: [{name: s, image: x}]
      labels: {a: 1}
- apiVersion: v1
  kind: ConfigMapList
  items:
  - metadata: {name: other-release-templates}
    data:
      ok.yaml: |
        containers: [{name: t, image: "y:1"}]
"""


def test_validate_a_list_of_configmaps_as_kubectl_get_prints_it(tmp_path: Path) -> None:
    """Each ConfigMap holding templates is validated on its own (both hold ok.yaml), those
    holding none (kube-root-ca.crt) are named in a note; lines point into the file."""
    manifest = tmp_path / "cms.yaml"
    manifest.write_text(CONFIGMAPS_LIST)
    result = run("validate", str(manifest))
    assert result.returncode == 1
    assert result.stdout == (
        f"{manifest} List[1] ConfigMap/sidecar-injector-templates[broken.yaml]:18: labels.a: value 1 must be a string; quote it\n"
    )
    assert result.stderr == (
        f"note: {manifest} List[0] ConfigMap/kube-root-ca.crt: holds no <template>.yaml key; not validated\n"
        "2 template(s) valid, 1 broken\n"
    )


def test_validate_an_empty_list_or_one_without_templates(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("apiVersion: v1\nkind: List\nitems: []\n")
    result = run("validate", str(empty))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == f"error: {empty} holds no template (keys named <template>.yaml)\n"
    roots = tmp_path / "roots.yaml"
    roots.write_text(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
        "  metadata: {name: kube-root-ca.crt}\n  data: {ca.crt: x}\n"
    )
    result = run("validate", str(roots))
    assert result.returncode == 1
    assert result.stderr == (
        f"note: {roots} List[0] ConfigMap/kube-root-ca.crt: holds no <template>.yaml key; not validated\n"
        f"error: {roots} holds no template (keys named <template>.yaml)\n"
    )


def test_help_names_every_kind_inject_and_explain_handle_and_lists() -> None:
    for command in ("inject", "explain"):
        text = " ".join(run(command, "--help").stdout.split())
        for kind in POD_TEMPLATE_PATHS:
            assert kind in text, (command, kind)
        assert "List (kind: List" in text and "DeploymentList" in text, command
    validate = " ".join(run("validate", "--help").stdout.split())
    assert "kind: List or ConfigMapList" in validate
