"""hosts against a real server: file and inline entries, PTR, zones, fallthrough, reload."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import dns.flags
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from clusterdns.corefile import CorefileError
from clusterdns.plugins.hosts import Hosts
from tests.helpers.dnsclient import query
from tests.helpers.server import RunningServer, running_server

HOSTS_FILE = """\
# The following lines are desirable for IPv4 capable hosts
127.0.0.1       localhost localhost.domain
192.168.1.10    example.com            www.example.com   # trailing comment
::1             localhost ip6-localhost
fdfc:a744:27b5:3b0e::1  example.com
::ffff:10.0.0.2 mapped.example.com
10.9.9.9        outside.other.test
not-an-ip       broken.example.com
"""

COREFILE = """
example.com localhost localhost.domain ip6-localhost inline.test in-addr.arpa ip6.arpa {
    hosts example.hosts example.com localhost localhost.domain ip6-localhost inline.test {
        10.0.0.1 a.inline.test
        10.0.0.3 example.com
        ttl 120
    }
    whoami
}
other.test nr.test {
    hosts example.hosts other.test nr.test {
        10.1.1.1 host.nr.test
        no_reverse
        fallthrough nr.test
    }
    whoami
}
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    (tmp_path / "example.hosts").write_text(HOSTS_FILE)
    async with running_server(
        COREFILE.replace("example.hosts", str(tmp_path / "example.hosts")), tmp_path=tmp_path
    ) as running:
        yield running


def rrs(section: list[dns.rrset.RRset]) -> list[str]:
    out = []
    for rrset in section:
        for rdata in rrset:
            kind = dns.rdatatype.to_text(rrset.rdtype)
            out.append(f"{rrset.name.to_text()} {rrset.ttl} {kind} {rdata.to_text()}")
    return sorted(out)


