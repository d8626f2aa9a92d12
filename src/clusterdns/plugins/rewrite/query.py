"""Build the query the rest of the chain sees: the client's bytes with the question
and the OPT options replaced, everything else (ID, flags, other records) kept."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Final

from clusterdns.wire import Query
from clusterdns.wire.query import HEADER, TYPE_OPT

_RR_FIXED: Final = struct.Struct("!HHIH")
_OPTION: Final = struct.Struct("!HH")
_TYPE_CLASS: Final = struct.Struct("!HH")
# CoreDNS adds an OPT advertising 4096 bytes when an edns0 rule meets a query without one.
NEW_OPT_PAYLOAD: Final = 4096

EdnsOption = tuple[int, bytes]


def decode_options(rdata: bytes) -> list[EdnsOption]:
    """Split OPT rdata into (code, data) pairs; a truncated tail is dropped."""
    options: list[EdnsOption] = []
    pos = 0
    while pos + 4 <= len(rdata):
        code, length = _OPTION.unpack_from(rdata, pos)
        pos += 4
        if pos + length > len(rdata):
            break
        options.append((code, rdata[pos : pos + length]))
        pos += length
    return options


def encode_options(options: Sequence[EdnsOption]) -> bytes:
    return b"".join(_OPTION.pack(code, len(data)) + data for code, data in options)


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            return pos + 2
        pos += 1 + length


def rebuild_query(
    query: Query,
    *,
    qname_wire: bytes,
    qtype: int,
    qclass: int,
    options: Sequence[EdnsOption] | None,
) -> bytes:
    """The query's bytes asking (qname_wire, qtype, qclass).

    ``options`` None keeps the OPT record as the client sent it (or its
    absence); a list replaces the OPT's options, adding an OPT if there was none.
    The input was accepted by parse_query, so its records are well formed.
    """
    data = query.data
    msg_id, flags, _, ancount, nscount, arcount = HEADER.unpack_from(data)
    pos = query.question_end
    records: list[bytes] = []
    opt_head: bytes | None = None
    for index in range(ancount + nscount + arcount):
        start = pos
        pos = _skip_name(data, pos)
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(data, pos)
        end = pos + 10 + rdlength
        if rtype == TYPE_OPT and index >= ancount + nscount and options is not None:
            opt_head = b"\x00" + struct.pack("!HHI", TYPE_OPT, rclass, ttl)
        else:
            records.append(data[start:end])
        pos = end
    if options is not None:
        if opt_head is None:
            opt_head = b"\x00" + struct.pack("!HHI", TYPE_OPT, NEW_OPT_PAYLOAD, 0)
            arcount += 1
        rdata = encode_options(options)
        records.append(opt_head + struct.pack("!H", len(rdata)) + rdata)
    head = HEADER.pack(msg_id, flags, 1, ancount, nscount, arcount)
    return b"".join((head, qname_wire, _TYPE_CLASS.pack(qtype, qclass), *records))
