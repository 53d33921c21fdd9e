"""The flags that stand for the service's settings where there is no service to ask (`inject`,
and `explain --templates-dir`): parsed with `serve`'s own parsers."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from injector.catalog import Catalog
from injector.loader import LoadResult, directory_sources, load_sources
from injector.policy import DEFAULT_EXCLUDED, DEFAULT_PREFIX, Settings
from injector.service.parsers import (
    parse_bool,
    parse_names,
    parse_namespace,
    parse_prefix,
    parse_profiles,
    parse_template_names,
)

DEFAULT_TEMPLATES_DIR = "/etc/sidecar-injector/templates"
T = TypeVar("T")


class UsageError(Exception):
    """A flag with a bad value or a missing path: exit 2 with this line."""


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """A `serve` flag parser for argparse: its "expected ..." message on a bad value."""

    def check(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return check


def add_arguments(
    parser: argparse.ArgumentParser, templates_dir: str | None, namespace_label: bool = True
) -> None:
    """--templates-dir (default `templates_dir`), --annotation-prefix, --default-templates,
    --profile, --native-sidecars, --exclude-namespaces and (unless `namespace_label` is
    false: commands that read the real labels) --namespace-label."""
    parser.add_argument(
        "--templates-dir",
        default=templates_dir,
        help="directory of <template>.yaml files"
        + (" (default: %(default)s)" if templates_dir else ""),
    )
    parser.add_argument(
        "--annotation-prefix",
        default=DEFAULT_PREFIX,
        type=checked(parse_prefix),
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--default-templates",
        default=(),
        type=checked(parse_template_names),
        help='templates that inject: "true" stands for (CSV)',
    )
    parser.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME=TEMPLATES",
        help="a namespace profile, as for serve (repeatable)",
    )
    parser.add_argument(
        "--native-sidecars",
        nargs="?",
        const=True,
        default=False,
        type=checked(parse_bool),
        metavar="true|false",
        help="place templates' sidecars as native sidecars (init containers with "
        "restartPolicy: Always), as serve --native-sidecars does (default: false)",
    )
    parser.add_argument(
        "--exclude-namespaces",
        default=DEFAULT_EXCLUDED,
        type=checked(lambda text: frozenset(parse_names(text))),
        help="namespaces that are never injected, as for serve (CSV; default: "
        f"{','.join(sorted(DEFAULT_EXCLUDED))})",
    )
    if not namespace_label:
        return
    parser.add_argument(
        "--namespace-label",
        metavar="VALUE",
        help="act as if the objects' namespace carried the label <prefix>/inject=VALUE",
    )


def add_namespace(parser: argparse.ArgumentParser, default: str | None, help: str) -> None:
    parser.add_argument(
        "-n", "--namespace", default=default, type=checked(parse_namespace), help=help
    )


def settings_given(args: argparse.Namespace) -> list[str]:
    """The settings flags given on the command line (not left at their defaults)."""
    defaults = {
        "annotation_prefix": DEFAULT_PREFIX,
        "default_templates": (),
        "profile": [],
        "native_sidecars": False,
        "exclude_namespaces": DEFAULT_EXCLUDED,
        "namespace_label": None,
    }
    return [
        f"--{name.replace('_', '-')}"
        for name, default in defaults.items()
        if getattr(args, name) != default
    ]


def settings(args: argparse.Namespace) -> Settings:
    try:
        profiles = parse_profiles(";".join(args.profile))
    except ValueError as exc:
        raise UsageError(f"--profile: {exc}") from None
    return Settings(
        annotation_prefix=args.annotation_prefix,
        default_templates=args.default_templates,
        exclude_namespaces=args.exclude_namespaces,
        profiles=profiles,
        native_sidecars=args.native_sidecars,
    )


def catalog(templates_dir: str) -> tuple[Catalog, LoadResult]:
    if not os.path.isdir(templates_dir):
        raise UsageError(f"templates directory {templates_dir} does not exist")
    result = load_sources(directory_sources(templates_dir))
    return Catalog.from_load(result), result


def read_manifests(filename: str) -> list[Any]:
    """The YAML documents of a manifest file, or of stdin for `-`."""
    try:
        if filename == "-":
            text = sys.stdin.read()
        else:
            with open(filename, encoding="utf-8") as file:
                text = file.read()
        return list(yaml.safe_load_all(text))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UsageError(f"cannot read {filename}: {exc}") from None
    except RecursionError:  # PyYAML's parser recurses per level of nesting
        raise UsageError(f"cannot read {filename}: values nested too deeply") from None
