"""rewrite against real servers: the client always sees its own question."""

from __future__ import annotations

import asyncio
import functools
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import pytest

from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Reply, Request
from clusterdns.corefile import CorefileError
from clusterdns.plugins.rewrite.query import decode_options
from tests.helpers.dnsclient import query
from tests.helpers.server import RunningServer, running_server

SVC_ZONE = """$ORIGIN svc.test.
$TTL 60
@           SOA ns.svc.test. admin.svc.test. 1 7200 3600 1209600 60
@           NS  ns.svc.test.
ns          A   10.1.0.53
db          A   10.1.0.2
api.east    A   10.1.0.3
cname       CNAME db
web         A   10.1.0.80
lo.range  5   A 10.1.0.5
mid.range 150 A 10.1.0.6
hi.range  999 A 10.1.0.7
"""

NAMES = r"""
. {
    rewrite name foo.example.com foo.default.svc.cluster.local
    rewrite name suffix .corp.test .svc.test answer auto
    rewrite name regex (.*)-east\.rx\.test {1}.east.svc.test answer name (.*)\.east\.svc\.test {1}-east.rx.test
    rewrite name substring .sub.test .svc.test
    rewrite name exact alias.svc.test cname.svc.test answer value (.*)\.svc\.test {1}.corp.test
    rewrite stop {
        name regex (.*)\.blk\.test {1}.svc.test
        answer name (.*)\.svc\.test {1}.blk.test
    }
    hosts {
        10.0.0.1 foo.default.svc.cluster.local
        fallthrough
    }
    file svc.db svc.test
}
"""

MODES = r"""
. {
    rewrite continue name exact chain.test mid.test
    rewrite name exact mid.test db.svc.test
    rewrite name exact halt.test db.svc.test
    rewrite name exact db.svc.test api.east.svc.test
    rewrite type MX A
    rewrite class CH IN
    rewrite ttl exact web.svc.test 7
    rewrite ttl suffix .range.svc.test 100-200
    file svc.db svc.test
}
"""


@pytest.fixture
async def names_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    (tmp_path / "svc.db").write_text(SVC_ZONE)
    async with running_server(NAMES, tmp_path=tmp_path) as server:
        yield server


@pytest.fixture
async def modes_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    (tmp_path / "svc.db").write_text(SVC_ZONE)
    async with running_server(MODES, tmp_path=tmp_path) as server:
        yield server


def rrs(section: list[dns.rrset.RRset]) -> list[str]:
    """Records as 'owner TTL TYPE data' text, owner in lower case, sorted."""
    out = []
    for rrset in section:
        for rdata in rrset:
            kind = dns.rdatatype.to_text(rrset.rdtype)
            out.append(f"{rrset.name.to_text().lower()} {kind} {rdata.to_text()}")
    return sorted(out)


