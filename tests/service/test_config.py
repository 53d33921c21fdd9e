"""Flags and their environment variables: precedence, defaults, validation, dev-mode defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from injector.policy import Settings
from injector.service.config import FLAGS, ConfigError, add_arguments, examples_dir, load
from injector.service.main import serve


def parse(*argv: str, environ: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults() -> None:
    config = load(parse(), {})
    assert config.summary() == {
        "templates_dir": "/etc/sidecar-injector/templates",
        "last_good_dir": "",
        "tls_cert": "/etc/sidecar-injector/tls/tls.crt",
        "tls_key": "/etc/sidecar-injector/tls/tls.key",
        "host": "0.0.0.0",
        "port": 8443,
        "metrics_port": 8080,
        "annotation_prefix": "sidecar-injector.io",
        "default_templates": [],
        "profiles": {},
        "exclude_namespaces": ["kube-node-lease", "kube-public", "kube-system"],
        "native_sidecars": False,
        "on_error": "deny",
        "max_body_bytes": 3145728,
        "log_level": "info",
        "log_format": "json",
        "shutdown_delay": 5.0,
        "graceful_timeout": 10.0,
        "dev": False,
    }
    assert config.settings == Settings()


def test_every_flag_has_an_environment_variable() -> None:
    assert [f.env for f in FLAGS] == [
        "SIDECAR_INJECTOR_"
        + ("PROFILES" if f.name == "profile" else f.name.replace("-", "_").upper())
        for f in FLAGS
    ]
    assert len(FLAGS) == 19


def test_profiles_from_repeated_flags_or_one_variable() -> None:
    flags = load(
        parse("--profile", "mesh=envoy-proxy, trace-agent", "--profile=logs=log-shipper"), {}
    )
    assert flags.profiles == {"mesh": ("envoy-proxy", "trace-agent"), "logs": ("log-shipper",)}
    assert flags.settings.profiles == flags.profiles
    env = load(
        parse(), {"SIDECAR_INJECTOR_PROFILES": "mesh=envoy-proxy,trace-agent; logs=log-shipper;"}
    )
    assert env.profiles == flags.profiles
    assert list(env.summary()["profiles"]) == ["mesh", "logs"]  # type: ignore[call-overload]
    assert load(parse("--profile", "a=x"), {"SIDECAR_INJECTOR_PROFILES": "b=y"}).profiles == {
        "a": ("x",)
    }


def test_flag_beats_environment_beats_default() -> None:
    environ = {"SIDECAR_INJECTOR_PORT": "9443", "SIDECAR_INJECTOR_ON_ERROR": "allow"}
    config = load(parse("--port", "10443"), environ)
    assert config.port == 10443
    assert config.on_error == "allow"
    assert config.metrics_port == 8080


def test_lists_and_settings() -> None:
    config = load(
        parse(
            "--default-templates",
            " log-shipper, trace-agent ,log-shipper",
            "--exclude-namespaces",
            "",
            "--annotation-prefix",
            "inject.example.com",
        ),
        {},
    )
    settings = config.settings
    assert settings.default_templates == ("log-shipper", "trace-agent")
    assert settings.exclude_namespaces == frozenset()
    assert settings.inject_key == "inject.example.com/inject"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--port", "http"], {}, "--port='http': expected a port number from 0 to 65535"),
        (["--metrics-port", "70000"], {}, "--metrics-port='70000': expected a port number"),
        ([], {"SIDECAR_INJECTOR_PORT": "-1"}, "SIDECAR_INJECTOR_PORT='-1': expected a port"),
        (["--on-error", "ignore"], {}, "--on-error='ignore': expected one of deny, allow"),
        (["--log-level", "trace"], {}, "expected one of debug, info, warning, error"),
        (["--log-format", "xml"], {}, "expected one of json, console"),
        (["--max-body-bytes", "0"], {}, "expected a positive whole number of bytes"),
        (["--max-body-bytes", "3MiB"], {}, "expected a positive whole number of bytes"),
        (["--shutdown-delay", "soon"], {}, "expected a number of seconds from 0 to 3600"),
        (["--graceful-timeout", "-1"], {}, "expected a number of seconds from 0 to 3600"),
        (["--annotation-prefix", "Not_A_Domain"], {}, "expected a DNS subdomain"),
        (["--default-templates", "Log_Shipper"], {}, "'Log_Shipper' is not a DNS-1123 name"),
        (["--exclude-namespaces", "kube system"], {}, "'kube system' is not a DNS-1123 name"),
        (["--host", ""], {}, "expected an address"),
        (
            ["--profile", "enabled=a"],
            {},
            "--profile='enabled=a': profile name 'enabled' is reserved",
        ),
        (["--profile", "disabled=a"], {}, "profile name 'disabled' is reserved"),
        (["--profile", "unknown-profile=a"], {}, "profile name 'unknown-profile' is reserved"),
        (["--profile", "true=a"], {}, "profile name 'true' is reserved"),
        (
            ["--profile", "big=" + ",".join(f"t{i}" for i in range(33))],
            {},
            "33 templates; a pod may request at most 32",
        ),
        (
            ["--default-templates", ",".join(f"t{i}" for i in range(33))],
            {},
            "--default-templates='t0,t1,",
        ),
        (["--profile", "Mesh=a"], {}, "profile name 'Mesh' must be a DNS-1123 label"),
        (["--profile", "mesh"], {}, "--profile='mesh': 'mesh' is not NAME=template1,template2"),
        (["--profile", "mesh="], {}, "profile 'mesh' names no templates; expected mesh=t1,t2"),
        (["--profile", "mesh=Envoy"], {}, "'Envoy' is not a DNS-1123 name"),
        (["--profile", "a=x", "--profile", "a=y"], {}, "profile 'a' is defined twice"),
        (
            [],
            {"SIDECAR_INJECTOR_PROFILES": "a=x;=y"},
            "SIDECAR_INJECTOR_PROFILES='a=x;=y': profile name ''",
        ),
        (["--templates-dir", ""], {}, "expected a path"),
        ([], {"SIDECAR_INJECTOR_DEV": "maybe"}, "SIDECAR_INJECTOR_DEV='maybe': expected true"),
        (["--port", "9000", "--metrics-port", "9000"], {}, "both 9000; use two ports"),
        (["--native-sidecars=auto"], {}, "--native-sidecars='auto': expected true or false"),
    ],
)
def test_invalid_values_are_refused_with_a_clear_message(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(parse(*argv), environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_serve_returns_2_and_prints_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIDECAR_INJECTOR_ON_ERROR", "sometimes")
    assert serve(parse()) == 2
    err = capsys.readouterr().err
    assert err == (
        "sidecar-injector serve: error: SIDECAR_INJECTOR_ON_ERROR='sometimes': "
        "expected one of deny, allow\n"
    )


@pytest.mark.parametrize(
    ("argv", "environ", "native"),
    [
        ([], {}, False),
        (["--native-sidecars"], {}, True),
        (["--native-sidecars=true"], {}, True),
        (["--native-sidecars", "false"], {"SIDECAR_INJECTOR_NATIVE_SIDECARS": "true"}, False),
        ([], {"SIDECAR_INJECTOR_NATIVE_SIDECARS": "true"}, True),
    ],
)
def test_native_sidecars_is_a_switch(
    argv: list[str], environ: dict[str, str], native: bool
) -> None:
    config = load(parse(*argv), environ)
    assert config.native_sidecars is native
    assert config.settings.native_sidecars is native


def test_dev_mode_defaults_and_what_still_wins() -> None:
    dev = load(parse("--dev"), {})
    assert dev.dev is True
    assert dev.host == "127.0.0.1"
    assert dev.log_format == "console"
    assert dev.templates_dir == examples_dir()
    assert (examples_dir() / "log-shipper.yaml").is_file()
    explicit = load(
        parse("--dev", "--host", "0.0.0.0", "--log-format", "json"),
        {"SIDECAR_INJECTOR_TEMPLATES_DIR": "/tmp/t"},
    )
    assert (explicit.host, explicit.log_format, explicit.templates_dir) == (
        "0.0.0.0",
        "json",
        Path("/tmp/t"),
    )
    assert load(parse(), {"SIDECAR_INJECTOR_DEV": "true"}).dev is True


def test_help_names_each_environment_variable_and_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="serve")
    add_arguments(parser)
    text = parser.format_help().replace("\n", " ")
    for flag in FLAGS:
        assert f"--{flag.name}" in text
        assert flag.env in " ".join(text.split())
