"""Conversions between wire-format names and dnspython-compatible text, and the little
name arithmetic every record plugin does (a label under a zone, a name in a zone)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from clusterdns.wire.errors import FormError

_ESCAPED = frozenset(b'."$();@\\')
# miekg/dns's bound: a name of 255 octets has at most this many pointers on its way.
MAX_POINTERS: Final = 126


def join(label: str, zone: str) -> str:
    """The text name ``label`` under ``zone`` (absolute); under the root, ``label.``."""
    return f"{label}." if zone == "." else f"{label}.{zone}"


def in_zone(name: str, zone: str) -> bool:
    """Whether ``name`` is ``zone`` or below it (both lower-case, absolute text)."""
    return zone == "." or name == zone or name.endswith("." + zone)


def prefixed(label: str, base: bytes) -> bytes:
    """``label`` in front of the wire name ``base`` (cut to 63 bytes to stay a label)."""
    raw = label.encode("latin-1", "replace")[:63]
    return bytes((len(raw),)) + raw + base


# Bytes a label may hold and still read the same as text: letters, digits, '-', '_'.
_PLAIN = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"


def _label_to_text(label: bytes) -> str:
    # Fast path: nothing left once the plain bytes are deleted (a C loop, not a Python one).
    if not label.translate(None, _PLAIN):
        return label.decode("ascii")
    out: list[str] = []
    for byte in label:
        if byte in _ESCAPED:
            out.append("\\" + chr(byte))
        elif 0x20 < byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def name_to_text(wire: bytes) -> str:
    """Render an uncompressed wire name as absolute text with a trailing dot."""
    labels: list[str] = []
    pos = 0
    while True:
        length = wire[pos]
        if length == 0:
            break
        labels.append(_label_to_text(wire[pos + 1 : pos + 1 + length]))
        pos += 1 + length
    return ".".join(labels) + "." if labels else "."


def text_to_wire(text: str) -> bytes:
    """Encode absolute or relative text (treated as absolute) as an uncompressed wire name.

    Only the plain LDH/underscore names that cluster records use are encoded by
    hand; anything with escapes goes through dnspython.
    """
    if text in (".", ""):
        return b"\x00"
    stripped = text[:-1] if text.endswith(".") else text
    if stripped.isascii() and "\\" not in stripped:
        labels = stripped.encode("ascii").split(b".")
        if len(stripped) < 254 and min(map(len, labels)) > 0 and max(map(len, labels)) < 64:
            return b"".join([bytes((len(label),)) + label for label in labels]) + b"\x00"
    if "\\" in stripped:
        import dns.name

        encoded = dns.name.from_text(text).to_wire()
        assert encoded is not None
        return encoded
    out = bytearray()
    for label in stripped.split("."):
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label {label!r} in name {text!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"name too long: {text!r}")
    return bytes(out)


def label_offsets(wire: bytes) -> tuple[int, ...]:
    """Where each label of an uncompressed wire name starts, the root's zero byte last."""
    offsets = []
    pos = 0
    while True:
        offsets.append(pos)
        length = wire[pos]
        if length == 0:
            return tuple(offsets)
        pos += 1 + length


def with_suffix_case(name: bytes, suffix: bytes, cased: bytes) -> bytes:
    """``name`` (uncompressed wire) with its trailing labels ``suffix`` written as ``cased``,
    the same labels in another letter case; ``name`` itself when it does not end in
    ``suffix`` on a label boundary."""
    cut = len(name) - len(suffix)
    if cut < 0 or len(cased) != len(suffix) or not name.endswith(suffix):
        return name
    if cut and cut not in label_offsets(name):
        return name
    return name[:cut] + cased


_IN_ADDR_ARPA = b"\x07in-addr\x04arpa\x00"


def ipv4_from_reverse(wire: bytes, offsets: Sequence[int]) -> str | None:
    """The IPv4 address a complete ``d.c.b.a.in-addr.arpa.`` wire name spells (canonical:
    no leading zeros), else None. Lower-case or not, it has no letters to care about."""
    if len(offsets) != 7 or wire[offsets[4] :] != _IN_ADDR_ARPA:
        return None
    octets = []
    for index in (3, 2, 1, 0):
        start = offsets[index] + 1
        label = wire[start : offsets[index + 1]]
        if not label.isdigit() or len(label) > 3 or (len(label) > 1 and label[0] == 0x30):
            return None
        if int(label) > 255:
            return None
        octets.append(label.decode("ascii"))
    return ".".join(octets)


def check_name(data: bytes, pos: int, end: int) -> int:
    """Check the possibly compressed name at ``pos`` as dnspython reads it; the offset just
    past it where it is stored. FormError for a label or pointer running past ``end``, a
    pointer that does not go below where the name began and then below the last one (so
    no loops, no forward references), what a pointer leads to not ending below where it
    jumped from, a reserved label type, or a name over 255 octets. dnspython decodes these
    bytes later (the chain, loadbalance, truncation): it must not fail there."""
    after = 0  # just past the name where it is stored: set at the first pointer
    size = 0
    hops = 0
    lowest = pos
    while True:
        if pos >= end:
            raise FormError("name runs past its end")
        length = data[pos]
        if length == 0:
            return after or pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 2 > end:
                raise FormError("truncated compression pointer")
            if not after:
                after = pos + 2
            hops += 1
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= lowest or hops > MAX_POINTERS:
                raise FormError("compression pointer loop or forward pointer")
            end, pos, lowest = lowest, target, target
            continue
        if length & 0xC0:
            raise FormError("unknown label type")
        size += 1 + length
        if size > 254:
            raise FormError("name longer than 255 octets")
        pos += 1 + length
