"""Losing the API after the first sync takes no answer away; the loss shows in metrics."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import dns.asyncquery
import dns.message

from tests.helpers.kubeapi import KubeAPIServer, namespace, service
from tests.helpers.server import running_server


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
        return resp.read().decode()


def metric(body: str, name: str) -> float:
    match = re.search(rf"^{name}\{{[^}}]*\}} (\S+)$", body, re.M)
    assert match, f"{name} missing"
    return float(match.group(1))


async def test_api_lost_after_sync_keeps_answers_and_counts_errors(tmp_path: Path) -> None:
    async with KubeAPIServer() as api:
        api.create(namespace("default"))
        api.create(service("mysql", "default", cluster_ip="10.96.0.44"))
        text = (
            ".:0 {\n  bind 127.0.0.1\n  prometheus 127.0.0.1:0\n"
            f"  kubernetes cluster.local {{\n    endpoint {api.url}\n  }}\n}}\n"
        )
        async with running_server(text, tmp_path=tmp_path) as server:
            assert await server.plugin("kubernetes").model.wait_synced(5)  # type: ignore[attr-defined]
            body = await asyncio.to_thread(scrape, server.http_port())
            assert metric(body, "clusterdns_kubernetes_synced") == 1.0
            errors_before = metric(body, "clusterdns_kubernetes_api_errors_total")
            await api.stop()
            query = dns.message.make_query("mysql.default.svc.cluster.local.", "A")
            for _ in range(30):
                reply = await dns.asyncquery.udp(query, "127.0.0.1", port=server.port, timeout=2)
                assert reply.answer[0][0].address == "10.96.0.44"
                await asyncio.sleep(0.05)
            body = await asyncio.to_thread(scrape, server.http_port())
            lost = metric(body, "clusterdns_kubernetes_api_errors_total") - errors_before
            lost += metric(body, "clusterdns_kubernetes_watch_restarts_total")
            assert lost > 0
            assert metric(body, "clusterdns_kubernetes_synced") == 1.0
            # Answers from the UDP fast path are counted like any other.
            served = re.search(
                r'^coredns_dns_responses_total\{plugin="kubernetes",rcode="NOERROR"[^}]*\} (\S+)$',
                body,
                re.M,
            )
            assert served and float(served.group(1)) >= 30
