"""scripts/release.py: what it refuses and why (one line each), the names it pushes to, the
chart it packages; its registry client against a local HTTPS stand-in; and the whole release
against a real OCI registry when one is given (RELEASE_TEST_REGISTRY; skipped otherwise)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import ssl
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
import yaml

from .helm import CHART_DIR, REPO_ROOT, Helm, load_script

release = load_script("release")
ReleaseError = release.ReleaseError
DIGEST = "sha256:" + "ab" * 32


# ---- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "image", "chart_base", "chart"),
    [
        (
            "127.0.0.1:5000",
            "127.0.0.1:5000/sidecar-injector/sidecar-injector",
            "oci://127.0.0.1:5000/charts",
            "oci://127.0.0.1:5000/charts/sidecar-injector",
        ),
        (
            "ghcr.io/my-org/",
            "ghcr.io/my-org/sidecar-injector/sidecar-injector",
            "oci://ghcr.io/my-org/charts",
            "oci://ghcr.io/my-org/charts/sidecar-injector",
        ),
    ],
)
def test_where_the_image_and_the_chart_go(
    given: str, image: str, chart_base: str, chart: str
) -> None:
    registry = release.Registry.parse(given)
    assert (registry.image_repository, registry.chart_base, registry.chart_reference) == (
        image,
        chart_base,
        chart,
    )


def test_released_to_ghcr_io_the_image_is_the_charts_default() -> None:
    default = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["image"]["repository"]
    assert release.Registry.parse("ghcr.io").image_repository == default


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "no registry given: make release REGISTRY=host[:port][/path]"),
        ("https://127.0.0.1:5000", "without a scheme"),
        ("127.0.0.1:5000/My-Org", "is not host[:port][/path]"),
        ("127.0.0.1:5000/x:1.0", "is not host[:port][/path]"),
        ("bad host", "is not host[:port][/path]"),
    ],
)
def test_a_bad_registry_is_one_line(given: str, message: str) -> None:
    with pytest.raises(ReleaseError) as caught:
        release.Registry.parse(given)
    assert message in str(caught.value) and "\n" not in str(caught.value)


# ---- versions, tree, existing releases ----------------------------------------------------------


def test_this_tree_is_releasable_the_image_tag_is_the_packages_version() -> None:
    versions = release.read_versions(REPO_ROOT)
    release.check_versions(versions)
    assert versions.app == versions.package


@pytest.mark.parametrize(
    ("chart", "app", "package", "message"),
    [
        ("0.1.0", "", "0.1.0", "Chart.yaml has no appVersion: it is the image's tag"),
        ("0.1", "0.1.0", "0.1.0", "Chart.yaml version '0.1' is not a SemVer version"),
        ("0.1.0", "0.1.0+b", "0.1.0+b", "appVersion '0.1.0+b' is not a valid image tag"),
        ("0.1.1", "0.1.1", "0.1.0", "appVersion 0.1.1 is not the package's version 0.1.0"),
    ],
)
def test_versions_that_are_refused(chart: str, app: str, package: str, message: str) -> None:
    with pytest.raises(ReleaseError) as caught:
        release.check_versions(release.Versions(chart, app, package))
    assert message in str(caught.value)


def test_a_dirty_tree_is_refused_naming_what_is_dirty() -> None:
    porcelain = " M Chart.yaml\n?? notes.txt\nA  a\nA  b\nA  c\nA  d\n"
    paths = release.dirty_paths(porcelain)
    assert paths == ["Chart.yaml", "notes.txt", "a", "b", "c", "d"]
    with pytest.raises(ReleaseError) as caught:
        release.refuse_dirty(paths)
    assert str(caught.value) == (
        "the git tree is not clean (Chart.yaml, notes.txt, a, b, c and 1 more): commit or stash "
        "first, a release is built from a commit"
    )
    release.refuse_dirty(release.dirty_paths(""))


def test_an_existing_tag_is_refused() -> None:
    release.refuse_existing("image", "r/i:0.1.0", None)
    with pytest.raises(ReleaseError) as caught:
        release.refuse_existing("image", "r/i:0.1.0", DIGEST)
    assert str(caught.value).startswith(
        f"image r/i:0.1.0 already exists in the registry ({DIGEST})"
    )


def test_release_refuses_a_dirty_tree_before_asking_the_registry(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "charts").mkdir(parents=True)
    shutil.copytree(CHART_DIR, root / "charts" / "sidecar-injector")
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    (root / "stray.txt").write_text("x")
    options = release.Options(
        release.Registry.parse("127.0.0.1:9"), None, False, ["buildah"], [], root
    )
    with pytest.raises(ReleaseError, match=r"^the git tree is not clean \(stray.txt\)"):
        release.release(options, print)


# ---- the packaged chart and the build commands --------------------------------------------------


def test_the_packaged_values_point_at_the_released_image_and_change_nothing_else() -> None:
    text = (CHART_DIR / "values.yaml").read_text()
    rewritten = release.with_repository(text, "127.0.0.1:5000/sidecar-injector/sidecar-injector")
    before, after = yaml.safe_load(text), yaml.safe_load(rewritten)
    assert after["image"]["repository"] == "127.0.0.1:5000/sidecar-injector/sidecar-injector"
    after["image"]["repository"] = before["image"]["repository"]
    assert after == before
    assert len(rewritten.splitlines()) == len(text.splitlines()), "comments kept"
    assert after["tests"]["image"]["repository"] == "busybox", "only the webhook's image"
    with pytest.raises(ReleaseError, match="no top-level image: block"):
        release.with_repository("tests:\n  image:\n    repository: x\n", "y")


def test_the_packaged_chart_deploys_the_released_image(helm: Helm, tmp_path: Path) -> None:
    package = release.package_chart(
        str(helm.binary), tmp_path, "reg.example:5000/si/si", "0.1.0", CHART_DIR
    )
    assert package.name == "sidecar-injector-0.1.0.tgz"
    shown = helm.run("show", "values", str(package))
    assert yaml.safe_load(shown.stdout)["image"]["repository"] == "reg.example:5000/si/si"
    assert not (CHART_DIR / "dist").exists()


def test_build_and_push_commands_per_builder(tmp_path: Path) -> None:
    digest, certs = tmp_path / "digest", tmp_path / "certs"
    buildah = ["buildah", "--root", "/s"]
    assert release.build_command(buildah, "r/i:1", ["--pull-never"], Path("/src")) == [
        "buildah", "--root", "/s", "bud", "--tag", "r/i:1", "--pull-never", "/src",
    ]  # fmt: skip
    assert release.build_command(["podman"], "r/i:1", [], Path("/src"))[1] == "build"
    assert release.push_command(buildah, "r/i:1", digest, certs, False) == [
        "buildah", "--root", "/s", "push", "--digestfile", str(digest), "--cert-dir", str(certs),
        "r/i:1", "docker://r/i:1",
    ]  # fmt: skip
    assert "--tls-verify=false" in release.push_command(["podman"], "r/i:1", digest, None, True)
    assert release.push_command(["/usr/bin/docker"], "r/i:1", digest, certs, False) == [
        "/usr/bin/docker", "push", "r/i:1",
    ]  # fmt: skip
    assert release.docker_push_digest(f"0.1.0: digest: {DIGEST} size: 1234") == DIGEST
    with pytest.raises(ReleaseError, match="builder 'kaniko': expected one of"):
        release.builder_kind(["kaniko"])
    assert release.helm_tls(Path("/ca.crt"), False) == ["--ca-file", "/ca.crt"]
    assert release.helm_tls(None, True) == ["--plain-http"]


def test_the_summary_prints_the_digest_line_and_the_install_command() -> None:
    registry = release.Registry.parse("127.0.0.1:5000")
    done = {
        "version": "0.1.0",
        "image": f"{registry.image_repository}:0.1.0",
        "digest": DIGEST,
        "chart": registry.chart_reference,
        "chart_digest": DIGEST,
        "seconds": "1.0",
    }
    text = release.summary(done, registry, ["--ca-file", "/ca.crt"])
    assert f"  --set image.digest={DIGEST}" in text.splitlines()
    assert (
        "  helm install sidecar-injector oci://127.0.0.1:5000/charts/sidecar-injector "
        "--version 0.1.0 --ca-file /ca.crt --namespace sidecar-injector --create-namespace"
    ) in text.splitlines()


def test_bad_input_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--registry", "https://x"],
        ["--registry", "x:1", "--ca-file", "c", "--plain-http"],
    ):
        assert release.main(argv, {}) == 1
        err = capsys.readouterr().err
        assert err.startswith("release: ") and err.count("\n") == 1, err


# ---- the registry client ------------------------------------------------------------------------


def test_credentials_come_from_the_login_files(tmp_path: Path) -> None:
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"auths": {"reg.example": {"auth": "dTpw"}}}))
    assert release.credentials("reg.example", {"REGISTRY_AUTH_FILE": str(auth)}) == "u:p"
    assert release.credentials("other", {"REGISTRY_AUTH_FILE": str(auth), "HOME": "/n"}) is None
    assert release.challenge('Bearer realm="https://a/token",service="reg"') == {
        "realm": "https://a/token",
        "service": "reg",
    }


class FakeRegistry(BaseHTTPRequestHandler):
    """The registry API's manifests by tag behind a bearer token, as ghcr.io answers."""

    def do_HEAD(self) -> None:
        if self.headers.get("Authorization") != "Bearer t0k3n":
            self.send_response(401)
            realm = f"https://{self.headers['Host']}/token"
            self.send_header("Www-Authenticate", f'Bearer realm="{realm}",service="fake"')
        elif self.path == "/v2/sidecar-injector/sidecar-injector/manifests/0.1.0":
            self.send_response(200)
            self.send_header("Docker-Content-Digest", DIGEST)
        else:
            self.send_response(404)
        self.end_headers()

    def do_GET(self) -> None:
        body = json.dumps({"token": "t0k3n"}).encode()
        self.send_response(200 if self.path.startswith("/token?") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def fake_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    ca = trustme.CA()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ca_file = tmp_path_factory.mktemp("ca") / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        yield f"127.0.0.1:{server.server_address[1]}", ca_file
    finally:
        server.shutdown()
        server.server_close()


def test_the_client_finds_a_tag_and_its_digest_behind_a_token(
    fake_registry: tuple[str, Path],
) -> None:
    host, ca = fake_registry
    client = release.RegistryClient(host, ca, environ={})
    assert client.digest("sidecar-injector/sidecar-injector", "0.1.0") == DIGEST
    assert client.digest("sidecar-injector/sidecar-injector", "0.2.0") is None


def test_an_untrusted_or_unreachable_registry_is_one_line(
    fake_registry: tuple[str, Path], tmp_path: Path
) -> None:
    host, _ = fake_registry
    other = tmp_path / "other.crt"
    trustme.CA().cert_pem.write_to_path(str(other))
    cases = [
        (release.RegistryClient(host, other), f"registry {host}: its TLS certificate is not "
         f"trusted (unable to get local issuer certificate): the CA {other} did not sign it"),
        (release.RegistryClient(host), "give the registry's CA with REGISTRY_CA=<file>"),
        (release.RegistryClient("127.0.0.1:9"), "registry 127.0.0.1:9 unreachable: connection refused"),
    ]  # fmt: skip
    for client, message in cases:
        with pytest.raises(ReleaseError) as caught:
            client.digest("sidecar-injector/sidecar-injector", "0.1.0")
        assert message in str(caught.value) and "\n" not in str(caught.value)


# ---- for real: a registry, a builder, the release from a clone -----------------------------------


@pytest.fixture(scope="module")
def real_registry() -> tuple[str, dict[str, str]]:
    """RELEASE_TEST_REGISTRY (host:port), RELEASE_TEST_CA (its CA, if TLS), RELEASE_TEST_BUILDAH
    and RELEASE_TEST_BUILD_ARGS (the builder and extra build flags; default: buildah)."""
    registry = os.environ.get("RELEASE_TEST_REGISTRY")
    if not registry:
        pytest.skip("no real registry: set RELEASE_TEST_REGISTRY (and RELEASE_TEST_CA) to run it")
    builder = os.environ.get("RELEASE_TEST_BUILDAH", "buildah")
    if shutil.which(builder.split()[0]) is None:
        pytest.skip(f"no builder: {builder.split()[0]} not installed (RELEASE_TEST_BUILDAH)")
    environ = {
        "REGISTRY_CA": os.environ.get("RELEASE_TEST_CA", ""),
        "BUILDAH": builder,
        "BUILD_ARGS": os.environ.get("RELEASE_TEST_BUILD_ARGS", ""),
    }
    return registry, environ


def clone(tmp_path: Path) -> Path:
    """This repository's HEAD, cloned: a clean tree, as a release starts from."""
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(target)], check=True)
    return target


