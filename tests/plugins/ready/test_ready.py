"""ready's monitor modes (CoreDNS 1.12): until-ready stops asking a plugin once it was ready;
continuously asks every time. Through the real /ready endpoint."""

from __future__ import annotations

import aiohttp
import pytest

from clusterdns.corefile import CorefileError
from tests.helpers.server import RunningServer, running_server


async def status(server: RunningServer) -> tuple[int, str]:
    url = f"http://127.0.0.1:{server.http_port()}/ready"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


@pytest.mark.parametrize(
    ("block", "after_flip"),
    [
        pytest.param("", (200, "OK"), id="default: until-ready"),
        pytest.param(" {\n    monitor until-ready\n  }", (200, "OK"), id="until-ready"),
        pytest.param(" {\n    monitor continuously\n  }", (503, "chaos"), id="continuously"),
    ],
)
async def test_monitor(block: str, after_flip: tuple[int, str]) -> None:
    text = f".:0 {{\n  bind 127.0.0.1\n  ready 127.0.0.1:0{block}\n  chaos v\n}}\n"
    async with running_server(text) as server:
        chaos = server.plugin("chaos")
        readiness = [False]
        chaos.ready = lambda: readiness[0]  # type: ignore[attr-defined]
        assert await status(server) == (503, "chaos")
        readiness[0] = True
        assert await status(server) == (200, "OK")
        readiness[0] = False  # e.g. the kubernetes plugin lost its API server
        assert await status(server) == after_flip


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (" {\n    monitor sometimes\n  }", "monitor type 'sometimes' not supported"),
        (" {\n    monitor\n  }", "expected 1 argument"),
        (" {\n    watch continuously\n  }", "unknown property 'watch'"),
    ],
)
async def test_errors(block: str, message: str) -> None:
    with pytest.raises(CorefileError) as info:
        async with running_server(f".:0 {{\n  ready 127.0.0.1:0{block}\n  chaos v\n}}\n"):
            pass
    assert message in str(info.value)
    assert info.value.line == 3
