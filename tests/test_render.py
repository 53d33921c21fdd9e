from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from injector.loader import directory_sources, load_sources
from injector.render import Const, RenderError, Text, _pieces, make_context
from injector.sandbox import ENVIRONMENT
from injector.template import Template
from tests.helpers import VIEW, catalog, template

TYPED = """
parameters:
  port: {type: int, default: 8080}
  debug: {type: bool, default: false}
  image: {type: string, default: "busybox:1.36"}
containers:
  - name: s
    image: "{{ params.image }}"
    args: ["{{ params.port }}", "--debug={{ params.debug }}"]
    command: ["{{ params.debug }}"]
    ports: [{containerPort: "{{ params.port }}"}]
    tty: "{{ params.debug }}"
    env:
      - {name: PORT, value: "{{ params.port }}"}
env:
  - {name: DEBUG, value: "{{ params.debug }}"}
labels:
  port: "{{ params.port }}"
annotations:
  debug: "{{ params.debug }}"
  mixed: " {{ params.port }}"
"""


def test_single_int_or_bool_expressions_keep_their_type_outside_string_fields() -> None:
    rendered = template(TYPED).render(VIEW, {})
    container = rendered.containers[0]
    assert container["ports"] == [{"containerPort": 8080}]
    assert container["tty"] is False
    assert container["args"] == ["8080", "--debug=false"]
    assert container["command"] == ["false"]
    assert container["env"] == [{"name": "PORT", "value": "8080"}]
    assert rendered.env == [{"name": "DEBUG", "value": "false"}]
    assert rendered.labels == {"port": "8080"}
    assert rendered.annotations == {"debug": "false", "mixed": " 8080"}


def test_overrides_replace_defaults() -> None:
    rendered = template(TYPED).render(VIEW, {"port": 9000, "debug": True})
    assert rendered.containers[0]["ports"] == [{"containerPort": 9000}]
    assert rendered.containers[0]["tty"] is True
    assert rendered.labels == {"port": "9000"}


def test_the_pod_context() -> None:
    text = """
    annotations:
      a: "{{ pod.name }}/{{ pod.generateName }}/{{ pod.namespace }}/{{ pod.serviceAccountName }}"
      b: "{{ pod.labels.app }} {{ pod.labels.get('missing', 'none') }} {{ template.name }}"
    """
    assert template(text, "ctx").render(VIEW, {}).annotations == {
        "a": "web-1/web-/shop/web",
        "b": "web none ctx",
    }


def test_only_pod_dependent_leaves_are_left_to_render_per_request() -> None:
    compiled = template(
        """
        parameters: {image: {type: string, default: "busybox:1.36"}}
        containers:
          - name: s
            image: "{{ params.image }}"
            args: ["--static"]
        volumes:
          - {name: v, emptyDir: {}}
        annotations:
          owner: "{{ pod.name }}"
        """
    )
    bound = compiled.defaults_bound
    assert bound is not None and not isinstance(bound, Const)
    items = dict(bound.items)  # type: ignore[attr-defined]
    assert isinstance(items["containers"], Const)
    assert isinstance(items["volumes"], Const)
    assert not isinstance(items["annotations"], Const)


def test_constant_parts_are_shared_but_dynamic_parts_are_fresh() -> None:
    compiled = template(
        "containers: [{name: s, image: x}]\nannotations: {owner: '{{ pod.name }}'}\n"
    )
    first, second = compiled.render(VIEW, {}), compiled.render(VIEW, {})
    assert first.containers is second.containers
    assert first.annotations is not second.annotations


def test_params_expose_exactly_the_declared_parameters() -> None:
    # A dict would turn params.items into a method; the namespace makes it a load error.
    text = "parameters: {a: {type: string, default: x}}\nlabels: {l: '{{ params.items }}'}\n"
    with pytest.raises(AssertionError, match=r"params\.items is not declared"):
        catalog(t=text)


