"""any: RFC 8482 minimal answer to qtype ANY."""

from __future__ import annotations

from collections.abc import Sequence

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.core.fast import SLOW, SlowType
from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import Directive
from clusterdns.wire import Query


class Any(Plugin):
    def answer_fast(self, query: Query, limit: int, payload: int) -> SlowType | None:
        return SLOW if query.qtype == dns.rdatatype.ANY else None

    def passes_express(self, lower: bytes, qtype: int, flags: int, do: bool) -> bool:
        return qtype != dns.rdatatype.ANY  # as answer_fast() (core/fast.py ExpressPassable)

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        if req.qtype != dns.rdatatype.ANY:
            return await next_handler(req)
        response = req.make_response()
        owner = dns.name.from_text(req.query.original_name)
        response.answer = [
            dns.rrset.from_text(
                owner,
                8482,
                dns.rdataclass.RdataClass.make(req.qclass),
                dns.rdatatype.HINFO,
                '"ANY obsoleted" "See RFC 8482"',
            )
        ]
        return Reply.of(response, plugin="any")


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.expect_args(0, 0)
    directive.no_block()
    return Any()
