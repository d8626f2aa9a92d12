"""Per-query dispatch: raw query bytes in, reply bytes (or a Request for the chain) out.

:meth:`Dispatcher.handle` is the one path every receive mode calls (UDP on a thread, in
batches or on the event loop, and TCP): the reply memo, then the header gate (drops,
FORMERR, NOTIMP, BADVERS, REFUSED), then the block's fast path (core/fast.py), and only
what none of them answers becomes a :class:`Request` for the plugin chain, which
:meth:`Dispatcher.resolve` runs on the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Callable, Hashable
from time import perf_counter
from typing import TYPE_CHECKING, Final, Literal

import dns.message
import dns.rcode
import dns.rdatatype

from clusterdns.core.block import Block, FastStep, ZoneMux
from clusterdns.core.explain import Explained, Rule, Why
from clusterdns.core.fast import (
    CHAIN,
    DROP,
    PASS,
    PRIVATE,
    SLOW,
    ExpressAnswerer,
    ExpressPassable,
    ExpressReply,
    Gate,
    Sinks,
)
from clusterdns.core.memo import ReplyMemo, Tally
from clusterdns.core.plugin import PluginError
from clusterdns.core.request import Reply, Request, Transport
from clusterdns.wire import DropQuery, FormError, Query, parse_query
from clusterdns.wire.render import error_reply, render_message, render_template, reply_limit

if TYPE_CHECKING:
    from clusterdns.core.server import DnsServer

log = logging.getLogger("clusterdns.server")

FORMERR: Final = dns.rcode.FORMERR
SERVFAIL: Final = dns.rcode.SERVFAIL
NOTIMP: Final = dns.rcode.NOTIMP
REFUSED: Final = dns.rcode.REFUSED
BADVERS: Final = dns.rcode.BADVERS
# Internal lookups (an ExternalName target) that lead to more lookups stop here.
MAX_LOOKUP_DEPTH: Final = 4
ROW_TALLIES: Final = 4096  # label rows of memoised answers kept with their tally


class Dispatcher:
    """Turns raw query bytes into reply bytes for one listening address."""

    def __init__(self, server: DnsServer, mux: ZoneMux) -> None:
        self.server = server
        self.mux = mux
        # (the mux it was found for, the express tier's route for it): one attribute, so
        # a receive thread never pairs a new mux with an old route.
        self._express: tuple[ZoneMux | None, _Express | None] = (None, None)

    def handle(
        self,
        data: bytes,
        transport: Transport,
        client: tuple[str, int],
        memo: ReplyMemo | None = None,
    ) -> bytes | Request | None:
        """The reply to send now, a Request for the chain, or None (drop).

        ``memo`` is the caller's reply memo (one per receive thread, one per TCP
        listener): consulted first, and filled with fast answers that allow it."""
        if memo is not None:
            mux = self.mux
            memo.check(mux, mux.versioned)
            tail = memo.answer(data[2:], time.monotonic())
            if tail is not None:
                return data[:2] + tail
        return self.prepare(data, transport, client, memo)

    def prepare(
        self,
        data: bytes,
        transport: Transport,
        client: tuple[str, int],
        memo: ReplyMemo | None = None,
    ) -> bytes | Request | None:
        """Everything decided without the chain: drops, FORMERR, NOTIMP, BADVERS, REFUSED,
        and fast-path answers (kept in ``memo`` when their plugin allows it)."""
        if memo is not None:
            mux = self.mux
            found = self._express
            if found[0] is not mux:
                found = self._express = (mux, _express_of(mux))
            if found[1] is not None:
                wire = self._answer_express(found[1], data, transport, client, memo)
                if wire is not None:
                    return wire
        try:
            query = parse_query(data)
        except DropQuery:
            return None
        except FormError as err:
            return error_reply(
                data, FORMERR, question_end=err.question_end, edns_do=None, payload=0
            )
        edns = query.edns
        if query.opcode != 0:
            return error_reply(
                data, NOTIMP, question_end=query.question_end,
                edns_do=None if edns is None else edns.do, payload=4096,
            )  # fmt: skip
        if edns is not None and edns.version != 0:
            return error_reply(
                data, BADVERS, question_end=query.question_end, edns_do=edns.do, payload=4096
            )
        mux = self.mux
        private = False
        if mux.has_views:
            routed = mux.route(query, transport, client)
            hit = None if routed is None else (routed[0], routed[1])
            private = routed is not None and routed[2]
        else:
            hit = mux.match(query)
        if hit is None:
            return error_reply(
                data, REFUSED, question_end=query.question_end,
                edns_do=None if edns is None else edns.do, payload=4096,
            )  # fmt: skip
        block, zone = hit
        if block.fast_steps:
            fast = self.fast_answer(query, block, zone, transport, client, memo, private=private)
            if fast is not None:
                return None if fast is DROP else fast
        req = Request(query, transport=transport, client=client, block=block, zone=zone)
        req.lookup_via = self.lookup
        return req

    def fast_answer(
        self,
        query: Query,
        block: Block,
        zone: str,
        transport: Transport,
        client: tuple[str, int],
        memo: ReplyMemo | None = None,
        *,
        private: bool = False,
    ) -> bytes | Literal[Gate.DROP] | None:
        """Answer without a coroutine through the block's fast steps: the reply, DROP (no
        reply: a gate said so), or None for the chain. ``private``: the block was chosen
        for this client (a view), so nothing is memoised."""
        started = perf_counter()
        max_udp = block.settings.max_udp_size
        limit = reply_limit(query, tcp=transport == "tcp", max_udp=max_udp)
        for step in block.fast_steps:
            for gate, gate_edits in step.gates:
                verdict = gate.gate_fast(query, client, limit, max_udp)
                if verdict is PASS:
                    continue
                if verdict is PRIVATE:
                    private = True
                    continue
                if verdict is CHAIN:
                    return None
                if verdict is DROP:
                    return DROP
                assert isinstance(verdict, bytes)
                for edit in gate_edits:
                    verdict = edit.edit_fast(query, verdict, limit)
                # The gate's own reply (a refusal): never memoised, it depends on the client.
                self._observe_fast(
                    block, zone, transport, client, query, verdict, started, gate.name
                )
                return verdict
            reply = step.answer(query, limit, max_udp)
            if reply is None:
                continue
            if reply is SLOW:
                return None
            wire = reply.wire
            for edit in step.edits:
                wire = edit.edit_fast(query, wire, limit)
            # Filters reorder answers (loadbalance): nothing to do for one record.
            reordered = False
            if step.filters and (wire[6] or wire[7] > 1):
                for fast_filter in step.filters:
                    filtered = fast_filter.filter_fast(wire)
                    if filtered is None:
                        return None
                    reordered = reordered or filtered is not wire
                    wire = filtered
            if memo is not None and block.memoizable:
                key = query.data[2:]
                # Kept for identical questions when right for every client; a full memo
                # keeps a question on its second sight (ReplyMemo.admits).
                keepable = not reordered and not private and reply.until > 0
                if not reply.sinks:
                    # Counted through its label row's tally, as its memo hits will be (the
                    # observers' and the gates' sinks of the row), kept or not: no
                    # per-query recording. (A reply with sinks of its own counted itself
                    # already: a cache hit.)
                    tally = self._tally(memo, query, block, zone, transport, client, step, wire)
                    if keepable:
                        memo.first_sight(
                            key, wire[2:], reply.until, tally, step.answerer, reply.depends,
                            started,
                        )  # fmt: skip
                    else:
                        memo.count_first(tally, started)
                    return wire
                if keepable and memo.admits(key):
                    tally = self._tally(
                        memo, query, block, zone, transport, client, step, wire, reply.sinks
                    )
                    memo.put_tallied(
                        key, wire[2:], reply.until, tally, step.answerer, reply.depends
                    )
            for _, counted in step.pass_sinks:
                counted(1, 0.0)  # the gates before this step let the query on
            self._observe_fast(block, zone, transport, client, query, wire, started, step.name)
            return wire
        return None

    @staticmethod
    def _answer_express(
        express: _Express,
        data: bytes,
        transport: Transport,
        client: tuple[str, int],
        memo: ReplyMemo,
    ) -> bytes | None:
        """The express tier: a first sight answered from the datagram by the block's
        ExpressAnswerer, kept in ``memo`` and counted through its label row's tally, as
        the general path would answer, keep and count it; None leaves the query to the
        general path (anything unusual, the first question of its label row,
        whose sinks only the general path makes). A full memo keeps it on its second
        sight, as the general path does; it is counted either way."""
        started = perf_counter()
        block, zone, step, passables, answer, max_udp = express
        got = answer(data, transport == "tcp", max_udp)
        if got is None:
            return None
        wire, until, depends, lower, qtype, do = got
        if passables:
            flags = data[2] << 8 | data[3]
            for passable in passables:
                if not passable.passes_express(lower, qtype, flags, do):
                    return None
        if step.filters and (wire[6] or wire[7] > 1):
            return None  # a filter may reorder it: the general path runs them
        tally = memo.row_tallies.get(_row(block, zone, transport, client, qtype, step, data, wire))
        if tally is None:
            return None
        memo.first_sight(data[2:], wire[2:], until, tally, step.answerer, depends, started)
        return wire

    @staticmethod
    def _observe_fast(
        block: Block,
        zone: str,
        transport: Transport,
        client: tuple[str, int],
        query: Query,
        wire: bytes,
        started: float,
        plugin: str,
    ) -> None:
        if not block.observers:
            return
        duration = perf_counter() - started
        rcode = wire[3] & 0xF
        for observer in block.fast_observers:
            observer.observe_fast(
                block.server_label, zone, transport, client, query, rcode, wire, duration, plugin
            )
        if block.request_observers:
            req = Request(query, transport=transport, client=client, block=block, zone=zone)
            for request_observer in block.request_observers:
                request_observer(req, rcode, wire, duration, plugin)

    @staticmethod
    def _tally(
        memo: ReplyMemo,
        query: Query,
        block: Block,
        zone: str,
        transport: Transport,
        client: tuple[str, int],
        step: FastStep,
        wire: bytes,
        sinks: Sinks = (),
    ) -> Tally:
        """The tally that counts answers of this label row (and the memo hits of their
        entries): the observers' and the gates' sinks, and ``sinks`` of the reply's own
        (a cache hit's), made on the row's first answer, then found with one lookup."""
        rcode = wire[3] & 0xF
        family = 2 if ":" in client[0] else 1
        row: Hashable = _row(block, zone, transport, client, query.qtype, step, query.data, wire)
        if sinks:
            row = (row, tuple([k for k, _ in sinks]))
        tallies = memo.row_tallies
        tally = tallies.get(row)
        if tally is None:
            every = (
                sinks
                + step.pass_sinks
                + tuple(
                    [
                        observer.memo_sink(
                            block.server_label,
                            zone,
                            transport,
                            family,
                            query,
                            rcode,
                            wire,
                            step.name,
                        )
                        for observer in block.fast_observers
                    ]
                )
            )
            if len(tallies) >= ROW_TALLIES:
                tallies.clear()
            tally = tallies[row] = memo.tally_of(every)
        return tally

    async def lookup(self, origin: Request, name: str, qtype: int) -> Reply | None:
        """An internal query for ``name`` through the blocks of this listener."""
        depth = origin.meta.get("lookup_depth", 0)
        if depth >= MAX_LOOKUP_DEPTH:
            return None
        try:
            wire = dns.message.make_query(
                name, dns.rdatatype.RdataType.make(qtype), want_dnssec=origin.do
            ).to_wire()
            query = parse_query(wire)
        except Exception:
            return None
        routed = self.mux.route(query, origin.transport, origin.client)
        if routed is None:
            return None
        block, zone, _ = routed
        req = Request(query, transport="tcp", client=origin.client, block=block, zone=zone)
        req.lookup_via = self.lookup
        req.meta["lookup_depth"] = depth + 1
        try:
            reply = await block.chain(req)
        except Exception:
            return None
        return None if reply.drop else reply

    async def explain(self, name: str, qtype: int) -> Explained | None:
        """Ask this listener's chain for ``name``/``qtype`` as a client would (UDP, RD,
        EDNS 4096), with every plugin on the way saying why (core/explain.py). The chain
        gives the same answers as the fast path, which has no room for reasons. None when
        no block here serves the name."""
        try:
            wire = dns.message.make_query(
                name, dns.rdatatype.RdataType.make(qtype), use_edns=0, payload=4096
            ).to_wire()
            query = parse_query(wire)
        except Exception:
            return None
        client = ("127.0.0.1", 0)
        routed = self.mux.route(query, "udp", client)
        if routed is None:
            return None
        block, zone, _ = routed
        req = Request(query, transport="udp", client=client, block=block, zone=zone)
        req.lookup_via = self.lookup
        why: list[Why] = []
        req.why = why
        try:
            reply = await block.chain(req)
        except PluginError as err:
            reply = Reply.error(err.rcode, plugin=err.plugin)
            why.append(Why(err.plugin, Rule.ERROR, str(err)))
        except FormError as err:
            reply = Reply.error(FORMERR)
            why.append(Why("", Rule.ERROR, str(err)))
        if not why:
            why.append(Why(reply.plugin, Rule.ANSWERED if reply.written else Rule.ERROR))
        return Explained(
            wire=encode(req, reply),
            plugin=reply.plugin,
            why=tuple(why),
            server=block.server_label,
            zone=zone,
            memo=self.server.process.metrics.memo.held(query.qname_lower, query.qtype),
        )

    async def resolve(self, req: Request) -> bytes | None:
        """The chain's reply to ``req``, encoded; None when a plugin dropped the query."""
        wire, more = await self.resolve_all(req)
        if more is not None:
            await more.aclose()  # UDP: one message only (transfer refuses UDP anyway)
        return wire

    async def resolve_all(
        self, req: Request
    ) -> tuple[bytes | None, AsyncGenerator[bytes, None] | None]:
        """The reply to send (None: dropped), and the messages that follow it on TCP (a
        zone transfer)."""
        block = req.block
        started = time.perf_counter()
        try:
            reply = await block.chain(req)
        except PluginError as err:
            reply = Reply.error(err.rcode, plugin=err.plugin)
        except FormError:
            reply = Reply.error(FORMERR)
        except Exception:
            self.server.process.metrics.panics.inc()
            log.exception("core: recovered from an exception serving %s %d", req.name, req.qtype)
            reply = Reply.error(SERVFAIL)
        if reply.drop:
            return None, None
        try:
            wire = encode(req, reply)
        except Exception:
            # A reply that cannot be rendered (bytes from elsewhere that do not decode) must
            # still be answered: the client gets SERVFAIL, never silence.
            self.server.process.metrics.panics.inc()
            log.exception("core: could not encode the reply to %s %d", req.name, req.qtype)
            reply = Reply.error(SERVFAIL)
            wire = encode(req, reply)
        if block.edits and reply.written:
            wire = block.edit(req.query, wire, reply.plugin, reply_limit_of(req))
        if block.observers:
            duration = time.perf_counter() - started
            rcode = wire[3] & 0xF
            for observer in block.observers:
                observer(req, rcode, wire, duration, reply.plugin)
        return wire, reply.more


