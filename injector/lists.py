"""Kubernetes Lists in manifests: `kind: List` (what `kubectl get -o yaml` prints for several
objects) and every typed `<Kind>List` (`DeploymentList`, `ConfigMapList`, ... as the API
returns them). One walk over the objects of a document, descending into Lists, shared by
`inject -f`, `explain -f` and `validate`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from injector.types import JSON, Obj

MAX_DEPTH = 16
"""Lists inside Lists, deeper than any real file (kubectl prints one level): a List that holds
itself (a recursive YAML alias) or a hostile file stops with ListError, not RecursionError."""

MAX_ITEMS = 100_000
"""Items visited in one document: Lists sharing items through YAML aliases can make a small
file hold exponentially many; this bounds the walk as yamlsrc.MAX_NODES bounds parsing."""

Position = tuple[tuple[str, int], ...]
"""Where an object sits: (the List's kind, the item's index) from the outermost List in."""


class ListError(ValueError):
    """A document whose Lists cannot be walked: nested too deep or too many items."""


@dataclass(frozen=True)
class Item:
    """One object of a document: the document itself, or an item of a List in it."""

    obj: Obj
    """As written: inject puts its result where this was."""
    kind: str
    """Its kind, or for an item of a typed List that omits it, the List's (`DeploymentList`
    items are Deployments). Empty when neither says."""
    api_version: str
    """Likewise: its own apiVersion, or the typed List's."""
    position: Position = ()
    path: tuple[str | int, ...] = ()
    """Its path in the document: `("items", 2)`, `("items", 1, "items", 0)`; () for the
    document itself."""

    @property
    def name(self) -> str:
        metadata = self.obj.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        return str(metadata.get("name") or metadata.get("generateName") or "?")

    @property
    def where(self) -> str:
        """`List[2]`, `List[1] DeploymentList[0]`; "" for an object outside any List."""
        return " ".join(f"{kind}[{index}]" for kind, index in self.position)

    def label(self, text: str | None = None) -> str:
        """How messages name it: `Deployment/web`, in a List `List[2] Deployment/web`;
        `text` replaces `Deployment/web` (explain says `Deployment shop/web`)."""
        return _prefixed(self.where, f"{self.kind or '?'}/{self.name}" if text is None else text)

    @property
    def resolved(self) -> Obj:
        """The object with the kind and apiVersion it has as an item of its List (itself when
        it names both)."""
        if "kind" in self.obj and "apiVersion" in self.obj:
            return self.obj
        return {"apiVersion": self.api_version, "kind": self.kind, **self.obj}


def _prefixed(where: str, text: str) -> str:
    return f"{where} {text}" if where else text


def is_list(doc: JSON) -> bool:
    """A List or a typed `<Kind>List`: its kind ends in List and its items are a list."""
    return (
        isinstance(doc, dict)
        and str(doc.get("kind", "")).endswith("List")
        and isinstance(doc.get("items"), list)
    )


def item_kind(list_kind: str) -> str:
    """The kind of a typed List's items (`DeploymentList` → `Deployment`); "" for `List`,
    whose items each say what they are."""
    return list_kind.removesuffix("List")


def map_objects(doc: JSON, change: Callable[[Item], JSON]) -> JSON:
    """`doc` with every object in it replaced by `change(item)`, descending into Lists (which
    keep their apiVersion, kind, metadata and every other field, the items in order). A List
    none of whose objects changed is returned as it was (the same object); values that are not
    objects (a null item) stay. Raises ListError past MAX_DEPTH or MAX_ITEMS."""
    return _Walk(change).visit(doc, "", "", (), ())


def objects(doc: JSON) -> Iterator[Item]:
    """Every object of `doc` in order, Lists walked into (the Lists themselves not listed)."""
    found: list[Item] = []

    def collect(item: Item) -> JSON:
        found.append(item)
        return item.obj

    map_objects(doc, collect)
    return iter(found)


@dataclass
class _Walk:
    change: Callable[[Item], JSON]
    items: int = 0

    def visit(
        self,
        doc: JSON,
        kind: str,
        api_version: str,
        position: Position,
        path: tuple[str | int, ...],
    ) -> JSON:
        if not isinstance(doc, dict):
            return doc
        own_kind = str(doc.get("kind") or kind)
        own_version = str(doc.get("apiVersion") or api_version)
        if not is_list(doc):
            return self.change(Item(doc, own_kind, own_version, position, path))
        if len(position) >= MAX_DEPTH:
            outermost = Item(doc, own_kind, own_version, position[:1]).where
            raise ListError(
                f"{outermost}: Lists nested more than {MAX_DEPTH} deep"
                " (does a List hold itself through a YAML alias?)"
            )
        items: list[JSON] = doc["items"]
        self.items += len(items)
        if self.items > MAX_ITEMS:
            raise ListError(f"more than {MAX_ITEMS} List items (counting each use of an alias)")
        kind_of_items = item_kind(own_kind)
        changed = [
            self.visit(
                item,
                kind_of_items,
                own_version if kind_of_items else "",
                position + ((own_kind, index),),
                path + ("items", index),
            )
            for index, item in enumerate(items)
        ]
        if all(new is old for new, old in zip(changed, items, strict=True)):
            return doc
        return {**doc, "items": changed}
