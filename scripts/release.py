"""Release: build the image, push it and the chart (OCI) to one registry, print how to install.

    python scripts/release.py --registry REGISTRY[/PATH] [--ca-file CA | --plain-http]
        [--builder "buildah ..."] [--build-args "..."]        (or: make release REGISTRY=...)

What lands in the registry (REGISTRY may carry a path, e.g. ghcr.io/my-org):
    REGISTRY/sidecar-injector/sidecar-injector:<appVersion>     the image, from the Dockerfile
    oci://REGISTRY/charts/sidecar-injector --version <version>  the chart, whose default
        image.repository is REGISTRY/sidecar-injector/sidecar-injector (the image beside it)

Refused before anything is built or pushed: a dirty git tree, an appVersion that is not the
package's version, an image tag or a chart version that the registry already has, a registry
that cannot be reached or whose certificate is not trusted. Every failure is one line on
stderr (exit 1); a failure after the image was pushed says what the registry holds now and
the command that finishes the release.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = REPO_ROOT / "charts" / "sidecar-injector"
DIST = "dist"
"""Where the packaged chart is kept (git-ignored): a failed chart push is finished from it."""
IMAGE_PATH = "sidecar-injector/sidecar-injector"
"""The image's repository under the registry: with REGISTRY=ghcr.io it is the chart's default."""
CHART_PATH = "charts"
BUILDERS = ("buildah", "podman", "docker")
TIMEOUT = 30.0
MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
"""An OCI tag; helm turns a chart version's `+` into `_` itself."""
SEMVER = re.compile(r"\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?")
HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::\d{1,5})?")
PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


class ReleaseError(Exception):
    """Why the release stopped: one line for the user."""


# ---- what to release: pure, unit-tested -------------------------------------------------------


@dataclass(frozen=True)
class Versions:
    chart: str
    """Chart.yaml `version`: the chart's OCI tag."""
    app: str
    """Chart.yaml `appVersion`: the image tag the chart deploys by default."""
    package: str
    """pyproject.toml's version: what the image's `sidecar-injector` reports."""


def read_versions(root: Path = REPO_ROOT) -> Versions:
    chart = yaml.safe_load((root / "charts" / "sidecar-injector" / "Chart.yaml").read_text())
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return Versions(
        str(chart.get("version") or ""), str(chart.get("appVersion") or ""), project["version"]
    )


def check_versions(versions: Versions) -> None:
    """The versions make a release: both tags valid, the image's tag its package's version."""
    if not versions.app:
        raise ReleaseError("Chart.yaml has no appVersion: it is the image's tag")
    if not SEMVER.fullmatch(versions.chart):
        raise ReleaseError(f"Chart.yaml version {versions.chart!r} is not a SemVer version")
    if not TAG.fullmatch(versions.app):
        raise ReleaseError(f"Chart.yaml appVersion {versions.app!r} is not a valid image tag")
    if versions.app != versions.package:
        raise ReleaseError(
            f"Chart.yaml appVersion {versions.app} is not the package's version "
            f"{versions.package} (pyproject.toml): the image would be tagged with another "
            "version than the one it runs; make them equal"
        )


