"""A server block at run time, and the zone mux that picks one per query."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import dns.rcode

from clusterdns.core.fast import (
    ExpressAnswerer,
    ExpressPassable,
    FastAnswerer,
    FastEdit,
    FastFilter,
    FastGate,
    FastObserver,
    FastTransparent,
    ReplaysReplies,
    Sinks,
    VersionedRecords,
)
from clusterdns.core.plugin import BlockSettings, Plugin
from clusterdns.core.request import Handler, Reply, Request, Transport
from clusterdns.core.view import BlockFilter
from clusterdns.wire import Query, text_to_wire

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


class FastStep:
    """One plugin's place on the fast path: the plugin, the gates (acl) between the
    previous step and this one (each with the edits its own replies pass through), and
    the edits (nsid, header, minimal; innermost first)
    and filters (plugins before it that only transform replies, e.g. loadbalance) its
    replies pass through."""

    __slots__ = ("answer", "answerer", "edits", "filters", "gates", "name", "pass_sinks")

    def __init__(
        self,
        answerer: FastAnswerer,
        filters: tuple[FastFilter, ...],
        gates: tuple[tuple[FastGate, tuple[FastEdit, ...]], ...] = (),
        edits: tuple[FastEdit, ...] = (),
        pass_sinks: Sinks = (),
    ) -> None:
        self.answerer = answerer
        self.answer = answerer.answer_fast  # bound once: a lookup less per question
        self.name = answerer.name
        self.filters = filters
        self.gates = gates
        self.edits = edits
        # Every gate before this step counts a memo hit of its replies as a query let on.
        self.pass_sinks = pass_sinks


def fast_steps(plugins: Sequence[Plugin]) -> tuple[FastStep, ...]:
    """The fast answerers of the chain, in order, up to the first plugin that is neither
    an answerer, a filter, a gate nor an edit: past it only the chain knows what happens."""
    steps: list[FastStep] = []
    filters: list[FastFilter] = []
    gates: list[tuple[FastGate, tuple[FastEdit, ...]]] = []
    edits: list[FastEdit] = []
    pass_sinks: Sinks = ()
    every_edit = tuple(edit for _, edit in chain_edits(plugins))
    for plugin in plugins:
        if not plugin.in_chain or isinstance(plugin, FastTransparent):
            continue
        if isinstance(plugin, FastAnswerer):
            # A replayed reply (a cache hit) was made behind every edit of the chain.
            its_edits = every_edit if isinstance(plugin, ReplaysReplies) else tuple(reversed(edits))
            steps.append(FastStep(plugin, tuple(filters), tuple(gates), its_edits, pass_sinks))
            gates = []
        elif isinstance(plugin, FastFilter):
            filters.append(plugin)
        elif isinstance(plugin, FastGate):
            gates.append((plugin, tuple(reversed(edits))))
            pass_sinks = pass_sinks + plugin.pass_sinks()
        elif isinstance(plugin, FastEdit):
            edits.append(plugin)
        else:
            break
    return tuple(steps)


# A block's express route: the step whose plugin answers from the datagram, and the
# steps before it, each able to say it would answer nothing (core/dispatch.py).
ExpressRoute = tuple[FastStep, tuple[ExpressPassable, ...]]


def express_route(steps: Sequence[FastStep]) -> ExpressRoute | None:
    """Where the express tier may answer for a block: the first step whose plugin is an
    ExpressAnswerer, when no gate stands before it, it has no edits of its own, and every
    step before it is ExpressPassable (a cache). Filters stay: the tier leaves replies
    they would change (more than one answer) to the general path."""
    passables: list[ExpressPassable] = []
    for step in steps:
        if step.gates:
            return None
        if isinstance(step.answerer, ExpressAnswerer):
            if step.edits or step.pass_sinks:
                return None
            return step, tuple(passables)
        if not isinstance(step.answerer, ExpressPassable):
            return None
        passables.append(step.answerer)
    return None


def chain_edits(plugins: Sequence[Plugin]) -> tuple[tuple[int, FastEdit], ...]:
    """The edits of the chain with their place in it, innermost (last) first: a reply
    written by the plugin at place p passes through those before p."""
    found = [
        (index, plugin)
        for index, plugin in enumerate(plugins)
        if plugin.in_chain and isinstance(plugin, FastEdit)
    ]
    return tuple(reversed(found))


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
        # For the fast path: observers that take the query as it is (and count memo hits
        # in bulk), and those that need a Request built for them.
        self.fast_observers: list[FastObserver] = [
            p for p in plugins if p.observes and isinstance(p, FastObserver)
        ]
        self.request_observers: list[Observer] = [
            p.observe for p in plugins if p.observes and not isinstance(p, FastObserver)
        ]
        self.fast_steps = fast_steps(plugins)
        # The reply memo (core/memo.py) needs every observer to count hits in bulk.
        self.memoizable = not self.request_observers
        # The express tier (core/dispatch.py) counts through the memo's tallies.
        self.express = express_route(self.fast_steps) if self.memoizable else None
        # Record plugins that count changes to their data: a move drops the memo entries
        # that depend on it (a cached answer for their names is stale too).
        self.versioned: list[VersionedRecords] = [
            p for p in plugins if isinstance(p, VersionedRecords)
        ]
        # Edits (nsid, header, minimal) that chain replies get too, and each plugin's
        # place, to know which edits a reply passed through.
        self.edits = chain_edits(plugins)
        # A reply written by a plugin passed the edits placed before it; one a plugin
        # replays (cache) passed them all when it was made.
        self.place: dict[str, int] = {
            p.name: len(plugins) if isinstance(p, ReplaysReplies) else i
            for i, p in enumerate(plugins)
        }
        # view: the block only takes the queries its filters admit (core/view.py).
        self.filters: list[BlockFilter] = [p for p in plugins if isinstance(p, BlockFilter)]
        self.view_name = self.filters[0].view_name if self.filters else ""
        if self.filters:
            self.express = None

    def admits(
        self, query: Query, transport: Transport, client: tuple[str, int], zone: str
    ) -> bool:
        """Does this block take ``query`` (always, without a view)?"""
        if not self.filters:
            return True
        req = Request(query, transport=transport, client=client, block=self, zone=zone)
        return all(block_filter.admits(req) for block_filter in self.filters)

    def edit(self, query: Query, wire: bytes, plugin: str, limit: int) -> bytes:
        """A chain reply written by ``plugin`` after the edits of the plugins before it."""
        place = self.place.get(plugin)
        if place is None:
            return wire  # written by the server itself (an error rcode): never edited
        for index, edit in self.edits:
            if index < place:
                wire = edit.edit_fast(query, wire, limit)
        return wire

    def plugin(self, name: str) -> Plugin | None:
        for plugin in self.plugins:
            if plugin.name == name:
                return plugin
        return None


class ZoneMux:
    """Longest-suffix match of the question name over the blocks sharing a listener; for
    zones served by several blocks with views, the first block (in Corefile order) whose
    view admits the query (:meth:`route`)."""

    def __init__(self) -> None:
        self._by_zone: dict[bytes, tuple[Block, str]] = {}
        # Zones with a filtered block: every candidate, in order.
        self._views: dict[bytes, tuple[tuple[Block, str], ...]] = {}

    @property
    def has_views(self) -> bool:
        return bool(self._views)

    def add(self, zone: str, block: Block) -> Block | None:
        """Register ``block`` for ``zone``; returns the block already there when neither
        has a view (a conflict), else None."""
        key = text_to_wire(zone)
        existing = self._by_zone.get(key)
        if existing is None:
            self._by_zone[key] = (block, zone)
            if block.filters:
                self._views[key] = ((block, zone),)
            return None
        candidates = self._views.get(key, (existing,))
        if not block.filters and not any(b.filters for b, _ in candidates):
            return existing[0]
        self._views[key] = (*candidates, (block, zone))
        return None

    def route(
        self, query: Query, transport: Transport, client: tuple[str, int]
    ) -> tuple[Block, str, bool] | None:
        """(block, zone, whether the choice depended on the client) for ``query``."""
        views = self._views
        if not views:
            hit = self.match(query)
            return None if hit is None else (hit[0], hit[1], False)
        by_zone = self._by_zone
        lower = query.qname_lower
        consulted = False
        for offset in query.label_offsets:
            key = lower[offset:]
            candidates = views.get(key)
            if candidates is None:
                hit = by_zone.get(key)
                if hit is not None:
                    return hit[0], hit[1], consulted
                continue
            consulted = True
            for block, zone in candidates:
                if block.admits(query, transport, client, zone):
                    return block, zone, True
        return None

    def only_root_block(self) -> tuple[Block, str] | None:
        """The block and zone of a listener with one block, for the root zone (`.:53`):
        it takes every name, so nothing about the name is needed to choose it."""
        if len(self._by_zone) == 1 and not self._views:
            return self._by_zone.get(b"\x00")
        return None

    def match(self, query: Query) -> tuple[Block, str] | None:
        by_zone = self._by_zone
        if len(by_zone) == 1:
            # One block (the usual `.:53`): a root zone takes everything.
            only = by_zone.get(b"\x00")
            if only is not None:
                return only
        lower = query.qname_lower
        for offset in query.label_offsets:
            hit = by_zone.get(lower[offset:])
            if hit is not None:
                return hit
        return None

    @functools.cached_property
    def versioned(self) -> list[VersionedRecords]:
        """The record plugins whose changes a reply memo for this mux must watch."""
        return [p for block in self.blocks for p in block.versioned]

    @property
    def blocks(self) -> list[Block]:
        seen: dict[int, Block] = {}
        for block, _ in self._by_zone.values():
            seen[id(block)] = block
        return list(seen.values())
