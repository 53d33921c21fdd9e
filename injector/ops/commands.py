"""`check`, `outdated` and `explain` on the command line: flags, output (table or JSON) and
exit codes — 0 fine, 1 found a problem, 2 a usage or access error (one line, no traceback).
The cluster client is imported when a command runs, so `inject` and `serve` never load it."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

import orjson

from injector import offline
from injector.lists import Item, ListError, objects
from injector.manifests import objects_help, pod_of
from injector.types import Obj

if TYPE_CHECKING:
    from lightkube import Client

    from injector.ops.explain import Explanation, World
    from injector.ops.install import Install
    from injector.ops.outdated import Report

RELEASE_NAMESPACE = "sidecar-injector"
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add(commands: Commands) -> None:
    _add_check(commands)
    _add_outdated(commands)
    _add_explain(commands)


def _cluster_flags(parser: argparse.ArgumentParser) -> None:
    """Like kubectl's; accepted after the subcommand, as a kubectl plugin receives them."""
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument(
        "--release-namespace",
        default=RELEASE_NAMESPACE,
        help="namespace of the sidecar-injector release (default: %(default)s)",
    )
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")


def _add_check(commands: Commands) -> None:
    check = commands.add_parser(
        "check",
        help="is the install healthy? one line per check; exit 1 on any ✖",
        description="Checks the webhook configurations, their endpoints, that every caBundle "
        "verifies the serving certificate, cert-manager's Certificate, ready replicas, the "
        "templates ConfigMap, the profiles and the namespaces' labels. Read-only.",
    )
    _cluster_flags(check)
    check.add_argument("-n", dest="release_namespace", help="same as --release-namespace")
    check.set_defaults(handler=run_check)


def _add_outdated(commands: Commands) -> None:
    outdated = commands.add_parser(
        "outdated",
        help="pods that run an old template, lack one they asked for, or will be refused",
        description="Every opted-in pod judged with the webhook's own decision, per template: "
        "current, outdated (another digest or sidecar placement), removed, missed (the webhook "
        "would inject it now, the pod lacks it) or blocked (the webhook would refuse the pod "
        "now), grouped by workload with the fix; a restart is suggested only once the "
        "webhook's replicas serve the ConfigMap's version. Read-only; pods are read as "
        "metadata, in pages.",
    )
    _cluster_flags(outdated)
    where = outdated.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", help="the pods' namespace (default: the context's)")
    where.add_argument("-A", "--all-namespaces", action="store_true")
    outdated.add_argument(
        "--exit-code",
        action="store_true",
        help="exit 1 when any pod is outdated, removed, missed or blocked",
    )
    outdated.set_defaults(handler=run_outdated)


def _add_explain(commands: Commands) -> None:
    explain = commands.add_parser(
        "explain",
        help="why is (or would) a pod (not) be injected, and what to change",
        description="For a pod in the cluster (POD -n NS) or the pods of a manifest (-f: "
        f"{objects_help()}): injected or not, the first reason in the order the webhook "
        "decides, what to change, and near misses. With --templates-dir it works offline "
        "(the other settings from flags, as for inject). Exit 0 when injected, 1 when not.",
    )
    _cluster_flags(explain)
    explain.add_argument("pod", nargs="?", help="name of a pod in the cluster")
    explain.add_argument("-f", "--filename", help="manifest file, or - for stdin")
    offline.add_namespace(
        explain, None, "the pod's namespace (default: the manifest's, else the context's)"
    )
    offline.add_arguments(explain, None)
    explain.set_defaults(handler=run_explain)


def _fail(command: str, message: str) -> int:
    print(f"sidecar-injector {command}: error: {message}", file=sys.stderr)
    return 2


def _guarded(command: str, body: Callable[[], int]) -> int:
    """Run a command; an access or usage problem is one line and exit 2."""
    from injector.ops.kube import AccessError  # noqa: PLC0415

    try:
        return body()
    except (AccessError, offline.UsageError) as exc:
        return _fail(command, str(exc))
    except Exception as exc:  # a bug: still one line, never a traceback in a user's face
        return _fail(command, f"unexpected {type(exc).__name__}: {exc} (a bug: please report it)")


