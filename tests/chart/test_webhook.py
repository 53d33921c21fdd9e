"""The MutatingWebhookConfiguration: who is sent to the webhook, where, and with which CA."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from .helm import CHART_DIR, NAMESPACE, RELEASE, Helm, Manifest

MWC = "templates/webhook-mutatingwebhookconfiguration.yaml"
PREFIX = "sidecar-injector.io"


def configuration(helm: Helm, values: dict[str, Any] | None = None, **kw: Any) -> Manifest:
    [doc] = helm.template(values, show_only=[MWC], **kw)
    assert doc["kind"] == "MutatingWebhookConfiguration"
    return doc


def main_webhook(doc: Manifest) -> Manifest:
    """The entry for Pods that carry the annotation (always the first)."""
    webhook: Manifest = doc["webhooks"][0]
    return webhook


def entry(doc: Manifest, prefix: str) -> Manifest:
    found: list[Manifest] = [w for w in doc["webhooks"] if w["name"].startswith(prefix)]
    assert len(found) == 1
    return found[0]


def excluded_namespaces(webhook: Manifest) -> list[str]:
    [expr] = [
        e
        for e in webhook["namespaceSelector"]["matchExpressions"]
        if e["key"] == "kubernetes.io/metadata.name"
    ]
    assert expr["operator"] == "NotIn"
    values: list[str] = expr["values"]
    return values


def opt_in_expression(prefix: str) -> str:
    key = f"'{prefix}/inject'"
    return (
        f"has(object.metadata.annotations) && {key} in object.metadata.annotations && "
        f"!(object.metadata.annotations[{key}].trim().lowerAscii() in ['', 'false'])"
    )


def not_opted_out_expression(prefix: str) -> str:
    key = f"'{prefix}/inject'"
    return (
        f"!has(object.metadata.annotations) || !({key} in object.metadata.annotations) || "
        f"!(object.metadata.annotations[{key}].trim().lowerAscii() in ['', 'false'])"
    )


def test_defaults(helm: Helm) -> None:
    webhook = main_webhook(configuration(helm))
    assert webhook["name"] == "inject.sidecar-injector.io"
    assert len(webhook["name"].split(".")) >= 3
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["sideEffects"] == "None"
    assert webhook["failurePolicy"] == "Fail"
    assert webhook["timeoutSeconds"] == 5
    assert webhook["reinvocationPolicy"] == "Never"
    assert webhook["matchPolicy"] == "Equivalent"
    assert webhook["rules"] == [
        {
            "operations": ["CREATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert "objectSelector" not in webhook
    assert webhook["clientConfig"] == {
        "service": {"name": RELEASE, "namespace": NAMESPACE, "path": "/mutate", "port": 443}
    }


def test_policies_follow_values(helm: Helm) -> None:
    values = {
        "webhook": {
            "name": "sidecars.platform.example.com",
            "failurePolicy": "Ignore",
            "timeoutSeconds": 12,
            "reinvocationPolicy": "IfNeeded",
            "objectSelector": {"matchLabels": {"example.com/sidecars": "yes"}},
        },
        "service": {"port": 8443},
    }
    webhook = main_webhook(configuration(helm, values))
    assert webhook["name"] == "sidecars.platform.example.com"
    assert webhook["failurePolicy"] == "Ignore"
    assert webhook["timeoutSeconds"] == 12
    assert webhook["reinvocationPolicy"] == "IfNeeded"
    assert webhook["objectSelector"] == {"matchLabels": {"example.com/sidecars": "yes"}}
    assert webhook["clientConfig"]["service"]["port"] == 8443


def test_namespace_selector_always_excludes_kube_system_and_release_namespace(
    helm: Helm,
) -> None:
    webhook = main_webhook(configuration(helm, namespace="platform"))
    assert excluded_namespaces(webhook) == [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "platform",
    ]


def test_namespace_selector_keeps_exclusions_when_user_list_is_emptied(helm: Helm) -> None:
    webhook = main_webhook(configuration(helm, {"config": {"excludeNamespaces": []}}))
    assert excluded_namespaces(webhook) == ["kube-system", NAMESPACE]


def test_namespace_selector_adds_user_exclusions_and_selectors(helm: Helm) -> None:
    values = {
        "config": {"excludeNamespaces": ["kube-system", "monitoring"]},
        "webhook": {
            "namespaceSelector": {
                "matchLabels": {"example.com/injection": "enabled"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["apps"]}],
            }
        },
    }
    selector = main_webhook(configuration(helm, values))["namespaceSelector"]
    assert selector["matchLabels"] == {"example.com/injection": "enabled"}
    assert {"key": "tier", "operator": "In", "values": ["apps"]} in selector["matchExpressions"]
    # kube-system listed by the user too is not repeated.
    assert excluded_namespaces(main_webhook(configuration(helm, values))) == [
        "kube-system",
        "monitoring",
        NAMESPACE,
    ]


@pytest.mark.parametrize("prefix", ["sidecar-injector.io", "injector.example.com"])
def test_match_conditions_follow_annotation_prefix(helm: Helm, prefix: str) -> None:
    doc = configuration(helm, {"config": {"annotationPrefix": prefix, "profiles": {"a": ["x"]}}})
    for webhook in doc["webhooks"]:
        if ".profile." in webhook["name"]:
            # Every Pod of a profile namespace, except those opting out with the annotation.
            expected = {"name": "not-opted-out", "expression": not_opted_out_expression(prefix)}
        else:
            expected = {"name": "opted-in", "expression": opt_in_expression(prefix)}
        assert webhook["matchConditions"] == [expected]


def test_cert_manager_injects_ca_of_own_ca_certificate(helm: Helm) -> None:
    doc = configuration(helm)
    [ca_certificate] = helm.template(show_only=["templates/cert-ca-certificate.yaml"])
    assert ca_certificate["spec"]["isCA"] is True
    target = f"{NAMESPACE}/{ca_certificate['metadata']['name']}"
    assert doc["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": target}
    for webhook in doc["webhooks"]:
        assert "caBundle" not in webhook["clientConfig"]


def test_existing_issuer_injects_ca_of_serving_certificate(helm: Helm) -> None:
    issuer = {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    values = {"certManager": {"issuerRef": issuer}}
    [serving] = helm.template(values, show_only=["templates/cert-serving-certificate.yaml"])
    assert serving["spec"]["issuerRef"] == issuer
    annotations = configuration(helm, values)["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == (
        f"{NAMESPACE}/{serving['metadata']['name']}"
    )


PEM = (CHART_DIR / "ci" / "no-cert-manager-values.yaml").read_text()


@pytest.mark.parametrize("encoded", [False, True], ids=["pem", "base64"])
def test_ca_bundle_without_cert_manager(helm: Helm, encoded: bool) -> None:
    pem: str = yaml.safe_load(PEM)["webhook"]["caBundle"]
    bundle = base64.b64encode(pem.encode()).decode() if encoded else pem
    values = {
        "certManager": {"enabled": False},
        "tls": {"existingSecret": "tls"},
        "webhook": {"caBundle": bundle},
    }
    doc = configuration(helm, values)
    assert "annotations" not in doc["metadata"]
    for webhook in doc["webhooks"]:
        assert base64.b64decode(webhook["clientConfig"]["caBundle"]).decode() == pem


def test_external_url_replaces_service(helm: Helm) -> None:
    url = "https://injector.example.com/mutate"
    doc = configuration(helm, {"webhook": {"url": url}, "config": {"profiles": {"a": ["x"]}}})
    urls = {w["name"]: w["clientConfig"] for w in doc["webhooks"]}
    assert urls == {
        "inject.sidecar-injector.io": {"url": url},
        "a.profile.inject.sidecar-injector.io": {"url": f"{url}/a"},
        "unknown-profile.profile.inject.sidecar-injector.io": {"url": f"{url}/unknown-profile"},
        "helm-test.inject.sidecar-injector.io": {"url": url},
    }


def test_external_url_with_publicly_trusted_cert_needs_no_bundle(helm: Helm) -> None:
    values = {
        "certManager": {"enabled": False},
        "tls": {"existingSecret": "tls"},
        "webhook": {"url": "https://injector.example.com/mutate"},
    }
    webhook = main_webhook(configuration(helm, values))
    assert webhook["clientConfig"] == {"url": "https://injector.example.com/mutate"}


def test_helm_test_entry_selects_only_the_test_pod(helm: Helm) -> None:
    doc = configuration(helm)
    main, test = main_webhook(doc), entry(doc, "helm-test.")
    assert test["name"] == f"helm-test.{main['name']}"
    assert test["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}}
    [pod] = helm.template(show_only=["templates/tests/test-pod.yaml"])
    selector = test["objectSelector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert selector["app.kubernetes.io/component"] == "helm-test"
    assert {
        k: v for k, v in test.items() if k not in ("name", "namespaceSelector", "objectSelector")
    } == {
        k: v for k, v in main.items() if k not in ("name", "namespaceSelector", "objectSelector")
    } | {"failurePolicy": "Fail", "reinvocationPolicy": "Never"}
    # The release namespace is excluded from every other entry, so only the test Pod goes here.
    for webhook in doc["webhooks"]:
        if webhook is not test:
            assert NAMESPACE in excluded_namespaces(webhook)
    # The webhook's own Pods never match it.
    [deployment] = helm.template(show_only=["templates/webhook-deployment.yaml"])
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= pod_labels.items()


def test_no_helm_test_entry_when_tests_are_off(helm: Helm) -> None:
    doc = configuration(helm, {"tests": {"enabled": False}})
    assert [w["name"] for w in doc["webhooks"]] == [
        "inject.sidecar-injector.io",
        "unknown-profile.profile.inject.sidecar-injector.io",
    ]


VWC = "templates/webhook-validatingwebhookconfiguration.yaml"


TEMPLATES_ENTRY = "templates.inject.sidecar-injector.io"
NAMESPACE_ENTRY = "namespace-labels.inject.sidecar-injector.io"


def validating(
    helm: Helm, values: dict[str, Any] | None = None, name: str = TEMPLATES_ENTRY
) -> Manifest:
    """The ValidatingWebhookConfiguration, with its entry `name` as "webhook"."""
    [doc] = helm.template(values, show_only=[VWC])
    assert doc["kind"] == "ValidatingWebhookConfiguration"
    [webhook] = [w for w in doc["webhooks"] if w["name"] == name]
    return {**doc, "webhook": webhook}


def validating_entries(helm: Helm, values: dict[str, Any] | None = None) -> list[str] | None:
    """The names of the ValidatingWebhookConfiguration's entries; None when it is not rendered."""
    docs = [d for d in helm.template(values) if d["kind"] == "ValidatingWebhookConfiguration"]
    if not docs:
        return None
    [doc] = docs
    return [w["name"] for w in doc["webhooks"]]


