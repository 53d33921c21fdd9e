"""Properties of the patch for generated pods and templates (hypothesis)."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from injector.catalog import Catalog
from injector.engine import decide
from injector.patch import escape
from injector.policy import Settings
from injector.render import Const
from injector.template import Template
from tests.k8s import assert_valid

NAMES = st.sampled_from(["app", "web", "proxy", "agent", "logs", "cache"])
ENV = st.sampled_from(["A", "B", "PORT", "MODE", "TOKEN"])
PATHS = st.sampled_from(["/data", "/logs", "/etc/conf", "/tmp", "/cache"])
KEYS = st.sampled_from(["app", "tier", "example.com/team", "a.b/c-d", "x/y.z", "owner"])
VALUES = st.sampled_from(["a", "b", "v1", "prod"])
SETTINGS = Settings()


def unique_by(key: str, items: st.SearchStrategy[dict[str, Any]], max_size: int) -> Any:
    return st.lists(items, max_size=max_size, unique_by=lambda d: d[key])


env_vars = st.builds(lambda n, v: {"name": n, "value": v}, ENV, VALUES)
mounts = st.builds(lambda p, n: {"name": n, "mountPath": p}, PATHS, NAMES)


@st.composite
def containers(draw: st.DrawFn, names: list[str]) -> list[dict[str, Any]]:
    out = []
    for name in names:
        container: dict[str, Any] = {"name": name, "image": f"{name}:1"}
        if draw(st.booleans()):
            container["env"] = draw(unique_by("name", env_vars, 3))
        if draw(st.booleans()):
            container["volumeMounts"] = draw(unique_by("mountPath", mounts, 3))
        out.append(container)
    return out


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(NAMES, min_size=3, max_size=5, unique=True))
    split = draw(st.integers(1, len(names) - 1))
    spec: dict[str, Any] = {"containers": draw(containers(names[:split]))}
    if draw(st.booleans()):
        spec["initContainers"] = [{"name": n, "image": "i:1"} for n in names[split:]]
    if draw(st.booleans()):
        spec["volumes"] = [
            {"name": n, "emptyDir": {}} for n in draw(st.lists(NAMES, max_size=3, unique=True))
        ]
    if draw(st.booleans()):
        spec["imagePullSecrets"] = [
            {"name": n} for n in draw(st.lists(NAMES, max_size=2, unique=True))
        ]
    metadata: dict[str, Any] = {
        "name": "p",
        "annotations": draw(st.dictionaries(KEYS, VALUES, max_size=3)),
    }
    if draw(st.booleans()):
        metadata["labels"] = draw(st.dictionaries(KEYS, VALUES, max_size=3))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@st.composite
def templates(draw: st.DrawFn, name: str) -> Template:
    container_names = draw(st.lists(NAMES.map(lambda n: f"{n}-{name}"), max_size=2, unique=True))
    init_names = draw(st.lists(NAMES.map(lambda n: f"init-{n}-{name}"), max_size=2, unique=True))
    sidecar_names = draw(st.lists(NAMES.map(lambda n: f"side-{n}-{name}"), max_size=2, unique=True))
    volume_names = draw(st.lists(NAMES, max_size=2, unique=True))
    body = {
        "containers": [{"name": n, "image": "s:1"} for n in container_names],
        "initContainers": [
            {"name": n, "image": "s:1", "restartPolicy": "Always"} for n in init_names
        ],
        "sidecars": [{"name": n, "image": "s:1"} for n in sidecar_names],
        "volumes": [{"name": n, "emptyDir": {}} for n in volume_names],
        "volumeMounts": draw(unique_by("mountPath", mounts, 2)),
        "env": draw(unique_by("name", env_vars, 3)),
        "imagePullSecrets": [{"name": n} for n in draw(st.lists(NAMES, max_size=2, unique=True))],
        "labels": draw(st.dictionaries(KEYS, VALUES, max_size=2)),
        "annotations": draw(st.dictionaries(KEYS, VALUES, max_size=2)),
    }
    targets = draw(st.lists(NAMES, max_size=2, unique=True))
    return Template(
        name=name,
        digest=name * 2,
        description="",
        params={},
        target_containers=tuple(targets),
        container_names=tuple(container_names),
        init_container_names=tuple(init_names),
        volume_names=tuple(volume_names),
        tree=Const(body),
        defaults_bound=Const(body),
        sidecar_names=tuple(sidecar_names),
    )


Case = tuple[dict[str, Any], Catalog, list[str], Settings]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    pod = draw(pods())
    names = draw(st.lists(st.sampled_from(["t1", "t2", "t3"]), min_size=1, max_size=3, unique=True))
    catalog = Catalog({name: draw(templates(name)) for name in names})
    pod["metadata"]["annotations"]["sidecar-injector.io/inject"] = ",".join(names)
    return pod, catalog, names, Settings(native_sidecars=draw(st.booleans()))


def expected_merge(
    pod: dict[str, Any], catalog: Catalog, injected: tuple[str, ...], native: bool
) -> dict[str, Any]:
    """An independent, naive model of what injection must produce: sidecars follow each
    template's containers, or (native) its init containers, as restartable init containers."""
    out = copy.deepcopy(pod)
    spec, meta = out["spec"], out["metadata"]
    bodies = [(catalog.templates[n], catalog.templates[n].tree.render(None)) for n in injected]  # type: ignore[arg-type]
    for _, body in bodies:
        sidecars = [] if native else body["sidecars"]
        spec["containers"] = spec["containers"] + body["containers"] + sidecars
        spec["volumes"] = spec.get("volumes", []) + body["volumes"]
        for key in ("labels", "annotations"):
            meta[key] = (
                {**body[key], **meta.get(key, {})} if (body[key] or key in meta) else meta.get(key)
            )
            if meta[key] is None:
                del meta[key]
    inits = [
        c
        for _, body in bodies
        for c in body["initContainers"]
        + ([{**s, "restartPolicy": "Always"} for s in body["sidecars"]] if native else [])
    ]
    if inits:
        spec["initContainers"] = inits + spec.get("initContainers", [])
    secrets = spec.get("imagePullSecrets", [])
    for _, body in bodies:
        secrets += [s for s in body["imagePullSecrets"] if s not in secrets]
    if secrets:
        spec["imagePullSecrets"] = secrets
    for container in spec["containers"][: len(pod["spec"]["containers"])]:
        for template, body in bodies:
            if template.target_containers and container["name"] not in template.target_containers:
                continue
            for key, field in (("env", "name"), ("volumeMounts", "mountPath")):
                have = {e[field] for e in container.get(key, [])}
                new = [
                    e
                    for e in body["env" if key == "env" else "volumeMounts"]
                    if e[field] not in have
                ]
                if new:
                    container[key] = container.get(key, []) + new
    if not spec["volumes"] and "volumes" not in pod["spec"]:
        del spec["volumes"]
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_patches_apply_merge_add_only_and_are_idempotent(case: Case) -> None:
    pod, catalog, names, settings_ = case
    original = copy.deepcopy(pod)
    decision = decide(pod, "shop", catalog, settings_)
    assert pod == original
    assert all(op["op"] == "add" for op in decision.patch)
    assert {e.reason for e in decision.errors} <= {"conflict"}
    patched = jsonpatch.apply_patch(pod, copy.deepcopy(list(decision.patch)))
    event(f"injected {len(decision.injected)} of {len(names)}")
    if not decision.injected:
        assert decision.patch == ()
        return
    status = json.loads(patched["metadata"]["annotations"].pop(SETTINGS.status_key))
    assert [t["name"] for t in status["templates"]] == list(decision.injected)
    native = settings_.native_sidecars
    assert patched == expected_merge(original, catalog, decision.injected, native)
    own = {
        c["name"] for key in ("containers", "initContainers") for c in original["spec"].get(key, [])
    }
    added = {
        key: [c["name"] for c in patched["spec"].get(key, []) if c["name"] not in own]
        for key in ("containers", "initContainers")
    }
    assert {key: status[key] for key in added} == added, "the status says where each one went"
    patched["metadata"]["annotations"][SETTINGS.status_key] = json.dumps(status)
    assert_valid(patched)
    assert decide(patched, "shop", catalog, settings_).patch == ()


