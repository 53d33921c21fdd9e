from __future__ import annotations

from injector.catalog import Catalog
from injector.errors import InjectionError
from injector.loader import Source, load_sources
from tests import helpers

GOOD = "containers: [{name: s, image: 'busybox:1.36'}]\n"
GOOD2 = "containers: [{name: s, image: 'busybox:1.37'}]\n"


def load(**files: str) -> Catalog:
    return Catalog.from_load(
        load_sources(Source(f"{k}.yaml", v, f"{k}.yaml") for k, v in files.items())
    )


def test_lookup_explains_what_is_missing() -> None:
    catalog = load(envoy=GOOD, broken="containers: 3\n")
    found = catalog.lookup("envoy")
    assert not isinstance(found, InjectionError) and found.name == "envoy"
    missing = catalog.lookup("envoi")
    assert isinstance(missing, InjectionError)
    assert missing.reason == "template_not_found"
    assert missing.message == "template 'envoi' not found; available: envoy"
    broken = catalog.lookup("broken")
    assert isinstance(broken, InjectionError)
    assert broken.reason == "template_load_failed"
    assert "broken.yaml:1: containers: must be a list" in broken.message
    assert catalog.broken == ["broken"]


def test_merge_keeps_the_last_good_version_of_a_broken_template() -> None:
    first = load(a=GOOD, b=GOOD)
    second = first.merge(
        load_sources([Source("a.yaml", "nope: [", "a.yaml"), Source("b.yaml", GOOD2, "b.yaml")])
    )
    assert second.templates["a"] is first.templates["a"]
    assert second.templates["b"].digest != first.templates["b"].digest
    assert list(second.errors) == ["a"]
    assert second.broken == []
    fixed = second.merge(load_sources([Source("a.yaml", GOOD2, "a.yaml")]))
    assert fixed.errors == {}
    assert sorted(fixed.templates) == ["a"]  # b was removed from the ConfigMap


def test_digests_ignore_formatting() -> None:
    one = load(a="containers: [{name: s, image: x}]\n").templates["a"]
    two = load(a="# comment\ncontainers:\n  - image: x\n    name: s\n").templates["a"]
    assert one.digest == two.digest


def test_hidden_templates_are_not_offered_but_can_be_requested() -> None:
    found = helpers.catalog(
        shown="containers: [{name: a, image: x}]",
        helm_test="hidden: true\ncontainers: [{name: b, image: x}]",
    )
    error = found.lookup("nope")
    assert isinstance(error, InjectionError)
    assert error.message == "template 'nope' not found; available: shown"
    assert not isinstance(found.lookup("helm-test"), InjectionError)