def test_template_edits_are_validated_by_default(helm: Helm) -> None:
    doc = validating(helm)
    webhook = doc["webhook"]
    assert webhook["name"] == "templates.inject.sidecar-injector.io"
    assert webhook["failurePolicy"] == "Ignore", "a down webhook must never block fixing templates"
    assert webhook["sideEffects"] == "None"
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["rules"] == [
        {
            "operations": ["CREATE", "UPDATE"],
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "resources": ["configmaps"],
            "scope": "Namespaced",
        }
    ]
    assert webhook["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
    }
    [configmap] = helm.template(show_only=["templates/templates-configmap.yaml"])
    chart = configmap["metadata"]["labels"]["helm.sh/chart"]
    assert webhook["matchConditions"] == [
        {
            "name": "templates-configmap",
            "expression": f"object.metadata.name == '{configmap['metadata']['name']}'",
        },
        {
            # A helm upgrade's ConfigMap (another chart version's label) is not judged by the
            # pods of this version.
            "name": "this-chart-version",
            "expression": "!has(object.metadata.labels) || "
            "!('helm.sh/chart' in object.metadata.labels) || "
            f"object.metadata.labels['helm.sh/chart'] == '{chart}'",
        },
    ]
    assert webhook["clientConfig"] == {
        "service": {"name": RELEASE, "namespace": NAMESPACE, "path": "/validate", "port": 443}
    }
    mutating = configuration(helm)["metadata"]["annotations"]
    assert doc["metadata"]["annotations"] == mutating, "the same CA is injected"


