"""What the audit writes into the last-good ConfigMap (the patch, pure) and when it tries."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from injector.audit.lastgood import RESYNC_SECONDS, RETRY_SECONDS, LastGood, patch_of
from injector.catalog import Catalog
from injector.loader import Source, load_sources

GOOD = "containers: [{name: s, image: 'busybox:1.36'}]\n"
GOOD2 = "containers: [{name: s, image: 'busybox:1.37'}]\n"
BROKEN = "containers: [\n"


def catalog(previous: Catalog | None = None, **files: str) -> Catalog:
    result = load_sources(Source(f"{k}.yaml", v, f"{k}.yaml") for k, v in files.items())
    return (previous or Catalog()).merge(result)


def test_every_served_template_is_written_with_its_text() -> None:
    assert patch_of(catalog(a=GOOD, b=GOOD2), {}) == {"a.yaml": GOOD, "b.yaml": GOOD2}
    assert patch_of(catalog(a=GOOD, b=GOOD2), {"a.yaml": GOOD, "b.yaml": GOOD2}) == {}
    assert patch_of(catalog(a=GOOD2), {"a.yaml": GOOD}) == {"a.yaml": GOOD2}


def test_a_broken_edit_keeps_the_good_version() -> None:
    before = catalog(a=GOOD)
    after = catalog(before, a=BROKEN)
    assert after.errors and after.templates["a"].source == GOOD
    assert patch_of(after, {"a.yaml": GOOD}) == {}
    # Broken, and this process never had it (it started after the edit, without the mount):
    # the key it cannot improve on is left alone, never deleted.
    assert patch_of(catalog(a=BROKEN), {"a.yaml": GOOD}) == {}


def test_a_removed_template_is_removed() -> None:
    assert patch_of(catalog(a=GOOD), {"a.yaml": GOOD, "gone.yaml": GOOD}) == {"gone.yaml": None}
    assert patch_of(catalog(), {"x.yaml": GOOD}) == {"x.yaml": None}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_due_on_a_new_catalog_after_a_retry_pause_and_to_resync() -> None:
    clock = Clock()
    keeper = LastGood(None, "ns", "cm", CollectorRegistry(), clock)  # type: ignore[arg-type]
    first = catalog(a=GOOD)
    assert keeper.due(first)
    keeper._failed("down")
    assert not keeper.due(first)
    clock.now += RETRY_SECONDS
    assert keeper.due(first)
    # Written: not again until something changes or the resync time comes.
    keeper.written, keeper.resync_at = first, clock.now + RESYNC_SECONDS
    assert not keeper.due(first)
    assert keeper.due(catalog(a=GOOD2))
    clock.now += RESYNC_SECONDS
    assert keeper.due(first)


def test_a_version_served_from_the_audit_s_own_mount_is_never_written_back() -> None:
    """The mount lags the ConfigMap: an audit started during a broken edit may serve an older
    copy from it than the ConfigMap now holds; writing it would undo the newer one."""
    v1 = GOOD
    result = load_sources([Source("t.yaml", BROKEN, "t.yaml")])
    stale = Catalog.from_load(result, load_sources([Source("t.yaml", v1, "t.yaml")]).templates)
    assert stale.last_good == {"t"}
    assert patch_of(stale, {"t.yaml": GOOD2}) == {}
