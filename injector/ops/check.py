"""`check`: is the install healthy? One ✔/⚠/✖ line per check, each ✖ with what to do. The
cluster is read once into a Snapshot (`ops.snapshot`); the checks are plain functions over it."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from injector.catalog import Catalog
from injector.loader import SUFFIX
from injector.near import nearest
from injector.ops.certs import decode_bundle, verify
from injector.ops.snapshot import (
    Snapshot,
    Unverifiable,
    validating_entries,
    webhook_entries,
)
from injector.policy import ENABLED
from injector.summary import SEPARATOR, bounded
from injector.validation import label_values, load_errors, namer

Level = Literal["ok", "warn", "fail"]
SYMBOLS: dict[Level, str] = {"ok": "✔", "warn": "⚠", "fail": "✖"}
EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True)
class Result:
    level: Level
    check: str
    message: str
    fix: str = ""

    def line(self) -> str:
        text = f"{SYMBOLS[self.level]} {self.check}: {self.message}"
        return f"{text}\n    → {self.fix}" if self.fix else text


def run_checks(snapshot: Snapshot, now: datetime.datetime) -> list[Result]:
    checks: tuple[Callable[[Snapshot, datetime.datetime], Iterator[Result]], ...] = (
        _configurations,
        _endpoints,
        _trust,
        _certificate,
        _replicas,
        _templates,
        _profiles,
        _namespaces,
    )
    return [result for check in checks for result in check(snapshot, now)]


def _configurations(snapshot: Snapshot, now: datetime.datetime) -> Iterator[Result]:
    install = snapshot.install
    release = f"release {install.release!r} in namespace {install.namespace}"
    if install.mutating is None or not install.mutating.webhooks:
        yield Result(
            "fail",
            "webhook configuration",
            f"no MutatingWebhookConfiguration for {release}: no pod is injected",
            f"helm upgrade --install {install.release} ... -n {install.namespace}",
        )
    else:
        names = ", ".join(w.name for w in install.mutating.webhooks)
        yield Result("ok", "webhook configuration", f"mutating entries: {names}")
    validating = {w.name.split(".", 1)[0] for w in validating_entries(install)}
    for entry, check, what, value in VALIDATIONS:
        if entry in validating:
            yield Result("ok", check, f"{what} are checked when they are made")
        else:
            yield Result(
                "warn", check, f"{what} are not checked at kubectl time (webhook.{value}=false?)"
            )


VALIDATIONS = (
    ("templates", "template validation", "edits of the templates ConfigMap", "validateTemplates"),
    ("namespace-labels", "label validation", "namespace inject labels", "validateNamespaceLabels"),
)
"""The validating webhook's entries (by the first part of their names), what each checks and
the chart value that turns it on."""


def _endpoints(snapshot: Snapshot, now: datetime.datetime) -> Iterator[Result]:
    entries = webhook_entries(snapshot.install)
    if entries and all(w.clientConfig.url for w in entries):
        yield Result("ok", "endpoints", "the webhooks are called at webhook.url")
        return
    if snapshot.service_type is None:
        yield Result(
            "fail",
            "endpoints",
            "the webhook Service does not exist",
            "helm upgrade the release to create it",
        )
    elif snapshot.service_type == "ExternalName":
        yield Result(
            "warn", "endpoints", "the webhook Service is an ExternalName: endpoints not checked"
        )
    elif snapshot.ready_endpoints == 0:
        deployment = snapshot.install.deployment.metadata
        name = deployment.name if deployment else "the webhook"
        yield Result(
            "fail",
            "endpoints",
            "the webhook Service has no ready endpoint: the apiserver cannot call it",
            f"kubectl -n {snapshot.install.namespace} describe deployment {name}; "
            "check the pods' readiness (/readyz)",
        )
    else:
        yield Result("ok", "endpoints", f"{snapshot.ready_endpoints} ready endpoint(s)")


def _trust(snapshot: Snapshot, now: datetime.datetime) -> Iterator[Result]:
    """Every entry's caBundle verifies the serving certificate for the name it dials."""
    if isinstance(snapshot.serving_chain, Unverifiable):
        yield Result("warn", "serving certificate", snapshot.serving_chain)
        return
    if isinstance(snapshot.serving_chain, str):
        yield Result(
            "fail",
            "serving certificate",
            snapshot.serving_chain,
            "check the serving Secret (cert-manager's Certificate, or tls.existingSecret)",
        )
        return
    problems: dict[str, list[str]] = {}
    days: int | None = None
    for entry in webhook_entries(snapshot.install):
        config = entry.clientConfig
        if config.url:
            name = urlsplit(config.url).hostname or ""
        elif config.service is not None:
            name = f"{config.service.name}.{config.service.namespace}.svc"
        else:
            continue
        finding = verify(decode_bundle(config.caBundle or ""), snapshot.serving_chain, name, now)
        days = finding.days_left(now)
        for problem in finding.problems:
            problems.setdefault(problem, []).append(entry.name)
    if not problems:
        left = f"; it expires in {days} day(s)" if days is not None else ""
        level: Level = "warn" if days is not None and days < EXPIRY_WARNING_DAYS else "ok"
        yield Result(level, "serving certificate", f"every caBundle verifies it{left}")
        return
    for problem, entries in problems.items():
        yield Result(
            "fail",
            "serving certificate",
            f"{problem} (entries: {', '.join(entries)})",
            _trust_fix(problem),
        )


