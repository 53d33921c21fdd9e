"""`sidecar-injector audit`: its flags (the webhook's settings, a cluster, a metrics port) and
the process's start and exit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path

import structlog

from injector import offline
from injector.names import DNS1123_LABEL, DNS1123_SUBDOMAIN
from injector.ops.commands import Commands
from injector.ops.selectors import parse_selector
from injector.service.config import LogFormat, LogLevel
from injector.types import JSON

log = structlog.get_logger("injector.audit")

METRICS_PORT = 8080


def add(commands: Commands) -> None:
    parser = commands.add_parser(
        "audit",
        help="keep every opted-in pod's state (current, outdated, removed, missed, blocked) "
        "as Prometheus gauges",
        description="A long-running process: a metadata-only list+watch of pods and namespaces, "
        "the templates read from --templates-dir as the webhook reads them (hot-reloaded), and "
        "each opted-in pod judged with the webhook's own decision. Exports "
        "sidecar_injector_audit_pods{namespace,template,state} on /metrics; /readyz once pods "
        "and namespaces are listed. Give it the webhook's own settings flags.",
    )
    offline.add_arguments(parser, offline.DEFAULT_TEMPLATES_DIR, namespace_label=False)
    parser.add_argument(
        "--last-good-dir",
        type=Path,
        help="the webhook's --last-good-dir: the mounted last-good ConfigMap (default: none)",
    )
    parser.add_argument(
        "--last-good-configmap",
        type=_configmap,
        metavar="NAMESPACE/NAME",
        help="keep the last version of each template that loaded in this ConfigMap (it must "
        "exist; needs get and patch on it); the webhook mounts it as --last-good-dir "
        "(default: none)",
    )
    for flag, what in (("namespace", "namespaces"), ("object", "pods")):
        parser.add_argument(
            f"--{flag}-selector",
            type=_selector,
            metavar="JSON",
            help=f"the webhook configuration's {flag}Selector, as JSON: {what} it leaves out "
            "never reach the webhook and are not audited (default: none)",
        )
    parser.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--host", default="0.0.0.0", help="bind address (default: %(default)s)")
    parser.add_argument(
        "--metrics-port", type=int, default=METRICS_PORT, help="/metrics, /healthz, /readyz "
        "and /debug/templates (default: %(default)s; 0: a free port)"
    )  # fmt: skip
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default="info"
    )
    parser.add_argument("--log-format", choices=["json", "console"], default="json")
    parser.set_defaults(handler=run)


def _selector(text: str) -> dict[str, JSON] | None:
    try:
        return parse_selector(text) or None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def _configmap(text: str) -> tuple[str, str]:
    namespace, slash, name = text.partition("/")
    if not slash or not DNS1123_LABEL.match(namespace) or not DNS1123_SUBDOMAIN.match(name):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAMESPACE/NAME of a ConfigMap")
    return namespace, name


def run(args: argparse.Namespace) -> int:
    level: LogLevel = args.log_level
    fmt: LogFormat = args.log_format
    # Imported here, as the other commands do: every `sidecar-injector` command would
    # otherwise load the audit's server and client stack (25 MiB, 0.1-0.3 s) at start.
    from injector.audit.process import Selectors, serve, start  # noqa: PLC0415
    from injector.ops.kube import AccessError, connect  # noqa: PLC0415
    from injector.service.logs import configure  # noqa: PLC0415
    from injector.service.runner import StartupError, bind  # noqa: PLC0415

    configure(level, fmt)
    # One line per request to the API server (every watch resumed) is noise here.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    try:
        settings = offline.settings(args)
        client = connect(args.kubeconfig, args.context)
        auditor, state, registry, watcher = start(
            client,
            settings,
            Path(args.templates_dir),
            last_good_dir=args.last_good_dir,
            last_good=args.last_good_configmap,
            selectors=Selectors(args.namespace_selector, args.object_selector),
        )
    except (offline.UsageError, AccessError, StartupError) as exc:
        log.error("startup_failed", error=str(exc))
        return 2 if isinstance(exc, offline.UsageError) else 1
    with contextlib.ExitStack() as stack:
        try:
            sock = stack.enter_context(bind(args.host, args.metrics_port))
        except StartupError as exc:
            log.error("startup_failed", error=str(exc))
            return 1
        log.info(
            "listening",
            host=args.host,
            metrics_port=sock.getsockname()[1],
            templates=sorted(state.catalog.templates),
            profiles=dict(settings.routed_profiles),
            native_sidecars=settings.native_sidecars,
            last_good=None if auditor.last_good is None else auditor.last_good.where,
        )
        return asyncio.run(serve(auditor, state, registry, watcher, sock))
