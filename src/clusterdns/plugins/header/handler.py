"""header: set or clear the AA, RA and RD flags of queries and of replies.

Reply rules are an edit of finished replies (core/fast.py FastEdit): fast, memoised and
chain replies alike, on the header bytes. Query rules change what the plugins after
*header* see, which only the chain can do: a block with query rules sends every query to
the chain (its gate answers CHAIN).
"""

from __future__ import annotations

from typing import Final

from clusterdns.core.fast import CHAIN, GateResult, Sinks
from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.wire import Query, parse_query
from clusterdns.wire.edit import set_flags
from clusterdns.wire.query import FLAG_AA, FLAG_RA, FLAG_RD

FLAGS: Final = {"aa": FLAG_AA, "ra": FLAG_RA, "rd": FLAG_RD}
# (flag bit, True to set / False to clear), in the order written: the last one wins.
Rule = tuple[int, bool]


def masks(rules: list[Rule]) -> tuple[int, int]:
    """The (set, clear) masks that rules applied in order amount to."""
    set_mask = clear_mask = 0
    for flag, state in rules:
        if state:
            set_mask, clear_mask = set_mask | flag, clear_mask & ~flag
        else:
            set_mask, clear_mask = set_mask & ~flag, clear_mask | flag
    return set_mask, clear_mask


class Header(Plugin):
    """Reply rules only: every query may stay on the fast path."""

    name = "header"

    def __init__(self, query_rules: list[Rule], response_rules: list[Rule]) -> None:
        self.query_rules = query_rules
        self.response_rules = response_rules
        self.query_masks = masks(query_rules)
        # A reply mirrors the RD of the query the plugins saw (CoreDNS changes the query
        # in place), then the reply rules apply.
        rd_rules = [rule for rule in query_rules if rule[0] == FLAG_RD]
        self.response_masks = masks(rd_rules + response_rules)

    def edit_fast(self, query: Query, wire: bytes, limit: int) -> bytes:
        set_mask, clear_mask = self.response_masks
        return set_flags(wire, set_mask, clear_mask)


class QueryHeader(Header):
    """Query rules as well: the chain applies them, so the fast path stops here."""

    def gate_fast(
        self, query: Query, client: tuple[str, int], limit: int, payload: int
    ) -> GateResult:
        return CHAIN

    def pass_sinks(self) -> Sinks:
        return ()

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        data = req.query.data
        edited = set_flags(data, *self.query_masks)
        if edited is not data:
            req = req.replace(parse_query(edited))
        return await next_handler(req)
