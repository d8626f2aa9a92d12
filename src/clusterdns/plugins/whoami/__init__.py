"""whoami: tell the client its address, port and transport."""

from __future__ import annotations

from collections.abc import Sequence

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import Directive


class Whoami(Plugin):
    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        response = req.make_response()
        qname = dns.name.from_text(req.query.original_name)
        host, port = req.client
        rdtype = dns.rdatatype.AAAA if ":" in host else dns.rdatatype.A
        rdclass = dns.rdataclass.RdataClass.make(req.qclass)
        address = dns.rrset.from_text(qname, 0, rdclass, rdtype, host)
        srv_owner = dns.name.Name((b"_" + req.transport.encode(), *qname.labels))
        srv = dns.rrset.from_text(srv_owner, 0, rdclass, dns.rdatatype.SRV, f"0 0 {port} .")
        response.additional = [address, srv]
        return Reply.of(response, plugin="whoami")


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.expect_args(0, 0)
    directive.no_block()
    return Whoami()
