"""header against a real server: reply flags set/cleared on fast, memoised and chain
replies, query rules seen by the plugins after it, rule order, and parsing."""

from __future__ import annotations

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.header import Header, QueryHeader, masks
from clusterdns.wire.query import FLAG_AA, FLAG_RA, FLAG_RD
from tests.helpers.server import running_server

pytestmark = pytest.mark.timeout(30)

BLOCK = """
example.org {{
    header {{
{rules}
    }}
    cache
    hosts {{
        10.0.0.1 a.example.org
    }}
}}
whoami.test {{
    header {{
{rules}
    }}
    whoami
}}
"""


async def ask(port: int, name: str, *, rd: bool, tcp: bool) -> dns.message.Message:
    query = dns.message.make_query(name, "A", use_edns=0)
    if not rd:
        query.flags &= ~dns.flags.RD
    if tcp:
        return await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=2)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=2)


def flags_of(reply: dns.message.Message) -> set[str]:
    return {f for f in ("AA", "RA", "RD") if reply.flags & dns.flags.Flag[f]}


# Without header: hosts answers AA, whoami answers AA; both copy RD from the query.
CASES = [
    pytest.param("response set ra", True, {"AA", "RA", "RD"}, {"AA", "RA", "RD"}, id="response set ra"),
    pytest.param("response set ra aa\nresponse clear rd", True, {"AA", "RA"}, {"AA", "RA"}, id="set ra aa, clear rd"),
    pytest.param("response clear aa", False, set(), set(), id="clear aa"),
    pytest.param("response set aa\nresponse clear aa", True, {"RD"}, {"RD"}, id="the last rule wins"),
    pytest.param("response CLEAR AA\nresponse SET aa", True, {"AA", "RD"}, {"AA", "RD"}, id="case-insensitive, last wins"),
    pytest.param("query set rd", False, {"AA", "RD"}, {"AA", "RD"}, id="query set rd: the plugins see RD"),
    pytest.param("query clear rd", True, {"AA"}, {"AA"}, id="query clear rd"),
    pytest.param("query set rd\nresponse clear rd\nresponse set ra", False, {"AA", "RA"}, {"AA", "RA"}, id="query and response rules"),
]  # fmt: skip


@pytest.mark.parametrize(("rules", "rd", "fast", "chain"), CASES)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_flags(rules: str, rd: bool, fast: set[str], chain: set[str], tcp: bool) -> None:
    async with running_server(BLOCK.format(rules=rules)) as running:
        for _ in range(3):  # the chain, the cache's fast path, then the reply memo
            reply = await ask(running.port, "a.example.org", rd=rd, tcp=tcp)
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer
            assert flags_of(reply) == fast
        reply = await ask(running.port, "x.whoami.test", rd=rd, tcp=tcp)
        assert flags_of(reply) == chain


def header_of(body: str) -> Header:
    instance = build_instance(
        parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
    )
    plugin = instance.blocks[0].plugin("header")
    assert isinstance(plugin, Header)
    return plugin


def test_masks() -> None:
    assert masks([(FLAG_AA, True), (FLAG_RA, True), (FLAG_AA, False)]) == (FLAG_RA, FLAG_AA)
    assert masks([(FLAG_RD, False), (FLAG_RD, True)]) == (FLAG_RD, 0)


def test_only_query_rules_leave_the_fast_path() -> None:
    assert not isinstance(header_of("header {\nresponse set ra\n}"), QueryHeader)
    assert isinstance(header_of("header {\nquery set rd\n}"), QueryHeader)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("header {\nreply set ra\n}", "Corefile:3: header: invalid selector 'reply'"),
        ("header {\nresponse toggle ra\n}", "Corefile:3: header: unknown flag action 'toggle'"),
        ("header {\nresponse set\n}", "Corefile:3: header: at least one flag"),
        ("header {\nresponse\n}", "Corefile:3: header: no flag action provided"),
        ("header {\nresponse set ad\n}", "Corefile:3: header: unknown or unsupported flag 'ad'"),
        ("header", "Corefile:2: header: expected at least one"),
        ("header {\n}", "Corefile:2: header: expected at least one"),
    ],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        header_of(body)
