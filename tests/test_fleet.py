"""Fleet states judged with the engine's own decision on pods rebuilt from their metadata:
unit cases for each state, and properties (hypothesis) over annotations, namespace labels,
profiles and templates."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from injector.engine import decide
from injector.fleet import Fleet, PodAudit, PodMeta, as_created, read_status
from injector.policy import Settings, route
from injector.template import status_of
from tests.helpers import catalog

KEY = "sidecar-injector.io/inject"
STATUS = "sidecar-injector.io/status"
CATALOG = catalog(
    logs="sidecars: [{name: logs, image: 'l:1'}]\nvolumes: [{name: logs, emptyDir: {}}]\n",
    trace="containers: [{name: trace, image: 't:1'}]\n",
    shop_only="namespaces: ['shop*']\ncontainers: [{name: only, image: 'o:1'}]\n",
    locked="parameters: {level: {type: string, default: info, overridable: false}}\n"
    "containers: [{name: locked, image: 'k:1', args: ['{{ params.level }}']}]\n",
    clash="containers: [{name: trace, image: 'c:1'}]\n",
)
SETTINGS = Settings(profiles={"obs": ("logs", "trace")}, default_templates=("logs",))


def status(*names: str, native: bool = False, profile: str | None = None) -> str:
    return status_of([CATALOG.templates[n] for n in names], profile, native=native)


def audit(
    annotations: dict[str, str],
    label: str | None = None,
    namespace: str = "shop",
    fleet: Fleet | None = None,
) -> PodAudit:
    judge = fleet or Fleet(CATALOG, SETTINGS)
    return judge.audit(PodMeta(namespace, "web-abc12", "web-", {"app": "web"}, annotations), label)


def states(found: PodAudit) -> list[tuple[str | None, str]]:
    return [(f.template, f.state) for f in found.findings]


def test_an_injected_pod_with_the_current_versions_is_current() -> None:
    found = audit({KEY: "logs,trace", STATUS: status("logs", "trace")})
    assert states(found) == [("logs", "current"), ("trace", "current")]
    assert found.problems == ()


def test_a_changed_digest_is_outdated_and_a_gone_template_removed() -> None:
    old = status("trace").replace(CATALOG.templates["trace"].digest, "0123456789abcdef")
    found = audit({KEY: "trace", STATUS: old})
    assert states(found) == [("trace", "outdated")]
    assert "0123456789abcdef" in found.findings[0].reason
    # gone, and no longer requested (the profile changed): removed
    gone = status("logs").replace('"logs"', '"gone"', 1)
    found = audit({STATUS: gone}, label="obs")
    assert states(found) == [("gone", "removed"), ("logs", "missed"), ("trace", "missed")]


def test_a_gone_template_the_pod_still_asks_for_is_blocked_with_the_engine_s_message() -> None:
    gone = status("trace").replace('"trace"', '"gone"', 1)
    found = audit({KEY: "gone", STATUS: gone})
    assert states(found) == [("gone", "blocked")]
    assert "template 'gone' not found" in found.findings[0].reason


def test_a_template_the_decision_would_inject_but_the_status_lacks_is_missed() -> None:
    assert states(audit({KEY: "logs"})) == [("logs", "missed")]
    assert states(audit({}, label="obs")) == [("logs", "missed"), ("trace", "missed")]
    assert states(audit({STATUS: status("logs", profile="obs")}, label="obs")) == [
        ("logs", "current"),
        ("trace", "missed"),
    ]


def test_blocked_names_the_reason_not_allowed_locked_unknown_profile() -> None:
    found = audit({KEY: "shop-only"}, namespace="elsewhere")
    assert states(found) == [("shop-only", "blocked")]
    assert "not allowed in namespace 'elsewhere'" in found.findings[0].reason
    found = audit({KEY: "locked", "sidecar-injector.io/locked.level": "debug"})
    assert states(found) == [("locked", "blocked")]
    assert "is locked" in found.findings[0].reason
    found = audit({}, label="obsevability")
    assert states(found) == [(None, "blocked")]
    assert found.findings[0].reason.startswith("namespace 'shop' is labeled")
    # two templates adding the same container: the second is refused
    assert states(audit({KEY: "trace,clash"})) == [("trace", "missed"), ("clash", "blocked")]


def test_pods_skipped_on_purpose_are_not_audited() -> None:
    assert audit({KEY: "false"}).skip == "not_requested"
    assert audit({}).skip == "not_requested"
    assert audit({KEY: "logs"}, label="disabled").skip == "excluded_namespace"
    assert audit({KEY: "logs"}, namespace="kube-system").skip == "excluded_namespace"
    assert audit({KEY: "logs", STATUS: status("logs")}, label="disabled").findings == ()


def test_the_other_placement_is_outdated_and_says_so() -> None:
    native = Fleet(CATALOG, Settings(native_sidecars=True))
    found = audit({KEY: "logs", STATUS: status("logs", native=False)}, fleet=native)
    assert states(found) == [("logs", "outdated")]
    assert "native sidecars" in found.findings[0].reason
    assert states(audit({KEY: "logs", STATUS: status("logs", native=True)}, fleet=native)) == [
        ("logs", "current")
    ]
    classic = audit({KEY: "logs", STATUS: status("logs", native=True)})
    assert states(classic) == [("logs", "outdated")]
    assert "--native-sidecars=false" in classic.findings[0].reason
    # templates without sidecars have no placement; a status without the lists is not judged
    assert states(audit({KEY: "trace", STATUS: status("trace", native=True)})) == [
        ("trace", "current")
    ]
    digest = CATALOG.templates["logs"].digest
    bare = f'{{"templates": [{{"name": "logs", "digest": "{digest}"}}]}}'
    assert states(audit({KEY: "logs", STATUS: bare})) == [("logs", "current")]


def test_a_malformed_status_is_an_error_never_a_state() -> None:
    for bad in ("{not json", "{}", '{"templates": [7]}', "[]", '{"templates": 3}'):
        found = audit({KEY: "logs", STATUS: bad})
        assert found.findings == () and found.error is not None
        assert found.error.startswith("malformed status annotation"), found.error


def test_broken_templates_are_not_counted() -> None:
    from injector.catalog import Catalog  # noqa: PLC0415
    from injector.loader import Source, load_sources  # noqa: PLC0415

    result = load_sources(
        [
            Source("logs.yaml", "containers: [{name: x}]\n", "logs"),
            Source("trace.yaml", "containers: [{name: trace, image: 't:1'}]\n", "trace"),
        ]
    )
    assert "logs" in result.errors
    fleet = Fleet(Catalog.from_load(result), SETTINGS)
    found = audit({KEY: "logs,trace", STATUS: status("logs")}, fleet=fleet)
    assert states(found) == [("trace", "missed")]


def test_the_pod_as_created_has_no_status_and_only_its_generate_name() -> None:
    pod = as_created(
        PodMeta("shop", "web-abc12", "web-", {"a": "b"}, {KEY: "x", STATUS: "{}"}), STATUS
    )
    assert pod["metadata"] == {
        "namespace": "shop",
        "labels": {"a": "b"},
        "annotations": {KEY: "x"},
        "generateName": "web-",
    }
    named = as_created(PodMeta("shop", "solo", None, {}, {}), STATUS)
    assert named["metadata"]["name"] == "solo" and "generateName" not in named["metadata"]


def test_pods_of_one_workload_cost_one_decision() -> None:
    fleet = Fleet(CATALOG, SETTINGS)
    for index in range(50):
        fleet.audit(PodMeta("shop", f"web-{index}", "web-", {"app": "web"}, {KEY: "logs"}), None)
    assert len(fleet._memo) == 1


# --- properties ---

TEMPLATES = ["logs", "trace", "shop-only", "locked", "clash", "gone"]
names = st.lists(st.sampled_from(TEMPLATES), max_size=4, unique=True)
inject = st.one_of(
    st.none(),
    st.sampled_from(["true", "false", "", " TRUE "]),
    names.map(",".join),
)
labels = st.one_of(st.none(), st.sampled_from(["obs", "enabled", "disabled", "typo", "all"]))
profiles = st.dictionaries(st.sampled_from(["obs", "all"]), names.map(tuple), max_size=2)
recorded = st.one_of(st.none(), st.lists(st.sampled_from(TEMPLATES[:5]), max_size=3, unique=True))


@st.composite
def cases(draw: st.DrawFn) -> tuple[Settings, dict[str, str], str | None, str]:
    config = Settings(
        profiles=draw(profiles),
        default_templates=tuple(draw(names)),
        native_sidecars=draw(st.booleans()),
    )
    annotations: dict[str, str] = {}
    value = draw(inject)
    if value is not None:
        annotations[KEY] = value
    if draw(st.booleans()):
        annotations["sidecar-injector.io/locked.level"] = "debug"
    got = draw(recorded)
    if got is not None:
        templates = [CATALOG.templates[n] for n in got]
        annotations[STATUS] = status_of(templates, native=draw(st.booleans()))
    namespace = draw(st.sampled_from(["shop", "other", "kube-system"]))
    return config, annotations, draw(labels), namespace


@settings(max_examples=300, deadline=None)
@given(cases())
def test_missed_holds_exactly_when_the_decision_injects_what_the_status_lacks(
    case: tuple[Settings, dict[str, str], str | None, str],
) -> None:
    config, annotations, label, namespace = case
    found = Fleet(CATALOG, config).audit(PodMeta(namespace, "p", None, {}, annotations), label)
    pod: dict[str, Any] = {
        "metadata": {
            "name": "p",
            "annotations": {k: v for k, v in annotations.items() if k != STATUS},
        },
        "spec": {"containers": [{"name": "app-container-not-in-any-template"}]},
    }
    decision = decide(pod, namespace, CATALOG, config, route(label, config))
    if decision.skip is not None:
        assert found.skip == decision.skip and found.findings == ()
        return
    status = annotations.get(STATUS)
    got = {n for n, _ in read_status(status).templates} if status else set()  # type: ignore[union-attr]
    missed = {f.template for f in found.findings if f.state == "missed"}
    assert missed == set(decision.injected) - got
    # blocked exactly for the templates (or the pod, None) the decision refuses
    blocked = {f.template for f in found.findings if f.state == "blocked"}
    assert blocked == {e.template for e in decision.errors}
    # every recorded template has exactly one state, every finding one template at most once
    seen = [f.template for f in found.findings]
    assert len(seen) == len(set(seen))
    assert got <= set(seen)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_a_pod_whose_status_is_what_the_decision_records_now_is_all_current(
    case: tuple[Settings, dict[str, str], str | None, str],
) -> None:
    config, annotations, label, namespace = case
    annotations.pop(STATUS, None)
    pod = as_created(PodMeta(namespace, "p", None, {}, annotations), STATUS)
    decision = decide(pod, namespace, CATALOG, config, route(label, config))
    if decision.skip is not None or decision.errors or not decision.injected:
        return
    written = next(op["value"] for op in decision.patch if op["path"].endswith("~1status"))
    found = Fleet(CATALOG, config).audit(
        PodMeta(namespace, "p", None, {}, {**annotations, STATUS: written}), label
    )
    assert found.findings and all(f.state == "current" for f in found.findings), found
