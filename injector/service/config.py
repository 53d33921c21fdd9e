"""The flags of `serve`: each also an environment variable, parsed and validated once."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generic, Literal, TypeVar

from injector.policy import DEFAULT_EXCLUDED, DEFAULT_PREFIX, Settings
from injector.service import parsers

ENV_PREFIX = "SIDECAR_INJECTOR_"

OnError = Literal["deny", "allow"]
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "console"]

T = TypeVar("T")


class ConfigError(Exception):
    """An invalid flag or environment value; the message names it and what was expected."""


@dataclass(frozen=True)
class Config:
    """The effective configuration of one `serve` process."""

    templates_dir: Path
    last_good_dir: Path | None
    tls_cert: Path
    tls_key: Path
    host: str
    port: int
    metrics_port: int
    annotation_prefix: str
    default_templates: tuple[str, ...]
    profiles: Mapping[str, tuple[str, ...]]
    exclude_namespaces: frozenset[str]
    native_sidecars: bool
    on_error: OnError
    max_body_bytes: int
    log_level: LogLevel
    log_format: LogFormat
    shutdown_delay: float
    graceful_timeout: float
    dev: bool

    @property
    def settings(self) -> Settings:
        return Settings(
            self.annotation_prefix,
            self.default_templates,
            self.exclude_namespaces,
            self.profiles,
            self.native_sidecars,
        )

    def summary(self) -> dict[str, object]:
        """Everything, for the start-up log line (nothing here is secret)."""
        return {
            "templates_dir": str(self.templates_dir),
            "last_good_dir": str(self.last_good_dir or ""),
            "tls_cert": str(self.tls_cert),
            "tls_key": str(self.tls_key),
            "host": self.host,
            "port": self.port,
            "metrics_port": self.metrics_port,
            "annotation_prefix": self.annotation_prefix,
            "default_templates": list(self.default_templates),
            "profiles": {name: list(names) for name, names in self.profiles.items()},
            "exclude_namespaces": sorted(self.exclude_namespaces),
            "native_sidecars": self.native_sidecars,
            "on_error": self.on_error,
            "max_body_bytes": self.max_body_bytes,
            "log_level": self.log_level,
            "log_format": self.log_format,
            "shutdown_delay": self.shutdown_delay,
            "graceful_timeout": self.graceful_timeout,
            "dev": self.dev,
        }


@dataclass(frozen=True)
class Flag(Generic[T]):
    """One flag: its name, environment variable, default and parser."""

    name: str
    default: str
    parse: Callable[[str], T]
    help: str
    metavar: str | None = None
    repeated_env: str | None = None
    """Set for a repeatable flag: the name of its environment variable, whose value holds
    every repetition separated by ';'."""

    @property
    def dest(self) -> str:
        """The Config field; a repeatable flag's is named like its variable (plural)."""
        return (self.repeated_env or self.name).lower().replace("-", "_")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.dest.upper()


