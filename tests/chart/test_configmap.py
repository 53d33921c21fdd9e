"""The templates ConfigMap: shipped examples, the helm-test template and user templates."""

from __future__ import annotations

import json
from typing import Any

import yaml

from injector.build import TOP_KEYS

from .helm import CHART_DIR, RELEASE, REPO_ROOT, Helm, Manifest

CONFIGMAP = "templates/templates-configmap.yaml"
EXAMPLES_DIR = REPO_ROOT / "examples" / "templates"
CHART_EXAMPLES_DIR = CHART_DIR / "files" / "examples"
HELM_TEST_TEMPLATE = CHART_DIR / "files" / "helm-test.yaml"
EXAMPLE_KEYS = {"db-proxy.yaml", "envoy-proxy.yaml", "log-shipper.yaml", "trace-agent.yaml"}


def data(helm: Helm, values: dict[str, Any] | None = None) -> dict[str, str]:
    [doc] = helm.template(values, show_only=[CONFIGMAP])
    assert doc["kind"] == "ConfigMap"
    assert doc["metadata"]["name"] == "sidecar-injector-templates"
    content: dict[str, str] = doc["data"]
    return content


def test_chart_examples_are_copies_of_the_repository_examples() -> None:
    """Helm cannot read outside the chart, so the chart keeps copies; they must not drift."""
    repo = {p.name: p.read_bytes() for p in EXAMPLES_DIR.glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in CHART_EXAMPLES_DIR.glob("*.yaml")}
    assert set(repo) == EXAMPLE_KEYS
    assert chart == repo, (
        "run: cp examples/templates/*.yaml charts/sidecar-injector/files/examples/"
    )


def test_defaults_ship_examples_and_helm_test_verbatim(helm: Helm) -> None:
    content = data(helm)
    assert set(content) == EXAMPLE_KEYS | {"helm-test.yaml"}
    for key in EXAMPLE_KEYS:
        assert content[key] == (CHART_EXAMPLES_DIR / key).read_text()
    assert content["helm-test.yaml"] == HELM_TEST_TEMPLATE.read_text()


def test_user_templates_sit_next_to_examples_and_can_replace_one(helm: Helm) -> None:
    team_env = {
        "description": "Team environment",
        "parameters": {"team": {"type": "string", "default": "platform"}},
        "env": [{"name": "TEAM", "value": "{{ params.team }}"}],
        "labels": {"example.com/team": "{{ params.team }}"},
    }
    shipper = {"containers": [{"name": "log-shipper", "image": "example/shipper:1.0"}]}
    templates = {"team-env": team_env, "log-shipper": shipper}
    content = data(helm, {"templates": templates})
    assert set(content) == EXAMPLE_KEYS | {"helm-test.yaml", "team-env.yaml"}
    assert yaml.safe_load(content["team-env.yaml"]) == team_env
    assert yaml.safe_load(content["log-shipper.yaml"]) == shipper


def test_examples_toggle_off(helm: Helm) -> None:
    templates = {"only": {"env": [{"name": "A", "value": "b"}]}}
    values = {"templatesConfigMap": {"examples": False}, "templates": templates}
    assert set(data(helm, values)) == {"helm-test.yaml", "only.yaml"}


def test_empty_configmap_is_still_valid(helm: Helm) -> None:
    values = {"templatesConfigMap": {"examples": False}, "tests": {"enabled": False}}
    assert data(helm, values) == {}


def test_existing_configmap_means_none_is_rendered(helm: Helm) -> None:
    docs = helm.template({"templatesConfigMap": {"existing": "gitops-templates"}})
    # Only the audit's last-good ConfigMap is left.
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"] == [
        f"{RELEASE}-last-good"
    ]


def test_every_template_is_a_yaml_mapping(helm: Helm) -> None:
    for key, text in data(helm).items():
        parsed: Manifest = yaml.safe_load(text)
        assert isinstance(parsed, dict), key
        assert parsed["description"], key


def test_the_values_schema_takes_every_template_key(helm: Helm) -> None:
    """The chart's schema for `templates.<name>` must not refuse a key the injector reads."""
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    assert set(schema["definitions"]["template"]["properties"]) == TOP_KEYS
    restricted = {
        "description": "Only for the payments team",
        "hidden": True,
        "namespaces": ["payments-*"],
        "sidecars": [{"name": "proxy", "image": "example/proxy:1.0"}],
    }
    content = data(helm, {"templates": {"pay": restricted}})
    assert yaml.safe_load(content["pay.yaml"]) == restricted