def test_required_parameters_have_no_prebound_tree() -> None:
    compiled = template(
        "parameters: {image: {type: string}}\ncontainers: [{name: s, image: '{{ params.image }}'}]\n"
    )
    assert compiled.defaults_bound is None
    assert compiled.required == ("image",)
    assert compiled.render(VIEW, {"image": "y"}).containers[0]["image"] == "y"


EXPRESSIONS = [
    "{{ pod.name }}",
    "{{ pod.namespace }}.{{ pod.name }}",
    "{{ pod.labels.app }}",
    "{{ pod.labels['app.kubernetes.io/name'] }}",
    "{{ pod.labels.items }}",
    "{{ pod.labels['items'] }}",
    "{{ pod.labels.missing }}",
    "{{ pod.annotations }}",
    "{{ params.port }}:{{ params.debug }}",
    "{{ params.nope }}",
    "{{ template.name }}-{{ template.nope }}",
    "{{- pod.name -}} x",
    "{{ pod.name | upper }}",
    "{% if params.debug %}d{% endif %}",
]
LABELS = [{}, {"app": "web", "items": "x", "app.kubernetes.io/name": "n"}]


@pytest.mark.parametrize("source", EXPRESSIONS)
@pytest.mark.parametrize("labels", LABELS)
def test_the_fast_path_renders_exactly_like_jinja(source: str, labels: dict[str, str]) -> None:
    ast = ENVIRONMENT.parse(source)
    fast = Text(ENVIRONMENT.from_string(ast), ("x",), True, _pieces(ast))
    slow = Text(fast.template, ("x",), True, None)
    ctx = make_context(
        {**VIEW, "labels": labels, "annotations": {"a": "b"}},
        {"port": 8080, "debug": True},
        "t",
    )
    outcomes = []
    for text in (fast, slow):
        try:
            outcomes.append(("ok", text.render(ctx)))
        except RenderError as exc:
            outcomes.append(("error", exc.message))
    assert outcomes[0] == outcomes[1]


def test_plain_lookups_take_the_fast_path() -> None:
    assert _pieces(ENVIRONMENT.parse("a-{{ pod.labels['x/y'] }}.{{ params.p }}")) == (
        "a-",
        ("pod", ("labels", "x/y")),
        ".",
        ("params", ("p",)),
    )
    assert _pieces(ENVIRONMENT.parse("{{ pod.name | upper }}")) is None
    assert _pieces(ENVIRONMENT.parse("{% if pod %}x{% endif %}")) is None


def test_strings_mixing_pod_and_params_render_with_defaults_and_overrides() -> None:
    compiled = template(
        "parameters: {level: {type: string, default: info}}\n"
        "containers: [{name: s, image: x, args: ['{{ params.level }}-{{ pod.name }}-{{ template.name }}']}]\n"
    )
    assert compiled.render(VIEW, {}).containers[0]["args"] == ["info-web-1-t"]
    assert compiled.render(VIEW, {"level": "debug"}).containers[0]["args"] == ["debug-web-1-t"]


def _all_templates() -> list[Template]:
    root = Path(__file__).parent
    result = load_sources(
        [
            *directory_sources(root.parent / "examples" / "templates"),
            *directory_sources(root / "golden" / "_templates"),
        ]
    )
    return list(result.templates.values())


ALL_TEMPLATES = _all_templates()
LABEL = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


@settings(max_examples=50, deadline=None)
@given(name=LABEL, namespace=LABEL, app=LABEL)
def test_the_prebound_path_renders_like_the_full_tree(name: str, namespace: str, app: str) -> None:
    view = {
        **VIEW,
        "name": name,
        "namespace": namespace,
        "labels": {"app": app, "app.kubernetes.io/name": app},
    }
    for compiled in ALL_TEMPLATES:
        assert compiled.defaults_bound is not None
        defaults = {n: s.default for n, s in compiled.params.items() if s.default is not None}
        full = compiled.tree.render(make_context(view, defaults, compiled.name))
        assert compiled.render(view, {})._asdict() == {
            "containers": full.get("containers", []),
            "init_containers": full.get("initContainers", []),
            "sidecars": full.get("sidecars", []),
            "volumes": full.get("volumes", []),
            "volume_mounts": full.get("volumeMounts", []),
            "env": full.get("env", []),
            "image_pull_secrets": full.get("imagePullSecrets", []),
            "labels": full.get("labels", {}),
            "annotations": full.get("annotations", {}),
        }, compiled.name


