"""file against a real server: authoritative answers, referrals, wildcards, reload."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from clusterdns.corefile import CorefileError
from clusterdns.plugins.file import File
from tests.helpers.dnsclient import query
from tests.helpers.server import RunningServer, running_server

ZONE = """\
$ORIGIN example.test.
$TTL 300
@               SOA   ns1.example.test. admin.example.test. 2024010101 7200 3600 1209600 300
@               NS    ns1.example.test.
@               NS    ns.outside.net.
@               MX    10 mail.example.test.
@               A     192.0.2.1
ns1             A     192.0.2.53
ns1             AAAA  2001:db8::53
mail            A     192.0.2.25
www             CNAME web
web             CNAME host
host            A     192.0.2.80
away            CNAME target.elsewhere.net.
loop1           CNAME loop2
loop2           CNAME loop1
*               A     192.0.2.99
*               TXT   "wild"
*.apps          CNAME host
deep.ent        A     192.0.2.7
sub             NS    ns.sub.example.test.
sub             NS    ns.outside.net.
sub             DS    12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
ns.sub          A     192.0.2.200
_sip._tcp       SRV   0 5 5060 host.example.test.
"""

SOA = "example.test. 300 SOA ns1.example.test. admin.example.test. 2024010101 7200 3600 1209600 300"
APEX_NS = ["example.test. 300 NS ns.outside.net.", "example.test. 300 NS ns1.example.test."]


@dataclass
class Case:
    qname: str
    qtype: str
    rcode: str = "NOERROR"
    answer: list[str] = field(default_factory=list)
    authority: list[str] = field(default_factory=list)
    additional: list[str] = field(default_factory=list)
    aa: bool = True


CASES = [
    pytest.param(Case("example.test", "SOA", answer=[SOA], authority=APEX_NS), id="apex SOA → NS in authority"),
    pytest.param(Case("example.test", "NS", answer=APEX_NS, additional=["ns1.example.test. 300 A 192.0.2.53", "ns1.example.test. 300 AAAA 2001:db8::53"]), id="apex NS → glue in additional"),
    pytest.param(Case("example.test", "A", answer=["example.test. 300 A 192.0.2.1"], authority=APEX_NS), id="apex A"),
    pytest.param(Case("example.test", "MX", answer=["example.test. 300 MX 10 mail.example.test."], authority=APEX_NS, additional=["mail.example.test. 300 A 192.0.2.25"]), id="MX → target address in additional"),
    pytest.param(Case("_sip._tcp.example.test", "SRV", answer=["_sip._tcp.example.test. 300 SRV 0 5 5060 host.example.test."], authority=APEX_NS, additional=["host.example.test. 300 A 192.0.2.80"]), id="SRV → target address in additional"),
    pytest.param(Case("ns1.example.test", "A", answer=["ns1.example.test. 300 A 192.0.2.53"], authority=APEX_NS), id="A with apex NS in authority"),
    pytest.param(Case("ns1.example.test", "TXT", authority=[SOA]), id="NODATA → SOA"),
    pytest.param(Case("www.example.test", "A", answer=["host.example.test. 300 A 192.0.2.80", "web.example.test. 300 CNAME host.example.test.", "www.example.test. 300 CNAME web.example.test."], authority=APEX_NS), id="CNAME chain followed to the A"),
    pytest.param(Case("www.example.test", "CNAME", answer=["www.example.test. 300 CNAME web.example.test."], authority=APEX_NS), id="CNAME asked for directly"),
    pytest.param(Case("away.example.test", "A", answer=["away.example.test. 300 CNAME target.elsewhere.net."], authority=APEX_NS), id="CNAME out of zone → just the CNAME"),
    pytest.param(Case("loop1.example.test", "A", answer=["loop1.example.test. 300 CNAME loop2.example.test.", "loop2.example.test. 300 CNAME loop1.example.test."], authority=APEX_NS), id="CNAME loop stops"),
    pytest.param(Case("nothing.here.example.test", "A", answer=["nothing.here.example.test. 300 A 192.0.2.99"], authority=APEX_NS), id="wildcard synthesises under the asked name"),
    pytest.param(Case("x.example.test", "TXT", answer=['x.example.test. 300 TXT "wild"'], authority=APEX_NS), id="wildcard TXT"),
    pytest.param(Case("x.example.test", "AAAA", authority=[SOA]), id="wildcard NODATA → SOA"),
    pytest.param(Case("a.apps.example.test", "A", answer=["a.apps.example.test. 300 CNAME host.example.test.", "host.example.test. 300 A 192.0.2.80"], authority=APEX_NS), id="wildcard CNAME chased"),
    pytest.param(Case("ent.example.test", "A", authority=[SOA]), id="empty non-terminal → NODATA, not the wildcard"),
    pytest.param(Case("x.ent.example.test", "A", rcode="NXDOMAIN", authority=[SOA]), id="below an empty non-terminal the apex wildcard does not apply"),
    pytest.param(Case("apps.example.test", "A", authority=[SOA]), id="wildcard parent is an empty non-terminal → NODATA"),
    pytest.param(Case("sub.example.test", "A", authority=["sub.example.test. 300 NS ns.outside.net.", "sub.example.test. 300 NS ns.sub.example.test."], additional=["ns.sub.example.test. 300 A 192.0.2.200"], aa=False), id="delegation → referral, glue, no AA"),
    pytest.param(Case("a.b.sub.example.test", "A", authority=["sub.example.test. 300 NS ns.outside.net.", "sub.example.test. 300 NS ns.sub.example.test."], additional=["ns.sub.example.test. 300 A 192.0.2.200"], aa=False), id="below a delegation → referral"),
    pytest.param(Case("sub.example.test", "DS", answer=["sub.example.test. 300 DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"], authority=APEX_NS), id="DS at the cut is answered by the parent"),
]  # fmt: skip


def rrs(section: list[dns.rrset.RRset]) -> list[str]:
    out = []
    for rrset in section:
        for rdata in rrset:
            kind = dns.rdatatype.to_text(rrset.rdtype)
            out.append(f"{rrset.name.to_text()} {rrset.ttl} {kind} {rdata.to_text()}")
    return sorted(out)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    (tmp_path / "db.example.test").write_text(ZONE)
    corefile = "example.test {\n    file db.example.test\n}\n"
    async with running_server(corefile, tmp_path=tmp_path) as running:
        yield running


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_lookup(server: RunningServer, case: Case, tcp: bool) -> None:
    # Twice: the second answer comes from the cached template for names that exist.
    for _ in range(2):
        reply = await query(server.port, case.qname, case.qtype, tcp=tcp)
        assert dns.rcode.to_text(reply.rcode()) == case.rcode
        assert bool(reply.flags & dns.flags.AA) == case.aa
        assert rrs(reply.answer) == sorted(case.answer)
        assert rrs(reply.authority) == sorted(case.authority)
        assert rrs(reply.additional) == sorted(case.additional)


async def test_letter_case_is_echoed(server: RunningServer) -> None:
    for name in ("HoSt.Example.TEST", "NoThInG.example.test"):
        reply = await query(server.port, name, "A")
        assert reply.question[0].name.to_text() == name + "."
        assert reply.answer[0].name.to_text() == name + "."


async def test_outside_the_zone_goes_on(tmp_path: Path) -> None:
    (tmp_path / "db").write_text(ZONE)
    corefile = ". {\n    file db example.test\n    whoami\n}\n"
    async with running_server(corefile, tmp_path=tmp_path) as server:
        plugin = server.plugin("file")
        assert isinstance(plugin, File)
        assert plugin.zones == ("example.test.",)
        reply = await query(server.port, "other.org", "A")
        assert any(rrset.rdtype == dns.rdatatype.SRV for rrset in reply.additional)


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


async def test_reload_only_when_the_serial_changes(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.write_text(ZONE)
    corefile = f"example.test {{\n    file {db} {{\n        reload 50ms\n    }}\n}}\n"
    async with running_server(corefile, tmp_path=tmp_path) as server:
        plugin = server.plugin("file")
        assert isinstance(plugin, File)
        before = plugin.generation

        async def host_a() -> list[str]:
            reply = await query(server.port, "host.example.test", "A")
            return rrs(reply.answer)

        assert await host_a() == ["host.example.test. 300 A 192.0.2.80"]
        # New data, same serial: CoreDNS keeps serving the old zone.
        _bump(db, ZONE.replace("192.0.2.80", "192.0.2.81"))
        await asyncio.sleep(0.3)
        assert plugin.generation == before
        assert await host_a() == ["host.example.test. 300 A 192.0.2.80"]
        # Serial bumped: swapped in.
        _bump(db, ZONE.replace("192.0.2.80", "192.0.2.82").replace("2024010101", "2024010102"))
        for _ in range(100):
            if plugin.generation != before:
                break
            await asyncio.sleep(0.02)
        assert plugin.generation == before + 1
        assert await host_a() == ["host.example.test. 300 A 192.0.2.82"]
        # A broken file keeps the running zone.
        _bump(db, "this is not a zone file\n")
        await asyncio.sleep(0.3)
        assert plugin.generation == before + 1
        assert await host_a() == ["host.example.test. 300 A 192.0.2.82"]


BAD = [
    pytest.param("file", None, "expected at least 1 argument", id="no file"),
    pytest.param("file missing.db", None, "cannot read", id="missing file"),
    pytest.param("file bad.db", "garbage here\n", "cannot parse", id="syntax error"),
    pytest.param("file nosoa.db", "$ORIGIN example.test.\n@ 300 NS ns.example.test.\n", "no SOA", id="no SOA"),
    pytest.param("file ok.db {\n        reload\n    }", ZONE, "expected 1 argument", id="reload without value"),
    pytest.param("file ok.db {\n        refresh 1m\n    }", ZONE, "unknown property 'refresh'", id="unknown property"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "content", "message"), BAD)
async def test_setup_errors(tmp_path: Path, line: str, content: str | None, message: str) -> None:
    name = line.split()[1] if len(line.split()) > 1 else ""
    if content is not None:
        (tmp_path / name).write_text(content)
    with pytest.raises(CorefileError) as caught:
        async with running_server(f"example.test {{\n    {line}\n}}\n", tmp_path=tmp_path):
            pass
    assert "Corefile:" in str(caught.value)
    assert "file:" in str(caught.value)
    assert message in str(caught.value)
