"""Small edits of finished replies, on the bytes: EDNS options, header flags, sections.

Used by plugins that change every reply of the plugins after them the same way (nsid
adds an option, header sets flags, minimal drops sections, acl's EDE on its refusals), on
the fast path and after the chain alike. Every function takes a complete, well-formed
message (our own encoders' output) and returns a new one; a reply whose layout it cannot
follow is returned unchanged rather than guessed at.
"""

from __future__ import annotations

import struct
from typing import Final

from clusterdns.wire.errors import FormError
from clusterdns.wire.query import HEADER, RR_FIXED, TYPE_OPT, skip_name

OPTION_NSID: Final = 3
OPTION_EDE: Final = 15
# RFC 8914 extended error codes.
EDE_BLOCKED: Final = 15
EDE_FILTERED: Final = 17

_OPTION: Final = struct.Struct("!HH")
_RDLENGTH: Final = struct.Struct("!H")


def find_option(options: bytes, code: int) -> bytes | None:
    """The data of the first EDNS option ``code`` in an OPT RDATA (``Edns.options``)."""
    pos = 0
    end = len(options)
    while pos + 4 <= end:
        option, length = _OPTION.unpack_from(options, pos)
        if option == code:
            return options[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return None


def _records(wire: bytes) -> tuple[int, list[tuple[int, int, int]]] | None:
    """(end of the question section, [(start, end, type) of every record]), or None when
    the message cannot be walked."""
    if len(wire) < 12:
        return None
    _, _, qdcount, ancount, nscount, arcount = HEADER.unpack_from(wire)
    try:
        pos = 12
        for _ in range(qdcount):
            pos = skip_name(wire, pos) + 4
        question_end = pos
        records = []
        for _ in range(ancount + nscount + arcount):
            start = pos
            pos = skip_name(wire, pos)
            if pos + 10 > len(wire):
                return None
            rtype, _, _, rdlength = RR_FIXED.unpack_from(wire, pos)
            pos += 10 + rdlength
            if pos > len(wire):
                return None
            records.append((start, pos, rtype))
    except FormError:
        return None
    if question_end > len(wire):
        return None
    return question_end, records


def add_option(wire: bytes, code: int, data: bytes) -> bytes:
    """``wire`` with the EDNS option ``code`` appended to its OPT record; unchanged when
    it has no OPT (a client that sent none gets none, RFC 6891 section 7)."""
    walked = _records(wire)
    if walked is None:
        return wire
    _, records = walked
    ancount, nscount = HEADER.unpack_from(wire)[3:5]
    for index in range(ancount + nscount, len(records)):
        start, end, rtype = records[index]
        if rtype != TYPE_OPT:
            continue
        # The OPT owner is the root (one byte): RDLENGTH sits 9 bytes in.
        rdlength_at = start + 9
        (rdlength,) = _RDLENGTH.unpack_from(wire, rdlength_at)
        option = _OPTION.pack(code, len(data)) + data
        return b"".join(
            (
                wire[:rdlength_at],
                _RDLENGTH.pack(rdlength + len(option)),
                wire[rdlength_at + 2 : end],
                option,
                wire[end:],
            )
        )
    return wire


def set_flags(wire: bytes, set_mask: int, clear_mask: int) -> bytes:
    """``wire`` with header flag bits ``set_mask`` set and ``clear_mask`` cleared."""
    flags = (wire[2] << 8) | wire[3]
    changed = (flags | set_mask) & ~clear_mask & 0xFFFF
    if changed == flags:
        return wire
    return wire[:2] + changed.to_bytes(2, "big") + wire[4:]


def answer_only(wire: bytes) -> bytes:
    """``wire`` without its authority records and with no additional records but the
    OPT; unchanged when there is nothing to drop or it cannot be walked."""
    _, _, _, ancount, nscount, arcount = HEADER.unpack_from(wire)
    if nscount == 0 and arcount == 0:
        return wire
    walked = _records(wire)
    if walked is None:
        return wire
    question_end, records = walked
    kept = [wire[start:end] for start, end, _ in records[:ancount]]
    opts = [
        wire[start:end] for start, end, rtype in records[ancount + nscount :] if rtype == TYPE_OPT
    ]
    if nscount == 0 and len(opts) == arcount:
        return wire
    head = HEADER.pack(*HEADER.unpack_from(wire)[:3], ancount, 0, len(opts))
    return b"".join((head, wire[12:question_end], *kept, *opts))


def opt_options(wire: bytes) -> bytes | None:
    """The RDATA (options) of a reply's OPT record, None when it has none (for tests and
    diagnostics)."""
    walked = _records(wire)
    if walked is None:
        return None
    _, records = walked
    for start, end, rtype in records:
        if rtype == TYPE_OPT:
            return wire[start + 11 : end]
    return None


def authority_types(wire: bytes) -> list[int]:
    """The types of a reply's authority records (empty when it cannot be walked)."""
    walked = _records(wire)
    if walked is None:
        return []
    _, records = walked
    ancount, nscount = HEADER.unpack_from(wire)[3:5]
    return [rtype for _, _, rtype in records[ancount : ancount + nscount]]
