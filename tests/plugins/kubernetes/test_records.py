"""The spec table over UDP through the real server, from manifests and from the API server."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from clusterdns.core.request import Request
from clusterdns.plugins.kubernetes.handler import Kubernetes
from clusterdns.wire import AnswerTemplate, parse_query
from clusterdns.wire.render import render_message, render_template
from tests.helpers.dnsclient import make_query, query
from tests.helpers.server import RunningServer
from tests.plugins.kubernetes.cluster import ROWS, Case, check

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("case", ROWS)
async def test_manifests(manifests_server: RunningServer, case: Case) -> None:
    check(await query(manifests_server.port, case.qname, case.qtype, payload=4096), case)


@pytest.mark.parametrize("case", ROWS)
async def test_api(api_server: RunningServer, case: Case) -> None:
    check(await query(api_server.port, case.qname, case.qtype, payload=4096), case)


@pytest.mark.parametrize("case", ROWS)
async def test_template_and_dnspython_paths_agree(
    manifests_server: RunningServer, case: Case
) -> None:
    plugin = manifests_server.plugin("kubernetes")
    assert isinstance(plugin, Kubernetes)
    request = make_query(case.qname, case.qtype, payload=1232)
    request.id = 4321
    parsed = parse_query(request.to_wire())
    template = plugin.lookup(parsed)
    assert template is not None, "a fully determined answer must have a template"
    from_template = render_template(template, parsed, limit=65535, payload=4096)
    assert from_template is not None

    outcome = plugin.outcome(parsed.name, parsed.qtype)
    assert outcome is not None
    instance = manifests_server.app.instance
    assert instance is not None
    req = Request(
        parsed, transport="udp", client=("127.0.0.1", 5353), block=instance.blocks[0], zone=""
    )
    message = plugin.answer_message(req, outcome)
    from_dnspython = render_message(message, parsed, limit=65535, payload=4096)

    one = dns.message.from_wire(from_template)
    other = dns.message.from_wire(from_dnspython)
    assert one == other, f"{one}\n---\n{other}"
    # What the UDP fast path serves, when it serves this name itself, is the same too.
    fast = plugin.fast(parsed)
    if isinstance(fast, AnswerTemplate):
        from_fast = render_template(fast, parsed, limit=65535, payload=4096)
        assert from_fast is not None
        assert dns.message.from_wire(from_fast) == other
    assert one.id == 4321
    check(one, case)
    # The question keeps the client's letter case (0x20) on both paths.
    assert str(one.question[0].name) == str(request.question[0].name)


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
async def test_negative_fast_path_matches_dnspython(
    manifests_server: RunningServer, qname: str
) -> None:
    plugin = manifests_server.plugin("kubernetes")
    assert isinstance(plugin, Kubernetes)
    request = make_query(qname, "A", payload=1232)
    parsed = parse_query(request.to_wire())
    fast = plugin.fast(parsed)
    assert isinstance(fast, AnswerTemplate), "an impossible name is answered without the chain"
    from_fast = dns.message.from_wire(render_template(fast, parsed, limit=65535, payload=4096))  # type: ignore[arg-type]
    outcome = plugin.outcome(parsed.name, parsed.qtype)
    assert outcome is not None and outcome.rcode == dns.rcode.NXDOMAIN
    instance = manifests_server.app.instance
    assert instance is not None
    req = Request(
        parsed, transport="udp", client=("127.0.0.1", 5353), block=instance.blocks[0], zone=""
    )
    other = dns.message.from_wire(
        render_message(plugin.answer_message(req, outcome), parsed, limit=65535, payload=4096)
    )
    assert from_fast == other, f"{from_fast}\n---\n{other}"
    assert str(from_fast.question[0].name) == qname
    # And over the network.
    reply = await query(manifests_server.port, qname, "A")
    assert reply.rcode() == dns.rcode.NXDOMAIN and reply.authority[0].rdtype == dns.rdatatype.SOA


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
