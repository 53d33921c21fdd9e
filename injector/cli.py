"""The `sidecar-injector` command: serve, inject, validate, and the operator commands check,
outdated and explain (also as the kubectl plugin `kubectl sidecar-injector`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import yaml

from injector import __version__, offline
from injector.audit import main as audit_main
from injector.lists import ListError
from injector.loader import LoadResult, directory_sources, file_groups, load_sources
from injector.manifests import inject_all, objects_help
from injector.offline import DEFAULT_TEMPLATES_DIR
from injector.ops import commands as ops_commands
from injector.policy import route
from injector.service.config import add_arguments as add_serve_arguments

_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def main(argv: Sequence[str] | None = None, prog: str = "sidecar-injector") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = handler(args)
    return code


def plugin() -> int:
    """`kubectl sidecar-injector ...`: kubectl runs `kubectl-sidecar_injector` from PATH with
    the rest of the command line."""
    return main(prog="kubectl sidecar-injector")


def build_parser(prog: str = "sidecar-injector") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Kubernetes sidecar injector: admission webhook and offline tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(commands)
    _add_inject(commands)
    _add_validate(commands)
    ops_commands.add(commands)
    audit_main.add(commands)
    return parser


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the admission webhook (HTTPS /mutate, plain HTTP metrics and probes)",
        description="Run the mutating admission webhook. Every flag can also be set with the "
        "environment variable SIDECAR_INJECTOR_<FLAG>, e.g. SIDECAR_INJECTOR_ON_ERROR=allow.",
    )
    add_serve_arguments(serve)
    serve.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    # Imported here so the offline commands do not pay for uvicorn and Starlette.
    from injector.service.main import serve  # noqa: PLC0415

    return serve(args)


def _add_inject(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inject = commands.add_parser(
        "inject",
        help="inject sidecars into Pods and workload manifests offline",
        description="Read multi-document YAML, print it with the requested sidecars injected "
        f"into {objects_help()}. Other objects pass through unchanged; a List keeps its "
        "apiVersion, kind and metadata, each item replaced by its result, in order.",
    )
    inject.add_argument("-f", "--filename", required=True, help="manifest file, or - for stdin")
    offline.add_arguments(
        inject, os.environ.get("SIDECAR_INJECTOR_TEMPLATES_DIR", DEFAULT_TEMPLATES_DIR)
    )
    offline.add_namespace(
        inject,
        "default",
        "namespace of objects that name none, for templates' namespaces: allow-lists "
        "(default: %(default)s)",
    )
    inject.set_defaults(handler=run_inject)


def _add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser(
        "validate",
        help="lint templates (a directory or a ConfigMap manifest) before they reach a cluster",
        description="Load and test-render every template of a templates directory, a "
        "template file, or a ConfigMap manifest: every ConfigMap in it, and of the ConfigMaps in "
        "a List (kind: List or ConfigMapList, what kubectl get configmap -o yaml prints) those "
        "holding a <template>.yaml key (the others are named in a note). Print one line per "
        "problem; exit 1 if any template is broken, 2 if the path does not exist or cannot "
        "be read.",
    )
    validate.add_argument("path", help="templates directory, ConfigMap manifest, or one template")
    validate.set_defaults(handler=run_validate)


def run_inject(args: argparse.Namespace, stdout: TextIO = sys.stdout) -> int:
    try:
        catalog, result = offline.catalog(args.templates_dir)
        settings = offline.settings(args)
    except offline.UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_load_errors(result, prefix="warning: ")
    try:
        docs = offline.read_manifests(args.filename)
    except offline.UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    profile = route(args.namespace_label, settings)
    outcome = inject_all(docs, catalog, settings, args.namespace, profile)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if outcome.errors:
        for error in outcome.errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    yaml.dump_all(outcome.objects, stdout, Dumper=_Dumper, sort_keys=False)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir():
        groups = [directory_sources(path)]
    elif path.is_file():
        try:
            manifest = file_groups(path)
        except ListError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            return 1
        except (OSError, UnicodeDecodeError) as exc:
            print(f"error: cannot read {path}: {exc}", file=sys.stderr)
            return 2
        for skipped in manifest.skipped:
            print(f"note: {skipped}: holds no <template>.yaml key; not validated", file=sys.stderr)
        groups = manifest.groups
    else:
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    if not any(groups):
        print(f"error: {path} holds no template (keys named <template>.yaml)", file=sys.stderr)
        return 1
    valid = broken = 0
    for sources in groups:  # each ConfigMap on its own: two may hold the same key
        result = load_sources(sources)
        _print_load_errors(result, prefix="")
        valid += len(result.templates)
        broken += len(result.errors)
    print(f"{valid} template(s) valid, {broken} broken", file=sys.stderr)
    return 1 if broken else 0


def _print_load_errors(result: LoadResult, prefix: str) -> None:
    for errors in result.errors.values():
        for error in errors:
            print(f"{prefix}{error}", file=sys.stderr if prefix else sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