def _row(
    block: Block,
    zone: str,
    transport: Transport,
    client: tuple[str, int],
    qtype: int,
    step: FastStep,
    data: bytes,
    wire: bytes,
) -> tuple[object, ...]:
    """The label row an answer is counted under (its tally's key): everything the
    observers' memo sinks read (core/fast.py FastObserver.memo_sink)."""
    family = 2 if ":" in client[0] else 1
    return (block, zone, transport, family, qtype, wire[3] & 0xF, step, len(data), len(wire))


# The express tier's route for a listener: its block and zone, the block's express step
# and the steps before it, the step's answer_express, the block's UDP size limit.
_Express = tuple[
    Block, str, FastStep, tuple[ExpressPassable, ...],
    Callable[[bytes, bool, int], ExpressReply | None], int,
]  # fmt: skip


def _express_of(mux: ZoneMux) -> _Express | None:
    """The express route of a listener with one root-zone block that has one (the
    usual `.:53`): choosing the block then needs nothing from the question."""
    only = mux.only_root_block()
    if only is None:
        return None
    block, zone = only
    if block.express is None:
        return None
    step, passables = block.express
    answerer = step.answerer
    assert isinstance(answerer, ExpressAnswerer)
    return (
        block, zone, step, passables, answerer.answer_express, block.settings.max_udp_size
    )  # fmt: skip