def _trust_fix(problem: str) -> str:
    if "expired" in problem:
        return "renew it: cmctl renew, or replace tls.existingSecret; the service reloads it"
    if "does not cover" in problem:
        return "reissue it for the name the apiserver dials (the Service's DNS name or the url)"
    return (
        "make the caBundle the CA that signs the serving certificate: with cert-manager, check "
        "the cainjector and the cert-manager.io/inject-ca-from annotation; without, set "
        "webhook.caBundle to that CA and helm upgrade"
    )


def _certificate(snapshot: Snapshot, now: datetime.datetime) -> Iterator[Result]:
    if snapshot.certificates is None:
        return
    serving = [c for c in snapshot.certificates if c[1] == snapshot.install.tls_secret]
    if not serving:
        return
    name, _, ready = serving[0]
    if ready == "True":
        yield Result("ok", "cert-manager", f"Certificate {name} is Ready")
    else:
        yield Result(
            "fail",
            "cert-manager",
            f"Certificate {name} is not Ready ({ready})",
            f"kubectl -n {snapshot.install.namespace} describe certificate {name}",
        )


def _replicas(snapshot: Snapshot, now: datetime.datetime) -> Iterator[Result]:
    deployment = snapshot.install.deployment
    ready = (deployment.status.readyReplicas if deployment.status else None) or 0
    spec = deployment.spec.replicas if deployment.spec else None
    wanted = 1 if spec is None else spec
    name = deployment.metadata.name if deployment.metadata else "?"
    namespace = snapshot.install.namespace
    failing_closed = any(w.failurePolicy == "Fail" for w in webhook_entries(snapshot.install))
    if wanted == 0:
        yield Result(
            "fail",
            "replicas",
            f"deployment {name} is scaled to 0 replicas: {_unanswered(failing_closed)}",
            f"kubectl -n {namespace} scale deployment {name} --replicas=2",
        )
    elif ready == 0:
        yield Result(
            "fail",
            "replicas",
            f"deployment {name} has no ready replica (of {wanted}): {_unanswered(failing_closed)}",
            f"kubectl -n {namespace} describe deployment {name}",
        )
    elif ready < 2 and failing_closed:
        yield Result(
            "warn",
            "replicas",
            f"deployment {name} has {ready} ready replica with failurePolicy Fail: a restart "
            "blocks opted-in pods",
        )
    else:
        yield Result("ok", "replicas", f"{ready}/{wanted} ready")


def _unanswered(failing_closed: bool) -> str:
    """What happens to opted-in pods while no replica answers."""
    if failing_closed:
        return "opted-in pods are refused (failurePolicy Fail)"
    return "opted-in pods are created without their sidecars (failurePolicy Ignore)"


def _templates(snapshot: Snapshot, now: datetime.datetime) -> Iterator[Result]:
    errors = load_errors(snapshot.loaded)
    name = snapshot.install.templates_configmap
    if errors:
        yield Result(
            "fail",
            "templates",
            f"ConfigMap {name}: {SEPARATOR.join(bounded(errors))}",
            "fix the templates (sidecar-injector validate shows every problem); until then "
            "replicas that loaded an earlier good version keep injecting it, and "
            + _restarted(snapshot),
        )
    else:
        count = len(snapshot.loaded.templates)
        if count == 0:
            yield Result(
                "fail",
                "templates",
                f"ConfigMap {name} holds no template: a restarted replica would serve none",
                "add the templates back (the running replicas keep their last set)",
            )
            return
        yield Result("ok", "templates", f"ConfigMap {name}: {count} template(s) load")