CASES = [
    pytest.param("example.com", "A", "NOERROR", ["example.com. 120 A 10.0.0.3", "example.com. 120 A 192.168.1.10"], id="example.com A: file then inline"),
    pytest.param("www.example.com", "A", "NOERROR", ["www.example.com. 120 A 192.168.1.10"], id="alias on the same line"),
    pytest.param("example.com", "AAAA", "NOERROR", ["example.com. 120 AAAA fdfc:a744:27b5:3b0e::1"], id="example.com AAAA"),
    pytest.param("www.example.com", "AAAA", "NOERROR", [], id="A-only name AAAA → NODATA"),
    pytest.param("www.example.com", "MX", "NOERROR", [], id="known name other type → NODATA"),
    pytest.param("mapped.example.com", "A", "NOERROR", ["mapped.example.com. 120 A 10.0.0.2"], id="IPv4-mapped IPv6 is an A record"),
    pytest.param("localhost", "AAAA", "NOERROR", ["localhost. 120 AAAA ::1"], id="localhost AAAA"),
    pytest.param("a.inline.test", "A", "NOERROR", ["a.inline.test. 120 A 10.0.0.1"], id="inline entry"),
    pytest.param("1.0.0.127.in-addr.arpa", "PTR", "NOERROR", ["1.0.0.127.in-addr.arpa. 120 PTR localhost.", "1.0.0.127.in-addr.arpa. 120 PTR localhost.domain."], id="PTR with two names"),
    pytest.param("1.0.0.10.in-addr.arpa", "PTR", "NOERROR", ["1.0.0.10.in-addr.arpa. 120 PTR a.inline.test."], id="PTR of an inline entry"),
    pytest.param("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", "PTR", "NOERROR", ["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. 120 PTR ip6-localhost.", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. 120 PTR localhost."], id="IPv6 PTR"),
    pytest.param("broken.example.com", "A", "SERVFAIL", [], id="bad address skipped; unknown name without fallthrough → SERVFAIL (CoreDNS)"),
    pytest.param("nope.example.com", "A", "SERVFAIL", [], id="unknown name → SERVFAIL"),
    pytest.param("host.nr.test", "A", "NOERROR", ["host.nr.test. 3600 A 10.1.1.1"], id="second block default ttl 3600"),
    pytest.param("outside.other.test", "A", "NOERROR", ["outside.other.test. 3600 A 10.9.9.9"], id="file entry in the second block's zones"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "rdtype", "rcode", "answer"), CASES)
async def test_answers(
    server: RunningServer, name: str, rdtype: str, rcode: str, answer: list[str]
) -> None:
    reply = await query(server.port, name, rdtype)
    assert dns.rcode.to_text(reply.rcode()) == rcode
    assert rrs(reply.answer) == answer
    if rcode == "NOERROR":
        assert reply.flags & dns.flags.AA


WHOAMI = [
    pytest.param("2.1.1.10.in-addr.arpa", "PTR", id="unknown reverse name always goes on"),
    pytest.param("1.1.1.10.in-addr.arpa", "PTR", id="no_reverse: no PTR, goes on"),
    pytest.param("nope.nr.test", "A", id="fallthrough nr.test"),
]


@pytest.mark.parametrize(("name", "rdtype"), WHOAMI)
async def test_passes_to_next_plugin(server: RunningServer, name: str, rdtype: str) -> None:
    reply = await query(server.port, name, rdtype)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer == []
    # whoami answered: its records are in the additional section.
    assert any(rrset.rdtype == dns.rdatatype.SRV for rrset in reply.additional)


async def test_fallthrough_limited_to_its_zones(server: RunningServer) -> None:
    reply = await query(server.port, "nope.other.test", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL


async def test_names_outside_zones_are_ignored(server: RunningServer) -> None:
    # outside.other.test is in the file but not among the first block's zones.
    reply = await query(server.port, "9.9.9.10.in-addr.arpa", "PTR")
    assert reply.answer == []


async def test_letter_case_is_echoed(server: RunningServer) -> None:
    reply = await query(server.port, "WwW.ExAmPlE.cOm", "A")
    assert reply.question[0].name.to_text() == "WwW.ExAmPlE.cOm."
    assert reply.answer[0].name.to_text() == "WwW.ExAmPlE.cOm."


async def test_reload_on_change(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.1 a.reload.test\n")
    corefile = f"reload.test {{\n    hosts {hosts} {{\n        reload 50ms\n    }}\n}}\n"
    async with running_server(corefile, tmp_path=tmp_path) as server:
        plugin = server.plugin("hosts")
        assert isinstance(plugin, Hosts)
        assert plugin.zones[0] == "reload.test."
        before = plugin.generation
        reply = await query(server.port, "a.reload.test", "A")
        assert rrs(reply.answer) == ["a.reload.test. 3600 A 10.0.0.1"]
        hosts.write_text("10.0.0.2 a.reload.test\n10.0.0.3 b.reload.test\n")
        os.utime(hosts, ns=(1, 1))  # a different mtime even on coarse clocks
        for _ in range(100):
            if plugin.generation != before:
                break
            await asyncio.sleep(0.02)
        assert plugin.generation == before + 1
        reply = await query(server.port, "a.reload.test", "A")
        assert rrs(reply.answer) == ["a.reload.test. 3600 A 10.0.0.2"]
        reply = await query(server.port, "b.reload.test", "A")
        assert rrs(reply.answer) == ["b.reload.test. 3600 A 10.0.0.3"]
        # Deleted file: inline entries (none here) are all that is left.
        hosts.unlink()
        for _ in range(100):
            if plugin.generation == before + 2:
                break
            await asyncio.sleep(0.02)
        reply = await query(server.port, "a.reload.test", "A")
        assert reply.rcode() == dns.rcode.SERVFAIL


async def test_reload_zero_disables_polling(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.0.0.1 a.test\n")
    async with running_server(
        f"test {{\n    hosts {hosts} {{\n        reload 0\n    }}\n}}\n"
    ) as server:
        plugin = server.plugin("hosts")
        assert isinstance(plugin, Hosts)
        assert plugin._poller is None


async def test_missing_file_serves_inline(tmp_path: Path) -> None:
    corefile = f"test {{\n    hosts {tmp_path / 'absent'} {{\n        10.0.0.7 x.test\n    }}\n}}\n"
    async with running_server(corefile) as server:
        reply = await query(server.port, "x.test", "A")
        assert rrs(reply.answer) == ["x.test. 3600 A 10.0.0.7"]


BAD = [
    pytest.param("hosts {\n        ttl 0\n    }", "Corefile:3", "ttl must be between 1 and 65535", id="ttl 0"),
    pytest.param("hosts {\n        ttl\n    }", "Corefile:3", "expected 1 argument", id="ttl without value"),
    pytest.param("hosts {\n        reload soon\n    }", "Corefile:3", "invalid duration", id="bad reload"),
    pytest.param("hosts {\n        no_reverse yes\n    }", "Corefile:3", "expected 0 arguments", id="no_reverse with an argument"),
    pytest.param("hosts\n    hosts", "Corefile:3", "only be used once", id="twice in a block"),
]  # fmt: skip


@pytest.mark.parametrize(("lines", "where", "message"), BAD)
async def test_setup_errors(tmp_path: Path, lines: str, where: str, message: str) -> None:
    with pytest.raises(CorefileError) as caught:
        async with running_server(f"test {{\n    {lines}\n}}\n", tmp_path=tmp_path):
            pass
    assert where in str(caught.value)
    assert message in str(caught.value)