@dataclass(frozen=True)
class Registry:
    """Where the release goes: a host[:port] and an optional path under it."""

    host: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str) -> Registry:
        """`127.0.0.1:5000`, `ghcr.io/my-org`; no scheme (TLS unless --plain-http)."""
        text = text.strip().rstrip("/")
        if not text:
            raise ReleaseError("no registry given: make release REGISTRY=host[:port][/path]")
        if "://" in text:
            raise ReleaseError(
                f"registry {text!r}: give host[:port][/path] without a scheme "
                "(TLS is the default; --plain-http / PLAIN_HTTP=1 for an HTTP registry)"
            )
        host, _, prefix = text.partition("/")
        if not HOST.fullmatch(host) or any(
            not PATH_COMPONENT.fullmatch(part) for part in prefix.split("/") if prefix
        ):
            raise ReleaseError(
                f"registry {text!r} is not host[:port][/path] (path in lower case, no tag)"
            )
        return cls(host, prefix)

    def _under(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    @property
    def image_name(self) -> str:
        """The image's repository name in the registry's API."""
        return self._under(IMAGE_PATH)

    @property
    def image_repository(self) -> str:
        """What `image.repository` is set to."""
        return f"{self.host}/{self.image_name}"

    @property
    def chart_name(self) -> str:
        return self._under(f"{CHART_PATH}/sidecar-injector")

    @property
    def chart_base(self) -> str:
        """Where `helm push` sends the package."""
        return f"oci://{self.host}/{self._under(CHART_PATH)}"

    @property
    def chart_reference(self) -> str:
        return f"oci://{self.host}/{self.chart_name}"


def dirty_paths(porcelain: str) -> list[str]:
    """The paths `git status --porcelain` reports: changed, staged or untracked."""
    return [line[3:] for line in porcelain.splitlines() if line.strip()]


def refuse_dirty(paths: Sequence[str]) -> None:
    if paths:
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        raise ReleaseError(
            f"the git tree is not clean ({shown}): commit or stash first, a release is built "
            "from a commit"
        )


def refuse_existing(what: str, reference: str, digest: str | None) -> None:
    if digest is not None:
        raise ReleaseError(
            f"{what} {reference} already exists in the registry ({digest}): releases are never "
            "overwritten; bump version and appVersion in Chart.yaml (and pyproject's version)"
        )


def with_repository(values: str, repository: str) -> str:
    """values.yaml's text with `image.repository` set to `repository`, comments kept."""
    block = re.search(r"(?m)^image:\n((?:[ \t]+.*\n|[ \t]*\n)*)", values)
    if block is None:
        raise ReleaseError("values.yaml has no top-level image: block")
    body, count = re.subn(
        r"(?m)^([ \t]+repository:[ \t]*).*$", rf"\g<1>{repository}", block[1], count=1
    )
    if count != 1:
        raise ReleaseError("values.yaml's image: block has no repository")
    return values[: block.start(1)] + body + values[block.end(1) :]


def builder_kind(command: Sequence[str]) -> str:
    """buildah, podman or docker: the builder's flags differ."""
    if not command:
        raise ReleaseError("no builder: BUILDAH= is empty")
    kind = Path(command[0]).name
    if kind not in BUILDERS:
        raise ReleaseError(f"builder {command[0]!r}: expected one of {', '.join(BUILDERS)}")
    return kind


def build_command(
    builder: Sequence[str], tag: str, extra: Sequence[str], context: Path
) -> list[str]:
    verb = "bud" if builder_kind(builder) == "buildah" else "build"
    return [*builder, verb, "--tag", tag, *extra, str(context)]


def push_command(
    builder: Sequence[str], tag: str, digest_file: Path, cert_dir: Path | None, plain_http: bool
) -> list[str]:
    if builder_kind(builder) == "docker":
        # docker trusts a registry's CA from /etc/docker/certs.d/<host>/ca.crt, and HTTP
        # registries from its daemon's insecure-registries: nothing to pass here.
        return [*builder, "push", tag]
    tls = ["--tls-verify=false"] if plain_http else []
    certs = ["--cert-dir", str(cert_dir)] if cert_dir else []
    return [
        *builder,
        "push",
        "--digestfile",
        str(digest_file),
        *tls,
        *certs,
        tag,
        f"docker://{tag}",
    ]


def docker_push_digest(output: str) -> str | None:
    """The digest `docker push` prints: `<tag>: digest: sha256:... size: N`."""
    found = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
    return found[1] if found else None


def helm_tls(ca_file: Path | None, plain_http: bool) -> list[str]:
    if plain_http:
        return ["--plain-http"]
    return ["--ca-file", str(ca_file)] if ca_file else []


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


# ---- the registry's HTTP API (manifests by tag), with the CA given ---------------------------


def credentials(host: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """`user:password` for `host` from the files `buildah login`, `docker login` and
    `helm registry login` write, if any (base64 `auth` entries)."""
    home = Path(environ.get("HOME", "~")).expanduser()
    candidates = [
        environ.get("REGISTRY_AUTH_FILE", ""),
        f"{environ.get('XDG_RUNTIME_DIR', '/nonexistent')}/containers/auth.json",
        str(home / ".config/containers/auth.json"),
        str(home / ".docker/config.json"),
        str(home / ".config/helm/registry/config.json"),
    ]
    for candidate in filter(None, candidates):
        try:
            auths = json.loads(Path(candidate).read_text()).get("auths", {})
        except (OSError, ValueError, AttributeError):
            continue
        for key in (host, f"https://{host}", f"http://{host}"):
            auth = (auths.get(key) or {}).get("auth")
            if auth:
                return base64.b64decode(auth).decode()
    return None


def challenge(header: str) -> dict[str, str]:
    """The parameters of a `WWW-Authenticate: Bearer realm="...",service="..."` header."""
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "bearer":
        return {}
    return dict(re.findall(r'(\w+)="([^"]*)"', rest))


@dataclass
class RegistryClient:
    """HEAD manifests by tag, as `docker manifest inspect` would; errors are one line."""

    host: str
    ca_file: Path | None = None
    plain_http: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def __post_init__(self) -> None:
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ReleaseError(f"registry CA {self.ca_file}: no such file")
        try:
            self.context = ssl.create_default_context(
                cafile=str(self.ca_file) if self.ca_file else None
            )
        except ssl.SSLError as error:
            raise ReleaseError(
                f"registry CA {self.ca_file}: not a PEM certificate ({error})"
            ) from None
        self.token: str | None = None

    @property
    def base(self) -> str:
        return f"{'http' if self.plain_http else 'https'}://{self.host}"

    def digest(self, name: str, reference: str) -> str | None:
        """The manifest digest of `name:reference`, or None when the registry has no such tag."""
        status, headers = self._head(f"/v2/{name}/manifests/{reference}")
        if status == 401 and self.token is None:
            self.token = self._token(headers.get("www-authenticate", ""), name)
            status, headers = self._head(f"/v2/{name}/manifests/{reference}")
        if status == 404:
            return None
        if status == 200:
            return headers.get("docker-content-digest") or "(no digest header)"
        if status in (401, 403):
            raise ReleaseError(
                f"registry {self.host} refused to read {name} (HTTP {status}): log in first "
                "(buildah login / docker login / helm registry login)"
            )
        if status == 400 and self.plain_http:
            raise ReleaseError(
                f"registry {self.host} answers plain HTTP with 400: it speaks TLS, drop "
                "--plain-http (PLAIN_HTTP)"
            )
        raise ReleaseError(f"registry {self.host}: HEAD {name}:{reference} answered {status}")

    def _head(self, path: str) -> tuple[int, Mapping[str, str]]:
        headers = {"Accept": MANIFEST_TYPES}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self._request(
            urllib.request.Request(self.base + path, headers=headers, method="HEAD")
        )

    def _token(self, header: str, name: str) -> str | None:
        params = challenge(header)
        if "realm" not in params:
            return None
        query = {"service": params.get("service", ""), "scope": f"repository:{name}:pull"}
        request = urllib.request.Request(f"{params['realm']}?{urllib.parse.urlencode(query)}")
        secret = credentials(self.host, self.environ)
        if secret:
            request.add_header(
                "Authorization", "Basic " + base64.b64encode(secret.encode()).decode()
            )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT, context=self.context) as answer:
                body: dict[str, Any] = json.loads(answer.read())
        except (urllib.error.URLError, OSError, ValueError):
            return None
        token = body.get("token") or body.get("access_token")
        return str(token) if token else None

    def _request(self, request: urllib.request.Request) -> tuple[int, Mapping[str, str]]:
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT, context=self.context) as answer:
                return answer.status, {k.lower(): v for k, v in answer.headers.items()}
        except urllib.error.HTTPError as error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}
        except urllib.error.URLError as error:
            raise ReleaseError(self.unreachable(error.reason)) from None
        except (OSError, ssl.SSLError) as error:
            raise ReleaseError(self.unreachable(error)) from None

    def unreachable(self, reason: object) -> str:
        if isinstance(reason, ssl.SSLCertVerificationError):
            hint = (
                f"the CA {self.ca_file} did not sign it"
                if self.ca_file
                else "give the registry's CA with REGISTRY_CA=<file> (--ca-file)"
            )
            return (
                f"registry {self.host}: its TLS certificate is not trusted "
                f"({reason.verify_message}): {hint}"
            )
        if isinstance(reason, ssl.SSLError):
            return (
                f"registry {self.host}: TLS failed ({reason.reason or reason}); an HTTP-only "
                "registry needs --plain-http (PLAIN_HTTP=1)"
            )
        if isinstance(reason, socket.gaierror):
            return f"registry {self.host} unreachable: unknown host ({reason.strerror})"
        if isinstance(reason, TimeoutError):
            return f"registry {self.host} unreachable: no answer within {TIMEOUT:.0f} s"
        if isinstance(reason, OSError) and reason.strerror:
            return f"registry {self.host} unreachable: {reason.strerror.lower()}"
        return f"registry {self.host} unreachable: {reason}"