def reply_limit_of(req: Request) -> int:
    """How many bytes the reply to ``req`` may take on its transport."""
    max_udp = req.block.settings.max_udp_size
    return reply_limit(req.query, tcp=req.transport == "tcp", max_udp=max_udp)


def encode(req: Request, reply: Reply) -> bytes:
    """Render a plugin's reply for this query and transport (EDNS, truncation, ID)."""
    query: Query = req.query
    max_udp = req.block.settings.max_udp_size
    limit = reply_limit(query, tcp=req.transport == "tcp", max_udp=max_udp)
    if reply.template is not None:
        wire = render_template(reply.template, query, limit=limit, payload=max_udp)
        if wire is not None:
            return wire
        return render_message(
            dns.message.from_wire(reply.template.wire), query, limit=limit, payload=max_udp
        )
    if reply.message is not None:
        return render_message(reply.message, query, limit=limit, payload=max_udp)
    if reply.wire is not None:
        wire = reply.wire
        if len(wire) <= limit:
            return query.data[:2] + wire[2:]
        return render_message(dns.message.from_wire(wire), query, limit=limit, payload=max_udp)
    edns = query.edns
    return error_reply(
        query.data, reply.rcode, question_end=query.question_end,
        edns_do=None if edns is None else edns.do, payload=max_udp,
    )  # fmt: skip
