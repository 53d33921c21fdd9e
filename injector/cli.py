"""The `sidecar-injector` command: serve, inject and validate. The only place that exits."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

import yaml

from injector import __version__
from injector.catalog import Catalog
from injector.loader import LoadResult, directory_sources, file_sources, load_sources
from injector.manifests import inject_all
from injector.policy import DEFAULT_EXCLUDED, DEFAULT_PREFIX, Settings, route
from injector.service.config import add_arguments as add_serve_arguments
from injector.service.config import (
    parse_bool,
    parse_names,
    parse_namespace,
    parse_prefix,
    parse_profiles,
)

DEFAULT_TEMPLATES_DIR = "/etc/sidecar-injector/templates"
T = TypeVar("T")
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    code: int = handler(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidecar-injector",
        description="Kubernetes sidecar injector: admission webhook and offline tools.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_serve(commands)
    _add_inject(commands)
    _add_validate(commands)
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
        "into Pods and the pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, "
        "Jobs and CronJobs. Other objects pass through unchanged.",
    )
    inject.add_argument("-f", "--filename", required=True, help="manifest file, or - for stdin")
    inject.add_argument(
        "--templates-dir",
        default=os.environ.get("SIDECAR_INJECTOR_TEMPLATES_DIR", DEFAULT_TEMPLATES_DIR),
        help="directory of <template>.yaml files (default: %(default)s)",
    )
    inject.add_argument(
        "--annotation-prefix",
        default=DEFAULT_PREFIX,
        type=_checked(parse_prefix),
        help="(default: %(default)s)",
    )
    inject.add_argument(
        "--default-templates",
        default=(),
        type=_checked(parse_names),
        help='templates that inject: "true" stands for (CSV)',
    )
    inject.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME=TEMPLATES",
        help="a namespace profile, as for serve (repeatable)",
    )
    inject.add_argument(
        "--native-sidecars",
        nargs="?",
        const=True,
        default=False,
        type=_checked(parse_bool),
        metavar="true|false",
        help="place templates' sidecars as native sidecars (init containers with "
        "restartPolicy: Always), as serve --native-sidecars does (default: false)",
    )
    inject.add_argument(
        "--namespace-label",
        metavar="VALUE",
        help="act as if the objects' namespace carried the label <prefix>/inject=VALUE",
    )
    inject.add_argument(
        "--namespace",
        default="default",
        type=_checked(parse_namespace),
        help="namespace of objects that name none, for templates' namespaces: allow-lists "
        "(default: %(default)s)",
    )
    inject.set_defaults(handler=run_inject)


def _add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = commands.add_parser(
        "validate",
        help="lint templates (a directory or a ConfigMap manifest) before they reach a cluster",
        description="Load and test-render every template; print one line per problem; exit 1 "
        "if any template is broken.",
    )
    validate.add_argument("path", help="templates directory, ConfigMap manifest, or one template")
    validate.set_defaults(handler=run_validate)


def _checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """A `serve` flag parser for argparse: its "expected ..." message on a bad value."""

    def checked(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return checked


def run_inject(args: argparse.Namespace, stdout: TextIO = sys.stdout) -> int:
    templates_dir = Path(args.templates_dir)
    if not templates_dir.is_dir():
        print(f"error: templates directory {templates_dir} does not exist", file=sys.stderr)
        return 2
    result = load_sources(directory_sources(templates_dir))
    _print_load_errors(result, prefix="warning: ")
    try:
        profiles = parse_profiles(";".join(args.profile))
    except ValueError as exc:
        print(f"error: --profile: {exc}", file=sys.stderr)
        return 2
    settings = Settings(
        annotation_prefix=args.annotation_prefix,
        default_templates=args.default_templates,
        exclude_namespaces=DEFAULT_EXCLUDED,
        profiles=profiles,
        native_sidecars=args.native_sidecars,
    )
    try:
        docs = list(yaml.safe_load_all(_read(args.filename)))
    except (OSError, yaml.YAMLError) as exc:
        print(f"error: cannot read {args.filename}: {exc}", file=sys.stderr)
        return 2
    profile = route(args.namespace_label, settings)
    outcome = inject_all(docs, Catalog.from_load(result), settings, args.namespace, profile)
    for warning in outcome.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if outcome.errors:
        for error in outcome.errors:
            print(f"error: {error}", file=sys.stderr)
        return 1
    yaml.dump_all(outcome.objects, stdout, Dumper=_Dumper, sort_keys=False)
    return 0


def _read(filename: str) -> str:
    if filename == "-":
        return sys.stdin.read()
    return Path(filename).read_text(encoding="utf-8")


def run_validate(args: argparse.Namespace) -> int:
    path = Path(args.path)
    if path.is_dir():
        sources = directory_sources(path)
    elif path.is_file():
        sources = file_sources(path)
    else:
        print(f"error: {path} does not exist", file=sys.stderr)
        return 2
    result = load_sources(sources)
    _print_load_errors(result, prefix="")
    broken = len(result.errors)
    print(f"{len(result.templates)} template(s) valid, {broken} broken", file=sys.stderr)
    return 1 if broken else 0


def _print_load_errors(result: LoadResult, prefix: str) -> None:
    for errors in result.errors.values():
        for error in errors:
            print(f"{prefix}{error}", file=sys.stderr if prefix else sys.stdout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
