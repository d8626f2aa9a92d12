"""The ``transfer`` plugin at run time: AXFR and IXFR over TCP, to the listed hosts only.

As CoreDNS's transfer plugin: a transfer question over UDP is REFUSED; one for a name
outside every rule's zones, or that no plugin is authoritative for, goes on down the
chain (where kubernetes and file refuse it); a client not in the rule's ``to`` list is
REFUSED. The zone's records come from the first plugin of the block that implements
:class:`~clusterdns.core.plugin.Transferer` and claims the zone, and go out in messages
of at most about 63,000 bytes of records, each written when the client has read the last.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Final

import dns.rcode
import dns.rdatatype
from dns.rdtypes.ANY.SOA import SOA as SoaRdata

from clusterdns.core.fast import SLOW, FastResult
from clusterdns.core.plugin import Plugin, SetupContext, Transferer, ZoneRecords
from clusterdns.core.registry import COREDNS_ORDER
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.transfer.config import TransferRule
from clusterdns.wire import Query
from clusterdns.wire.build import Record, build_reply

log = logging.getLogger("clusterdns.plugins.transfer")

PLUGIN: Final = "transfer"
AXFR: Final = int(dns.rdatatype.AXFR)
IXFR: Final = int(dns.rdatatype.IXFR)
REFUSED: Final = int(dns.rcode.REFUSED)
SERVFAIL: Final = int(dns.rcode.SERVFAIL)
# Bytes of records (uncompressed) per message: room left for the header, the question and
# an OPT record under the 65,535 bytes of a TCP message (CoreDNS's threshold).
MESSAGE_RECORDS: Final = 63_000


def record_size(record: Record) -> int:
    """A record's size on the wire without compression (an upper bound)."""
    owner, _, _, rdata = record
    return len(owner) + 10 + sum(len(part) for part in rdata)


def zone_of(name: str, zones: Sequence[str]) -> str | None:
    """The longest of ``zones`` holding ``name`` (both lower-case, absolute)."""
    best: str | None = None
    for zone in zones:
        inside = zone == "." or name == zone or name.endswith("." + zone)
        if inside and (best is None or len(zone) > len(best)):
            best = zone
    return best


class Transfer(Plugin):
    """See README.md."""

    name = PLUGIN

    def __init__(self, rules: list[TransferRule], ctx: SetupContext) -> None:
        self.rules = rules
        self._ctx = ctx
        self.transferers: tuple[Transferer, ...] = ()

    async def start(self) -> None:
        # Every plugin of the block exists by now (CoreDNS: OnStartup).
        found: list[Transferer] = []
        for name in COREDNS_ORDER:
            plugin = self._ctx.plugin(name)
            if plugin is not None and plugin is not self and isinstance(plugin, Transferer):
                found.append(plugin)
        self.transferers = tuple(found)

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        """Only transfer questions are ours, and they need the chain; anything else goes
        on to the next plugin's fast path."""
        return SLOW if query.qtype in (AXFR, IXFR) else None

    def passes_express(self, lower: bytes, qtype: int, flags: int, do: bool) -> bool:
        return qtype not in (AXFR, IXFR)  # as answer_fast() (core/fast.py ExpressPassable)

    def rule_for(self, name: str) -> TransferRule | None:
        """The rule whose zone is the longest match for ``name`` (the first of equals)."""
        best: tuple[int, TransferRule] | None = None
        for rule in self.rules:
            zone = zone_of(name, rule.zones)
            if zone is not None and (best is None or len(zone) > best[0]):
                best = (len(zone), rule)
        return None if best is None else best[1]

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        qtype = req.qtype
        if qtype not in (AXFR, IXFR):
            return await next_handler(req)
        if req.transport != "tcp":
            return Reply.error(REFUSED, plugin=PLUGIN)
        rule = self.rule_for(req.name)
        if rule is None:
            return await next_handler(req)
        if not rule.allows(req.client[0]):
            return Reply.error(REFUSED, plugin=PLUGIN)
        serial: int | None = None
        if qtype == IXFR:
            authority = req.message().authority
            first = authority[0][0] if len(authority) == 1 and len(authority[0]) else None
            if not isinstance(first, SoaRdata):
                return Reply.error(SERVFAIL, plugin=PLUGIN)
            serial = first.serial
        for transferer in self.transferers:
            records = transferer.transfer(req.name, serial)
            if records is not None:
                break
        else:
            return await next_handler(req)
        # Allowed per client: nothing for a cache to keep and give to others.
        req.meta["client_specific"] = True
        return self._reply(req, records)

    def _reply(self, req: Request, records: ZoneRecords) -> Reply:
        query = req.query
        payload = req.block.settings.max_udp_size
        batches = _messages(iter(records))
        first = next(batches, [])
        wire = build_reply(query, answer=first, limit=65535, payload=payload)
        client = req.client[0]
        counted = [len(first)]

        async def more() -> AsyncGenerator[bytes, None]:
            try:
                for batch in batches:
                    await asyncio.sleep(0)  # let other queries in between messages
                    counted[0] += len(batch)
                    yield build_reply(query, answer=batch, limit=65535, payload=payload)
            except Exception:
                log.exception("transfer: zone %s to %s failed", req.name, client)
                return
            log.info(
                "transfer: outgoing transfer of %d records of zone %s to %s",
                counted[0],
                req.name,
                client,
            )

        return Reply(0, plugin=PLUGIN, wire=wire, more=more())


def _messages(batches: Iterator[Sequence[Record]]) -> Iterator[list[Record]]:
    """The records regrouped into messages of at most MESSAGE_RECORDS bytes."""
    message: list[Record] = []
    size = 0
    for batch in batches:
        for record in batch:
            length = record_size(record)
            if message and size + length > MESSAGE_RECORDS:
                yield message
                message, size = [], 0
            message.append(record)
            size += length
    if message:
        yield message
