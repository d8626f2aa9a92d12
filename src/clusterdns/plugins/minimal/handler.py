"""minimal: only the answer section in positive replies.

An edit of finished replies (core/fast.py FastEdit) on the bytes: fast, memoised and chain
replies alike.
"""

from __future__ import annotations

from typing import Final

from clusterdns.core.plugin import Plugin
from clusterdns.wire import Query
from clusterdns.wire.edit import answer_only, authority_types

TYPE_NS: Final = 2
TYPE_SOA: Final = 6
TYPE_IXFR: Final = 251
TYPE_AXFR: Final = 252
OPCODE_NOTIFY: Final = 4
OPCODE_UPDATE: Final = 5


def minimal(query: Query, wire: bytes) -> bytes:
    """``wire`` with only its answer records (and OPT) when it is a positive reply: NOERROR
    with answers, or NOERROR without answers that is neither NODATA (an SOA in the
    authority section) nor a delegation (NS records there), as CoreDNS's response
    classification has it; everything else unchanged."""
    if query.qtype in (TYPE_AXFR, TYPE_IXFR) or query.opcode in (OPCODE_NOTIFY, OPCODE_UPDATE):
        return wire
    if len(wire) < 12 or wire[3] & 0xF:
        return wire
    ancount = (wire[6] << 8) | wire[7]
    nscount = (wire[8] << 8) | wire[9]
    arcount = (wire[10] << 8) | wire[11]  # the OPT is kept: answer_only() checks it
    if nscount == 0 and arcount == 0:
        return wire
    if ancount == 0:
        types = authority_types(wire)
        if TYPE_SOA in types or TYPE_NS in types:
            return wire
    return answer_only(wire)


class Minimal(Plugin):
    name = "minimal"

    def edit_fast(self, query: Query, wire: bytes, limit: int) -> bytes:
        return minimal(query, wire)