def test_template_validation_follows_existing_configmap_url_and_switch(helm: Helm) -> None:
    existing = validating(helm, {"templatesConfigMap": {"existing": "gitops-templates"}})
    assert existing["webhook"]["matchConditions"][0]["expression"] == (
        "object.metadata.name == 'gitops-templates'"
    )
    url = validating(helm, {"webhook": {"url": "https://hooks.example.com/injector/mutate"}})
    assert url["webhook"]["clientConfig"] == {"url": "https://hooks.example.com/injector/validate"}
    off = helm.template({"webhook": {"validateTemplates": False}})
    assert "MutatingWebhookConfiguration" in {d["kind"] for d in off}
    assert validating_entries(helm, {"webhook": {"validateTemplates": False}}) == [NAMESPACE_ENTRY]


def label_set_expression(prefix: str) -> str:
    key = f"'{prefix}/inject'"
    return f"has(object.metadata.labels) && {key} in object.metadata.labels"


def label_changed_expression(prefix: str) -> str:
    key = f"'{prefix}/inject'"
    return (
        "request.operation == 'CREATE' || oldObject == null || "
        f"!has(oldObject.metadata.labels) || !({key} in oldObject.metadata.labels) || "
        f"oldObject.metadata.labels[{key}] != object.metadata.labels[{key}]"
    )


