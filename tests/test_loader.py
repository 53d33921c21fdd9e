"""Loading templates: every kind of broken file is reported with file, field and line."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

import injector.build
import injector.loader
from injector.loader import (
    Source,
    configmap_sources,
    file_sources,
    load_directory,
    load_sources,
    stand_ins,
)
from tests.service.support import KubeletVolume

GOOD = """\
containers:
  - name: sidecar
    image: busybox:1.36
"""


def load_one(text: str, key: str = "t.yaml") -> list[str]:
    result = load_sources([Source(key, textwrap.dedent(text), key)])
    return [str(e) for errs in result.errors.values() for e in errs]


BROKEN: list[tuple[str, str]] = [
    ("containers: [\n", "t.yaml:2: invalid YAML: did not find expected node content"),
    (
        "containers:\n  - name: a\n    image: b\n  bad\n",
        "t.yaml:5: invalid YAML: could not find",
    ),
    ("- a\n- b\n", "t.yaml:1: a template must be a YAML map"),
    (GOOD + "sidekicks: []\n", "t.yaml:4: sidekicks: unknown key; allowed: annotations,"),
    (GOOD + "namespaces: prod\n", "t.yaml:4: namespaces: must be a list of namespace"),
    (
        GOOD + "namespaces:\n  - prod\n  - Payments-*\n",
        "t.yaml:6: namespaces[1]: 'Payments-*' is not a namespace glob: use lower-case",
    ),
    (GOOD + "namespaces: ['pay[ments']\n", "t.yaml:4: namespaces[0]: 'pay[ments' is not a"),
    (GOOD + "namespaces: ['']\n", "t.yaml:4: namespaces[0]: '' is not a namespace glob"),
    (GOOD + "namespaces: [7]\n", "t.yaml:4: namespaces[0]: 7 is not a namespace glob"),
    (
        GOOD + "parameters:\n  x:\n    type: string\n    default: a\n    overridable: 'no'\n",
        "t.yaml:8: parameters.x.overridable: must be true or false (unquoted), got 'no'",
    ),
    (
        GOOD + "parameters:\n  x: {type: string, overridable: false}\n",
        "t.yaml:5: parameters.x.overridable: a parameter pods cannot override needs a default",
    ),
    (GOOD + "containers: []\n", "t.yaml:4: containers: duplicate key"),
    (
        "containers:\n  - name: Side_Car\n    image: x\n",
        "t.yaml:2: containers[0].name: container name 'Side_Car' must be a literal DNS-1123",
    ),
    (
        'containers:\n  - name: "{{ params.n }}"\n    image: x\n',
        "containers[0].name: container name '{{ params.n }}' must be a literal",
    ),
    ("containers:\n  - name: a\n", "t.yaml:2: containers[0].image: a container needs an image"),
    (
        "containers:\n  - {name: a, image: x}\ninitContainers:\n  - {name: a, image: y}\n",
        "t.yaml:4: initContainers[0].name: duplicate container name 'a' (also at containers[0])",
    ),
    (
        "volumes:\n  - {name: v, emptyDir: {}}\n  - {name: v, emptyDir: {}}\n",
        "t.yaml:3: volumes[1].name: duplicate volume name 'v' (also at volumes[0])",
    ),
    (
        "initContainers:\n  - {name: a, image: x, restartPolicy: OnFailure}\n",
        "initContainers[0].restartPolicy: may only be Always",
    ),
    (
        "sidecars:\n  - name: p\n    image: x\n    restartPolicy: Always\n",
        "t.yaml:4: sidecars[0].restartPolicy: may not be set: the placement owns it",
    ),
    (
        "sidecars:\n  - name: p\n    image: x\n    resizePolicy: []\n",
        "t.yaml:4: sidecars[0].resizePolicy: may not be set: Kubernetes refuses it on init "
        "containers, where a native sidecar goes; a sidecar must fit both placements",
    ),
    (
        "containers:\n  - {name: a, image: x, restartPolicy: Always}\n",
        "t.yaml:2: containers[0].restartPolicy: may not be set: only init containers take a "
        "restartPolicy: for a sidecar that runs for the pod's whole life, use sidecars:",
    ),
    (
        "initContainers:\n  - name: a\n    image: x\n    startupProbe: {exec: {command: [t]}}\n",
        "t.yaml:4: initContainers[0].startupProbe: may only be set on an init container with "
        "restartPolicy: Always",
    ),
    (
        "initContainers:\n  - {name: a, image: x, restartPolicy: Always, resizePolicy: []}\n",
        "t.yaml:2: initContainers[0].resizePolicy: may not be set: Kubernetes refuses it on init",
    ),
    (
        "containers:\n  - {name: a, image: x}\nsidecars:\n  - {name: a, image: y}\n",
        "t.yaml:4: sidecars[0].name: duplicate container name 'a' (also at containers[0])",
    ),
    ("sidecars:\n  - name: p\n", "t.yaml:2: sidecars[0].image: a container needs an image"),
    ("sidecars: {name: p}\n", "t.yaml:1: sidecars: must be a list"),
    ("volumeMounts:\n  - {name: v}\n", "t.yaml:2: volumeMounts[0].mountPath: is required"),
    ("env:\n  - {value: x}\n", "env[0].name: is required"),
    (
        "env:\n  - {name: A, value: x}\n  - {name: A, value: y}\n",
        "t.yaml:3: env[1].name: duplicate name 'A' (also at env[0])",
    ),
    ("labels:\n  tier: 3\n", "t.yaml:2: labels.tier: value 3 must be a string; quote it"),
    ("labels:\n  'bad key!': x\n", "labels.bad key!: 'bad key!' is not a valid label key"),
    ("annotations: [a]\n", "annotations: must be a map of string keys to string values"),
    ("containers: {name: a}\n", "t.yaml:1: containers: must be a list"),
    ("targetContainers: app\n", "targetContainers: must be a list of container names"),
    (
        'containers:\n  - name: a\n    image: "{{ params.image "\n',
        "t.yaml:3: containers[0].image: template syntax error",
    ),
    (
        'containers:\n  - name: a\n    image: "{{ image }}"\n',
        "containers[0].image: unknown name image; use pod, params or template",
    ),
    (
        'containers:\n  - name: a\n    image: "{{ params.imge }}"\n',
        "containers[0].image: params.imge is not declared in parameters (declared: none)",
    ),
    (
        'containers:\n  - name: a\n    image: "{{ pod.labels.team }}"\n',
        "t.yaml:3: containers[0].image: test render against the canonical pod failed: "
        "undefined value",
    ),
    (
        "parameters:\n  port: {type: int, default: high}\n",
        "t.yaml:2: parameters.port.default: 'high' is not an integer",
    ),
    (
        "parameters:\n  port: {type: integer}\n",
        "parameters.port.type: must be one of string, int, bool, quantity, got 'integer'",
    ),
    ("parameters: [a]\n", "parameters: must be a map"),
    ("labels:\n  a: \"{{ 'x' * 100000 }}\"\n", "not allowed in the sandbox"),
    ("labels:\n  a: \"{{ ''.__class__ }}\"\n", "test render against the canonical pod failed"),
    ('labels:\n  a: "{{ template.name }}!"\n', "label value 't!' is not valid"),
]
"""Every class of load error, as file `t.yaml`, with (part of) the message it must get. The
templates ConfigMap's validation is tested with the same list (tests/test_validation.py)."""


