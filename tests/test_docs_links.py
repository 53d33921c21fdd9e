"""The documentation's relative links and #anchors resolve, its code fences close, every page
under docs/ is linked from the README, and the repository refers to no document it lacks."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO_ROOT / "e2e" / "README.md"]

FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(?P<text>.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(?P<ticks>`+)(?P<code>.+?)(?P=ticks)")
# [text](target) and ![alt](target), with an optional "title"; text may hold one [nested] pair.
LINK = re.compile(
    r"!?\[(?P<text>(?:[^\[\]]|\[[^\]]*\])*)\]\((?P<target>[^()\s]+)(?:\s+\"[^\"]*\")?\)"
)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def name(page: Path) -> str:
    return str(page.relative_to(REPO_ROOT) if page.is_relative_to(REPO_ROOT) else page)


def prose_lines(page: Path) -> list[tuple[int, str]]:
    """The page's lines outside fenced code blocks, with their numbers. Fails on a fence that
    never closes, and on a fence-like line inside a block (a closing fence with text after it
    closes nothing: the block swallows the prose after it, up to the next fence)."""
    lines: list[tuple[int, str]] = []
    fence = ""
    opened = 0
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if fence:
            stripped = line.strip()
            if stripped.startswith(fence[0] * 3):
                closes = set(stripped) == {fence[0]} and len(stripped) >= len(fence)
                assert closes, f"{name(page)}:{number}: a fence inside the block opened at {opened}"
                fence = ""
            continue
        match = FENCE.match(line)
        if match:
            fence, opened = match["fence"], number
            continue
        lines.append((number, line))
    assert not fence, f"{name(page)}:{opened}: code fence never closed"
    return lines


def rendered(text: str) -> str:
    """A heading's text as GitHub renders it: code spans, emphasis and links reduced to text."""
    text = CODE_SPAN.sub(lambda m: m["code"].strip(), text)
    text = LINK.sub(lambda m: m["text"], text)
    return re.sub(r"\*+", "", text)


def slug(text: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, each space a hyphen."""
    kept = "".join(c for c in rendered(text).lower() if c.isalnum() or c in "-_ ")
    return kept.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """Every heading's anchor; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: Counter[str] = Counter()
    found = set()
    for _, line in prose_lines(page):
        match = HEADING.match(line)
        if match:
            base = slug(match["text"])
            found.add(f"{base}-{seen[base]}" if seen[base] else base)
            seen[base] += 1
    return frozenset(found)


def links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of every link in the page's prose, code spans left out."""
    return [
        (number, match["target"])
        for number, line in prose_lines(page)
        for match in LINK.finditer(CODE_SPAN.sub("", line))
    ]


def test_slugs_follow_github() -> None:
    assert slug("Offline tools: inject and validate") == "offline-tools-inject-and-validate"
    assert (
        slug("Sidecars, containers or init containers?") == "sidecars-containers-or-init-containers"
    )
    assert slug("Tenancy: `namespaces` and `overridable`") == "tenancy-namespaces-and-overridable"
    assert slug("What happens to a bad edit that got through, and how to see it") == (
        "what-happens-to-a-bad-edit-that-got-through-and-how-to-see-it"
    )
    assert slug("Operator commands: check, outdated, explain") == (
        "operator-commands-check-outdated-explain"
    )
    assert slug("Precedence: annotation vs namespace profile") == (
        "precedence-annotation-vs-namespace-profile"
    )
    assert slug("Design choices (**v2**) — [see](x.md)") == "design-choices-v2--see"


def test_broken_fences_are_reported(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n```sh\nmake run\n```\n\n```sh\nmake test\n")
    with pytest.raises(AssertionError, match="code fence never closed"):
        prose_lines(page)
    page.write_text("# Page\n\n```sh\nmake run\n``` and more text\n\n## Lost\n```\n")
    with pytest.raises(AssertionError, match="a fence inside the block opened at 3"):
        prose_lines(page)


@pytest.mark.parametrize("page", PAGES, ids=name)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for number, target in links(page):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        where = f"{name(page)}:{number}: {target}"
        if not resolved.exists():
            broken.append(f"{where}: no such file")
        elif anchor and resolved.suffix != ".md":
            broken.append(f"{where}: an anchor into a file that is not Markdown")
        elif anchor and anchor not in anchors(resolved):
            broken.append(f"{where}: no heading with that anchor")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for _, target in links(README)
        if not EXTERNAL.match(target)
    }
    assert [name(page) for page in DOCS if page.resolve() not in linked] == []


def test_the_repository_refers_to_no_document_it_lacks() -> None:
    """The docs stand on their own: no pointer to a design document or to a directory outside
    the repository."""
    git = shutil.which("git")
    if not git or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout: no file list to search")
    files = subprocess.run(
        [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    missing = ["DESIGN" + ".md", "TOOLING" + ".md", "STYLE" + ".md", "../" + "shared"]
    found = []
    for file in filter(None, files):
        path = REPO_ROOT / file.decode()
        if not path.is_file():
            continue
        text = path.read_bytes()
        found += [f"{file.decode()}: {ref}" for ref in missing if ref.encode() in text]
    assert found == []
