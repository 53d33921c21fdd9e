"""The protobuf metadata list: what the API server sends (encoded here field by field, as
k8s.io/apimachinery's generated code does) is read back as the JSON encoding keys it, whatever
the chunks it arrives in; managedFields and the fields not read are stepped over; a list cut
short or malformed is an error, never a partial answer taken for a whole one."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lightkube.resources.core_v1 import Pod

from injector.ops import wire
from injector.ops.kube import METADATA_LIST, AccessError, list_metadata, reading
from tests.ops.test_outdated import client


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def flag(number: int, value: bool) -> bytes:
    return varint(number << 3) + varint(int(value))


OWNER_FIELDS = {"kind": 1, "name": 3, "uid": 4, "apiVersion": 5}


def owner(ref: dict[str, Any]) -> bytes:
    # Every string is sent, even empty (gogo-protobuf's non-pointer fields); bools when set.
    body = b"".join(field(n, ref.get(k, "")) for k, n in OWNER_FIELDS.items())
    for key, number in (("controller", 6), ("blockOwnerDeletion", 7)):
        if key in ref:
            body += flag(number, ref[key])
    return body


def object_meta(meta: dict[str, Any], managed: int = 0) -> bytes:
    """An ObjectMeta as the API server encodes it, with the fields this module skips too."""
    body = field(1, meta.get("name", "")) + field(2, meta.get("generateName", ""))
    body += field(3, meta.get("namespace", "")) + field(4, "")  # selfLink
    body += field(5, meta.get("uid", "")) + field(6, meta.get("resourceVersion", ""))
    body += varint(7 << 3) + varint(3)  # generation
    body += field(8, varint(1 << 3) + varint(1_765_000_000))  # creationTimestamp
    for number, key in ((11, "labels"), (12, "annotations")):
        for k, v in sorted(meta.get(key, {}).items()):
            body += field(number, field(1, k) + field(2, v))
    for ref in meta.get("ownerReferences", ()):
        body += field(13, owner(ref))
    body += field(14, "kubernetes.io/finalizer")
    for _ in range(managed):  # managedFields: FieldsV1 JSON, large
        entry = field(1, "kubectl-create") + field(2, "Update") + field(3, "v1")
        entry += field(7, field(1, b'{"f:spec":{"f:containers":{}}}' * 40))
        body += field(17, entry)
    return body


def encoded(metas: list[dict[str, Any]], version: str = "7", token: str = "") -> bytes:
    """A PartialObjectMetadataList in its runtime.Unknown envelope."""
    items = b"".join(
        field(
            2,
            field(1, field(1, "v1") + field(2, "PartialObjectMetadata"))
            + field(1, object_meta(m, 2)),
        )
        for m in metas
    )
    raw = field(1, field(2, version) + field(3, token)) + items
    type_meta = field(1, "meta.k8s.io/v1") + field(2, "PartialObjectMetadataList")
    return wire.MAGIC + field(1, type_meta) + field(2, raw) + field(3, "") + field(4, "")


def read(body: bytes, size: int = 1 << 16) -> tuple[list[dict[str, Any]], wire.MetadataList]:
    listing = wire.MetadataList(iter([body[i : i + size] for i in range(0, len(body), size)]))
    return list(listing), listing


text = st.text(min_size=1, max_size=20)
metas = st.fixed_dictionaries(
    {"name": text, "namespace": text},
    optional={
        "generateName": text,
        "uid": text,
        "resourceVersion": st.from_regex(r"[1-9][0-9]{0,8}", fullmatch=True),
        "labels": st.dictionaries(text, st.text(max_size=10), min_size=1, max_size=4),
        "annotations": st.dictionaries(text, st.text(max_size=300), min_size=1, max_size=4),
        "ownerReferences": st.lists(
            st.fixed_dictionaries(
                {"apiVersion": text, "kind": text, "name": text, "uid": text},
                optional={"controller": st.booleans(), "blockOwnerDeletion": st.booleans()},
            ),
            min_size=1,
            max_size=2,
        ),
    },
)


@given(st.lists(metas, max_size=5), st.integers(1, 300), st.text(max_size=10))
@settings(max_examples=200, deadline=None)
def test_any_metadata_reads_back_as_json_keys_it_in_any_chunks(
    found: list[dict[str, Any]], size: int, token: str
) -> None:
    items, listing = read(encoded(found, "42", token), size)
    assert items == found
    assert (listing.resource_version, listing.continue_) == ("42", token)


def test_cut_short_or_not_protobuf_is_an_error() -> None:
    body = encoded([{"name": "p", "namespace": "n"}] * 3)
    for cut in (2, 10, len(body) // 2, len(body) - 1):
        with pytest.raises(wire.WireError):
            read(body[:cut])
    with pytest.raises(wire.WireError):
        read(b'{"kind": "PartialObjectMetadataList"}')


def test_a_protobuf_answer_is_read_in_pages_and_a_broken_one_is_one_clear_line() -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        token = request.url.params.get("continue")
        name = "p2" if token else "p1"
        body = encoded([{"name": name, "namespace": "shop"}], "9", "" if token else "next")
        return httpx2.Response(200, content=body, headers={"content-type": wire.CONTENT_TYPE})

    assert [m["name"] for m in list_metadata(client(handler), Pod, "*")] == ["p1", "p2"]
    assert all(r.headers["accept"] == METADATA_LIST for r in seen)
    assert seen[0].url.params["resourceVersion"] == "0"
    assert "resourceVersion" not in seen[1].url.params  # not allowed with continue

    def broken(request: httpx2.Request) -> httpx2.Response:
        body = encoded([{"name": "p1", "namespace": "shop"}])[:-5]
        return httpx2.Response(200, content=body, headers={"content-type": wire.CONTENT_TYPE})

    broken_client = client(broken)
    with (
        pytest.raises(AccessError, match=r"list pods.*cannot be read"),
        reading(broken_client, "list pods"),
    ):
        list(list_metadata(broken_client, Pod, "*"))


def test_a_json_answer_is_read_without_managed_fields() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        item = {"metadata": {"name": "p", "namespace": "n", "managedFields": [{"manager": "x"}]}}
        body = {"metadata": {"resourceVersion": "5"}, "items": [item]}
        return httpx2.Response(200, content=orjson.dumps(body))

    assert list(list_metadata(client(handler), Pod, "*")) == [{"name": "p", "namespace": "n"}]
