"""The real process over real TLS, verified like the kube-apiserver verifies it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trustme

from injector.service.sample import UID, review
from tests.service.process import SERVICE_NAME, Service, local_args, running
from tests.service.support import EXAMPLES, apply_patch

BROKEN = "containers:\n  - name: broken\n    image: [unclosed\n"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    leaf = ca.issue_cert(SERVICE_NAME, f"{SERVICE_NAME}.cluster.local")
    cert, key = directory / "tls.crt", directory / "tls.key"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(key))
    for index, blob in enumerate(leaf.cert_chain_pems):
        blob.write_to_path(str(cert), append=index > 0)
    return cert, key


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("templates")
    for source in EXAMPLES.glob("*.yaml"):
        shutil.copy(source, directory)
    (directory / "broken.yaml").write_text(BROKEN)
    return directory


@pytest.fixture(scope="module")
def service(templates: Path, tls_files: tuple[Path, Path]) -> Iterator[Service]:
    cert, key = tls_files
    args = local_args(
        f"--templates-dir={templates}",
        f"--tls-cert={cert}",
        f"--tls-key={key}",
        "--max-body-bytes=20000",
        "--profile=mesh=envoy-proxy,nope",
    )
    with running(args) as started:
        yield started


@pytest.fixture(scope="module")
def client(ca: trustme.CA) -> Iterator[httpx.Client]:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with httpx.Client(verify=context, timeout=10) as verified:
        yield verified


def mutate(
    client: httpx.Client, service: Service, body: bytes, path: str = "/mutate", **kwargs: Any
) -> httpx.Response:
    return client.post(
        f"https://127.0.0.1:{service.port}{path}",
        content=body,
        headers={"content-type": "application/json"},
        extensions={"sni_hostname": SERVICE_NAME},
        **kwargs,
    )


def ops(service: Service, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{service.metrics_port}{path}", timeout=5)


def test_injects_over_verified_tls(client: httpx.Client, service: Service) -> None:
    document = review("log-shipper")
    answer = mutate(client, service, orjson.dumps(document))
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["uid"] == UID
    assert response["allowed"] is True
    pod = apply_patch(document["request"]["object"], response)
    assert pod["spec"]["containers"][-1]["name"] == "log-shipper"


def test_keep_alive_connection_serves_many_reviews(client: httpx.Client, service: Service) -> None:
    body = orjson.dumps(review("trace-agent"))
    answers = [mutate(client, service, body) for _ in range(20)]
    assert {a.status_code for a in answers} == {200}
    assert {a.http_version for a in answers} == {"HTTP/1.1"}


def test_a_certificate_for_another_name_is_refused(ca: trustme.CA, service: Service) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with httpx.Client(verify=context) as other, pytest.raises(httpx.ConnectError, match="CERT"):
        other.post(
            f"https://127.0.0.1:{service.port}/mutate",
            content=b"{}",
            extensions={"sni_hostname": "evil.example.com"},
        )


def test_an_untrusted_client_cannot_verify_the_server(service: Service) -> None:
    with httpx.Client() as default, pytest.raises(httpx.ConnectError):
        default.get(f"https://127.0.0.1:{service.port}/mutate")


def test_tls_1_2_clients_are_served(ca: trustme.CA, service: Service) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with httpx.Client(verify=context) as old:
        answer = mutate(old, service, orjson.dumps(review()))
    assert answer.status_code == 200


def test_broken_template_is_denied_with_its_load_error(
    client: httpx.Client, service: Service
) -> None:
    answer = mutate(client, service, orjson.dumps(review("broken")))
    response = answer.json()["response"]
    assert response["allowed"] is False
    assert "template 'broken' failed to load" in response["status"]["message"]
    assert "broken.yaml:" in response["status"]["message"]
    logged = service.events("template_load_failed")
    assert logged[0]["template"] == "broken"


def test_a_profile_naming_a_missing_template_is_visible_and_fails_like_one(
    client: httpx.Client, service: Service
) -> None:
    [missing] = service.events("profile_templates_missing")
    assert (missing["profile"], missing["missing"]) == ("mesh", ["nope"])
    assert ops(service, "/debug/templates").json()["profiles"] == {
        "mesh": {"templates": ["envoy-proxy", "nope"], "missing": ["nope"]}
    }
    answer = mutate(client, service, orjson.dumps(review("")), path="/mutate/mesh")
    response = answer.json()["response"]
    assert response["allowed"] is False
    assert response["status"]["message"].startswith("template 'nope' not found; available:")
    annotated = mutate(client, service, orjson.dumps(review("trace-agent")), path="/mutate/mesh")
    assert annotated.json()["response"]["auditAnnotations"] == {"injected-templates": "trace-agent"}


def test_bad_requests_over_the_wire(client: httpx.Client, service: Service) -> None:
    assert mutate(client, service, b"not json").status_code == 400
    large = mutate(client, service, b" " * 30000)
    assert large.status_code == 413
    assert "--max-body-bytes=20000" in large.text
    assert mutate(client, service, orjson.dumps(review())).status_code == 200


def test_health_readiness_and_debug(service: Service) -> None:
    assert ops(service, "/healthz").json() == {"status": "ok"}
    assert ops(service, "/readyz").status_code == 200
    debug = ops(service, "/debug/templates").json()
    assert {t["name"] for t in debug["templates"]} == {
        "db-proxy",
        "envoy-proxy",
        "log-shipper",
        "trace-agent",
    }
    assert debug["broken"] == ["broken"]


def test_metrics_count_what_was_served(client: httpx.Client, service: Service) -> None:
    def value(text: str, series: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith(series + " "))
        return float(line.rsplit(" ", 1)[1])

    before = ops(service, "/metrics").text
    mutate(client, service, orjson.dumps(review("log-shipper")))
    mutate(client, service, orjson.dumps(review("")))
    after = ops(service, "/metrics").text
    injected = 'sidecar_injector_admission_requests_total{outcome="injected",reason="ok"}'
    skipped = 'sidecar_injector_admission_requests_total{outcome="skipped",reason="not_requested"}'
    assert value(after, injected) - value(before, injected) == 1
    assert value(after, skipped) - value(before, skipped) == 1
    assert value(after, "sidecar_injector_templates_loaded") == 4
    assert value(after, "sidecar_injector_template_load_errors") == 1
    assert value(after, "sidecar_injector_tls_certificate_expiry_timestamp_seconds") > time.time()
    assert "process_cpu_seconds_total" in after


def test_uvicorn_s_warnings_are_json_lines_like_ours(ca: trustme.CA, service: Service) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with (
        socket.create_connection(("127.0.0.1", service.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=SERVICE_NAME) as tls,
    ):
        tls.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        tls.recv(1024)
    line = service.stdout.wait_for(lambda text: "Invalid HTTP request" in text, timeout=5)
    assert line is not None
    assert line == orjson.dumps(orjson.loads(line)).decode(), "compact, as our own lines"
    warning = json.loads(line)
    assert (warning["level"], warning["logger"]) == ("warning", "uvicorn.error")
    assert "timestamp" in warning


def test_stdout_is_json_lines_with_one_canonical_line_per_review(
    client: httpx.Client, service: Service
) -> None:
    uid = "b6a5c1e2-0000-4000-8000-000000000001"
    mutate(client, service, orjson.dumps(review("log-shipper", uid=uid)))
    line = service.stdout.wait_for(lambda text: uid in text, timeout=5)
    assert line is not None
    canonical = json.loads(line)
    assert canonical["event"] == "admission"
    assert canonical["outcome"] == "injected"
    assert canonical["injected"] == ["log-shipper"]
    assert canonical["level"] == "info"
    assert "timestamp" in canonical
    lines = [json.loads(text) for text in service.stdout.text().splitlines()]
    starting = next(e for e in lines if e["event"] == "starting")
    assert starting["on_error"] == "deny"
    uvicorn = [e for e in lines if e.get("logger", "").startswith("uvicorn")]
    assert not [e for e in uvicorn if e["level"] == "info"], (
        "uvicorn's lifecycle lines would repeat ours, once per server"
    )
    everything = service.stdout.text()
    assert "postgres.shop.svc" not in everything, "env values are never logged"
    assert "readinessProbe" not in everything, "pod specs are never logged"


def test_sigterm_drains_then_exits_0(tls_files: tuple[Path, Path], ca: trustme.CA) -> None:
    cert, key = tls_files
    args = local_args(
        f"--templates-dir={EXAMPLES}",
        f"--tls-cert={cert}",
        f"--tls-key={key}",
        "--shutdown-delay=1.5",
    )
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with running(args) as service, httpx.Client(verify=context, timeout=5) as client:
        assert ops(service, "/readyz").status_code == 200
        signalled = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        assert service.stdout.wait_for(lambda text: "shutdown_started" in text, 5)
        assert ops(service, "/readyz").status_code == 503
        assert mutate(client, service, orjson.dumps(review())).status_code == 200
        assert service.proc.wait(10) == 0
        assert 1.5 <= time.monotonic() - signalled < 8
        assert service.events("stopped")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port=https"], "--port='https': expected a port number"),
        (["--on-error=maybe"], "--on-error='maybe': expected one of deny, allow"),
    ],
)
def test_bad_flags_exit_2_with_one_line(argv: list[str], message: str) -> None:
    service = Service(argv)
    assert service.wait() == 2
    assert message in service.stderr.text()
    assert len(service.stderr.text().splitlines()) == 1
    assert service.stdout.text() == ""


def test_bad_environment_value_exits_2() -> None:
    env = {**os.environ, "SIDECAR_INJECTOR_MAX_BODY_BYTES": "lots"}
    service = Service([], env)
    assert service.wait() == 2
    assert "SIDECAR_INJECTOR_MAX_BODY_BYTES='lots'" in service.stderr.text()


@pytest.mark.parametrize("missing", ["cert", "templates"])
def test_missing_files_fail_start_up_with_exit_1(
    tls_files: tuple[Path, Path], tmp_path: Path, missing: str
) -> None:
    cert, key = tls_files
    templates = EXAMPLES
    if missing == "cert":
        cert = tmp_path / "nope.crt"
    else:
        templates = tmp_path / "nope"
    service = Service(
        local_args(f"--templates-dir={templates}", f"--tls-cert={cert}", f"--tls-key={key}")
    )
    assert service.wait() == 1
    failed = service.events("startup_failed")
    assert failed, service.stdout.text()
    assert "nope" in failed[0]["error"]


def test_mismatched_key_fails_start_up(tls_files: tuple[Path, Path], tmp_path: Path) -> None:
    cert, _ = tls_files
    other = trustme.CA().issue_cert(SERVICE_NAME)
    key = tmp_path / "other.key"
    other.private_key_pem.write_to_path(str(key))
    service = Service(
        local_args(f"--templates-dir={EXAMPLES}", f"--tls-cert={cert}", f"--tls-key={key}")
    )
    assert service.wait() == 1
    assert "cannot load TLS certificate" in service.events("startup_failed")[0]["error"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_dev_mode_prints_a_curl_command_that_works() -> None:
    service = Service(["--dev", "--port=0", "--metrics-port=0", "--shutdown-delay=0"])
    try:
        line = service.stderr.wait_for(lambda text: text.strip().startswith("curl "))
        assert line is not None, service.stderr.text() + service.stdout.text()
        assert "https://127.0.0.1:" in line
        result = subprocess.run(shlex.split(line), capture_output=True, check=True, timeout=10)
        response = json.loads(result.stdout)["response"]
        assert response["allowed"] is True
        assert response["auditAnnotations"] == {"injected-templates": "log-shipper"}
        assert "caBundle:" in service.stderr.text()
        console = service.stdout.wait_for(lambda text: "admission" in text, timeout=5)
        assert console is not None
        assert "outcome=injected" in console
    finally:
        assert service.stop() == 0
    assert not Path(shlex.split(line)[3]).exists(), "the throwaway files are removed"
