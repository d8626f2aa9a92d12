"""The fast-path hooks of core/fast.py as core/block.py arranges them: gates before the
answerers they guard (with the edits before each gate), edits innermost first, cache hits
edited by every edit, and chain replies edited only by the plugins in front of their
writer."""

from __future__ import annotations

from typing import Literal

import dns.message

from clusterdns.core.block import Block, fast_steps
from clusterdns.core.fast import PASS, FastReply, FastResult, GateResult, Sinks
from clusterdns.core.plugin import BlockSettings, Plugin
from clusterdns.wire import Query, parse_query


class Answerer(Plugin):
    def __init__(self, name: str) -> None:
        self.name = name

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        return FastReply(b"")


class Replayer(Answerer):
    replays_later_replies: Literal[True] = True


class Gate(Plugin):
    def __init__(self, name: str) -> None:
        self.name = name

    def gate_fast(
        self, query: Query, client: tuple[str, int], limit: int, payload: int
    ) -> GateResult:
        return PASS

    def pass_sinks(self) -> Sinks:
        return ((self.name, lambda hits, seconds: None),)


class Edit(Plugin):
    """Appends its name to the reply, so the order of edits shows."""

    def __init__(self, name: str) -> None:
        self.name = name

    def edit_fast(self, query: Query, wire: bytes, limit: int) -> bytes:
        return wire + self.name.encode()


def names(items: tuple[object, ...]) -> list[str]:
    return [str(getattr(item, "name", item)) for item in items]


def test_steps_carry_their_gates_and_edits() -> None:
    plugins: list[Plugin] = [
        Edit("e1"), Gate("g1"), Edit("e2"), Answerer("a1"), Gate("g2"), Edit("e3"), Answerer("a2"),
    ]  # fmt: skip
    first, second = fast_steps(plugins)
    assert [(gate.name, names(edits)) for gate, edits in first.gates] == [("g1", ["e1"])]
    assert names(first.edits) == ["e2", "e1"]  # innermost first
    assert [gate.name for gate, _ in second.gates] == ["g2"]  # g1 ran before a1 already
    assert names(second.edits) == ["e3", "e2", "e1"]
    assert [key for key, _ in second.pass_sinks] == ["g1", "g2"]


def test_a_replayer_gets_every_edit() -> None:
    (step,) = fast_steps([Replayer("cache"), Edit("header"), Edit("minimal")])
    assert names(step.edits) == ["minimal", "header"]


def test_a_plugin_without_a_fast_capability_ends_the_fast_path() -> None:
    assert fast_steps([Plugin(), Answerer("a")]) == ()


def block_of(plugins: list[Plugin]) -> Block:
    return Block(
        zones=(".",), port=53, server_label="dns://:53", plugins=plugins,
        settings=BlockSettings(), file="Corefile", line=1,
    )  # fmt: skip


def test_chain_replies_pass_the_edits_in_front_of_their_writer() -> None:
    block = block_of([Edit("nsid"), Replayer("cache"), Edit("header"), Answerer("hosts")])
    query = parse_query(dns.message.make_query("x.", "A").to_wire())
    assert block.edit(query, b"", "hosts", 512) == b"headernsid"
    assert block.edit(query, b"", "cache", 512) == b"headernsid"  # a cache hit
    assert block.edit(query, b"", "nsid", 512) == b""
    assert block.edit(query, b"", "", 512) == b""  # written by the server itself


class Transparent(Plugin):
    name = "errors-like"
    fast_transparent: Literal[True] = True


def test_a_transparent_plugin_is_neither_a_step_nor_the_end() -> None:
    steps = fast_steps([Transparent(), Answerer("a1"), Transparent(), Answerer("a2")])
    assert [step.name for step in steps] == ["a1", "a2"]
