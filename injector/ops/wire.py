"""A metadata-only list read in Kubernetes' protobuf encoding, as it streams in: each object's
metadata is decoded on its own, the fields the commands and the audit read and nothing else —
a pod's managedFields (most of its metadata: they mirror every field of the spec) are stepped
over, never turned into Python objects, and the list is never held whole.

The encoding: the 4 bytes `k8s\\0`, then a `runtime.Unknown` whose `raw` (field 2) is the
PartialObjectMetadataList: `metadata` (1, a ListMeta) and `items` (2, each a
PartialObjectMetadata whose field 1 is the ObjectMeta). Field numbers are those of
k8s.io/apimachinery's generated.proto, stable since protobuf was introduced."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

Buffer = bytes | bytearray
MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
COMPACT_AT = 1 << 20
"""Bytes consumed after which the buffer drops them."""

_LEN = 2  # wire type: length-delimited
_VARINT = 0


class WireError(ValueError):
    """The answer is not the protobuf list it should be (cut short or malformed)."""


def _varint(buf: Buffer, i: int) -> tuple[int, int]:
    """The varint at `i` and the index after it."""
    byte = buf[i]
    if byte < 0x80:
        return byte, i + 1
    value = byte & 0x7F
    shift = 7
    while True:
        i += 1
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _skip(buf: Buffer, i: int, wire: int) -> int:
    """The index after a field's value of wire type `wire` starting at `i`."""
    if wire == _VARINT:
        return _varint(buf, i)[1]
    if wire == _LEN:
        size, i = _varint(buf, i)
        return i + size
    if wire == 1:
        return i + 8
    if wire == 5:
        return i + 4
    raise WireError(f"unsupported wire type {wire}")


def _text(buf: Buffer, i: int) -> tuple[str, int]:
    size, i = _varint(buf, i)
    end = i + size
    return buf[i:end].decode(), end


def _pairs(buf: Buffer, i: int, end: int) -> tuple[str, str]:
    """A map<string, string> entry: key 1, value 2."""
    key = value = ""
    while i < end:
        tag, i = _varint(buf, i)
        if tag == 0x0A:
            key, i = _text(buf, i)
            key = sys.intern(key)  # a few keys over every object: one string each
        elif tag == 0x12:
            value, i = _text(buf, i)
        else:
            i = _skip(buf, i, tag & 7)
    return key, value


_OWNER_TEXT = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
_OWNER_BOOL = {6: "controller", 7: "blockOwnerDeletion"}


def _owner(buf: Buffer, i: int, end: int) -> dict[str, Any]:
    """An OwnerReference, keyed as in JSON."""
    owner: dict[str, Any] = {}
    while i < end:
        tag, i = _varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if wire == _LEN and field in _OWNER_TEXT:
            text, i = _text(buf, i)
            if text:
                owner[_OWNER_TEXT[field]] = text
        elif wire == _VARINT and field in _OWNER_BOOL:
            value, i = _varint(buf, i)
            owner[_OWNER_BOOL[field]] = bool(value)
        else:
            i = _skip(buf, i, wire)
    return owner


_META_TEXT = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
"""ObjectMeta's string fields read (4 selfLink, 7 generation, 8-10 the timestamps and grace
period, 14 finalizers, 15 clusterName, 17 managedFields are skipped)."""
_NAMESPACE = 3
_MAPS = {11: "labels", 12: "annotations"}
_OWNERS = 13


def object_meta(buf: Buffer, i: int, end: int) -> dict[str, Any]:
    """An ObjectMeta from `buf[i:end]`, as the JSON encoding keys it: name, generateName,
    namespace, uid, resourceVersion, labels, annotations and ownerReferences (those set)."""
    meta: dict[str, Any] = {}
    while i < end:
        tag, i = _varint(buf, i)
        field, wire = tag >> 3, tag & 7
        if wire != _LEN:
            i = _skip(buf, i, wire)
        elif field in _META_TEXT:
            text, i = _text(buf, i)
            if text:  # an empty one is sent in protobuf, left out in JSON
                meta[_META_TEXT[field]] = sys.intern(text) if field == _NAMESPACE else text
        elif field in _MAPS:
            size, i = _varint(buf, i)
            key, value = _pairs(buf, i, i + size)
            meta.setdefault(_MAPS[field], {})[key] = value
            i += size
        elif field == _OWNERS:
            size, i = _varint(buf, i)
            meta.setdefault("ownerReferences", []).append(_owner(buf, i, i + size))
            i += size
        else:
            size, i = _varint(buf, i)
            i += size  # managedFields among them: stepped over, never decoded
    if i != end:
        raise WireError("an object's metadata overruns its bounds")
    return meta


