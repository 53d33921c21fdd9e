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


def test_a_broken_template_never_loaded_here_is_served_from_the_fallback() -> None:
    fallback = load_sources([Source("a.yaml", GOOD, "a.yaml")]).templates
    broken = load_sources([Source("a.yaml", "nope: [", "a.yaml"), Source("b.yaml", GOOD, "b")])
    catalog = Catalog.from_load(broken, fallback)
    assert catalog.templates["a"] is fallback["a"]
    assert catalog.last_good == {"a"}
    assert list(catalog.errors) == ["a"] and catalog.broken == []
    # Still broken at the next reload: kept, and still known to come from the fallback.
    again = catalog.merge(broken)
    assert again.templates["a"] is fallback["a"] and again.last_good == {"a"}
    # Fixed: the ConfigMap's version, the fallback no longer involved.
    fixed = again.merge(load_sources([Source("a.yaml", GOOD2, "a.yaml")]), fallback)
    assert fixed.templates["a"].digest != fallback["a"].digest
    assert fixed.last_good == frozenset() and not fixed.errors


def test_the_fallback_never_wins_over_memory_nor_revives_a_template() -> None:
    first = load(a=GOOD)
    fallback = load_sources(
        [Source("a.yaml", GOOD2, "a.yaml"), Source("gone.yaml", GOOD, "gone.yaml")]
    ).templates
    second = first.merge(load_sources([Source("a.yaml", "nope: [", "a.yaml")]), fallback)
    assert second.templates["a"] is first.templates["a"]  # what this process served stays
    assert second.last_good == frozenset()
    assert "gone" not in second.templates  # only templates that fail to load fall back
    assert Catalog.from_load(load_sources([]), fallback).templates == {}


def test_a_template_keeps_the_text_it_loaded_from() -> None:
    catalog = load(a=GOOD)
    assert catalog.templates["a"].source == GOOD


def test_a_version_taken_from_the_fallback_gives_way_to_a_newer_fallback() -> None:
    broken = load_sources([Source("a.yaml", "nope: [", "a.yaml")])
    first = Catalog.from_load(broken, load_sources([Source("a.yaml", GOOD, "a.yaml")]).templates)
    newer = load_sources([Source("a.yaml", GOOD2, "a.yaml")]).templates
    again = first.merge(broken, newer)
    assert again.templates["a"] is newer["a"] and again.last_good == {"a"}
