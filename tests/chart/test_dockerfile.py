"""What building the image (test_image.py) cannot show: the base it is meant for, the layer
order, builds from the locks alone, the build context. The parsed Dockerfile also gives
test_contract.py the image's environment and entry point."""

from __future__ import annotations

import re
import shlex
import tomllib
from dataclasses import dataclass, field
from typing import Any

from .helm import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
PYPROJECT: dict[str, Any] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
BASE_TAG = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name or self.base}"
        return found[-1]


def logical_lines(text: str) -> list[str]:
    """Dockerfile lines with comments dropped and backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            current += raw.rstrip()[:-1] + " "
            continue
        current += raw
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def parse() -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(DOCKERFILE.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], words[0])
            stages.append(Stage(base, words[2] if len(words) == 3 else None))
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return args, stages


ARGS, STAGES = parse()
FINAL = STAGES[-1]


def env(stage: Stage) -> dict[str, str]:
    pairs = [shlex.split(e) for e in stage.all("ENV")]
    return dict(p.split("=", 1) for group in pairs for p in group)


def test_base_image_is_a_pinned_slim_python() -> None:
    """The real build runs on a Debian stand-in with this name; the name is the promise."""
    assert len(STAGES) >= 2, "multi-stage: build tools stay out of the final image"
    for stage in STAGES:
        assert BASE_TAG.match(stage.base), stage.base
    assert len({s.base for s in STAGES}) == 1, "the venv is copied between stages: same Python"
    floor = re.fullmatch(r">=(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    version = re.match(r"python:(\d+)\.(\d+)\.", STAGES[0].base)
    assert floor and version
    assert tuple(map(int, version.groups())) >= tuple(map(int, floor.groups()))


def test_nothing_but_the_base_comes_from_a_registry() -> None:
    """A `# syntax=` directive makes `docker build` pull a BuildKit frontend image."""
    directives = re.match(r"(#[^\n]*\n)*", DOCKERFILE.read_text())
    assert directives
    assert not re.search(r"^#\s*syntax\s*=", directives[0], re.MULTILINE | re.IGNORECASE)
    assert {s.base for s in STAGES} == {ARGS["PYTHON_IMAGE"]}
    assert all(
        c.startswith("--from=build ") for s in STAGES for c in s.all("COPY") if "--from" in c
    )


def test_dependencies_layer_first_then_the_wheel() -> None:
    """A source change rebuilds the wheel only, not the dependencies' layer."""
    build = STAGES[0]
    copies = [c.split()[0] for c in build.all("COPY")]
    runs = build.all("RUN")
    assert copies[0] == "requirements.txt", "the lock file is the first layer"
    [install] = [r for r in runs if "-r /tmp/requirements.txt" in r]
    [wheel] = [r for r in runs if " wheel " in r]
    assert runs.index(install) < runs.index(wheel)
    assert copies.index("injector") > copies.index("requirements-build.txt")


def test_built_from_the_locks_alone() -> None:
    """Every install checks the locked hashes and the wheel is built with the locked backend,
    without build isolation (which would fetch whatever setuptools is newest) or an index."""
    runs = STAGES[0].all("RUN")
    installs = [r for r in runs if " -r " in r]
    assert {r.split(" -r ")[1].split()[0] for r in installs} == {
        "/tmp/requirements.txt",
        "/tmp/requirements-build.txt",
    }
    for run in installs:
        assert "--require-hashes" in run and "--no-deps" in run and "--only-binary=:all:" in run
    [wheel] = [r for r in runs if " wheel " in r]
    assert "--no-build-isolation" in wheel and "--no-index" in wheel
    locked = (REPO_ROOT / "requirements-build.txt").read_text()
    for requirement in PYPROJECT["build-system"]["requires"]:
        name = re.split(r"[<>=!~ \[]", requirement)[0]
        assert re.search(rf"^{name}==\S+ \\\n\s+--hash=sha256:", locked, re.MULTILINE), name


def test_dockerignore_allows_exactly_the_build_inputs() -> None:
    lines = [
        line
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allow-list: nothing reaches the build context by accident"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    sources = {
        word.rstrip("/")
        for stage in STAGES
        for copy in stage.all("COPY")
        if not copy.startswith("--from")
        for word in copy.split()[:-1]
    }
    assert sources == allowed
