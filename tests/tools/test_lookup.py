"""clusterdns lookup: glibc's search rules as a table, then real lookups against a running
server on loopback, the queries counted by a relay between the tool and the server (not by
what the tool says it sent)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import dns.message
import dns.rdatatype
import pytest

from clusterdns import cli
from clusterdns.tools.lookup import (
    Resolver,
    candidates,
    default_search,
    parse_resolv_conf,
    resolve,
)
from tests.helpers.responder import DEFAULT_ADDRESS, Responder
from tests.helpers.server import RunningServer, demo_corefile, running_server

pytestmark = pytest.mark.timeout(60)

SEARCH = ["default.svc.cluster.local", "svc.cluster.local", "cluster.local"]


# --- the search rules -----------------------------------------------------------------------

CANDIDATES = [
    ("mysql-service", 5, [
        "mysql-service.default.svc.cluster.local.", "mysql-service.svc.cluster.local.",
        "mysql-service.cluster.local.", "mysql-service.",
    ]),
    ("api.example.com", 5, [
        "api.example.com.default.svc.cluster.local.", "api.example.com.svc.cluster.local.",
        "api.example.com.cluster.local.", "api.example.com.",
    ]),
    # As many dots as ndots: asked as it is first, then the search list.
    ("api.example.com", 2, [
        "api.example.com.", "api.example.com.default.svc.cluster.local.",
        "api.example.com.svc.cluster.local.", "api.example.com.cluster.local.",
    ]),
    ("a.b.c.d.e", 4, [
        "a.b.c.d.e.", "a.b.c.d.e.default.svc.cluster.local.", "a.b.c.d.e.svc.cluster.local.",
        "a.b.c.d.e.cluster.local.",
    ]),
    ("mysql-service.default.svc.cluster.local.", 5, ["mysql-service.default.svc.cluster.local."]),
    ("queue.shared", 1, [
        "queue.shared.", "queue.shared.default.svc.cluster.local.",
        "queue.shared.svc.cluster.local.", "queue.shared.cluster.local.",
    ]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "ndots", "expected"),
    CANDIDATES,
    ids=[f"{name} ndots:{ndots}" for name, ndots, _ in CANDIDATES],
)
def test_candidates_follow_glibc(name: str, ndots: int, expected: list[str]) -> None:
    assert candidates(name, SEARCH, ndots) == expected


def test_default_search_list_is_kubelets() -> None:
    assert default_search("shared", "cluster.local.") == [
        "shared.svc.cluster.local",
        "svc.cluster.local",
        "cluster.local",
    ]


def test_parse_resolv_conf() -> None:
    text = (
        "# kubelet\nnameserver 10.96.0.10\nnameserver 10.96.0.11\n"
        "search a.example b.example\ndomain c.example\n"  # the last of search/domain wins
        "options ndots:5 timeout:1\n"
    )
    assert parse_resolv_conf(text) == (["c.example"], 5, ["10.96.0.10", "10.96.0.11"])
    assert parse_resolv_conf("search x y\noptions ndots:99") == (["x", "y"], 15, [])


# --- against a running server ---------------------------------------------------------------


class Relay(asyncio.DatagramProtocol):
    """A UDP relay in front of the server that records every question it passes on."""

    def __init__(self, server_port: int) -> None:
        self.server_port = server_port
        self.seen: list[tuple[str, str]] = []
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        question = dns.message.from_wire(data).question[0]
        self.seen.append((question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))
        task = asyncio.ensure_future(self._relay(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _relay(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[bytes] = loop.create_future()

        class Once(asyncio.DatagramProtocol):
            def datagram_received(self, answer: bytes, _: tuple[str, int]) -> None:
                if not reply.done():
                    reply.set_result(answer)

        out, _ = await loop.create_datagram_endpoint(
            Once, remote_addr=("127.0.0.1", self.server_port)
        )
        try:
            out.sendto(data)
            answer = await asyncio.wait_for(reply, 5)
        finally:
            out.close()
        assert self.transport is not None
        self.transport.sendto(answer, addr)


@dataclass
class Setup:
    server: RunningServer
    upstream: Responder
    relay: Relay
    relay_port: int

    def resolver(self, search: list[str] | None = None, ndots: int = 5) -> Resolver:
        return Resolver(
            search=SEARCH if search is None else search,
            ndots=ndots,
            server=("127.0.0.1", self.relay_port),
            timeout=2,
        )

    @property
    def introspect(self) -> str:
        return f"127.0.0.1:{self.server.http_port('127.0.0.1', 0)}"


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    async with (
        Responder() as upstream,
        running_server(demo_corefile(upstream.port)) as server,
    ):
        loop = asyncio.get_running_loop()
        relay = Relay(server.port)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: relay, local_addr=("127.0.0.1", 0)
        )
        try:
            yield Setup(server, upstream, relay, transport.get_extra_info("sockname")[1])
        finally:
            transport.close()


async def test_short_name_hits_the_first_search_domain(setup: Setup) -> None:
    lookup = await asyncio.to_thread(resolve, "mysql-service", ["A", "AAAA"], setup.resolver())
    expected = "mysql-service.default.svc.cluster.local."
    assert setup.relay.seen == [(expected, "A"), (expected, "AAAA")]
    assert lookup.answered_by == expected
    assert [(s.qtype, s.outcome) for s in lookup.sent] == [("A", "NOERROR"), ("AAAA", "NODATA")]
    assert lookup.wasted() == []
    assert lookup.cost() == "`mysql-service` cost no query before the real one"
    assert setup.upstream.received == []


async def test_name_with_dots_pays_the_search_list_first(setup: Setup) -> None:
    lookup = await asyncio.to_thread(resolve, "api.example.com", ["A", "AAAA"], setup.resolver())
    searched = [f"api.example.com.{domain}." for domain in SEARCH]
    expected = [(name, t) for name in [*searched, "api.example.com."] for t in ("A", "AAAA")]
    assert setup.relay.seen == expected
    assert [s.outcome for s in lookup.sent[:6]] == ["NXDOMAIN"] * 6
    assert lookup.answered_by == "api.example.com."
    # Only the name as it is left the cluster: the upstream saw it, once per type.
    assert [(r.qname, r.qtype) for r in setup.upstream.received] == [
        ("api.example.com.", "A"),
        ("api.example.com.", "AAAA"),
    ]
    answer = next(s for s in lookup.sent if s.name == "api.example.com." and s.qtype == "A")
    (line,) = answer.answer
    assert line.startswith("api.example.com. ")
    assert line.endswith(f" IN A {DEFAULT_ADDRESS}")
    assert len(lookup.wasted()) == 6
    assert lookup.cost() == (
        "`api.example.com` with ndots:5 cost 6 NXDOMAIN queries (3 A, 3 AAAA) before the "
        "real one; write it as `api.example.com.` or lower ndots to 2"
    )


async def test_one_type_counts_three_nxdomain(setup: Setup) -> None:
    lookup = await asyncio.to_thread(resolve, "api.example.com", ["A"], setup.resolver())
    assert len(setup.relay.seen) == 4
    assert lookup.cost().startswith("`api.example.com` with ndots:5 cost 3 NXDOMAIN queries ")


async def test_fqdn_skips_the_search_list(setup: Setup) -> None:
    name = "mysql-service.default.svc.cluster.local."
    lookup = await asyncio.to_thread(resolve, name, ["A", "AAAA"], setup.resolver())
    assert setup.relay.seen == [(name, "A"), (name, "AAAA")]
    assert lookup.answered_by == name


async def test_enough_dots_asks_as_is_first(setup: Setup) -> None:
    lookup = await asyncio.to_thread(
        resolve, "api.example.com", ["A", "AAAA"], setup.resolver(ndots=2)
    )
    assert setup.relay.seen == [("api.example.com.", "A"), ("api.example.com.", "AAAA")]
    assert lookup.cost() == "`api.example.com` cost no query before the real one"


async def test_other_namespace_via_search(setup: Setup) -> None:
    lookup = await asyncio.to_thread(resolve, "queue.shared", ["A"], setup.resolver())
    assert setup.relay.seen == [
        ("queue.shared.default.svc.cluster.local.", "A"),
        ("queue.shared.svc.cluster.local.", "A"),
    ]
    assert lookup.cost() == (
        "`queue.shared` with ndots:5 cost 1 NXDOMAIN query before the real one; "
        "write it as `queue.shared.svc.cluster.local.`"
    )


async def test_not_found_anywhere(setup: Setup) -> None:
    setup.upstream.mode = "nxdomain"
    lookup = await asyncio.to_thread(resolve, "nothing", ["A"], setup.resolver())
    assert len(setup.relay.seen) == 4
    assert lookup.answered_by is None
    assert lookup.cost() == "`nothing` was not found: 4 NXDOMAIN queries sent, none answered"


async def test_refused_stops_the_search(setup: Setup) -> None:
    setup.upstream.mode = "refused"
    lookup = await asyncio.to_thread(resolve, "x.example", ["A"], setup.resolver(ndots=1))
    assert setup.relay.seen == [("x.example.", "A")]
    assert lookup.answered_by is None


async def test_truncated_answer_is_asked_again_over_tcp() -> None:
    async with Responder(mode="truncate") as responder:
        resolver = Resolver(search=[], ndots=1, server=("127.0.0.1", responder.port))
        lookup = await asyncio.to_thread(resolve, "big.example.", ["A"], resolver)
    (sent,) = lookup.sent
    assert sent.tcp
    assert sent.outcome == "NOERROR"
    assert [r.transport for r in responder.received] == ["udp", "tcp"]


async def test_cli_json_and_explain(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "lookup", "api.example.com", "--namespace", "default",
        "--server", f"127.0.0.1:{setup.relay_port}", "--explain",
        "--introspect", setup.introspect, "--json",
    ]  # fmt: skip
    status = await asyncio.to_thread(cli.main, argv)
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["search"] == SEARCH
    assert data["ndots"] == 5
    assert data["wasted"] == 6
    rules = [(q["name"], q["type"], q["explain"]["why"][0]["rule"]) for q in data["queries"]]
    assert rules[:2] == [
        ("api.example.com.default.svc.cluster.local.", "A", "nxdomain-service"),
        ("api.example.com.default.svc.cluster.local.", "AAAA", "nxdomain-service"),
    ]
    assert rules[2][2] == rules[3][2] == "nxdomain-namespace"  # namespace "com"
    assert rules[4][2] == rules[5][2] == "nxdomain-name"
    # The real one was forwarded by the lookup itself; explaining it finds it in the cache.
    assert rules[6:] == [
        ("api.example.com.", "A", "cached"),
        ("api.example.com.", "AAAA", "cached"),
    ]
    assert data["queries"][6]["explain"]["why"][0]["detail"].endswith("TTL 30")


async def test_cli_text_output(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["lookup", "web", "--server", f"127.0.0.1:{setup.relay_port}", "-t", "A"]
    status = await asyncio.to_thread(cli.main, argv)
    assert status == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"server 127.0.0.1:{setup.relay_port}  search default.svc")
    assert "A     web.default.svc.cluster.local.  NOERROR" in lines[1]
    assert lines[-1] == "`web` cost no query before the real one"


async def test_cli_resolv_conf(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "nameserver 127.0.0.1\nsearch shared.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
    )
    argv = [
        "lookup", "queue", "--resolv-conf", str(conf), "-t", "A",
        "--server", f"127.0.0.1:{setup.relay_port}", "--json",
    ]  # fmt: skip
    status = await asyncio.to_thread(cli.main, argv)
    assert status == 0
    data = json.loads(capsys.readouterr().out)
    assert data["answered_by"] == "queue.shared.svc.cluster.local."
    assert setup.relay.seen == [("queue.shared.svc.cluster.local.", "A")]


async def test_cli_explain_without_endpoint_names_it(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "lookup", "web", "-t", "A", "--server", f"127.0.0.1:{setup.relay_port}",
        "--explain", "--introspect", "127.0.0.1:9",
    ]  # fmt: skip
    status = await asyncio.to_thread(cli.main, argv)
    assert status == 1
    err = capsys.readouterr().err
    assert "cannot reach the introspect endpoint at http://127.0.0.1:9/explain" in err
