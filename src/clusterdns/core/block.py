"""A server block at run time, and the zone mux that picks one per query."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import dns.rcode

from clusterdns.core.plugin import SLOW, BlockSettings, FastHook, Plugin
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.wire import AnswerTemplate, Query, text_to_wire

Observer = Callable[[Request, int, bytes, float, str], None]


async def _end_of_chain(req: Request) -> Reply:
    # CoreDNS: "no next plugin found" is SERVFAIL.
    return Reply.error(dns.rcode.SERVFAIL)


def build_chain(plugins: Sequence[Plugin]) -> Handler:
    """Compose the plugins into one handler; each one's next_handler is the rest."""
    handler: Handler = _end_of_chain
    for plugin in reversed(plugins):
        if plugin.in_chain:
            handler = functools.partial(plugin.serve, next_handler=handler)
    return handler


def fast_hooks(plugins: Sequence[Plugin]) -> tuple[tuple[str, FastHook], ...]:
    """The fast hooks of the chain, in order, up to the first plugin without one.

    A plugin with only a ``fast_filter`` (loadbalance) takes part by filtering
    whatever a later hook answers.
    """
    hooks: list[tuple[str, FastHook]] = []
    filters: list[Callable[[bytes], bytes | None]] = []
    for plugin in plugins:
        if not plugin.in_chain:
            continue
        if plugin.fast is not None:
            hook = plugin.fast
            if filters:
                hook = _filtered(hook, tuple(filters))
            hooks.append((plugin.name, hook))
        elif plugin.fast_filter is not None:
            filters.append(plugin.fast_filter)
        else:
            break
    return tuple(hooks)


class FilteredAnswer:
    """A fast answer that must pass through filters once rendered for the query."""

    __slots__ = ("filters", "result")

    def __init__(
        self, result: AnswerTemplate | bytes, filters: tuple[Callable[[bytes], bytes | None], ...]
    ) -> None:
        self.result = result
        self.filters = filters


def _filtered(hook: FastHook, filters: tuple[Callable[[bytes], bytes | None], ...]) -> FastHook:
    def filtered(query: Query) -> Any:
        result = hook(query)
        if result is None or result is SLOW:
            return result
        return FilteredAnswer(result, filters)  # type: ignore[arg-type]

    return filtered


class Block:
    """One server block: its zones, port, plugins (in execution order) and chain."""

    def __init__(
        self,
        *,
        zones: tuple[str, ...],
        port: int,
        server_label: str,
        plugins: list[Plugin],
        settings: BlockSettings,
        file: str,
        line: int,
    ) -> None:
        self.zones = zones
        self.port = port
        self.server_label = server_label
        self.plugins = plugins
        self.settings = settings
        self.file = file
        self.line = line
        self.chain = build_chain(plugins)
        self.observers: list[Observer] = [p.observe for p in plugins if p.observes]
        # For the fast path: observers that take the query as it is, and those that
        # need a Request built for them.
        self.fast_observers = [p.observe_fast for p in plugins if p.observes and p.observe_fast]
        self.request_observers: list[Observer] = [
            p.observe for p in plugins if p.observes and p.observe_fast is None
        ]
        self.fast_hooks = fast_hooks(plugins)
        # The UDP reply memo (core/memo.py) needs every observer to count hits in bulk.
        self.memo_observers = [p for p in plugins if p.observes and p.memo_sink is not None]
        self.memoizable = len(self.memo_observers) == len(self.observers)
        # Record plugins that count changes to their data: a move empties the memo (a
        # cached answer for their names is stale too, not only their own answers).
        self.memo_watch = [p for p in plugins if isinstance(getattr(p, "generation", None), int)]

    def plugin(self, name: str) -> Plugin | None:
        for plugin in self.plugins:
            if plugin.name == name:
                return plugin
        return None


class ZoneMux:
    """Longest-suffix match of the question name over the blocks sharing a listener."""

    def __init__(self) -> None:
        self._by_zone: dict[bytes, tuple[Block, str]] = {}

    def add(self, zone: str, block: Block) -> Block | None:
        """Register ``block`` for ``zone``; returns the block already there, if any."""
        key = text_to_wire(zone)
        existing = self._by_zone.get(key)
        if existing is not None:
            return existing[0]
        self._by_zone[key] = (block, zone)
        return None

    def match(self, query: Query) -> tuple[Block, str] | None:
        by_zone = self._by_zone
        lower = query.qname_lower
        for offset in query.label_offsets:
            hit = by_zone.get(lower[offset:])
            if hit is not None:
                return hit
        return None

    @functools.cached_property
    def memo_watch(self) -> list[Plugin]:
        """The plugins whose generation a reply memo for this mux must watch."""
        return [p for block in self.blocks for p in block.memo_watch]

    @property
    def blocks(self) -> list[Block]:
        seen: dict[int, Block] = {}
        for block, _ in self._by_zone.values():
            seen[id(block)] = block
        return list(seen.values())
