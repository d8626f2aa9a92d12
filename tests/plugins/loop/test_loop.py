"""loop: a forward back to ourselves is detected at startup; a sane setup is left alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import clusterdns.plugins.loop as loop_plugin
from clusterdns.core.instance import build_instance
from clusterdns.core.lifecycle import App
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.loop import Loop
from tests.helpers.responder import Responder
from tests.helpers.server import free_port, running_server

pytestmark = pytest.mark.timeout(20)


class Exits:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = asyncio.Event()

    def __call__(self, status: int) -> None:
        self.codes.append(status)
        self.called.set()


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> Exits:
    recorder = Exits()
    monkeypatch.setattr(loop_plugin, "_exit", recorder)
    return recorder


@pytest.fixture
async def upstream() -> AsyncIterator[Responder]:
    async with Responder() as r:
        yield r


async def test_forward_to_ourselves_is_a_loop(
    tmp_path: Path, exits: Exits, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    corefile = tmp_path / "Corefile"
    corefile.write_text(f".:{port} {{\n loop\n forward . 127.0.0.1:{port}\n}}\n")
    app = App(config_path=str(corefile))
    with caplog.at_level(logging.ERROR, logger="clusterdns.loop"):
        await app.start()
        try:
            await asyncio.wait_for(exits.called.wait(), 5)
        finally:
            await app.shutdown()
    assert exits.codes == [1]
    messages = [r.getMessage() for r in caplog.records if r.name == "clusterdns.loop"]
    assert any(
        m.startswith("loop: loop (127.0.0.1:") and f'-> :{port}) detected for zone "."' in m
        for m in messages
    ), messages


async def test_no_loop_probe_answered_then_disabled(exits: Exits, upstream: Responder) -> None:
    corefile = f"example.org {{\n loop\n forward . 127.0.0.1:{upstream.port}\n}}\n"
    async with running_server(corefile) as server:
        plugin = server.plugin("loop")
        assert isinstance(plugin, Loop)
        for _ in range(100):
            if plugin.disabled:
                break
            await asyncio.sleep(0.02)
        assert plugin.disabled
        # Port 0 in the Corefile: the probe found the port the server really bound.
        assert plugin.address == ("127.0.0.1", server.port)
    assert not exits.codes
    probes = [q for q in upstream.received if q.qtype == "HINFO"]
    assert len(probes) == 1
    assert probes[0].qname.endswith(".example.org.")
    assert probes[0].qname == plugin.qname


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("loop foo", "expected 0 arguments"),
        ("loop {\n x\n}", "unexpected block"),
        ("loop\nloop", "only be used once"),
    ],
    ids=["argument", "block", "twice"],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        build_instance(
            parse(f". {{\n{body}\n}}\n", filename="Corefile"), process=Process(), dns_port=0
        )
