"""Faults of what the server depends on, seen from a DNS client: the rows of
docs/reliability.md that no other test backs.

CI holds each fault a few seconds; CLUSTERDNS_FAULT_SECONDS=30 holds them for tens of
seconds (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import os
import time

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from tests.helpers.dnsclient import query
from tests.helpers.kubeapi import KubeAPIServer, service
from tests.helpers.responder import Responder
from tests.helpers.server import running_server
from tests.plugins.kubernetes.cluster import corefile, objects

S = ".testns.svc.cluster.local."
FAULT_SECONDS = float(os.environ.get("CLUSTERDNS_FAULT_SECONDS") or 3)

pytestmark = pytest.mark.timeout(60 + 4 * FAULT_SECONDS)


def addresses(response: dns.message.Message) -> set[str]:
    return {rdata.to_text() for rrset in response.answer for rdata in rrset}


async def answered_right_throughout(port: int, seconds: float) -> int:
    """Ask for a known Service every 50 ms for ``seconds``: every answer must be the right
    one, promptly. Returns how many were checked."""
    checked = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.monotonic()
        reply = await query(port, "svc1" + S, "A", timeout=2)
        assert reply.rcode() == dns.rcode.NOERROR
        assert addresses(reply) == {"10.0.0.1"}
        assert time.monotonic() - started < 1.0
        checked += 1
        await asyncio.sleep(0.05)
    return checked


async def eventually_answers(port: int, name: str, expected: set[str], within: float) -> None:
    deadline = time.monotonic() + within
    while addresses(await query(port, name, "A")) != expected:
        assert time.monotonic() < deadline, f"{name} never became {expected}"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "fault",
    ["500 on every request", "every request held 2 s", "500s, then slow"],
)
async def test_api_server_errors_and_slowness_keep_the_last_answers(fault: str) -> None:
    """The API server fails every request (500) or answers each one only after 2 s, for
    FAULT_SECONDS, with the watches cut: clients keep getting the last known answers at
    full speed, and a change made during the fault shows up once it is over."""
    async with KubeAPIServer(bookmark_interval=0.2) as api:
        for obj in objects():
            api.create(obj)
        async with running_server(corefile(f"endpoint {api.url}")) as server:
            plugin = server.plugin("kubernetes")
            assert await plugin.model.wait_synced(5)  # type: ignore[attr-defined]
            if fault.startswith("500"):
                api.fail_requests(500, seconds=FAULT_SECONDS)
            if "slow" in fault or "held" in fault:
                offset = FAULT_SECONDS if fault.startswith("500") else 0
                api.slow_requests(2.0, seconds=offset + FAULT_SECONDS)
            api.drop_watches()
            api.create(service("during", "testns", cluster_ip="10.0.0.70"))
            total = FAULT_SECONDS * (2 if fault == "500s, then slow" else 1)
            checked = await answered_right_throughout(server.port, total)
            assert checked >= total * 5
            await eventually_answers(server.port, "during" + S, {"10.0.0.70"}, within=15)


async def test_forwarding_loop_without_the_loop_plugin_stays_bounded() -> None:
    """A forward that points back at the server itself, without `loop` to catch it at start
    (with `loop` the process exits 1, as CoreDNS does: tests/plugins/loop): the looping
    name gets SERVFAIL within the forward deadline and the other zones keep answering."""
    from tests.helpers.server import free_port

    port = free_port()
    async with Responder() as other:
        text = (
            f".:{port} {{\n bind 127.0.0.1\n forward . 127.0.0.1:{port}\n}}\n"
            f"example.net:{port} {{\n bind 127.0.0.1\n forward . 127.0.0.1:{other.port}\n}}\n"
        )
        import pathlib
        import tempfile

        from clusterdns.core.lifecycle import App

        with tempfile.TemporaryDirectory() as scratch:
            path = pathlib.Path(scratch) / "Corefile"
            path.write_text(text)
            app = App(config_path=str(path))
            await app.start()
            try:
                started = time.monotonic()
                looped = await query(port, "loops.example.org.", "A", timeout=8)
                assert looped.rcode() == dns.rcode.SERVFAIL
                assert time.monotonic() - started < 6.5  # forward's 5 s deadline, and a bit
                # While (and after) the loop churns, the other zone answers promptly. Asked
                # from another address: the looping queries all come from the server's own
                # (127.0.0.1), which the overload lane holds to its per-client share.
                for _ in range(20):
                    t0 = time.monotonic()
                    reply = await dns.asyncquery.udp(
                        dns.message.make_query("www.example.net.", "A"),
                        "127.0.0.1",
                        timeout=2,
                        port=port,
                        source="127.0.0.2",
                    )
                    assert reply.rcode() == dns.rcode.NOERROR
                    assert time.monotonic() - t0 < 1.0
                    await asyncio.sleep(0.1)
            finally:
                await app.shutdown()