def test_namespace_labels_are_validated_by_default(helm: Helm) -> None:
    doc = validating(helm, name=NAMESPACE_ENTRY)
    webhook = doc["webhook"]
    assert [w["name"] for w in doc["webhooks"]] == [TEMPLATES_ENTRY, NAMESPACE_ENTRY]
    templates = validating(helm)["webhook"]
    assert webhook == {
        "name": NAMESPACE_ENTRY,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        # A webhook that is down must never stop anyone from labeling a namespace.
        "failurePolicy": "Ignore",
        "timeoutSeconds": templates["timeoutSeconds"],
        "matchPolicy": templates["matchPolicy"],
        "clientConfig": templates["clientConfig"],
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["namespaces"],
                "scope": "Cluster",
            }
        ],
        # No namespaceSelector: the release namespace and the excluded ones are judged too.
        "matchConditions": [
            {"name": "inject-label-set", "expression": label_set_expression(PREFIX)},
            {"name": "inject-label-changed", "expression": label_changed_expression(PREFIX)},
        ],
    }
    assert webhook["clientConfig"] == {
        "service": {"name": RELEASE, "namespace": NAMESPACE, "path": "/validate", "port": 443}
    }


def test_the_namespace_entry_follows_url_prefix_and_timeout(helm: Helm) -> None:
    url = validating(
        helm, {"webhook": {"url": "https://hooks.example.com/injector/mutate"}}, NAMESPACE_ENTRY
    )
    assert url["webhook"]["clientConfig"] == {"url": "https://hooks.example.com/injector/validate"}
    custom = validating(
        helm,
        {"config": {"annotationPrefix": "inject.example.com"}, "webhook": {"timeoutSeconds": 9}},
        NAMESPACE_ENTRY,
    )["webhook"]
    assert [c["expression"] for c in custom["matchConditions"]] == [
        label_set_expression("inject.example.com"),
        label_changed_expression("inject.example.com"),
    ]
    assert custom["timeoutSeconds"] == 9
    named = validating(
        helm, {"webhook": {"name": "hook.example.com"}}, "namespace-labels.hook.example.com"
    )
    assert named["webhook"]["rules"][0]["resources"] == ["namespaces"]


@pytest.mark.parametrize(
    ("templates", "labels", "entries"),
    [
        (True, True, [TEMPLATES_ENTRY, NAMESPACE_ENTRY]),
        (True, False, [TEMPLATES_ENTRY]),
        (False, True, [NAMESPACE_ENTRY]),
        (False, False, None),
    ],
)
def test_each_validating_entry_has_its_own_switch(
    helm: Helm, templates: bool, labels: bool, entries: list[str] | None
) -> None:
    values = {"webhook": {"validateTemplates": templates, "validateNamespaceLabels": labels}}
    assert validating_entries(helm, values) == entries


def test_webhook_url_must_end_in_mutate(helm: Helm) -> None:
    error = helm.template_error({"webhook": {"url": "https://hooks.example.com/inject"}})
    assert "url" in error and "does not match pattern" in error