@pytest.mark.parametrize(("text", "expected"), BROKEN)
def test_broken_templates_are_reported_precisely(text: str, expected: str) -> None:
    errors = load_one(text)
    assert any(e.startswith(expected) or expected in e for e in errors), errors


def test_all_errors_of_a_file_are_collected() -> None:
    errors = load_one("sidekicks: []\nlabels: {a: 1}\ncontainers:\n  - name: A\n")
    assert len(errors) == 3, errors


def test_template_names_come_from_the_key() -> None:
    assert "must be a DNS-1123 label" in load_one(GOOD, key="Log_Shipper.yaml")[0]
    assert "not a template: keys must be named <template>.yaml" in load_one(GOOD, "x.json")[0]


def test_a_broken_file_does_not_stop_the_others() -> None:
    result = load_sources(
        [Source("good.yaml", GOOD, "good.yaml"), Source("bad.yaml", "containers: [", "bad.yaml")]
    )
    assert list(result.templates) == ["good"]
    assert list(result.errors) == ["bad"]


def test_a_kubelet_volume_is_read_through_its_symlinks(tmp_path: Path) -> None:
    KubeletVolume(tmp_path).write({"sidecar.yaml": GOOD, "other.yaml": GOOD})
    result = load_directory(tmp_path)
    assert sorted(result.templates) == ["other", "sidecar"]
    assert result.errors == {}


def test_dot_entries_and_directories_are_ignored(tmp_path: Path) -> None:
    (tmp_path / ".hidden.yaml").write_text("not: [valid")
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text(GOOD)
    assert list(load_directory(tmp_path).templates) == ["a"]


