"""The one walk over the objects of a manifest, into Lists: shape kept, items named, guarded."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from injector.lists import MAX_DEPTH, MAX_ITEMS, Item, ListError, is_list, map_objects, objects

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}


def listed(*items: Any, kind: str = "List", api_version: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"resourceVersion": ""},
        "items": list(items),
    }


def test_an_object_outside_any_list_is_the_one_item() -> None:
    (item,) = objects(POD)
    assert item == Item(POD, "Pod", "v1")
    assert item.obj is POD and item.resolved is POD
    assert item.label() == "Pod/p" and item.where == ""


def test_items_in_order_with_their_place_lists_within_lists_included() -> None:
    doc = listed(POD, listed(DEPLOYMENT, POD), {"kind": "Service", "metadata": {"name": "s"}})
    found = list(objects(doc))
    assert [(i.label(), i.path) for i in found] == [
        ("List[0] Pod/p", ("items", 0)),
        ("List[1] List[0] Deployment/web", ("items", 1, "items", 0)),
        ("List[1] List[1] Pod/p", ("items", 1, "items", 1)),
        ("List[2] Service/s", ("items", 2)),
    ]
    assert found[1].label("Deployment shop/web") == "List[1] List[0] Deployment shop/web"


def test_items_of_a_typed_list_are_of_its_kind_when_they_name_none() -> None:
    bare = {"metadata": {"name": "web"}, "spec": {}}
    doc = listed(bare, dict(DEPLOYMENT), kind="DeploymentList", api_version="apps/v1")
    first, second = objects(doc)
    assert (first.kind, first.api_version, first.label()) == (
        "Deployment",
        "apps/v1",
        "DeploymentList[0] Deployment/web",
    )
    assert first.obj is bare, "the item as written, for inject to replace"
    assert first.resolved == {"apiVersion": "apps/v1", "kind": "Deployment", **bare}
    assert second.resolved is second.obj


def test_items_of_a_plain_list_take_nothing_from_it() -> None:
    (item,) = objects(listed({"metadata": {"name": "x"}}))
    assert (item.kind, item.api_version, item.label()) == ("", "", "List[0] ?/x")


def test_what_is_a_list() -> None:
    assert is_list(listed())
    assert is_list(listed(kind="ConfigMapList"))
    assert not is_list({"kind": "List", "items": None})  # then an object like any other
    assert not is_list({"kind": "Deployment", "items": []})
    assert not is_list([listed()])


def test_map_keeps_the_shape_and_replaces_items_in_place() -> None:
    doc = listed(POD, None, "text", listed(DEPLOYMENT))
    original = copy.deepcopy(doc)

    def change(item: Item) -> Any:
        return {**item.obj, "seen": item.where} if item.kind == "Deployment" else item.obj

    result = map_objects(doc, change)
    assert doc == original, "the input is not modified"
    assert result == {
        **original,
        "items": [POD, None, "text", listed({**DEPLOYMENT, "seen": "List[3] List[0]"})],
    }
    assert list(result) == list(original), "the List's own fields in their order"
    assert result["items"][0] is POD


def test_a_list_none_of_whose_objects_changed_is_the_same_object() -> None:
    doc = listed(POD, listed(DEPLOYMENT))
    assert map_objects(doc, lambda item: item.obj) is doc
    empty = listed()
    assert map_objects(empty, lambda item: pytest.fail("an empty List has no objects")) is empty


def test_lists_deeper_than_the_limit_are_an_error_not_a_recursion_error() -> None:
    doc: dict[str, Any] = POD
    for _ in range(MAX_DEPTH):
        doc = listed(doc)
    assert [i.kind for i in objects(doc)] == ["Pod"]
    with pytest.raises(ListError, match=rf"^List\[0\]: Lists nested more than {MAX_DEPTH} deep"):
        list(objects(listed(doc)))


def test_a_list_holding_itself_through_an_alias_is_an_error() -> None:
    doc = yaml.safe_load("&a {kind: List, items: [{kind: Pod}, *a]}")
    assert doc["items"][1] is doc
    with pytest.raises(ListError, match="does a List hold itself through a YAML alias"):
        map_objects(doc, lambda item: item.obj)


def test_lists_sharing_items_through_aliases_are_bounded() -> None:
    """Each level doubles the items a walk meets: 2**16 Pods from 16 short lines."""
    lines = ["l0: &l0 {kind: List, items: [{kind: Pod}, {kind: Pod}]}"]
    lines += [f"l{n}: &l{n} {{kind: List, items: [*l{n - 1}, *l{n - 1}]}}" for n in range(1, 16)]
    bomb = yaml.safe_load("\n".join(lines))["l15"]
    with pytest.raises(ListError, match=f"more than {MAX_ITEMS} List items"):
        list(objects(bomb))