NAME_CASES = [
    pytest.param(
        "foo.example.com", "A", "NOERROR", ["foo.example.com. A 10.0.0.1"],
        id="seed exact foo.example.com A → answer under the asked name",
    ),
    pytest.param(
        "FoO.ExAmple.CoM", "A", "NOERROR", ["foo.example.com. A 10.0.0.1"],
        id="exact rewrite keeps the client's letter case in the question",
    ),
    pytest.param(
        "foo.example.com", "AAAA", "NOERROR", [],
        id="exact rewrite NODATA from hosts",
    ),
    pytest.param(
        "db.corp.test", "A", "NOERROR", ["db.corp.test. A 10.1.0.2"],
        id="suffix with answer auto → reverse suffix on owners",
    ),
    pytest.param(
        "api-east.rx.test", "A", "NOERROR", ["api-east.rx.test. A 10.1.0.3"],
        id="regex with answer name",
    ),
    pytest.param(
        "db.sub.test", "A", "NOERROR", ["db.svc.test. A 10.1.0.2"],
        id="substring without answer option leaves answer owners (CoreDNS)",
    ),
    pytest.param(
        "alias.svc.test", "A", "NOERROR",
        ["alias.svc.test. CNAME db.corp.test.", "db.svc.test. A 10.1.0.2"],
        id="answer value rewrites the CNAME target",
    ),
    pytest.param(
        "db.blk.test", "A", "NOERROR", ["db.blk.test. A 10.1.0.2"],
        id="block form name + answer name",
    ),
    pytest.param(
        "nope.corp.test", "A", "NXDOMAIN", [],
        id="rewritten NXDOMAIN still echoes the client's question",
    ),
    pytest.param(
        "db.svc.test", "A", "NOERROR", ["db.svc.test. A 10.1.0.2"],
        id="no rule matches → untouched",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answer"), NAME_CASES)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_name_rewrites(
    names_server: RunningServer, name: str, rdtype: str, rcode: str, answer: list[str], tcp: bool
) -> None:
    reply = await query(names_server.port, name, rdtype, tcp=tcp)
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert [q.name.to_text() for q in reply.question] == [name + "."]
    assert reply.question[0].rdtype == dns.rdatatype.from_text(rdtype)
    assert rrs(reply.answer) == answer


async def test_nxdomain_authority_is_mapped_back(names_server: RunningServer) -> None:
    reply = await query(names_server.port, "nope.corp.test", "A")
    # The SOA owner svc.test. does not end in ".svc.test.", so it stays.
    assert [rrset.name.to_text() for rrset in reply.authority] == ["svc.test."]


async def test_dig_sees_its_own_question(names_server: RunningServer) -> None:
    process = await asyncio.create_subprocess_exec(
        "dig", "@127.0.0.1", "-p", str(names_server.port), "foo.example.com", "A",
        "+noall", "+question", "+answer", "+comments", "+tries=1", "+time=2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    text = out.decode()
    assert process.returncode == 0, err.decode()
    assert "mismatch" not in text.lower()
    assert "status: NOERROR" in text
    assert ";foo.example.com.\t\tIN\tA" in text
    assert "foo.example.com.\t3600\tIN\tA\t10.0.0.1" in text


MODE_CASES = [
    pytest.param(
        "chain.test", "A", "IN", ["chain.test. A 10.1.0.2"],
        id="continue then stop: two rules apply, answer unwinds to the asked name",
    ),
    pytest.param(
        "halt.test", "A", "IN", ["halt.test. A 10.1.0.2"],
        id="stop: the later matching rule is not applied",
    ),
    pytest.param(
        "ns.svc.test", "MX", "IN", ["ns.svc.test. A 10.1.0.53"],
        id="type MX → A, question still MX",
    ),
    pytest.param(
        "ns.svc.test", "A", "CH", ["ns.svc.test. A 10.1.0.53"],
        id="class CH → IN, question still CH",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rdtype", "rdclass", "answer"), MODE_CASES)
async def test_modes_type_class(
    modes_server: RunningServer, name: str, rdtype: str, rdclass: str, answer: list[str]
) -> None:
    reply = await query(modes_server.port, name, rdtype, rdclass=rdclass)
    assert reply.rcode() == dns.rcode.NOERROR
    (question,) = reply.question
    assert question.name.to_text() == name + "."
    assert question.rdtype == dns.rdatatype.from_text(rdtype)
    assert question.rdclass == dns.rdataclass.from_text(rdclass)
    assert rrs(reply.answer) == answer


TTL_CASES = [
    pytest.param("web.svc.test", 7, id="ttl exact sets 7"),
    pytest.param("lo.range.svc.test", 100, id="ttl range raises 5 to the minimum 100"),
    pytest.param("mid.range.svc.test", 150, id="ttl range keeps 150"),
    pytest.param("hi.range.svc.test", 200, id="ttl range lowers 999 to the maximum 200"),
    pytest.param("ns.svc.test", 60, id="no ttl rule → zone TTL"),
]


@pytest.mark.parametrize(("name", "ttl"), TTL_CASES)
async def test_ttl(modes_server: RunningServer, name: str, ttl: int) -> None:
    reply = await query(modes_server.port, name, "A")
    assert [rrset.ttl for rrset in reply.answer] == [ttl]


class Capture:
    """Stands in for the rest of the chain and remembers what it was asked."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    async def __call__(self, req: Request) -> Reply:
        self.requests.append(req)
        return Reply.of(req.make_response(), plugin="capture")


def capture_after(server: RunningServer, plugin_name: str) -> Capture:
    instance = server.app.instance
    assert instance is not None
    (block,) = instance.blocks
    plugin = server.plugin(plugin_name)
    assert isinstance(plugin, Plugin)
    capture = Capture()
    block.chain = functools.partial(plugin.serve, next_handler=capture)
    return capture


EDNS0 = """
. {
    rewrite continue edns0 local set 0xffee abcd
    rewrite continue edns0 local append 0xffef 0x0102
    rewrite continue edns0 local replace 0xfff0 zzz
    rewrite continue edns0 local set 0xfff1 {client_ip}
    rewrite continue edns0 nsid append
    rewrite edns0 subnet set 24 56
    whoami
}
"""


@pytest.mark.parametrize(
    ("client_options", "expected"),
    [
        pytest.param(
            None,
            [(0xFFEE, b"abcd"), (0xFFEF, b"\x01\x02"), (0xFFF1, bytes([127, 0, 0, 1])),
             (3, b""), (8, struct.pack("!HBB", 1, 24, 0) + bytes([127, 0, 0]))],
            id="no OPT from the client → one is added with every option",
        ),
        pytest.param(
            [(0xFFEE, b"old"), (0xFFEF, b"keep"), (0xFFF0, b"x")],
            [(0xFFEE, b"abcd"), (0xFFEF, b"keep"), (0xFFF0, b"zzz"),
             (0xFFF1, bytes([127, 0, 0, 1])), (3, b""),
             (8, struct.pack("!HBB", 1, 24, 0) + bytes([127, 0, 0]))],
            id="set replaces, append keeps, replace edits existing",
        ),
    ],
)  # fmt: skip
async def test_edns0_options_reach_the_next_plugin(
    client_options: list[tuple[int, bytes]] | None, expected: list[tuple[int, bytes]]
) -> None:
    async with running_server(EDNS0) as server:
        capture = capture_after(server, "rewrite")
        if client_options is None:
            message = dns.message.make_query("who.test", "A")
        else:
            options: list[dns.edns.Option] = [
                dns.edns.GenericOption(dns.edns.OptionType.make(code), data)
                for code, data in client_options
            ]
            message = dns.message.make_query("who.test", "A", use_edns=0, options=options)
        reply = await dns.asyncquery.udp(message, "127.0.0.1", port=server.port, timeout=2)
    (seen,) = capture.requests
    assert seen.query.edns is not None
    assert decode_options(seen.query.edns.options) == expected
    assert seen.query.id == message.id
    assert seen.name == "who.test."
    # The client's own EDNS state is what comes back.
    assert (reply.edns >= 0) == (client_options is not None)


async def test_invalid_name_after_rewrite_is_servfail() -> None:
    corefile = r"""
. {
    rewrite name regex (.*)\.long\.test {1}{1}{1}{1}{1}.test
    whoami
}
"""
    async with running_server(corefile) as server:
        label = "a" * 60
        reply = await query(server.port, f"{label}.long.test", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert reply.question[0].name.to_text() == f"{label}.long.test."


BAD = [
    pytest.param("rewrite", "no rule type", id="no arguments"),
    pytest.param("rewrite bogus a b", "invalid rule type 'bogus'", id="unknown field"),
    pytest.param("rewrite name", "too few arguments", id="name without FROM TO"),
    pytest.param("rewrite name fuzzy a b", "unknown match type 'fuzzy'", id="bad match type"),
    pytest.param("rewrite name regex ([a b", "invalid regex", id="bad regex"),
    pytest.param("rewrite name regex (a) {2}.b", "more groups", id="regex group out of range"),
    pytest.param("rewrite name exact a b answer nope", "unknown answer option", id="bad answer"),
    pytest.param("rewrite answer name a b", "must begin with a name rule", id="answer alone"),
    pytest.param("rewrite type A", "exactly two arguments", id="type with one argument"),
    pytest.param("rewrite type A NOPE", "invalid type 'NOPE'", id="unknown type"),
    pytest.param("rewrite ttl a.test x", "invalid TTL 'x'", id="ttl not a number"),
    pytest.param("rewrite ttl a.test 300-100", "minimum above maximum", id="ttl range inverted"),
    pytest.param("rewrite edns0 local set 0xfffff a", "invalid edns0 local code", id="edns0 code"),
    pytest.param("rewrite edns0 local set 1 0xzz", "invalid hex data", id="edns0 hex"),
    pytest.param("rewrite edns0 local set 1 {nope}", "unsupported variable", id="edns0 variable"),
    pytest.param("rewrite edns0 local bump 1 a", "unknown edns0 action", id="edns0 action"),
    pytest.param("rewrite edns0 subnet set 33 56", "invalid prefix length", id="edns0 subnet"),
]


@pytest.mark.parametrize(("line", "message"), BAD)
async def test_setup_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(CorefileError) as caught:
        async with running_server(f". {{\n    {line}\n    whoami\n}}\n", tmp_path=tmp_path):
            pass
    text = str(caught.value)
    assert "Corefile:2" in text
    assert "rewrite:" in text
    assert message in text