FLAGS: tuple[Flag[object], ...] = (
    Flag(
        "templates-dir",
        "/etc/sidecar-injector/templates",
        parsers.path,
        "directory of <template>.yaml files (the mounted templates ConfigMap)",
        "DIR",
    ),
    Flag(
        "last-good-dir",
        "",
        parsers.optional_path,
        "directory of the last good version of each template (the mounted last-good "
        "ConfigMap the audit keeps): served for a template that fails to load and that this "
        "process never loaded; empty: none",
        "DIR",
    ),
    Flag(
        "tls-cert",
        "/etc/sidecar-injector/tls/tls.crt",
        parsers.path,
        "PEM serving certificate (chain) for the HTTPS port",
        "FILE",
    ),
    Flag(
        "tls-key",
        "/etc/sidecar-injector/tls/tls.key",
        parsers.path,
        "PEM private key of --tls-cert",
        "FILE",
    ),
    Flag("host", "0.0.0.0", parsers.host, "bind address of both ports (:: for IPv6)", "ADDR"),
    Flag("port", "8443", parsers.port, "HTTPS port serving POST /mutate", "PORT"),
    Flag(
        "metrics-port",
        "8080",
        parsers.port,
        "plain HTTP port serving /metrics, /healthz, /readyz, /debug/templates",
        "PORT",
    ),
    Flag(
        "annotation-prefix",
        DEFAULT_PREFIX,
        parsers.parse_prefix,
        "prefix of the pod annotations: <prefix>/inject, <prefix>/status",
        "PREFIX",
    ),
    Flag(
        "default-templates",
        "",
        parsers.parse_template_names,
        'comma-separated templates injected for <prefix>/inject: "true"',
        "NAMES",
    ),
    Flag(
        "profile",
        "",
        parsers.parse_profiles,
        "NAME=t1,t2: namespaces labeled <prefix>/inject=NAME get these templates (repeatable)",
        "NAME=TEMPLATES",
        repeated_env="PROFILES",
    ),
    Flag(
        "exclude-namespaces",
        ",".join(sorted(DEFAULT_EXCLUDED)),
        parsers.name_set,
        "comma-separated namespaces that are never injected",
        "NAMES",
    ),
    Flag(
        "native-sidecars",
        "false",
        parsers.parse_bool,
        "templates' sidecars become init containers with restartPolicy: Always (Kubernetes "
        "1.29+, or 1.28 with the SidecarContainers feature gate); false: regular containers",
        None,
    ),
    Flag(
        "on-error",
        "deny",
        parsers.choice(OnError),
        "deny: refuse a pod whose injection fails; allow: admit it with a warning",
        "deny|allow",
    ),
    Flag(
        "max-body-bytes",
        "3145728",
        parsers.positive_int,
        "largest AdmissionReview accepted (413 above)",
        "BYTES",
    ),
    Flag(
        "log-level",
        "info",
        parsers.choice(LogLevel),
        "least severe level logged",
        "debug|info|warning|error",
    ),
    Flag(
        "log-format",
        "json",
        parsers.choice(LogFormat),
        "json lines, or console for humans (the default with --dev)",
        "json|console",
    ),
    Flag(
        "shutdown-delay",
        "5",
        parsers.seconds,
        "after SIGTERM, seconds to fail readiness and keep serving before stopping",
        "SECONDS",
    ),
    Flag(
        "graceful-timeout",
        "10",
        parsers.seconds,
        "after the delay, seconds to let in-flight requests finish",
        "SECONDS",
    ),
    Flag(
        "dev",
        "false",
        parsers.parse_bool,
        "throwaway TLS, examples/templates, bind 127.0.0.1, print a curl command",
        None,
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare every flag on the `serve` sub-parser; values are resolved by `load`."""
    for flag in FLAGS:
        help_text = f"{flag.help} [env {flag.env}; default: {flag.default or 'none'}]"
        if flag.metavar is None:  # a switch: --flag, --flag=true, --flag=false
            parser.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                nargs="?",
                const="true",
                default=None,
                metavar="true|false",
                help=help_text,
            )
        elif flag.repeated_env is not None:
            parser.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                action="append",
                default=None,
                metavar=flag.metavar,
                help=help_text,
            )
        else:
            parser.add_argument(
                f"--{flag.name}",
                dest=flag.dest,
                default=None,
                metavar=flag.metavar,
                help=help_text,
            )


def load(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> Config:
    """Resolve each flag (flag, then environment, then default) and validate it."""
    given: dict[str, str] = {}
    values: dict[str, object] = {}
    for flag in FLAGS:
        raw = getattr(args, flag.dest, None)
        if isinstance(raw, list):
            raw = ";".join(raw)
        source = f"--{flag.name}"
        if raw is None and flag.env in environ:
            raw, source = environ[flag.env], flag.env
        if raw is not None:
            given[flag.dest] = raw
        text = flag.default if raw is None else str(raw)
        try:
            values[flag.dest] = flag.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{source}={text!r}: {exc}") from None
    config = Config(**values)  # type: ignore[arg-type]
    return _check(_dev_defaults(config, given) if config.dev else config)


def _dev_defaults(config: Config, given: Mapping[str, str]) -> Config:
    """--dev changes a few defaults; anything set explicitly still wins."""
    return replace(
        config,
        host=config.host if "host" in given else "127.0.0.1",
        log_format=config.log_format if "log_format" in given else "console",
        templates_dir=config.templates_dir if "templates_dir" in given else examples_dir(),
    )


def _check(config: Config) -> Config:
    if config.port and config.port == config.metrics_port:
        raise ConfigError(f"--port and --metrics-port are both {config.port}; use two ports")
    return config


def examples_dir() -> Path:
    """The repository's example templates: next to the package, else in the working directory."""
    here = Path(__file__).resolve().parents[2] / "examples" / "templates"
    return here if here.is_dir() else Path.cwd() / "examples" / "templates"
