"""SkyDNS records as CoreDNS's etcd plugin reads them: keys, JSON values, groups.

A record lives at the reversed domain under the path: ``mysql-service.default.svc.kube.local``
is ``/skydns/local/kube/svc/default/mysql-service``, and every key below that
(``.../mysql-service/2f1020d6``) is a record of that name too. The value is a JSON object
(CoreDNS's ``msg.Service``): ``host`` (an IP gives A/AAAA, a name gives CNAME, SRV and MX
targets), ``port``, ``priority``, ``weight``, ``text``, ``mail``, ``ttl``, ``targetstrip``,
``group``. Values are decoded as Go's ``encoding/json`` decodes them into that struct:
field names match case-insensitively, unknown fields are ignored, a wrong type is an error.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Final, NamedTuple

import msgspec

from clusterdns.wire.build import TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_TXT

DEFAULT_PRIORITY: Final = 10  # CoreDNS: a priority of 0 becomes 10
WILDCARDS: Final = frozenset(("*", "any"))
_INT64: Final = 1 << 63
_JSON: Final = msgspec.json.Decoder()
_V4_MAPPED: Final = b"\x00" * 10 + b"\xff\xff"


class RecordError(ValueError):
    """A value under the path that CoreDNS would fail to decode (the query is SERVFAIL)."""


class Service(NamedTuple):
    """One decoded value (CoreDNS's ``msg.Service``) and the key it was found at.

    A NamedTuple rather than a frozen dataclass: a watch of 100k keys decodes 100k of
    these, and a tuple is built several times faster."""

    key: str
    lease: int = 0
    host: str = ""
    port: int = 0
    priority: int = DEFAULT_PRIORITY
    weight: int = 0
    text: str = ""
    mail: bool = False
    ttl: int = 0
    targetstrip: int = 0
    group: str = ""
    # What ``host`` is (msg.Service.HostType): TYPE_A/TYPE_AAAA with ``ip`` packed,
    # TYPE_CNAME for a name, TYPE_TXT for a name with text.
    host_type: int = TYPE_CNAME
    ip: bytes = b""

    def includes(self, qtype: int) -> bool:
        """CoreDNS's shouldInclude: only TXT answers may come from a value without a host."""
        return (qtype == TYPE_TXT and self.text != "") or self.host != ""


_FIELDS: Final = {
    "host": str,
    "port": int,
    "priority": int,
    "weight": int,
    "text": str,
    "mail": bool,
    "ttl": int,
    "targetstrip": int,
    "group": str,
}


def parse_ip(text: str) -> bytes | None:
    """Go's net.ParseIP, packed: 4 bytes for dotted IPv4 (no leading zeros) and for
    IPv4-mapped IPv6, 16 for other IPv6 (no zone); None for anything else."""
    if not text:
        return None
    try:
        return socket.inet_pton(socket.AF_INET, text)
    except OSError:
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return None
    return packed[12:] if packed.startswith(_V4_MAPPED) else packed


def decode(key: str, value: bytes, lease: int = 0) -> Service:
    """The Service stored at ``key``; RecordError for what Go's json would reject."""
    try:
        data = _JSON.decode(value)
    except msgspec.DecodeError as err:
        raise RecordError(f"{key}: {err}") from None
    if data is None:
        data = {}  # json.Unmarshal of null leaves the zero Service
    if not isinstance(data, dict):
        raise RecordError(f"{key}: json: cannot unmarshal {type(data).__name__} into msg.Service")
    fields: dict[str, object] = {}
    for name, item in data.items():
        field = name if name in _FIELDS else name.lower()
        kind = _FIELDS.get(field)
        if kind is None or item is None:
            continue
        if type(item) is not kind:
            raise RecordError(f"{key}: json: cannot unmarshal {item!r} into field {field}")
        if kind is int and not (
            0 <= item <= 0xFFFFFFFF if field == "ttl" else -_INT64 <= item < _INT64  # type: ignore[operator]
        ):
            raise RecordError(f"{key}: json: cannot unmarshal {item!r} into field {field}")
        fields[field] = item
    host: str = fields.get("host", "")  # type: ignore[assignment]
    text: str = fields.get("text", "")  # type: ignore[assignment]
    packed = parse_ip(host)
    if packed is None:
        host_type, packed = (TYPE_TXT if text else TYPE_CNAME), b""
    else:
        host_type = TYPE_A if len(packed) == 4 else TYPE_AAAA
    get = fields.get
    return Service(
        key,
        lease,
        host,
        get("port", 0),  # type: ignore[arg-type]
        get("priority", 0) or DEFAULT_PRIORITY,  # type: ignore[arg-type]
        get("weight", 0),  # type: ignore[arg-type]
        text,
        get("mail", False),  # type: ignore[arg-type]
        get("ttl", 0),  # type: ignore[arg-type]
        get("targetstrip", 0),  # type: ignore[arg-type]
        get("group", ""),  # type: ignore[arg-type]
        host_type,
        packed,
    )


# --- names and keys ---------------------------------------------------------------------------


def split_name(name: str) -> list[str]:
    """The labels of a (text, absolute) name, escapes kept (miekg's SplitDomainName)."""
    if name in (".", ""):
        return []
    if "\\" not in name:
        return (name[:-1] if name.endswith(".") else name).split(".")
    labels: list[str] = []
    current: list[str] = []
    escaped = False
    for char in name:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == ".":
            labels.append("".join(current))
            current = []
        else:
            current.append(char)
    if current:
        labels.append("".join(current))
    return labels


def normalise_path(path: str) -> str:
    """CoreDNS joins ``"/" + PATH + "/"`` with the labels: ``skydns``, ``/skydns`` and
    ``/skydns/`` are the same root, ``/skydns``; the root of everything is ``""``."""
    parts = [part for part in path.split("/") if part]
    return "".join("/" + part for part in parts)


def key_path(name: str, root: str) -> str:
    """msg.Path: ``svc.kube.local.`` under ``/skydns`` is ``/skydns/local/kube/svc``."""
    labels = split_name(name)
    labels.reverse()
    return root + "".join("/" + label for label in labels) if labels else root or "/"


def wildcard_path(name: str, root: str) -> tuple[str, bool]:
    """msg.PathWithWildcard: the path cut before the first ``*`` or ``any`` label, and
    whether it was cut (the keys below it are then matched label by label)."""
    labels = split_name(name)
    labels.reverse()
    if not WILDCARDS.isdisjoint(labels):
        for index, label in enumerate(labels):
            if label in WILDCARDS:
                return (root + "".join("/" + part for part in labels[:index])) or "/", True
    return (root + "/" + "/".join(labels) if labels else root) or "/", False


def matches_wildcard(key: str, segments: Sequence[str]) -> bool:
    """loopNodes' filter for a wildcard name: every label of the name matches the key's
    segment at the same depth (``*`` and ``any`` match anything)."""
    parts = key.split("/")
    for index, segment in enumerate(segments):
        if index >= len(parts):
            return False
        if segment in WILDCARDS:
            continue
        if parts[index] != segment:
            return False
    return True


def domain(key: str, root: str) -> str:
    """The domain name of a key (msg.Domain), absolute text: the key's segments after
    the path, reversed. (msg.Domain drops only the first segment of the path, which is
    the same for a one-segment path such as /skydns and a stray label for a longer one.)"""
    rest = key[len(root) :] if key.startswith(root) else key
    labels = [part for part in rest.split("/") if part]
    labels.reverse()
    return ".".join(labels) + "." if labels else "."


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def target_strip(name: str, count: int) -> str:
    """Strip ``count`` labels from the left of an absolute name; the whole name when
    that would strip them all (msg.targetStrip)."""
    if count <= 0:
        return name
    labels = split_name(name)
    if count >= len(labels):
        return name
    return ".".join(labels[count:]) + "."


def is_subdomain(child: str, parent: str) -> bool:
    """``child`` equals or is below ``parent`` (lower-case absolute text)."""
    return parent == "." or child == parent or child.endswith("." + parent)


def group(services: list[Service]) -> list[Service]:
    """msg.Group: the group of the shortest key decides which records answer together.

    The first record's group is the candidate; a record with fewer key segments takes
    over (or, without a group, ends the search). If one is set, only records of that
    group and records without a group answer, unless two records at the shortest depth
    disagree, in which case all do."""
    if not services:
        return services
    chosen = services[0].group
    slashes = services[0].key.count("/")
    # As in Go, the depths are only filled up to the record that ends the search; the
    # rest stay 0 and never count as "at the shortest depth".
    depths = [0] * len(services)
    for index, service in enumerate(services):
        depth = service.key.count("/")
        depths[index] = depth
        if depth < slashes:
            if service.group == "":
                break
            slashes = depth
            chosen = service.group
    if chosen == "":
        return services
    kept: list[Service] = []
    for service, depth in zip(services, depths, strict=True):
        if service.group == "":
            kept.append(service)
            continue
        if depth == slashes and service.group != chosen:
            return services
        if service.group == chosen:
            kept.append(service)
    return kept


def split255(text: bytes) -> list[bytes]:
    """msg.split255, quirk included: a text of 255 bytes or more ends with the rest after
    the last full chunk, an empty string when it divides evenly."""
    if len(text) < 255:
        return [text]
    chunks = []
    start = 0
    while True:
        if start + 255 > len(text):
            chunks.append(text[start:])
            return chunks
        chunks.append(text[start : start + 255])
        start += 255
