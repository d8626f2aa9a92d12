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
from time import perf_counter
from typing import TYPE_CHECKING, Final

import dns.message
import dns.rcode
import dns.rdatatype

from clusterdns.core.block import Block, FastStep, ZoneMux
from clusterdns.core.fast import SLOW, FastReply
from clusterdns.core.memo import ReplyMemo
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


class Dispatcher:
    """Turns raw query bytes into reply bytes for one listening address."""

    def __init__(self, server: DnsServer, mux: ZoneMux) -> None:
        self.server = server
        self.mux = mux

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
        hit = self.mux.match(query)
        if hit is None:
            return error_reply(
                data, REFUSED, question_end=query.question_end,
                edns_do=None if edns is None else edns.do, payload=4096,
            )  # fmt: skip
        block, zone = hit
        if block.fast_steps:
            fast = self.fast_answer(query, block, zone, transport, client, memo)
            if fast is not None:
                return fast
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
    ) -> bytes | None:
        """Answer without a coroutine through the block's fast steps, or None for the chain."""
        started = perf_counter()
        max_udp = block.settings.max_udp_size
        limit = reply_limit(query, tcp=transport == "tcp", max_udp=max_udp)
        for step in block.fast_steps:
            reply = step.answer(query, limit, max_udp)
            if reply is None:
                continue
            if reply is SLOW:
                return None
            wire = reply.wire
            # Filters reorder answers (loadbalance): nothing to do for one record.
            reordered = False
            if step.filters and (wire[6] or wire[7] > 1):
                for fast_filter in step.filters:
                    filtered = fast_filter.filter_fast(wire)
                    if filtered is None:
                        return None
                    reordered = reordered or filtered is not wire
                    wire = filtered
            if (
                memo is not None
                and not reordered
                and reply.until > 0
                and block.memoizable
                and memo.admits(query.data[2:])
            ):
                self._memoize(memo, query, block, zone, transport, client, step, reply, wire)
            if block.observers:
                duration = perf_counter() - started
                rcode = wire[3] & 0xF
                for observer in block.fast_observers:
                    observer.observe_fast(
                        block.server_label, zone, transport, client, query, rcode, wire,
                        duration, step.name,
                    )  # fmt: skip
                if block.request_observers:
                    req = Request(query, transport=transport, client=client, block=block, zone=zone)
                    for request_observer in block.request_observers:
                        request_observer(req, rcode, wire, duration, step.name)
            return wire
        return None

    @staticmethod
    def _memoize(
        memo: ReplyMemo,
        query: Query,
        block: Block,
        zone: str,
        transport: Transport,
        client: tuple[str, int],
        step: FastStep,
        reply: FastReply,
        wire: bytes,
    ) -> None:
        """Keep a fast answer for identical queries (one memo per transport: UDP and TCP
        replies to the same bytes differ in truncation)."""
        rcode = wire[3] & 0xF
        family = 2 if ":" in client[0] else 1
        sinks = reply.sinks + tuple(
            [
                observer.memo_sink(
                    block.server_label, zone, transport, family, query, rcode, wire, step.name
                )
                for observer in block.fast_observers
            ]
        )
        memo.put(query.data[2:], wire[2:], reply.until, sinks, step.answerer, reply.depends)

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
        hit = self.mux.match(query)
        if hit is None:
            return None
        block, zone = hit
        req = Request(query, transport="tcp", client=origin.client, block=block, zone=zone)
        req.lookup_via = self.lookup
        req.meta["lookup_depth"] = depth + 1
        try:
            return await block.chain(req)
        except Exception:
            return None

    async def resolve(self, req: Request) -> bytes:
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
        try:
            wire = encode(req, reply)
        except Exception:
            # A reply that cannot be rendered (bytes from elsewhere that do not decode) must
            # still be answered: the client gets SERVFAIL, never silence.
            self.server.process.metrics.panics.inc()
            log.exception("core: could not encode the reply to %s %d", req.name, req.qtype)
            reply = Reply.error(SERVFAIL)
            wire = encode(req, reply)
        if block.observers:
            duration = time.perf_counter() - started
            rcode = wire[3] & 0xF
            for observer in block.observers:
                observer(req, rcode, wire, duration, reply.plugin)
        return wire


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