def _client(args: argparse.Namespace) -> Client:
    from injector.ops.kube import connect  # noqa: PLC0415

    return connect(args.kubeconfig, args.context)


def _install(client: Client, args: argparse.Namespace) -> Install:
    from injector.ops.install import find  # noqa: PLC0415

    return find(client, args.release_namespace)


# --- check ---


def run_check(args: argparse.Namespace, stdout: TextIO = sys.stdout) -> int:
    def body() -> int:
        from injector.ops.check import SYMBOLS, run_checks  # noqa: PLC0415
        from injector.ops.snapshot import snapshot  # noqa: PLC0415

        client = _client(args)
        install = _install(client, args)
        results = run_checks(snapshot(client, install), datetime.datetime.now(datetime.UTC))
        failed = any(r.level == "fail" for r in results)
        if args.output == "json":
            _json(
                stdout,
                {
                    "release": install.release,
                    "namespace": install.namespace,
                    "ok": not failed,
                    "checks": [
                        {"level": r.level, "check": r.check, "message": r.message, "fix": r.fix}
                        for r in results
                    ],
                },
            )
        else:
            print(f"release {install.release!r} in namespace {install.namespace}", file=stdout)
            for result in results:
                print(result.line(), file=stdout)
            marks = [SYMBOLS[r.level] for r in results]
            print(
                f"{marks.count('✔')} ok, {marks.count('⚠')} warning(s), {marks.count('✖')} failed",
                file=stdout,
            )
        return 1 if failed else 0

    return _guarded("check", body)


# --- outdated ---


def run_outdated(args: argparse.Namespace, stdout: TextIO = sys.stdout) -> int:
    def body() -> int:
        found = _outdated_report(args)
        if args.output == "json":
            _json(stdout, found.to_json())
        else:
            _outdated_table(found, stdout)
        return 1 if args.exit_code and found.problem_pods else 0

    return _guarded("outdated", body)


def _outdated_report(args: argparse.Namespace) -> Report:
    from injector.fleet import Fleet  # noqa: PLC0415
    from injector.ops.install import catalog_of  # noqa: PLC0415
    from injector.ops.outdated import (  # noqa: PLC0415
        ALL_NAMESPACES,
        PARENTS,
        namespace_labels,
        parents,
        report,
        scan,
        served,
    )
    from injector.ops.selectors import selected  # noqa: PLC0415

    client = _client(args)
    install = _install(client, args)
    catalog = catalog_of(client, install)
    namespace = ALL_NAMESPACES if args.all_namespaces else args.namespace or client.namespace
    settings = install.config.settings
    # The chart's entries never send the release namespace's pods, whatever the service's
    # own list says.
    excluded = settings.exclude_namespaces | {install.namespace}
    fleet = Fleet(catalog, dataclasses.replace(settings, exclude_namespaces=excluded))
    labels = namespace_labels(client, namespace)
    key = settings.inject_key
    entries = [w.to_dict() for w in install.mutating.webhooks or ()] if install.mutating else []

    def sent(pod_namespace: str, pod_labels: Mapping[str, str]) -> bool:
        return selected(entries, pod_namespace, labels.get(pod_namespace, {}), pod_labels)

    pods = list(scan(client, namespace, fleet, lambda ns: labels.get(ns, {}).get(key), sent))
    kinds = {p.owner[0] for p in pods if p.owner and p.audit.problems} & PARENTS.keys()
    owners = parents(client, namespace, kinds) if kinds else {}
    selector = install.deployment.spec.selector.matchLabels if install.deployment.spec else None
    url_mode = bool(entries) and all((e.get("clientConfig") or {}).get("url") for e in entries)
    replicas = served(
        client, install.namespace, selector or {}, install.config.metrics_port, url_mode
    )
    return report(pods, owners, catalog.broken, replicas, catalog.digests)