def test_unreadable_files_are_load_errors(tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    errors = load_directory(tmp_path).errors["bin"]
    assert str(errors[0]).startswith("bin.yaml: cannot read:")


CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: sidecar-injector-templates
data:
  good.yaml: |
    containers:
      - name: sidecar
        image: busybox:1.36
  bad.yaml: |
    containers:
      - name: sidecar
        image: busybox:1.36
    volumes: 3
"""


def test_configmap_lines_point_into_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(CONFIGMAP)
    result = load_sources(file_sources(manifest))
    assert list(result.templates) == ["good"]
    assert [str(e) for e in result.errors["bad"]] == [
        f"{manifest}[bad.yaml]:14: volumes: must be a list"
    ]


def test_other_documents_and_kinds_are_not_templates() -> None:
    assert configmap_sources("kind: Secret\ndata: {a.yaml: x}\n---\n- 1\n", "m.yaml") is None


def test_a_plain_file_is_one_template(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(GOOD)
    assert list(load_sources(file_sources(path)).templates) == ["one"]
    path.write_text("containers: [")
    assert "invalid YAML" in str(load_sources(file_sources(path)).errors["one"][0])


def test_dangling_symlinks_left_by_a_removed_key_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    os.symlink("..data/gone.yaml", tmp_path / "gone.yaml")
    result = load_directory(tmp_path)
    assert list(result.templates) == ["a"]
    assert result.errors == {}


HOSTILE: list[tuple[str, str]] = [
    (
        "containers: [{name: s, image: x, ports: [{containerPort: 18446744073709551616}]}]\n",
        "t.yaml:1: containers[0].ports[0].containerPort: 18446744073709551616 does not fit in a 64-bit integer",
    ),
    (
        "containers: [{name: s, image: x}]\nlabels: {1: a}\n",
        "t.yaml:2: labels: key 1 must be a string; quote it",
    ),
    (
        "containers: [{name: s, image: x, env: [{name: A, on: x}]}]\n",
        "key True must be a string; quote it",
    ),
    (
        "containers: &c [{name: s, image: x, args: *c}]\n",
        "t.yaml:1: invalid YAML: an alias refers to a node that contains it",
    ),
    (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
        "invalid YAML: more than 100000 values",
    ),
    (
        "labels:\n  app.kubernetes.io/instance: '{{ pod.name }}'\n",
        "test render against the canonical pod with only a generateName (as Deployments and Jobs create) failed: "
        "label value 'canonical-' is not valid",
    ),
    (
        "containers: [{name: s, image: x, args: [\"{{ pod.labels.update({'app': 'x'}) }}\"]}]\n",
        "not allowed in the sandbox",
    ),
]
"""Values that once crashed a load or could exhaust memory; each is a load error."""


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_hostile_or_subtle_files_are_load_errors_not_crashes(text: str, expected: str) -> None:
    errors = load_one(text)
    assert any(expected in e for e in errors), errors


def test_an_unexpected_failure_in_one_file_spares_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = injector.build.build

    def build(name: str, raw: object, source: str) -> object:
        if name == "bad":
            raise RuntimeError("surprise")
        return real(name, raw, source)

    monkeypatch.setattr(injector.loader, "build", build)
    result = load_sources(
        [Source("good.yaml", GOOD, "good.yaml"), Source("bad.yaml", GOOD, "bad.yaml")]
    )
    assert list(result.templates) == ["good"]
    assert [str(e) for e in result.errors["bad"]] == [
        "bad.yaml: cannot load: RuntimeError('surprise')"
    ]


def test_unknown_filters_and_bad_defaults_point_at_their_fields() -> None:
    errors = load_one('containers:\n  - name: s\n    image: "{{ pod.name | nosuchfilter }}"\n')
    assert errors == [
        "t.yaml:3: containers[0].image: template error: No filter named 'nosuchfilter'."
    ]
    errors = load_one(
        "parameters:\n  tag: {type: string, pattern: '^v', default: x}\n"
        "containers: [{name: s, image: 'i:{{ params.tag }}'}]\n"
    )
    assert errors == ["t.yaml:2: parameters.tag.default: 'x' is not a string matching ^v"]


def test_the_digest_follows_what_pods_get_only() -> None:
    base = "containers: [{name: s, image: 'x:{{ params.tag }}'}]\nparameters:\n  tag: {type: string, default: '1'}\n"

    def digest(text: str) -> str:
        result = load_sources([Source("t.yaml", text, "t.yaml")])
        assert not result.errors, result.errors
        return result.templates["t"].digest

    same = digest(base)
    for edit in (
        "description: now documented\n",
        "namespaces: [prod]\n",
        "hidden: true\n",
    ):
        assert digest(base + edit) == same, edit
    assert (
        digest(base.replace("default: '1'", "default: '1', description: d, enum: ['1', '2']"))
        == same
    )
    assert digest(base.replace("default: '1'", "default: '2'")) != same
    assert digest(base.replace("x:", "y:")) != same


def test_stand_ins_are_the_last_good_versions_of_the_failing_templates_only() -> None:
    result = load_sources(
        [Source("a.yaml", "containers: 3\n", "a.yaml"), Source("b.yaml", GOOD, "b.yaml")]
    )
    last_good = [
        Source("a.yaml", GOOD, "a.yaml"),
        Source("b.yaml", GOOD.replace("busybox", "other"), "b.yaml"),
        Source("c.yaml", GOOD, "c.yaml"),
    ]
    found = stand_ins(result, last_good)
    assert list(found) == ["a"] and found["a"].source == GOOD
    assert stand_ins(result, [Source("a.yaml", "containers: 3\n", "a.yaml")]) == {}
    assert stand_ins(load_sources([Source("b.yaml", GOOD, "b.yaml")]), last_good) == {}