def run_release(
    root: Path, registry: str, environ: dict[str, str], helm: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **environ, "REGISTRY": registry, "HELM": helm}
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "release.py")],
        capture_output=True, text=True, check=False, env=env, timeout=1200,
    )  # fmt: skip


def test_a_release_to_a_real_registry_then_the_same_version_refused(
    real_registry: tuple[str, dict[str, str]], helm: Helm, tmp_path: Path
) -> None:
    host, environ = real_registry
    registry = f"{host}/release-test-{uuid.uuid4().hex[:8]}"  # a fresh place per run
    root = clone(tmp_path)
    first = run_release(root, registry, environ, str(helm.binary))
    assert first.returncode == 0, first.stderr[-2000:]
    version = release.read_versions(root).chart
    parsed = release.Registry.parse(registry)
    client = release.RegistryClient(
        parsed.host, Path(environ["REGISTRY_CA"]) if environ["REGISTRY_CA"] else None
    )
    digest = client.digest(parsed.image_name, version)
    assert f"  --set image.digest={digest}" in first.stdout.splitlines()
    tls = release.helm_tls(client.ca_file, False)
    shown = helm.run("show", "values", parsed.chart_reference, "--version", version, *tls)
    assert yaml.safe_load(shown.stdout)["image"]["repository"] == parsed.image_repository

    again = run_release(root, registry, environ, str(helm.binary))
    assert again.returncode == 1
    assert again.stderr.splitlines()[-1] == (
        f"release: image {parsed.image_repository}:{version} already exists in the registry "
        f"({digest}): releases are never overwritten; bump version and appVersion in "
        "Chart.yaml (and pyproject's version)"
    )
    assert "Traceback" not in again.stderr


