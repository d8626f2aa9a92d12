"""The spec table over UDP through the real server, from manifests and from the API server."""

from __future__ import annotations

import dns.message
import dns.rdatatype
import pytest

from clusterdns.core.request import Request
from clusterdns.plugins.kubernetes.handler import Kubernetes
from clusterdns.wire import parse_query
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
    assert one.id == 4321
    check(one, case)
    # The question keeps the client's letter case (0x20) on both paths.
    assert str(one.question[0].name) == str(request.question[0].name)


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
