"""The plugin in a real ``clusterdns serve`` process, over a manifests folder."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.rcode

from tests.helpers.dnsclient import query
from tests.helpers.server import ServerProcess
from tests.plugins.kubernetes.cluster import corefile, write_manifests


async def test_serve_subprocess(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path / "m")
    async with ServerProcess(corefile(f"manifests {folder}"), tmp_path) as server:
        for _ in range(50):  # listening comes before the first poll of the folder
            response = await query(server.port, "svc1.testns.svc.cluster.local.", "A")
            if response.answer:
                break
            await asyncio.sleep(0.05)
        assert {r.to_text() for rrset in response.answer for r in rrset} == {"10.0.0.1"}
        missing = await query(server.port, "svc0.testns.svc.cluster.local.", "A")
        assert missing.rcode() == dns.rcode.NXDOMAIN, server.output()
