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
from clusterdns.wire.query import HEADER, MAX_POINTERS, RR_FIXED

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


def _name(data: bytes, pos: int, end: int) -> int:
    """Check the name at ``pos`` (which must end before ``end``); the offset past it."""
    after = 0
    size = 0
    hops = 0
    limit = len(data)
    while True:
        if pos >= (end if not after else limit):
            raise FormError("name runs past its end")
        length = data[pos]
        if length == 0:
            return after or pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 2 > (end if not after else limit):
                raise FormError("truncated compression pointer")
            if not after:
                after = pos + 2
            hops += 1
            target = ((length & 0x3F) << 8) | data[pos + 1]
            # Strictly backwards, as dnspython insists: no loops, no forward references.
            if target >= pos or hops > MAX_POINTERS:
                raise FormError("compression pointer loop or forward pointer")
            pos = target
            continue
        if length & 0xC0:
            raise FormError("unknown label type")
        size += 1 + length
        if size > 254:
            raise FormError("name longer than 255 octets")
        pos += 1 + length


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
            pos = _name(data, pos, end)
        if pos + after != end:
            raise FormError(f"type {rtype} rdata does not fill its length")
        return
    if rtype == _TXT:
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
        pos = _name(data, pos, limit) + 4
        if pos > limit:
            raise FormError("question runs past the end of the message")
    for _ in range(ancount + nscount + arcount):
        pos = _name(data, pos, limit)
        if pos + 10 > limit:
            raise FormError("record header runs past the end of the message")
        rtype, _, _, rdlength = RR_FIXED.unpack_from(data, pos)
        pos += 10
        end = pos + rdlength
        if end > limit:
            raise FormError("record data runs past the end of the message")
        _rdata(data, rtype, pos, end)
        pos = end


__all__ = ["check_message"]
