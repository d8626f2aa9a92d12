"""loadbalance weighted WEIGHTFILE: the first address is picked in proportion to its weight
(CoreDNS's weighted policy), the rest keep their order; the file reloads when it changes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import dns.message
import pytest

from clusterdns.corefile import CorefileError
from clusterdns.plugins.loadbalance.weighted import WeightedBalance, WeightFileError, parse_weights
from tests.helpers.dnsclient import query
from tests.helpers.responder import Responder
from tests.helpers.server import RunningServer, running_server

pytestmark = pytest.mark.timeout(20)

ADDRESSES = ["100.64.1.1", "100.64.1.2", "100.64.1.3"]
WEIGHTS = """# CoreDNS's README example
www.example.com
100.64.1.1 3
100.64.1.2 1
100.64.1.3 2
"""


def addresses(reply: dns.message.Message) -> list[str]:
    return [rd.to_text() for rrset in reply.answer for rd in rrset if rrset.rdtype == 1]


@pytest.fixture
async def upstream() -> AsyncIterator[Responder]:
    lines = [f"www.example.com. 30 IN A {a}" for a in ADDRESSES]
    lines.append("www.example.com. 30 IN MX 10 mail.example.com.")
    async with Responder(answers={"www.example.com.": lines}) as r:
        yield r


def corefile(weights: Path, port: int, block: str = "") -> str:
    return f". {{\n loadbalance weighted {weights}{block}\n forward . 127.0.0.1:{port}\n}}\n"


def plugin_of(server: RunningServer) -> WeightedBalance:
    plugin = server.plugin("loadbalance")
    assert isinstance(plugin, WeightedBalance)
    return plugin


async def test_first_address_in_proportion_to_its_weight(
    upstream: Responder, tmp_path: Path
) -> None:
    (tmp_path / "w").write_text(WEIGHTS)
    async with running_server(corefile(tmp_path / "w", upstream.port)) as server:
        # The random numbers 0..5 once each: the heaviest address takes the first three.
        numbers = itertools.cycle(range(6))
        plugin_of(server)._choose = lambda total: next(numbers) % total
        firsts = []
        for _ in range(6):
            got = addresses(await query(server.port, "www.example.com.", "A"))
            assert sorted(got) == ADDRESSES
            firsts.append(got[0])
        last = addresses(await query(server.port, "www.example.com.", "A"))
    assert [firsts.count(a) for a in ADDRESSES] == [3, 1, 2]
    # The pick swaps places with the first record; the others keep theirs.
    assert last == ["100.64.1.1", "100.64.1.2", "100.64.1.3"]


async def test_swap_keeps_the_other_records_in_place(upstream: Responder, tmp_path: Path) -> None:
    (tmp_path / "w").write_text(WEIGHTS)
    async with running_server(corefile(tmp_path / "w", upstream.port)) as server:
        plugin_of(server)._choose = lambda total: total - 1  # the lightest: 100.64.1.2
        got = addresses(await query(server.port, "www.example.com.", "A"))
    assert got == ["100.64.1.2", "100.64.1.1", "100.64.1.3"]


async def test_other_question_types_are_left_alone(upstream: Responder, tmp_path: Path) -> None:
    (tmp_path / "w").write_text(WEIGHTS)
    async with running_server(corefile(tmp_path / "w", upstream.port)) as server:
        plugin_of(server)._choose = lambda total: total - 1
        reply = await query(server.port, "www.example.com.", "MX")
    assert [rd.to_text() for rrset in reply.answer for rd in rrset] == ["10 mail.example.com."]


async def test_the_file_reloads_when_it_changes(upstream: Responder, tmp_path: Path) -> None:
    path = tmp_path / "w"
    path.write_text(WEIGHTS)
    text = corefile(path, upstream.port, " {\n  reload 100ms\n }")
    async with running_server(text) as server:
        plugin = plugin_of(server)
        plugin._choose = lambda total: 0  # always the heaviest
        assert addresses(await query(server.port, "www.example.com.", "A"))[0] == "100.64.1.1"
        path.write_text("www.example.com\n100.64.1.3 200\n")
        await asyncio.sleep(0.4)
        assert addresses(await query(server.port, "www.example.com.", "A"))[0] == "100.64.1.3"
        path.write_text("www.example.com\n100.64.1.2 0\n")  # broken: the old weights stay
        await asyncio.sleep(0.4)
        assert plugin.weights == parse_weights("www.example.com\n100.64.1.3 200\n", "x")


def test_parse_weights() -> None:
    weights = parse_weights(WEIGHTS + "\nother.example.\n::1 255\n", "w")
    assert set(weights) == {"www.example.com.", "other.example."}
    assert sorted(int(w) for w in weights["www.example.com."].values()) == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1\n", "w:1: '10.0.0.1' is not a name"),
        ("a.example\nnot-an-ip 3\n", "w:2: 'not-an-ip' is not an IP address"),
        ("a.example\n10.0.0.1 256\n", "w:2: weight '256' is not 1..255"),
        ("a.example\n10.0.0.1 0\n", "weight '0'"),
        ("10.0.0.1 3\n", "w:1: a weight before any name"),
        ("a.example\n10.0.0.1 3 4\n", "w:2: cannot parse"),
    ],
)
def test_parse_weights_errors(text: str, message: str) -> None:
    with pytest.raises(WeightFileError, match=message):
        parse_weights(text, "w")


@pytest.mark.parametrize(
    ("body", "message", "line"),
    [
        ("loadbalance weighted", "missing weight file argument", 2),
        ("loadbalance weighted {missing} {{\n reload 0s\n}}", "cannot read weight file", 2),
        ("loadbalance weighted {broken}", "broken:2: weight '0'", 2),
        # as CoreDNS: the weighted policy's block takes reload only
        ("loadbalance weighted {good} {{\n prefer 10.0.0.0/8\n}}", "unknown property 'prefer'", 3),
    ],
)
async def test_setup_errors(body: str, message: str, line: int, tmp_path: Path) -> None:
    (tmp_path / "good").write_text(WEIGHTS)
    (tmp_path / "broken").write_text("a.example\n10.0.0.1 0\n")
    paths = {"missing": tmp_path / "missing", "broken": tmp_path / "broken"}
    text = body.format(good=tmp_path / "good", **paths)
    with pytest.raises(CorefileError, match=message) as info:
        async with running_server(f". {{\n{text}\n whoami\n}}\n"):
            pass
    assert info.value.line == line


async def test_a_missing_file_is_read_once_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "w"
    async with running_server(
        f". {{\n loadbalance weighted {path} {{\n  reload 100ms\n }}\n whoami\n}}\n"
    ) as server:
        plugin = plugin_of(server)
        assert plugin.weights == {}
        path.write_text(WEIGHTS)
        await asyncio.sleep(0.4)
        assert "www.example.com." in plugin.weights