def _outdated_table(found: Report, stdout: TextIO) -> None:
    rows = [
        (
            w.kind,
            w.namespace,
            w.name,
            state,
            str(count),
            ", ".join(
                sorted(
                    {
                        f.template or "(the pod)"
                        for pods in w.pods.values()
                        for f in pods
                        if f.state == state
                    }
                )
            ),
            found.fix(w),
        )
        for w in found.workloads
        for state, count in w.states().items()
        if count
    ]
    if rows:
        header = ("KIND", "NAMESPACE", "NAME", "STATE", "PODS", "TEMPLATES", "TO FIX")
        _table(header, rows, stdout)
    for template in found.broken:
        print(
            f"note: template {template!r} fails to load now; its pods are not counted",
            file=sys.stderr,
        )
    if found.served.unknown is not None:
        print(
            f"note: the version the webhook serves is unknown ({found.served.unknown}); a "
            "restart gets whatever its replicas serve, which may not be the ConfigMap's yet",
            file=sys.stderr,
        )
    for template, what in sorted(found.behind.items()):
        print(
            f"note: the webhook does not serve the ConfigMap's {template!r} yet ({what}); "
            "wait (the kubelet delivers ConfigMap edits within about a minute) before "
            "restarting pods for it",
            file=sys.stderr,
        )
    for namespace, pod, error in found.errors:
        print(f"error: pod {namespace}/{pod}: {error}", file=sys.stderr)
    counts = ", ".join(f"{n} {s}" for s, n in found.counts.items() if s != "current")
    print(
        f"{found.problem_pods} of {found.scanned} pod(s) need attention ({counts}; "
        f"{found.counts['current']} current, {found.skipped} not opted in or not sent)",
        file=sys.stderr,
    )


# --- explain ---


def run_explain(args: argparse.Namespace, stdout: TextIO = sys.stdout) -> int:
    def body() -> int:
        if bool(args.pod) == bool(args.filename):
            raise offline.UsageError("give a POD name or -f MANIFEST (one of them)")
        if args.pod and args.templates_dir:
            raise offline.UsageError("--templates-dir works with -f MANIFEST only")
        given = offline.settings_given(args)
        if given and not args.templates_dir:
            raise offline.UsageError(
                f"{', '.join(given)}: with a cluster the running webhook's own settings apply; "
                "these flags are for offline use, with --templates-dir"
            )
        explanations = _explain_offline(args) if args.templates_dir else _explain_online(args)
        if args.output == "json":
            _json(stdout, [e.to_json() for e in explanations])
        else:
            for explanation in explanations:
                print("\n".join(explanation.lines()), file=stdout)
        return 0 if explanations and all(e.injected for e in explanations) else 1

    return _guarded("explain", body)


def _explain_offline(args: argparse.Namespace) -> list[Explanation]:
    from injector.ops.explain import World  # noqa: PLC0415

    catalog, _ = offline.catalog(args.templates_dir)
    settings = offline.settings(args)
    key = settings.inject_key
    labels = {key: args.namespace_label} if args.namespace_label is not None else {}
    world = World(settings, catalog, labels)
    return _explain_manifest(args.filename, args.namespace or "default", lambda _: world)


def _explain_online(args: argparse.Namespace) -> list[Explanation]:
    from lightkube.resources.core_v1 import Namespace, Pod  # noqa: PLC0415

    from injector.ops.explain import World, explain  # noqa: PLC0415
    from injector.ops.install import catalog_of  # noqa: PLC0415
    from injector.ops.kube import AccessError, reading  # noqa: PLC0415

    client = _client(args)
    install = _install(client, args)
    catalog = catalog_of(client, install)
    settings = install.config.settings
    entries = [w.to_dict() for w in install.mutating.webhooks or ()] if install.mutating else []
    worlds: dict[str, World] = {}

    def world(namespace: str) -> World:
        if namespace not in worlds:
            try:
                with reading(client, f"get namespace {namespace}"):
                    found = client.get(Namespace, namespace)
                labels = dict(found.metadata.labels or {}) if found.metadata else {}
            except AccessError as exc:
                if exc.code != 404:
                    raise
                labels = {}  # a manifest for a namespace not created yet
            worlds[namespace] = World(settings, catalog, labels, entries)
        return worlds[namespace]

    if args.filename:
        return _explain_manifest(args.filename, args.namespace or client.namespace, world)
    namespace = args.namespace or client.namespace
    with reading(client, f"get pod {args.pod} in namespace {namespace}"):
        pod = client.get(Pod, args.pod, namespace=namespace).to_dict()
    owner = _workload(client, pod, namespace)
    target = f"Pod {namespace}/{args.pod}"
    return [explain(target, pod, namespace, world(namespace), owner, live=True)]


