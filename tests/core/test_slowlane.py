"""SlowLane: the bounded, fresh-first hand-off of chain questions to the event loop."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from prometheus_client import CollectorRegistry

from clusterdns.core.request import Request
from clusterdns.core.slowlane import OverloadMetrics, SlowLane


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Chain:
    """Stands in for Dispatcher.resolve + sendto: records what ran, finishes on release."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.gate = asyncio.Event()

    async def run(self, req: Request, addr: tuple[str, int]) -> None:
        self.started.append(cast(str, req))
        await self.gate.wait()


def lane(chain: Chain, clock: Clock, **limits: float) -> tuple[SlowLane, OverloadMetrics]:
    metrics = OverloadMetrics(CollectorRegistry())
    loop = asyncio.get_running_loop()
    return SlowLane(loop, chain.run, metrics, clock=clock, **limits), metrics  # type: ignore[arg-type]


def shed(metrics: OverloadMetrics, reason: str) -> float:
    return metrics.shed.labels(REASONS[reason])._value.get()


REASONS = {"full": "queue_full", "stale": "queue_stale", "client": "client_share"}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def submit(the_lane: SlowLane, name: str, host: str = "10.0.0.1") -> None:
    the_lane.submit(cast(Request, name), (host, 5353))


async def test_everything_runs_when_there_is_room() -> None:
    chain, clock = Chain(), Clock()
    the_lane, metrics = lane(chain, clock)
    for name in ("a", "b", "c"):
        submit(the_lane, name)
    await settle()
    assert sorted(chain.started) == ["a", "b", "c"]
    chain.gate.set()
    await settle()
    assert the_lane.running == 0 and not the_lane.tasks
    assert shed(metrics, "full") == shed(metrics, "stale") == shed(metrics, "client") == 0


async def test_waiting_questions_start_newest_first_and_stale_ones_are_shed() -> None:
    chain, clock = Chain(), Clock()
    the_lane, metrics = lane(chain, clock, max_running=1, stale_after=2.0)
    submit(the_lane, "first")
    await settle()
    assert chain.started == ["first"]
    submit(the_lane, "old")
    clock.now += 3.0  # "old" has waited past stale_after by the time a place frees
    for name in ("newer", "newest"):
        submit(the_lane, name)
    await settle()
    chain.gate.set()
    await settle()
    # One place: after "first", the newest waiting question, then the next newest; the
    # one that went stale never reaches the chain.
    assert chain.started == ["first", "newest", "newer"]
    assert shed(metrics, "stale") == 1


async def test_a_full_waiting_line_sheds_its_oldest() -> None:
    chain, clock = Chain(), Clock()
    the_lane, metrics = lane(chain, clock, max_running=1, max_waiting=2)
    for name in ("running", "w1", "w2", "w3", "w4"):
        submit(the_lane, name)
        await settle()
    assert the_lane.waiting == 2
    assert shed(metrics, "full") == 2
    chain.gate.set()
    await settle()
    assert chain.started == ["running", "w4", "w3"]


async def test_one_client_cannot_take_every_place() -> None:
    chain, clock = Chain(), Clock()
    the_lane, metrics = lane(chain, clock, max_running=4, per_client=3)
    for n in range(10):
        submit(the_lane, f"flood{n}", host="10.0.0.66")
    submit(the_lane, "quiet", host="10.0.0.7")
    await settle()
    assert "quiet" in chain.started
    assert sum(name.startswith("flood") for name in chain.started) == 3
    assert shed(metrics, "client") == 7
    chain.gate.set()
    await settle()
    # Places are given back when questions finish.
    submit(the_lane, "again", host="10.0.0.66")
    await settle()
    assert chain.started[-1] == "again"


@pytest.mark.parametrize("count", [1, 50])
async def test_submitted_from_another_thread(count: int) -> None:
    chain, clock = Chain(), Clock()
    chain.gate.set()
    the_lane, _ = lane(chain, clock)
    names = [f"q{n}" for n in range(count)]
    await asyncio.to_thread(lambda: [submit(the_lane, name) for name in names])
    for _ in range(100):
        if len(chain.started) == count:
            break
        await asyncio.sleep(0.01)
    assert sorted(chain.started) == sorted(names)
