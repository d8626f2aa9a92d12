"""Replies built on the wire from records, without dnspython: the first-sight fast path.

A record plugin describes its answer as :data:`Record` tuples (owner, type, TTL, RDATA
parts) and :func:`build_reply` writes the reply to the client's query: header, the
client's own question bytes (its letter case, 0x20), owners and RDATA names compressed
exactly as dnspython's renderer compresses them (the tests hold the two byte for byte),
records dropped from the end with TC when they exceed ``limit`` (miekg/dns's truncation,
what CoreDNS does), and the OPT record mirrored when the query had one.

Names are uncompressed, lower-case wire bytes. RDATA is a tuple of parts: ``bytes`` are
copied as they are; a :class:`Compressible` part is a domain name that may be compressed
and is remembered for later names (CNAME, NS, PTR, SOA, MX: RFC 3597 section 4); an SRV
target is plain ``bytes`` (RFC 2782: never compressed).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence
from typing import Final

from clusterdns.wire.query import EDNS_DO, FLAG_AA, FLAG_CD, FLAG_QR, FLAG_RD, FLAG_TC, Query

# Refresh, retry and expire of the SOA that CoreDNS's record plugins (kubernetes,
# k8s_external, etcd) make up for their zones; its minimum is the zone's TTL.
SOA_TIMERS: Final = (7200, 1800, 86400)

TYPE_A: Final = 1
TYPE_NS: Final = 2
TYPE_CNAME: Final = 5
TYPE_SOA: Final = 6
TYPE_PTR: Final = 12
TYPE_MX: Final = 15
TYPE_TXT: Final = 16
TYPE_AAAA: Final = 28
TYPE_SRV: Final = 33
CLASS_IN: Final = 1
AUTHORITATIVE: Final = FLAG_QR | FLAG_AA

_HEADER: Final = struct.Struct("!HHHHHH")
_RR_FIXED: Final = struct.Struct("!HHIH")
_POINTER: Final = struct.Struct("!H")
_RDLENGTH: Final = _POINTER
_QUESTION_POINTER: Final = b"\xc0\x0c"
_OPT_FIXED: Final = struct.Struct("!BHHIH")
_OPT_LEN: Final = 11
_SOA_NUMBERS: Final = struct.Struct("!IIIII")
_SRV_NUMBERS: Final = struct.Struct("!HHH")
_MAX_POINTER: Final = 0x3FFF


class Compressible(bytes):
    """A domain name in RDATA (uncompressed, lower-case wire) that may be compressed."""

    __slots__ = ()


RdataPart = bytes  # plain bytes, or a Compressible name
# (owner name in wire form, type, TTL, RDATA parts)
Record = tuple[bytes, int, int, tuple[RdataPart, ...]]


# --- RDATA builders --------------------------------------------------------------------------


def a_rdata(ip: str) -> tuple[bytes]:
    return (socket.inet_pton(socket.AF_INET, ip),)


def aaaa_rdata(ip: str) -> tuple[bytes]:
    return (socket.inet_pton(socket.AF_INET6, ip),)


def address_rdata(ip: str) -> tuple[int, tuple[bytes]]:
    """(A or AAAA, RDATA) of an IP in text form (OSError if it is not one)."""
    if ":" in ip:
        return TYPE_AAAA, (socket.inet_pton(socket.AF_INET6, ip),)
    return TYPE_A, (socket.inet_pton(socket.AF_INET, ip),)


def name_rdata(target: bytes) -> tuple[bytes]:
    """CNAME, NS and PTR: one compressible name."""
    return (Compressible(target),)


def srv_rdata(priority: int, weight: int, port: int, target: bytes) -> tuple[bytes]:
    return (_SRV_NUMBERS.pack(priority, weight, port) + target,)


def mx_rdata(preference: int, exchange: bytes) -> tuple[bytes, bytes]:
    return (_POINTER.pack(preference), Compressible(exchange))


def txt_rdata(*strings: bytes) -> tuple[bytes]:
    """Character-strings of at most 255 bytes each (longer ones are split)."""
    out = bytearray()
    for text in strings or (b"",):
        if not text:
            out += b"\x00"
        for start in range(0, len(text), 255):
            chunk = text[start : start + 255]
            out.append(len(chunk))
            out += chunk
    return (bytes(out),)


def soa_numbers(serial: int, refresh: int, retry: int, expire: int, minimum: int) -> bytes:
    """The fixed tail of SOA RDATA."""
    return _SOA_NUMBERS.pack(serial & 0xFFFFFFFF, refresh, retry, expire, minimum)


def soa_rdata(
    mname: bytes, rname: bytes, serial: int, refresh: int, retry: int, expire: int, minimum: int
) -> tuple[bytes, bytes, bytes]:
    return (
        Compressible(mname),
        Compressible(rname),
        soa_numbers(serial, refresh, retry, expire, minimum),
    )


def opt_record(payload: int, rcode: int, do: bool) -> bytes:
    """An OPT RR advertising ``payload`` with the extended bits of ``rcode``."""
    ttl = ((rcode >> 4) & 0xFF) << 24
    if do:
        ttl |= EDNS_DO
    return _OPT_FIXED.pack(0, 41, payload, ttl, 0)


# --- the builder ----------------------------------------------------------------------------


def _write_name(out: bytearray, name: bytes, table: dict[bytes, int]) -> None:
    """Append ``name`` compressed against ``table`` and remember its new suffixes.

    dnspython's rule: the longest suffix already written becomes a pointer; every suffix
    written in full (but the root) that starts within pointer reach is remembered."""
    pos = 0
    while True:
        length = name[pos]
        if length == 0:
            out.append(0)
            return
        suffix = name[pos:] if pos else name
        at = table.get(suffix)
        if at is not None:
            out += _POINTER.pack(0xC000 | at)
            return
        here = len(out)
        if here <= _MAX_POINTER:
            table[suffix] = here
        end = pos + 1 + length
        out += name[pos:end]
        pos = end


def _write_rdata(out: bytearray, rdata: tuple[bytes, ...], table: dict[bytes, int]) -> None:
    fixed = len(out) - 2
    for part in rdata:
        if type(part) is Compressible:
            _write_name(out, part, table)
        else:
            out += part
    _RDLENGTH.pack_into(out, fixed, len(out) - fixed - 2)


def question_table(query: Query) -> dict[bytes, int]:
    """The compression table after the question: every suffix of the question name but
    the root, at its offset in the message."""
    lower = query.qname_lower
    return {lower[offset:]: 12 + offset for offset in query.label_offsets[:-1]}


def build_reply(
    query: Query,
    *,
    rcode: int = 0,
    answer: Sequence[Record] = (),
    authority: Sequence[Record] = (),
    additional: Sequence[Record] = (),
    limit: int = 65535,
    payload: int = 4096,
    flags: int = AUTHORITATIVE,
) -> bytes:
    """The reply to ``query``: its ID, RD and CD, ``flags`` (QR, AA...), ``rcode``, its own
    question bytes, the records (dropped from the end with TC set when the reply would
    exceed ``limit``), and an OPT advertising ``payload`` when the query had one."""
    edns = query.edns
    opt = b"" if edns is None else opt_record(payload, rcode, edns.do)
    room = limit - len(opt)
    qname = query.qname_lower
    out = bytearray(query.data[: query.question_end])
    # The compression table (every suffix written so far, dnspython's rule) is built only
    # when a name other than the question's is written: an owner that is the question
    # name is always the pointer to offset 12, and plain RDATA needs no table.
    table: dict[bytes, int] | None = None
    counts = [0, 0, 0]
    truncated = False
    for section, records in enumerate((answer, authority, additional)):
        for owner, rtype, ttl, rdata in records:
            mark = len(out)
            if owner == qname:
                out += _QUESTION_POINTER
            else:
                if table is None:
                    table = question_table(query)
                _write_name(out, owner, table)
            if len(rdata) == 1 and type(rdata[0]) is not Compressible:
                data = rdata[0]
                out += _RR_FIXED.pack(rtype, CLASS_IN, ttl, len(data))
                out += data
            else:
                if table is None:
                    table = question_table(query)
                out += _RR_FIXED.pack(rtype, CLASS_IN, ttl, 0)
                _write_rdata(out, rdata, table)
            if len(out) > room:
                # Drop this record and stop: nothing after it is sent (so the names it
                # added to the table are never pointed at).
                del out[mark:]
                truncated = True
                break
            counts[section] += 1
        if truncated:
            break
    reply_flags = (flags & ~0x000F) | (query.flags & (FLAG_RD | FLAG_CD)) | (rcode & 0xF)
    if truncated:
        reply_flags |= FLAG_TC
    _HEADER.pack_into(
        out, 0, query.id, reply_flags, 1, counts[0], counts[1], counts[2] + (1 if opt else 0)
    )
    if opt:
        out += opt
    return bytes(out)


# --- two replies written without a table: the commonest first-sight questions -------------

_ID_FLAGS: Final = struct.Struct("!HH")
_COUNTS: Final = struct.Struct("!HHHH")
# QDCOUNT..ARCOUNT of a reply with one question and one answer, without and with OPT.
_ONE_ANSWER: Final = _COUNTS.pack(1, 1, 0, 0)
_ONE_ANSWER_OPT: Final = _COUNTS.pack(1, 1, 0, 1)


_OPTS: dict[tuple[int, int, bool], bytes] = {}
# negative_with_soa()'s SOA records, by what makes them (see there).
_SOAS: dict[tuple[int, int, bytes, bytes, bytes], bytes] = {}


def _opt(payload: int, rcode: int, do: bool) -> bytes:
    """opt_record(), remembered (a handful of distinct ones ever exist)."""
    key = (payload, rcode, do)
    opt = _OPTS.get(key)
    if opt is None:
        if len(_OPTS) > 64:
            _OPTS.clear()
        opt = _OPTS[key] = opt_record(payload, rcode, do)
    return opt


def owned_by_question(
    msg_id: int,
    flags: int,
    question: bytes,
    edns_do: bool | None,
    rtype: int,
    ttl: int,
    rdatas: Sequence[bytes],
    limit: int,
    payload: int,
) -> bytes | None:
    """NOERROR with one record per plain RDATA (no names in it: A, AAAA; or one name that
    shares no suffix with the question's, so nothing in it would be compressed: a PTR
    target under the cluster zone), each owned by the question name (a pointer to offset
    12); None if it would need truncation. The query is
    given by its ID, flags, question section and DO bit (None: no OPT). The same bytes as
    build_reply() gives those records."""
    fixed = _QUESTION_POINTER + _RR_FIXED.pack(rtype, CLASS_IN, ttl, len(rdatas[0]))
    count = len(rdatas)
    head = _ID_FLAGS.pack(msg_id, AUTHORITATIVE | (flags & (FLAG_RD | FLAG_CD)))
    if count == 1:  # nearly always: the counts are one of two constants
        if edns_do is None:
            wire = b"".join((head, _ONE_ANSWER, question, fixed, rdatas[0]))
        else:
            opt = _opt(payload, 0, edns_do)
            wire = b"".join((head, _ONE_ANSWER_OPT, question, fixed, rdatas[0], opt))
        return wire if len(wire) <= limit else None
    wire = b"".join(
        (
            head,
            _COUNTS.pack(1, count, 0, 0 if edns_do is None else 1),
            question,
            b"".join([fixed + r for r in rdatas]),
            b"" if edns_do is None else _opt(payload, 0, edns_do),
        )
    )
    return wire if len(wire) <= limit else None


_SRV_FIXED: Final = struct.Struct("!HHIHHHH")  # type, class, TTL, length, priority...port


def srv_with_address(
    msg_id: int,
    flags: int,
    question: bytes,
    edns_do: bool | None,
    ttl: int,
    port: int,
    target: bytes,
    target_at: int,
    address_type: int,
    address: bytes,
    limit: int,
    payload: int,
) -> bytes | None:
    """NOERROR with one SRV record (priority 0, weight 100, ``port``) owned by the question
    name, whose ``target`` (wire form, never compressed: RFC 2782) is also the question's
    suffix at offset ``target_at`` of the message, and the target's one address record in
    the additional section, its owner a pointer there (an A/AAAA ``address``). The query
    is given by its ID, flags, question section and DO bit (None: no OPT). The same bytes
    as build_reply() gives those records; None if it would need truncation."""
    if target_at > _MAX_POINTER:
        return None
    wire = b"".join(
        (
            _ID_FLAGS.pack(msg_id, AUTHORITATIVE | (flags & (FLAG_RD | FLAG_CD))),
            _COUNTS.pack(1, 1, 0, 1 if edns_do is None else 2),
            question,
            _QUESTION_POINTER,
            _SRV_FIXED.pack(TYPE_SRV, CLASS_IN, ttl, 6 + len(target), 0, 100, port),
            target,
            _POINTER.pack(0xC000 | target_at),
            _RR_FIXED.pack(address_type, CLASS_IN, ttl, len(address)),
            address,
            b"" if edns_do is None else _opt(payload, 0, edns_do),
        )
    )
    return wire if len(wire) <= limit else None


def negative_with_soa(
    msg_id: int,
    flags: int,
    question: bytes,
    edns_do: bool | None,
    rcode: int,
    zone_at: int,
    ttl: int,
    mname_head: bytes,
    rname_head: bytes,
    numbers: bytes,
    limit: int,
    payload: int,
) -> bytes | None:
    """NXDOMAIN (or NODATA) carrying the SOA of the zone that starts at offset ``zone_at``
    of the message (in the question name): its owner, and the zone at the end of its mname
    and rname, are pointers into the question. The query is given by its ID, flags,
    question section and DO bit (None: no OPT). ``mname_head``/``rname_head`` are the
    labels before the zone (``ns.dns``, ``hostmaster``) in wire form, ``numbers`` the
    packed serial..minimum. Only right when no other suffix of those names is in the
    question (a question under ``svc.<zone>``) and the zone is not the root (never
    compressed), which is what the caller checks; the same bytes as build_reply() then."""
    if zone_at > _MAX_POINTER:
        return None
    # The SOA record depends on the zone's offset in the question and the rest of the
    # arguments only: a handful of each (name lengths, one serial at a time).
    soa_key = (zone_at, ttl, mname_head, rname_head, numbers)
    soa = _SOAS.get(soa_key)
    if soa is None:
        pointer = _POINTER.pack(0xC000 | zone_at)
        rdata = mname_head + pointer + rname_head + pointer + numbers
        soa = pointer + _RR_FIXED.pack(TYPE_SOA, CLASS_IN, ttl, len(rdata)) + rdata
        if len(_SOAS) >= 1024:
            _SOAS.clear()
        _SOAS[soa_key] = soa
    wire = b"".join(
        (
            _ID_FLAGS.pack(msg_id, AUTHORITATIVE | (flags & (FLAG_RD | FLAG_CD)) | rcode),
            _COUNTS.pack(1, 0, 1, 0 if edns_do is None else 1),
            question,
            soa,
            b"" if edns_do is None else _opt(payload, rcode, edns_do),
        )
    )
    return wire if len(wire) <= limit else None


__all__ = [
    "AUTHORITATIVE",
    "CLASS_IN",
    "TYPE_A",
    "TYPE_AAAA",
    "TYPE_CNAME",
    "TYPE_MX",
    "TYPE_NS",
    "TYPE_PTR",
    "TYPE_SOA",
    "TYPE_SRV",
    "TYPE_TXT",
    "Compressible",
    "Record",
    "a_rdata",
    "aaaa_rdata",
    "address_rdata",
    "build_reply",
    "mx_rdata",
    "name_rdata",
    "negative_with_soa",
    "opt_record",
    "owned_by_question",
    "soa_numbers",
    "soa_rdata",
    "srv_rdata",
    "txt_rdata",
]
