"""minimal against a real server: positive replies lose authority and additional records
(the OPT stays), negative answers and delegations keep them; fast, memoised and chain."""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.minimal import minimal
from clusterdns.wire import parse_query
from tests.helpers.dnsclient import query
from tests.helpers.server import running_server

pytestmark = pytest.mark.timeout(30)

ZONE = """\
$ORIGIN example.org.
@ 300 SOA ns admin 1 7200 3600 1209600 300
@ 300 NS ns
ns 300 A 192.0.2.53
www 300 A 192.0.2.1
sub 300 NS ns.sub
ns.sub 300 A 192.0.2.54
"""
COREFILE = """
example.org {{
    {minimal}
    cache
    file {zone}
}}
whoami.test {{
    {minimal}
    whoami
}}
"""

# (name, type, rcode, answers, authority with minimal, additional with minimal)
CASES = [
    pytest.param("www.example.org", "A", "NOERROR", 1, 0, 0, id="answer: NS authority dropped"),
    pytest.param("example.org", "NS", "NOERROR", 1, 0, 0, id="answer: glue dropped"),
    pytest.param("nx.example.org", "A", "NXDOMAIN", 0, 1, 0, id="NXDOMAIN keeps its SOA"),
    pytest.param("www.example.org", "MX", "NOERROR", 0, 1, 0, id="NODATA keeps its SOA"),
    pytest.param("x.sub.example.org", "A", "NOERROR", 0, 1, 1, id="delegation keeps NS and glue"),
    pytest.param("me.whoami.test", "A", "NOERROR", 0, 0, 0, id="NOERROR without answers: additional dropped"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answers", "authority", "additional"), CASES)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_minimal(
    tmp_path: Path,
    name: str,
    rdtype: str,
    rcode: str,
    answers: int,
    authority: int,
    additional: int,
    tcp: bool,
) -> None:
    (tmp_path / "db").write_text(ZONE)
    replies: dict[str, dns.message.Message] = {}
    for label, directive in (("full", ""), ("minimal", "minimal")):
        corefile = COREFILE.format(minimal=directive, zone=tmp_path / "db")
        async with running_server(corefile, tmp_path=tmp_path) as running:
            for _ in range(3):  # the chain, the cache's fast path, the reply memo
                reply = await query(running.port, name, rdtype, tcp=tcp, payload=1232)
                replies[label] = reply
                assert dns.rcode.to_text(reply.rcode()) == rcode
    full, small = replies["full"], replies["minimal"]
    assert small.answer == full.answer and len(small.answer) == answers
    assert len(small.authority) == authority
    assert len(small.additional) == additional
    assert small.edns == 0  # the OPT record stays
    if authority or additional:
        assert small.authority == full.authority and small.additional == full.additional
    else:
        assert full.authority or full.additional  # there was something to drop


def test_zone_transfers_are_left_alone() -> None:
    query_wire = dns.message.make_query("example.org", "AXFR").to_wire()
    reply = dns.message.make_response(dns.message.from_wire(query_wire))
    reply.additional.append(dns.rrset.from_text("ns.example.org.", 300, "IN", "A", "192.0.2.53"))
    wire = reply.to_wire()
    assert minimal(parse_query(query_wire), wire) == wire


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("minimal yes", "Corefile:2: minimal: expected 0 arguments"),
        ("minimal {\nx\n}", "Corefile:2: minimal: unexpected block"),
        ("minimal\nminimal", "Corefile:3: minimal: this plugin can only be used once"),
    ],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        build_instance(
            parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
        )
