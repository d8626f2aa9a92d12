"""apiserver_max_inflight: at most N API requests wait for their response headers at once."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from clusterdns.sources.kube.client import KubeClient
from clusterdns.sources.kube.kubeconfig import from_endpoint


class SlowServer:
    """Answers every GET after a pause, counting how many are being answered at once."""

    def __init__(self) -> None:
        self.active = 0
        self.most = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await asyncio.sleep(0.05)
            return web.json_response({"ok": True})
        finally:
            self.active -= 1


@pytest.mark.parametrize(("max_inflight", "most"), [(1, 1), (3, 3), (None, 6), (0, 6)])
async def test_concurrent_requests_are_bounded(max_inflight: int | None, most: int) -> None:
    server = SlowServer()
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        connection = from_endpoint(f"http://127.0.0.1:{port}")
        async with KubeClient(connection, max_inflight=max_inflight) as client:
            bodies = await asyncio.gather(*(client.get(f"/api/v1/x{i}") for i in range(6)))
        assert all(b"ok" in body for body in bodies)
        assert server.most == most
    finally:
        await runner.cleanup()