# ---- the release ------------------------------------------------------------------------------


def run(command: Sequence[str], *, what: str, show: bool = False) -> str:
    """Run `command`; its output (with `show`: streamed to stderr as it comes)."""
    try:
        if show:
            result = subprocess.run(command, check=False, stdout=sys.stderr, text=True)
            output = ""
        else:
            result = subprocess.run(command, check=False, capture_output=True, text=True)
            output = result.stdout + result.stderr
    except FileNotFoundError:
        raise ReleaseError(f"{what}: {command[0]} not found") from None
    if result.returncode != 0:
        detail = "see its output above" if show else last_line(output)
        raise ReleaseError(
            f"{what} failed ({Path(command[0]).name} exited {result.returncode}): {detail}"
        )
    return output


def find_helm() -> str:
    helm = os.environ.get("HELM")
    if helm:
        return helm
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "fetch_helm.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ReleaseError(f"no helm: {last_line(result.stderr)}")
    return result.stdout.strip()


def git_status(root: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=normal"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ReleaseError(f"{root} is not a git work tree: a release is built from a commit")
    return result.stdout


def package_chart(helm: str, out: Path, repository: str, app: str, chart_dir: Path) -> Path:
    """`helm package` of the chart with `image.repository` = the released image, checked by
    rendering it: the Deployment runs `<repository>:<appVersion>`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / chart_dir.name
        shutil.copytree(chart_dir, copy)
        values = copy / "values.yaml"
        values.write_text(with_repository(values.read_text(), repository))
        output = run([helm, "package", str(copy), "--destination", str(out)], what="helm package")
    found = re.search(r"saved it to: (\S+)", output)
    if found is None:
        raise ReleaseError(f"helm package: no package path in its output ({last_line(output)})")
    package = Path(found[1])
    rendered = run([helm, "template", "release-check", str(package)], what="helm template")
    images = {
        container["image"]
        for doc in yaml.safe_load_all(rendered)
        if doc and doc.get("kind") == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
        if container["image"].startswith(repository)
    }
    if images != {f"{repository}:{app}"}:
        raise ReleaseError(f"the packaged chart deploys {sorted(images)}, not {repository}:{app}")
    return package


@dataclass
class Options:
    registry: Registry
    ca_file: Path | None
    plain_http: bool
    builder: list[str]
    build_args: list[str]
    root: Path


def registry_state(client: RegistryClient, registry: Registry, versions: Versions) -> str:
    """What the registry holds of this release now, said plainly (for a failure report)."""
    try:
        image = client.digest(registry.image_name, versions.app)
        chart = client.digest(registry.chart_name, versions.chart)
    except ReleaseError as error:
        return f"the registry could not be asked what it holds now ({error})"
    parts = [
        f"image {registry.image_repository}:{versions.app} "
        + (f"IS there ({image})" if image else "is not there"),
        f"chart {registry.chart_reference} {versions.chart} "
        + (f"IS there ({chart})" if chart else "is not there"),
    ]
    return "; ".join(parts)


def release(options: Options, say: Callable[[str], None]) -> dict[str, str]:
    """The whole release; what it pushed (for the summary)."""
    started = time.monotonic()
    registry, root = options.registry, options.root
    builder_kind(options.builder)
    versions = read_versions(root)
    check_versions(versions)
    refuse_dirty(dirty_paths(git_status(root)))
    client = RegistryClient(registry.host, options.ca_file, options.plain_http)
    image = f"{registry.image_repository}:{versions.app}"
    refuse_existing("image", image, client.digest(registry.image_name, versions.app))
    chart = f"{registry.chart_reference} version {versions.chart}"
    refuse_existing("chart", chart, client.digest(registry.chart_name, versions.chart))
    helm = find_helm()
    say(f"release {versions.chart} (image {versions.app}) to {registry.host}: checks passed")

    step = time.monotonic()
    say(f"building {image} with {options.builder[0]}")
    run(
        build_command(options.builder, image, options.build_args, root),
        what="the image build",
        show=True,
    )
    say(f"built in {time.monotonic() - step:.1f} s")
    package = package_chart(
        helm,
        root / DIST,
        registry.image_repository,
        versions.app,
        root / "charts" / "sidecar-injector",
    )
    say(f"packaged {package.relative_to(root)} (image.repository {registry.image_repository})")

    with tempfile.TemporaryDirectory() as tmp:
        cert_dir = None
        if options.ca_file:
            cert_dir = Path(tmp) / "certs"
            cert_dir.mkdir()
            shutil.copy(options.ca_file, cert_dir / "ca.crt")
        digest_file = Path(tmp) / "digest"
        step = time.monotonic()
        try:
            output = run(
                push_command(options.builder, image, digest_file, cert_dir, options.plain_http),
                what=f"pushing {image}",
            )
        except ReleaseError as error:
            raise ReleaseError(
                f"{error}. Now: {registry_state(client, registry, versions)}. Nothing else was "
                "pushed; fix the cause and run the release again"
            ) from None
        pushed = (
            digest_file.read_text().strip() if digest_file.exists() else docker_push_digest(output)
        )
    held = client.digest(registry.image_name, versions.app)
    if not pushed or held != pushed:
        raise ReleaseError(
            f"pushed {image} but the registry holds {held} under that tag, not {pushed}; "
            "the chart was not pushed"
        )
    say(f"pushed {image} in {time.monotonic() - step:.1f} s: {pushed}")

    step = time.monotonic()
    push_chart = [
        helm,
        "push",
        str(package),
        registry.chart_base,
        *helm_tls(options.ca_file, options.plain_http),
    ]
    try:
        output = run(push_chart, what="helm push")
    except ReleaseError as error:
        raise ReleaseError(
            f"{error}. Now: {registry_state(client, registry, versions)}. The image is released "
            f"but not the chart; finish with: {shlex.join(push_chart)} (running the release "
            "again would be refused: the image tag exists)"
        ) from None
    chart_digest = client.digest(registry.chart_name, versions.chart)
    if chart_digest is None:
        raise ReleaseError(f"helm push succeeded but the registry has no {chart}")
    say(f"pushed {chart} in {time.monotonic() - step:.1f} s: {chart_digest}")
    return {
        "version": versions.chart,
        "image": image,
        "digest": pushed,
        "chart": registry.chart_reference,
        "chart_digest": chart_digest,
        "seconds": f"{time.monotonic() - started:.1f}",
    }


def summary(done: Mapping[str, str], registry: Registry, tls: Sequence[str]) -> str:
    flags = " ".join(tls)
    repository = registry.image_repository
    return "\n".join(
        [
            f"released sidecar-injector {done['version']} in {done['seconds']} s",
            f"  image: {done['image']}",
            f"  image digest: {done['digest']}",
            f"  chart: {done['chart']} --version {done['version']} ({done['chart_digest']})",
            "install (the chart's default image is the one above, by tag):",
            f"  helm install sidecar-injector {done['chart']} --version {done['version']} "
            + (f"{flags} " if flags else "")
            + "--namespace sidecar-injector --create-namespace",
            "pin the image by digest (values line):",
            f"  --set image.digest={done['digest']}",
            f"  (the image: {repository}@{done['digest']})",
        ]
    )


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--registry", default=environ.get("REGISTRY", ""), help="host[:port][/path]"
    )
    parser.add_argument(
        "--ca-file", default=environ.get("REGISTRY_CA", ""), help="the registry's CA"
    )
    parser.add_argument(
        "--plain-http",
        action="store_true",
        default=environ.get("PLAIN_HTTP", "") not in ("", "0"),
        help="an HTTP registry (no TLS)",
    )
    parser.add_argument(
        "--builder",
        default=environ.get("BUILDAH", "buildah"),
        help="buildah, podman or docker, with any global flags (e.g. a storage root)",
    )
    parser.add_argument(
        "--build-args", default=environ.get("BUILD_ARGS", ""), help="extra flags for the build"
    )
    args = parser.parse_args(argv)
    registry = Registry.parse(args.registry)
    ca_file = Path(args.ca_file) if args.ca_file else None
    if ca_file and args.plain_http:
        raise ReleaseError("--ca-file and --plain-http together: an HTTP registry has no CA")
    return Options(
        registry,
        ca_file,
        args.plain_http,
        shlex.split(args.builder),
        shlex.split(args.build_args),
        REPO_ROOT,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    def say(text: str) -> None:
        print(f"release: {text}", file=sys.stderr, flush=True)

    try:
        options = parse_args(argv, environ)
        done = release(options, say)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "release: interrupted; run it again (a pushed tag is reported by the refusal)",
            file=sys.stderr,
        )
        return 130
    print(summary(done, options.registry, helm_tls(options.ca_file, options.plain_http)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
