"""The spec table over UDP through the real server, from manifests and from the API server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from clusterdns.core.fast import SLOW, FastReply
from clusterdns.plugins.kubernetes.handler import Kubernetes
from clusterdns.wire import parse_query
from tests.helpers.dnsclient import make_query, query
from tests.helpers.oracle import oracle_for, oracle_reply
from tests.helpers.server import RunningServer, running_server
from tests.plugins.kubernetes.cluster import (
    ROWS,
    Case,
    check,
    check_zone_case,
    corefile,
    write_manifests,
)
from tests.plugins.kubernetes.conftest import INSECURE

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("case", ROWS)
async def test_manifests(manifests_server: RunningServer, case: Case) -> None:
    check(await query(manifests_server.port, case.qname, case.qtype, payload=4096), case)


@pytest.mark.parametrize("case", ROWS)
async def test_api(api_server: RunningServer, case: Case) -> None:
    check(await query(api_server.port, case.qname, case.qtype, payload=4096), case)


@contextlib.asynccontextmanager
async def manifests_server_at(folder: Path) -> AsyncIterator[RunningServer]:
    """A server of its own, fresh: nothing asked before the test asks."""
    config = corefile(f"manifests {write_manifests(folder)}", extra=INSECURE)
    async with running_server(config) as server:
        assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[union-attr]
        yield server


def _variants(qname: str) -> list[tuple[str, int | None, int]]:
    """(question name, EDNS payload or None, UDP limit): lower and mixed case, with and
    without EDNS, and a limit that truncates."""
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(qname))
    return [(qname, 1232, 1232), (mixed, None, 512), (mixed, 4096, 65535), (qname, None, 60)]


@pytest.mark.parametrize("case", ROWS)
async def test_wire_reply_agrees_with_dnspython(
    manifests_server: RunningServer, case: Case
) -> None:
    """Every row's reply as the fast path builds it on the wire is, byte for byte, what
    dnspython's renderer makes of the same records: header, the client's question (its
    letter case), compression pointers, EDNS, per-record truncation with TC."""
    plugin = manifests_server.plugin("kubernetes")
    assert isinstance(plugin, Kubernetes)
    for qname, payload, limit in _variants(case.qname):
        request = make_query(qname, case.qtype, payload=payload or 512)
        if payload is None:
            request.use_edns(False)
        request.id = 4321
        parsed = parse_query(request.to_wire())
        answer = plugin.table.decide(
            parsed.qname_lower, parsed.label_offsets, parsed.qtype, asked=parsed.qname_wire
        )
        assert answer is not None, "every row is decided by the table"
        fast = plugin.answer_fast(parsed, max(limit, parsed.question_end + 11), 4096)
        if answer.chase is not None:
            assert fast is SLOW  # an ExternalName outside the zone: the chain chases it
            continue
        assert isinstance(fast, FastReply), "every row is answered on the wire, first sight"
        expected = oracle_for(parsed, answer, limit=max(limit, parsed.question_end + 11))
        assert fast.wire == expected, f"{qname} {payload} {limit}"
        assert fast.depends == answer.depends, "the quick route depends on what decide() says"
        reply = dns.message.from_wire(fast.wire)
        assert reply.id == 4321
        assert str(reply.question[0].name) == qname  # 0x20
        check_zone_case(reply, qname)
        if not reply.flags & dns.flags.TC:
            check(reply, case)


@pytest.mark.parametrize(
    "qname",
    [
        "mysql.default.svc.cluster.local.default.svc.cluster.local.",
        "svc1.testns.svc.cluster.local.testns.svc.cluster.local.",
        "api.example.com.testns.svc.cluster.local.",
        "nope.testns.svc.cluster.local.",
        "a.b.c.d.e.f.g.cluster.local.",
        "Www.Example.Com.Cluster.Local.",
        "x." * 60 + "cluster.local.",
    ],
)
async def test_negative_answers_on_a_fresh_server(tmp_path: Path, qname: str) -> None:
    """The first question a fresh server gets is answered on the wire, NXDOMAIN included,
    and agrees with the oracle and with the reply over the network."""
    async with manifests_server_at(tmp_path) as server:
        plugin = server.plugin("kubernetes")
        assert isinstance(plugin, Kubernetes)
        parsed = parse_query(make_query(qname, "A", payload=1232).to_wire())
        fast = plugin.answer_fast(parsed, 1232, 4096)
        assert isinstance(fast, FastReply), "an impossible name is answered without the chain"
        answer = plugin.table.decide(parsed.qname_lower, parsed.label_offsets, parsed.qtype)
        assert answer is not None and answer.rcode == dns.rcode.NXDOMAIN
        assert fast.wire == oracle_reply(
            parsed, rcode=answer.rcode, authority=answer.authority, limit=1232
        )
        assert str(dns.message.from_wire(fast.wire).question[0].name) == qname
        reply = await query(server.port, qname, "A")
        assert (
            reply.rcode() == dns.rcode.NXDOMAIN and reply.authority[0].rdtype == dns.rdatatype.SOA
        )


async def test_case_is_echoed(manifests_server: RunningServer) -> None:
    name = "SvC1.tEsTnS.SVC.cluster.LOCAL."
    response = await query(manifests_server.port, name, "A")
    assert str(response.question[0].name) == name
    assert str(response.answer[0].name) == name
    assert response.answer[0].rdtype == dns.rdatatype.A


async def test_tcp(manifests_server: RunningServer) -> None:
    response = await query(
        manifests_server.port, "_http._tcp.hdls1.testns.svc.cluster.local.", "SRV", tcp=True
    )
    assert len(response.answer[0]) == 5
