"""nsid: the RFC 5001 name server identifier in the OPT record of replies to clients that
ask for it (an empty NSID option in their query).

An edit of finished replies (core/fast.py FastEdit): fast answers, memoised ones and chain
replies alike. The reply memo keys on the query's bytes, EDNS options included, so a
question asked with NSID and the same one without never share a memoised reply.
"""

from __future__ import annotations

from clusterdns.core.plugin import Plugin
from clusterdns.wire import Query
from clusterdns.wire.edit import OPTION_NSID, add_option, find_option


class Nsid(Plugin):
    name = "nsid"

    def __init__(self, data: str) -> None:
        self.data = data
        self.payload = data.encode()

    def edit_fast(self, query: Query, wire: bytes, limit: int) -> bytes:
        edns = query.edns
        if edns is None or not edns.options or find_option(edns.options, OPTION_NSID) is None:
            return wire
        edited = add_option(wire, OPTION_NSID, self.payload)
        # RFC 5001 lets a server leave the NSID out; a reply never grows past its limit.
        return edited if len(edited) <= limit else wire