def _profiles(snapshot: Snapshot, now: datetime.datetime) -> Iterator[Result]:
    settings = snapshot.install.config.settings
    catalog = Catalog.from_load(snapshot.loaded, snapshot.fallback)
    missing = {
        profile: catalog.missing(names) for profile, names in settings.routed_profiles.items()
    }
    bad = {profile: names for profile, names in missing.items() if names}
    for profile, names in sorted(bad.items()):
        who = namer(profile)
        yield Result(
            "fail",
            "profiles",
            f"{who} name(s) {', '.join(names)}, which {_failing(names, snapshot)}",
            "add the template(s) to the ConfigMap or change config.profiles",
        )
    if not bad and settings.routed_profiles:
        yield Result("ok", "profiles", f"{', '.join(sorted(settings.routed_profiles))}")


def _denied(snapshot: Snapshot) -> str:
    """What the webhook does with a pod it cannot inject, per its --on-error."""
    if snapshot.install.config.on_error == "deny":
        return "denied"
    return "admitted without sidecars (--on-error=allow)"


def _restarted(snapshot: Snapshot) -> str:
    """What a replica that starts now serves for the templates that fail to load."""
    # Only templates: a key that is not <name>.yaml has its own error, and no version anywhere.
    names = {s.key.removesuffix(SUFFIX) for s in snapshot.templates if s.key.endswith(SUFFIX)}
    broken = sorted(n for n in snapshot.loaded.errors if n in names)
    kept = {n: t.digest for n, t in snapshot.fallback.items()}
    where = f"ConfigMap {snapshot.install.last_good_configmap}"
    served = ", ".join(f"{n} ({kept[n]})" for n in broken if n in kept)
    denied = ", ".join(n for n in broken if n not in kept)
    if not denied:
        return f"a replica that starts now serves the last good version from {where}: {served}"
    if isinstance(snapshot.last_good, str):
        why = f" (the last-good ConfigMap could not be read: {snapshot.last_good})"
    elif snapshot.last_good is None:
        why = " (the release keeps no last-good ConfigMap: audit.keepLastGood)"
    else:
        why = f" ({where} holds no good version of it)" if not served else ""
    also = f"; it serves the last good version of {served} from {where}" if served else ""
    return (
        f"a replica that starts now has no version of {denied}{why}: pods asking for it are "
        f"{_denied(snapshot)}{also}"
    )


def _failing(names: list[str], snapshot: Snapshot) -> str:
    """What pods relying on templates that do not load get."""
    if all(name in snapshot.loaded.errors for name in names):
        return (
            "fail to load: replicas that loaded an earlier good version still serve it; pods "
            f"relying on it that reach a replica started since are {_denied(snapshot)}"
        )
    return f"do not exist: pods relying on it are {_denied(snapshot)}"


def _namespaces(snapshot: Snapshot, now: datetime.datetime) -> Iterator[Result]:
    settings = snapshot.install.config.settings
    valid = label_values(settings)
    key = settings.inject_key
    # Pods there never reach the webhook, whatever the label says.
    excluded = {*settings.exclude_namespaces, "kube-system", snapshot.install.namespace}
    labeled = {n: v for n, v in snapshot.labeled_namespaces.items() if n not in excluded}
    for namespace, value in sorted(labeled.items()):
        if value in valid:
            continue
        why = (
            "asks for the default templates, but none are configured"
            if value == ENABLED
            else "names no profile"
        )
        yield Result(
            "fail",
            "namespace labels",
            f"namespace {namespace} is labeled {key}={value}, which {why}: its pods without "
            f"their own {key} annotation are {_denied(snapshot)}",
            f"kubectl label namespace {namespace} {key}="
            f"{nearest(value, valid) or '<one of: ' + ', '.join(valid) + '>'} --overwrite",
        )
    if labeled and all(v in valid for v in labeled.values()):
        yield Result("ok", "namespace labels", f"{len(labeled)} labeled namespace(s)")


# --- reading the cluster ---