@given(st.text())
def test_pointer_escaping_round_trips(key: str) -> None:
    doc: dict[str, Any] = {"m": {}}
    patched = jsonpatch.apply_patch(doc, [{"op": "add", "path": f"/m/{escape(key)}", "value": 1}])
    assert patched == {"m": {key: 1}}


@given(
    st.dictionaries(st.text(min_size=1), st.text(), min_size=1, max_size=4),
    st.dictionaries(st.text(min_size=1), st.text(), max_size=4),
)
def test_any_map_key_is_escaped_and_pod_values_win(
    added: dict[str, str], existing: dict[str, str]
) -> None:
    body = {"annotations": added}
    template = Template("t", "d", "", {}, (), (), (), (), Const(body), Const(body))
    pod: dict[str, Any] = {
        "metadata": {"annotations": {**existing, "sidecar-injector.io/inject": "t"}},
        "spec": {"containers": [{"name": "a"}]},
    }
    decision = decide(pod, "shop", Catalog({"t": template}), SETTINGS)
    patched = jsonpatch.apply_patch(pod, list(decision.patch))
    annotations = patched["metadata"]["annotations"]
    for key, value in added.items():
        if key == SETTINGS.status_key:
            continue
        assert annotations[key] == pod["metadata"]["annotations"].get(key, value)