class MetadataList:
    """The objects' metadata of one PartialObjectMetadataList in protobuf, read from `chunks`
    (the body as it arrives) one object at a time. Once iterated, `resource_version` and
    `continue_` are the list's."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self._pos = 0
        self.resource_version = ""
        self.continue_ = ""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self._fill(4) or self._buf[:4] != MAGIC:
            raise WireError("not a Kubernetes protobuf message")
        self._pos = 4
        while self._fill(1):
            tag = self._varint()
            if tag != 0x12:  # not `raw`: typeMeta, contentEncoding, contentType
                self._skip(tag & 7)
                continue
            end = self._varint() + self._consumed()
            while self._consumed() < end:
                tag = self._varint()
                if tag == 0x12:  # an item: a PartialObjectMetadata, decoded in the buffer
                    size = self._varint()
                    start = self._need(size)
                    yield _partial(self._buf, start, start + size)
                elif tag == 0x0A:  # the ListMeta
                    size = self._varint()
                    start = self._need(size)
                    self._list_meta(bytes(self._buf[start : start + size]))
                else:
                    self._skip(tag & 7)

    def _list_meta(self, buf: bytes) -> None:
        i = 0
        while i < len(buf):
            tag, i = _varint(buf, i)
            if tag == 0x12:
                self.resource_version, i = _text(buf, i)
            elif tag == 0x1A:
                self.continue_, i = _text(buf, i)
            else:
                i = _skip(buf, i, tag & 7)

    # --- the buffer over the stream ---

    _base = 0
    """Bytes dropped from the buffer's front so far."""

    def _consumed(self) -> int:
        return self._base + self._pos

    def _fill(self, size: int) -> bool:
        """At least `size` unread bytes buffered; False at the end of the stream."""
        while len(self._buf) - self._pos < size:
            if self._pos >= COMPACT_AT:
                del self._buf[: self._pos]
                self._base += self._pos
                self._pos = 0
            chunk = next(self._chunks, None)
            if chunk is None:
                return False
            self._buf += chunk
        return True

    def _more(self) -> bool:
        return self._fill(1)

    def _need(self, size: int) -> int:
        """Where the next `size` bytes start in the buffer, once they are there; past them."""
        if not self._fill(size):
            raise WireError("the list is cut short")
        start = self._pos
        self._pos += size
        return start

    def _varint(self) -> int:
        if not self._fill(10):  # a varint is 10 bytes at most; fewer at the very end
            self._fill(1)
        try:
            value, self._pos = _varint(self._buf, self._pos)
        except IndexError:
            raise WireError("the list is cut short") from None
        return value

    def _skip(self, wire: int) -> None:
        if wire == _VARINT:
            self._varint()
        elif wire == _LEN:
            size = self._varint()
            while size:  # a large field is dropped as it streams by
                if not self._fill(1):
                    raise WireError("the list is cut short")
                step = min(size, len(self._buf) - self._pos)
                self._pos += step
                size -= step
        elif wire in (1, 5):
            self._need(8 if wire == 1 else 4)
        else:
            raise WireError(f"unsupported wire type {wire}")


def _partial(buf: Buffer, i: int, end: int) -> dict[str, Any]:
    """A PartialObjectMetadata's ObjectMeta (field 1), from `buf[i:end]`."""
    meta: dict[str, Any] = {}
    try:
        while i < end:
            tag, i = _varint(buf, i)
            if tag == 0x0A:
                size, i = _varint(buf, i)
                meta = object_meta(buf, i, i + size)
                i += size
            else:
                i = _skip(buf, i, tag & 7)
        if i != end:
            raise WireError("an object overruns its bounds")
    except (IndexError, UnicodeDecodeError) as exc:
        raise WireError(f"an object's metadata cannot be read ({exc})") from None
    return meta
