"""nsid against a real server: the NSID option only for clients that ask, on fast, memoised
and chain replies alike, and the directive's parsing."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.nsid import Nsid
from tests.helpers.server import RunningServer, running_server

pytestmark = pytest.mark.timeout(30)

COREFILE = """
example.org {
    nsid Use The Force
    acl {
        block type TXT
    }
    cache
    hosts {
        10.0.0.1 a.example.org
    }
}
whoami.test {
    nsid
    whoami
}
"""


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with running_server(COREFILE) as running:
        yield running


async def ask(
    port: int, name: str, rdtype: str, *, nsid: bool, edns: bool = True, tcp: bool = False
) -> dns.message.Message:
    options = [dns.edns.GenericOption(dns.edns.NSID, b"")] if nsid else []
    query = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, options=options)
    if tcp:
        return await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=2)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=2)


def nsid_of(reply: dns.message.Message) -> bytes | None:
    for option in reply.options:
        if option.otype == dns.edns.NSID:
            return option.to_wire()
    return None


FORCE = b"Use The Force"
CASES = [
    pytest.param("a.example.org", "A", True, FORCE, "NOERROR", id="fast answer, asked → NSID"),
    pytest.param("a.example.org", "A", False, None, "NOERROR", id="fast answer, not asked → none"),
    pytest.param("b.example.org", "A", True, None, "SERVFAIL", id="error the server writes (end of chain) → none"),
    pytest.param("a.example.org", "TXT", True, FORCE, "REFUSED", id="acl refusal after nsid → NSID"),
    pytest.param("x.whoami.test", "A", True, socket.gethostname().encode(), "NOERROR", id="chain answer, default data is the host name"),
    pytest.param("x.whoami.test", "A", False, None, "NOERROR", id="chain answer, not asked → none"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rdtype", "asked", "expected", "rcode"), CASES)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_nsid(
    server: RunningServer,
    name: str,
    rdtype: str,
    asked: bool,
    expected: bytes | None,
    rcode: str,
    tcp: bool,
) -> None:
    # Three times: the first is answered by the chain (cache miss), the next from the
    # cache's fast path, then the reply memo.
    for _ in range(3):
        reply = await ask(server.port, name, rdtype, nsid=asked, tcp=tcp)
        assert dns.rcode.to_text(reply.rcode()) == rcode
        assert nsid_of(reply) == expected


async def test_memoised_replies_with_and_without_nsid_do_not_mix(server: RunningServer) -> None:
    for asked in (True, False, True, False, True, False):
        for _ in range(3):
            reply = await ask(server.port, "a.example.org", "A", nsid=asked)
            assert nsid_of(reply) == (FORCE if asked else None)
            assert [str(r) for r in reply.answer[0]] == ["10.0.0.1"]
    hits, _ = server.app.process.metrics.memo.totals()
    assert hits > 0


async def test_no_edns_no_nsid(server: RunningServer) -> None:
    reply = await ask(server.port, "a.example.org", "A", nsid=False, edns=False)
    assert reply.edns < 0


def nsid_plugin(body: str) -> Nsid:
    instance = build_instance(
        parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
    )
    plugin = instance.blocks[0].plugin("nsid")
    assert isinstance(plugin, Nsid)
    return plugin


@pytest.mark.parametrize(
    ("body", "data"),
    [
        ("nsid", socket.gethostname()),
        ("nsid node-1", "node-1"),
        ("nsid Use  The Force", "Use The Force"),
    ],
)
def test_setup(body: str, data: str) -> None:
    assert nsid_plugin(body).data == data


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("nsid a\nnsid b", "Corefile:3: nsid: this plugin can only be used once"),
        ("nsid {\nx\n}", "Corefile:2: nsid: unexpected block"),
    ],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        nsid_plugin(body)
