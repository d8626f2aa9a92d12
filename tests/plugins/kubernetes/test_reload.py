"""Reload with an unchanged kubernetes block keeps the running watch: no relist, no
not-ready window, answers all along; a changed block re-lists before it is swapped in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.asyncquery
import dns.message
import dns.rcode

from tests.helpers.kubeapi import KubeAPIServer, namespace, service
from tests.helpers.server import running_server


def corefile(api: str, *, ttl: int) -> str:
    return (
        ".:0 {\n    bind 127.0.0.1\n    ready 127.0.0.1:0\n"
        f"    kubernetes cluster.local {{\n        endpoint {api}\n        ttl {ttl}\n    }}\n"
        "    autopath @kubernetes\n"
        "}\n"
    )


def lists(api: KubeAPIServer) -> int:
    return sum(n for path, n in api.list_requests.items() if path.endswith("/services"))


async def ask(port: int, name: str) -> dns.message.Message:
    return await dns.asyncquery.udp(
        dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=2
    )


async def test_reload_keeps_or_replaces_the_watch(tmp_path: Path) -> None:
    async with KubeAPIServer() as api:
        api.create(namespace("default"))
        api.create(service("mysql", "default", cluster_ip="10.96.0.44"))
        async with running_server(corefile(api.url, ttl=5), tmp_path=tmp_path) as server:
            kube = server.plugin("kubernetes")
            assert await kube.model.wait_synced(5)  # type: ignore[attr-defined]
            lists_before = lists(api)
            # Same kubernetes settings, another plugin changed: the watch is kept.
            server.corefile.write_text(
                corefile(api.url, ttl=5).replace("autopath @kubernetes\n", "")
            )
            answers: list[int] = []

            async def hammer() -> None:
                for _ in range(100):
                    answers.append(
                        (await ask(server.port, "mysql.default.svc.cluster.local.")).rcode()
                    )

            load = asyncio.ensure_future(hammer())
            assert await server.app.reload()
            await load
            assert answers == [dns.rcode.NOERROR] * 100
            assert lists(api) == lists_before
            adopted = server.plugin("kubernetes")
            assert adopted is not kube and adopted.model is kube.model  # type: ignore[attr-defined]
            # The adopted watch still delivers changes.
            api.create(service("queue", "default", cluster_ip="10.96.0.45"))
            for _ in range(100):
                if (await ask(server.port, "queue.default.svc.cluster.local.")).rcode() == 0:
                    break
                await asyncio.sleep(0.02)
            assert (await ask(server.port, "queue.default.svc.cluster.local.")).answer[0][
                0
            ].address == "10.96.0.45"
            # Changed settings (ttl): a fresh list, and the TTL follows.
            server.corefile.write_text(corefile(api.url, ttl=7))
            assert await server.app.reload()
            assert lists(api) > lists_before
            reply = await ask(server.port, "mysql.default.svc.cluster.local.")
            assert reply.answer[0].ttl == 7