def test_a_failed_chart_push_says_what_is_in_the_registry_and_how_to_finish(
    real_registry: tuple[str, dict[str, str]], helm: Helm, tmp_path: Path
) -> None:
    host, environ = real_registry
    registry = f"{host}/release-test-{uuid.uuid4().hex[:8]}"
    root = clone(tmp_path)
    failing = tmp_path / "helm"
    failing.write_text(
        f'#!/bin/sh\n[ "$1" = push ] && {{ echo "Error: failed to do request: EOF" >&2; exit 1; }}\n'
        f'exec {helm.binary} "$@"\n'
    )
    failing.chmod(0o755)
    result = run_release(root, registry, environ, str(failing))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.splitlines()[-1]
    parsed = release.Registry.parse(registry)
    assert "helm push failed (helm exited 1): Error: failed to do request: EOF" in last
    version = release.read_versions(root).chart
    assert f"image {parsed.image_repository}:{version} IS there (sha256:" in last
    assert f"chart {parsed.chart_reference} {version} is not there" in last
    finish = shlex.split(last.split("finish with: ", 1)[1].split(" (running", 1)[0])
    done = subprocess.run(
        [str(helm.binary), *finish[1:]], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    client = release.RegistryClient(
        parsed.host, Path(environ["REGISTRY_CA"]) if environ["REGISTRY_CA"] else None
    )
    assert client.digest(parsed.chart_name, version) is not None
