"""pprof against a real server: the index, thread and task stacks, memory by allocation
site from tracemalloc (on while the plugin runs), GC statistics; parsing."""

from __future__ import annotations

import tracemalloc

import aiohttp
import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from tests.helpers.server import running_server

pytestmark = pytest.mark.timeout(30)

COREFILE = """
. {
    pprof 127.0.0.1:0 {
        block
    }
    whoami
}
"""


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as response,
    ):
        return response.status, await response.text()


def allocate_here() -> list[bytes]:
    return [bytes(1000) + bytes([i % 256]) for i in range(5000)]  # ~5 MB from this line


async def test_endpoints() -> None:
    was_tracing = tracemalloc.is_tracing()
    async with running_server(COREFILE) as running:
        port = running.http_port("127.0.0.1", 0)
        assert tracemalloc.is_tracing()
        kept = allocate_here()

        status, text = await get(port, "/debug/pprof/")
        assert status == 200
        for name in ("goroutine", "heap", "gc"):
            assert f"/debug/pprof/{name}" in text
        assert (await get(port, "/debug/pprof"))[0] == 200

        status, text = await get(port, "/debug/pprof/goroutine?debug=2")
        assert status == 200
        assert "[MainThread]" in text
        assert "[udp-" in text  # the UDP receive thread, blocked in its receive loop
        assert "asyncio tasks:" in text
        assert "test_pprof.py" in text  # this test's own frame, waiting for the reply

        status, text = await get(port, "/debug/pprof/heap?n=10")
        assert status == 200
        assert text.startswith("traced: ")
        top = text.split("allocation sites:", 1)[1]
        assert "test_pprof.py" in top.split("\n\n", 1)[1].split("\n")[1]  # the largest site
        assert (await get(port, "/debug/pprof/heap?n=x"))[0] == 400

        status, text = await get(port, "/debug/pprof/gc")
        assert status == 200
        assert "generation 0: collected=" in text and "threshold: (" in text
        assert (await get(port, "/debug/pprof/nothing"))[0] == 404
        del kept
    assert tracemalloc.is_tracing() == was_tracing


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("pprof a b", "Corefile:2: pprof: expected 0..1 arguments"),
        ("pprof localhost:http", "invalid port"),
        ("pprof {\nblock 0\n}", "block rate must be at least 1"),
        ("pprof {\nmutex\n}", "Corefile:3: pprof: unknown property 'mutex'"),
        ("pprof\npprof", "Corefile:3: pprof: this plugin can only be used once"),
    ],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        build_instance(
            parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
        )
