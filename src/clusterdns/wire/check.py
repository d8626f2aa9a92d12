"""A structural check of a whole message from elsewhere (an upstream's reply) by hand.

What comes back from an upstream is kept as bytes (cache, forward) and only sometimes
decoded by dnspython later (loadbalance rotating MX sets, truncating for a small client).
A reply that dnspython cannot read would then raise far from where it came in: this walk
rejects it at the door, in a few microseconds rather than dnspython's ~100. It checks what
miekg/dns checks when it unpacks: every section's records framed inside the message, names
(compression pointers followed, and refused unless they point backwards, as dnspython
wants; names over 255 octets refused), and the rdata of
the types whose layout is fixed or holds names.
"""

from __future__ import annotations

from typing import Final

from clusterdns.wire.errors import FormError
from clusterdns.wire.names import check_name
from clusterdns.wire.query import HEADER, RR_FIXED

# rdata layouts: fixed size, or (octets before a name, names, octets after).
_FIXED_SIZE: Final = {1: 4, 28: 16}
_NAMES: Final = {
    2: (0, 1, 0),  # NS
    5: (0, 1, 0),  # CNAME
    12: (0, 1, 0),  # PTR
    39: (0, 1, 0),  # DNAME
    15: (2, 1, 0),  # MX
    33: (6, 1, 0),  # SRV
    6: (0, 2, 20),  # SOA
}
_TXT: Final = 16
_OPT: Final = 41


def _rdata(data: bytes, rtype: int, start: int, end: int) -> None:
    size = _FIXED_SIZE.get(rtype)
    if size is not None:
        if end - start != size:
            raise FormError(f"type {rtype} rdata of {end - start} octets")
        return
    layout = _NAMES.get(rtype)
    if layout is not None:
        before, names, after = layout
        pos = start + before
        for _ in range(names):
            pos = check_name(data, pos, end)
        if pos + after != end:
            raise FormError(f"type {rtype} rdata does not fill its length")
        return
    if rtype == _TXT:
        if start == end:
            raise FormError("TXT rdata without a string")
        pos = start
        while pos < end:
            pos += 1 + data[pos]
        if pos != end:
            raise FormError("TXT strings do not fill the rdata")
    elif rtype == _OPT:
        pos = start
        while pos + 4 <= end:
            pos += 4 + ((data[pos + 2] << 8) | data[pos + 3])
        if pos != end:
            raise FormError("EDNS options do not fill the OPT rdata")


def check_message(data: bytes) -> None:
    """Raise FormError unless every section of ``data`` is well framed."""
    if len(data) < 12:
        raise FormError("shorter than a DNS header")
    _, _, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    limit = len(data)
    pos = 12
    for _ in range(qdcount):
        pos = check_name(data, pos, limit) + 4
        if pos > limit:
            raise FormError("question runs past the end of the message")
    for _ in range(ancount + nscount + arcount):
        pos = check_name(data, pos, limit)
        if pos + 10 > limit:
            raise FormError("record header runs past the end of the message")
        rtype, _, _, rdlength = RR_FIXED.unpack_from(data, pos)
        pos += 10
        end = pos + rdlength
        if end > limit:
            raise FormError("record data runs past the end of the message")
        _rdata(data, rtype, pos, end)
        pos = end
    if pos != limit:
        # dnspython, which decodes these bytes later, refuses trailing junk too.
        raise FormError("bytes after the last record")


__all__ = ["check_message"]