def test_only_typed_fields_turn_single_expressions_into_ints_or_bools() -> None:
    compiled = template(
        """
        parameters:
          port: {type: int, default: 8080}
          enabled: {type: bool, default: true}
        containers:
          - name: s
            image: x
            readinessProbe:
              httpGet:
                port: "{{ params.port }}"
                httpHeaders: [{name: X-Port, value: "{{ params.port }}"}]
              periodSeconds: "{{ params.port }}"
            securityContext: {readOnlyRootFilesystem: "{{ params.enabled }}"}
        volumes:
          - name: v
            csi: {driver: d, volumeAttributes: {enabled: "{{ params.enabled }}"}}
        """
    )
    rendered = compiled.render(VIEW, {})
    probe = rendered.containers[0]["readinessProbe"]
    assert probe["httpGet"]["port"] == 8080
    assert probe["httpGet"]["httpHeaders"][0]["value"] == "8080"
    assert probe["periodSeconds"] == 8080
    assert rendered.containers[0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert rendered.volumes[0]["csi"]["volumeAttributes"]["enabled"] == "true"


def test_the_length_cap_applies_to_plain_lookups_too() -> None:
    compiled = template(
        "parameters: {p: {type: string, default: x}}\n"
        "annotations: {a: '{{ params.p }}{{ params.p }}{{ pod.name }}'}\n"
    )
    with pytest.raises(RenderError, match="renders to 80005 characters"):
        compiled.render(VIEW, {"p": "x" * 40_000})


@pytest.mark.parametrize(
    "expression",
    [
        "{{ pod.name.ljust(params.n) }}",
        "{{ pod.name.center(params.n) }}",
        "{{ pod.name.zfill(params.n) }}",
        "{{ pod.name | center(params.n) }}",
        "{{ pod.name | indent(params.n, true) }}",
        "{{ ('%' ~ params.n ~ 's') % pod.name }}",
        "{{ ('%' ~ params.n ~ 's') | format(pod.name) }}",
        "{{ '%*s' % (params.n, pod.name) }}",
        "{{ ('{:>' ~ params.n ~ '}').format(pod.name) }}",
        "{{ '{:>{}}'.format(pod.name, params.n) }}",
        "{{ (pod.name * 100).replace('w', pod.name * 100) }}",
        "{{ (pod.name * 100) | replace('w', pod.name * 100) }}",
    ],
)
def test_pod_controlled_widths_cannot_allocate_huge_strings(expression: str) -> None:
    compiled = template(
        f"parameters: {{n: {{type: int, default: 8}}}}\nannotations: {{a: {expression!r}}}\n"
    )
    assert compiled.render(VIEW, {}).annotations["a"]  # harmless values still work
    with pytest.raises(RenderError, match="could exceed 65536 characters"):
        compiled.render({**VIEW, "name": "web-" * 100}, {"n": 1_500_000_000})


def test_large_numbers_are_fine_where_they_cannot_pad() -> None:
    compiled = template(
        "parameters: {uid: {type: int, default: 1000000}}\n"
        "annotations:\n"
        "  a: \"{{ '--uid=%d' % params.uid }}\"\n"
        "  b: \"{{ '%d' | format(params.uid) }}\"\n"
        "  c: \"{{ pod.labels.get('x', params.uid) }}\"\n"
    )
    assert compiled.render(VIEW, {}).annotations == {
        "a": "--uid=1000000",
        "b": "1000000",
        "c": "1000000",
    }