def _workload(client: Client, pod: Obj, namespace: str) -> Obj | None:
    """The workload that created the pod (ReplicaSet → Deployment, Job → CronJob), whose own
    annotations may hold a misplaced opt-in; None when it cannot be read."""
    from lightkube.resources.apps_v1 import (  # noqa: PLC0415
        DaemonSet,
        Deployment,
        ReplicaSet,
        StatefulSet,
    )
    from lightkube.resources.batch_v1 import CronJob, Job  # noqa: PLC0415

    from injector.ops.kube import AccessError, reading  # noqa: PLC0415

    kinds: dict[str, Any] = {
        "ReplicaSet": ReplicaSet,
        "Deployment": Deployment,
        "StatefulSet": StatefulSet,
        "DaemonSet": DaemonSet,
        "Job": Job,
        "CronJob": CronJob,
    }
    found: Obj | None = None
    current = pod
    for _ in range(2):  # a pod's controller, and that controller's own
        owners = (current.get("metadata") or {}).get("ownerReferences") or []
        controller = next((o for o in owners if o.get("controller")), None)
        if controller is None or controller.get("kind") not in kinds:
            break
        try:
            with reading(client, f"get {controller['kind'].lower()} {controller['name']}"):
                kind = kinds[controller["kind"]]
                current = client.get(kind, controller["name"], namespace=namespace).to_dict()
        except AccessError:
            break  # the hint is a bonus: without the permission, explain without it
        found = {**current, "kind": controller["kind"]}
    return found


def _explain_manifest(
    filename: str, default_namespace: str, world: Callable[[str], World]
) -> list[Explanation]:
    from injector.ops.explain import explain  # noqa: PLC0415

    found = []
    for item, pod, owner in _pods(offline.read_manifests(filename), filename):
        metadata = _mapping(item.obj.get("metadata"))
        namespace = str(metadata.get("namespace") or default_namespace)
        label = item.label(f"{item.kind or '?'} {namespace}/{metadata.get('name', '?')}")
        found.append(explain(label, pod, namespace, world(namespace), owner))
    if not found:
        raise offline.UsageError(
            f"{filename} holds no Pod and no workload with a pod template (Lists included)"
        )
    return found


def _pods(docs: Iterable[Any], filename: str) -> Iterable[tuple[Item, Obj, Obj | None]]:
    """(object, pod, workload or None) for Pods and the pod templates of workloads, in the
    documents and in the Lists in them (`lists.objects`); a pod template is seen as the pod
    its controller creates (its name a generateName)."""
    for number, doc in enumerate(docs, 1):
        try:
            items = list(objects(doc))
        except ListError as exc:
            raise offline.UsageError(f"{filename}: document {number}: {exc}") from None
        for item in items:
            if item.kind == "Pod":
                yield item, item.obj, None
                continue
            owner = item.resolved
            pod = pod_of(owner)
            if pod is not None:
                yield item, pod, owner


def _mapping(value: Any) -> Obj:
    """A manifest's metadata, or {} where it is missing or not a map (explain says so)."""
    return value if isinstance(value, dict) else {}


# --- output ---


def _json(stdout: TextIO, data: Any) -> None:
    stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], stdout: TextIO) -> None:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(),
            file=stdout,
        )
