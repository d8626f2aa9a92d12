"""Against the Kubernetes API test server: propagation of changes, and faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import dns.message
import dns.rcode

from tests.helpers.dnsclient import query
from tests.helpers.kubeapi import KubeAPIServer, endpoint_slice, service
from tests.helpers.server import RunningServer, running_server
from tests.plugins.kubernetes.cluster import corefile, objects

S = ".testns.svc.cluster.local."


def addresses(response: dns.message.Message) -> set[str]:
    return {rdata.to_text() for rrset in response.answer for rdata in rrset}


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 2.0, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(interval)


async def answers(server: RunningServer, name: str, expected: set[str]) -> bool:
    return addresses(await query(server.port, name, "A")) == expected


async def test_service_lifecycle_propagates() -> None:
    async with KubeAPIServer(bookmark_interval=0.2) as api:
        for obj in objects():
            api.create(obj)
        async with running_server(corefile(f"endpoint {api.url}")) as server:
            plugin = server.plugin("kubernetes")
            assert await plugin.model.wait_synced(5)  # type: ignore[attr-defined]
            name = "web" + S

            api.create(service("web", "testns", cluster_ip="10.0.0.50"))
            await eventually(lambda: answers(server, name, {"10.0.0.50"}))

            api.update(service("web", "testns", cluster_ip="10.0.0.51"))
            await eventually(lambda: answers(server, name, {"10.0.0.51"}))

            api.delete(service("web", "testns"))

            async def gone() -> bool:
                response = await query(server.port, name, "A")
                return response.rcode() == dns.rcode.NXDOMAIN

            await eventually(gone)

            # Endpoints of a headless Service follow their slice.
            api.update(endpoint_slice("hdls1-v4", "hdls1", "testns", addresses=["172.0.0.9"]))
            await eventually(lambda: answers(server, "hdls1" + S, {"172.0.0.9"}))


async def test_api_down_at_start() -> None:
    api = KubeAPIServer(bookmark_interval=0.2)
    await api.start()
    await api.stop()  # the port is known, nothing listens
    text = corefile(f"endpoint {api.url}", extra="startup_timeout 0.5s").replace(
        "    kubernetes", "    ready 127.0.0.1:0\n    kubernetes"
    )
    try:
        async with running_server(text) as server, aiohttp.ClientSession() as http:
            ready_url = f"http://127.0.0.1:{server.http_port()}/ready"
            async with http.get(ready_url) as response:
                assert response.status == 503
                assert "kubernetes" in await response.text()
            started = time.monotonic()
            response = await query(server.port, "svc1" + S, "A", timeout=3)
            # Answered once startup_timeout passed; a missing name is not proof yet.
            assert time.monotonic() - started < 2
            assert response.rcode() == dns.rcode.SERVFAIL

            for obj in objects():
                api.create(obj)
            await api.start()

            async def ready() -> bool:
                async with http.get(ready_url) as response:
                    return response.status == 200

            await eventually(ready, within=8, interval=0.1)
            assert await answers(server, "svc1" + S, {"10.0.0.1"})
            missing = await query(server.port, "svc0" + S, "A")
            assert missing.rcode() == dns.rcode.NXDOMAIN
    finally:
        await api.stop()


async def test_dropped_watch_and_gone_catch_up() -> None:
    async with KubeAPIServer(bookmark_interval=0.2) as api:
        for obj in objects():
            api.create(obj)
        async with running_server(corefile(f"endpoint {api.url}")) as server:
            plugin = server.plugin("kubernetes")
            assert await plugin.model.wait_synced(5)  # type: ignore[attr-defined]

            # A cut watch: no wrong answers meanwhile, and the change made while it was
            # down arrives.
            api.drop_watches()
            api.create(service("late", "testns", cluster_ip="10.0.0.60"))
            for _ in range(10):
                assert await answers(server, "svc1" + S, {"10.0.0.1"})
            await eventually(lambda: answers(server, "late" + S, {"10.0.0.60"}), within=4)

            # 410 Gone: history compacted while the watch is down → relist, same result.
            api.drop_watches()
            api.delete(service("late", "testns"))
            api.create(service("later", "testns", cluster_ip="10.0.0.61"))
            api.compact()
            for _ in range(10):
                assert await answers(server, "svc1" + S, {"10.0.0.1"})

            async def caught_up() -> bool:
                later = await query(server.port, "later" + S, "A")
                late = await query(server.port, "late" + S, "A")
                return addresses(later) == {"10.0.0.61"} and late.rcode() == dns.rcode.NXDOMAIN

            await eventually(caught_up, within=4)
