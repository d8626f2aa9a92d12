"""The ``k8s_external`` plugin at run time: the fast path, the chain, and zone transfers.

It serves from the kubernetes plugin of its server block (found when the block starts, as
CoreDNS's OnStartup does), reading that plugin's model on every query. A FastAnswerer, so
the block's kubernetes answers stay on the fast path behind it, and a VersionedRecords
whose generation and change log are the kubernetes plugin's: a Service's change drops the
memoised replies for its names and nothing else. A Transferer for the ``transfer`` plugin.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Final

import dns.rcode
import dns.rdatatype

from clusterdns.core.fast import INFINITE, SLOW, FastReply, FastResult
from clusterdns.core.plugin import Plugin, SetupContext, ZoneRecords
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import Directive
from clusterdns.plugins.k8s_external.answers import Decision, ExternalAnswers, ExternalSource
from clusterdns.plugins.k8s_external.config import ExternalConfig
from clusterdns.plugins.k8s_external.xfr import zone_records
from clusterdns.wire import Query, name_to_text, text_to_wire
from clusterdns.wire.build import Record, build_reply

log = logging.getLogger("clusterdns.plugins.k8s_external")

PLUGIN: Final = "k8s_external"
SOURCE: Final = "kubernetes"
XFR_TYPES: Final = frozenset({int(dns.rdatatype.AXFR), int(dns.rdatatype.IXFR)})
PTR: Final = int(dns.rdatatype.PTR)
REFUSED: Final = int(dns.rcode.REFUSED)


class K8sExternal(Plugin):
    """See README.md."""

    name = PLUGIN

    def __init__(self, config: ExternalConfig, ctx: SetupContext, *, directive: Directive) -> None:
        self.config = config
        self._ctx = ctx
        self._directive = directive
        self._zone_wires = {text_to_wire(zone): zone for zone in config.zones}
        self.source: ExternalSource | None = None
        self.answers: ExternalAnswers | None = None

    # --- VersionedRecords: the kubernetes plugin's generation and change log ----------------

    @property
    def zones(self) -> tuple[str, ...]:
        return self.config.zones

    @property
    def generation(self) -> int:
        return 0 if self.source is None else self.source.generation

    def changes_since(self, generation: int) -> frozenset[Hashable] | None:
        return None if self.source is None else self.source.changes_since(generation)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        plugin = self._ctx.plugin(SOURCE)
        if plugin is None:
            raise self._directive.error("kubernetes plugin not loaded in this server block")
        if not isinstance(plugin, ExternalSource):
            raise self._directive.error("the kubernetes plugin does not offer external names")
        self.source = plugin
        self.answers = ExternalAnswers(self.config, plugin)

    # --- queries ---------------------------------------------------------------------------

    def _zone_of(self, query: Query) -> str | None:
        lower = query.qname_lower
        zones = self._zone_wires
        for offset in query.label_offsets:
            zone = zones.get(lower[offset:] if offset else lower)
            if zone is not None:
                return zone
        return None

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        """Names outside our zones: None (the next plugin's fast path). Ours: the reply,
        unless it needs the event loop (a zone transfer, PTR, an ingress hostname's CNAME
        target, before the kubernetes plugin's first sync)."""
        zone = self._zone_of(query)
        if zone is None:
            return None
        answers, source = self.answers, self.source
        if answers is None or source is None or source.table.deferring:
            return SLOW
        qtype = query.qtype
        if qtype in XFR_TYPES or qtype == PTR:
            return SLOW
        decision = answers.decide(name_to_text(query.qname_lower), qtype, zone)
        if decision is None:
            return None
        if decision.chase:
            return SLOW
        return FastReply(self._wire(query, decision, limit, payload), INFINITE, decision.depends)

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        query = req.query
        zone = self._zone_of(query)
        answers = self.answers
        if zone is None or answers is None:
            return await next_handler(req)
        if query.qtype in XFR_TYPES:
            # Zone transfers are the transfer plugin's (before us in the chain); without
            # it they are refused, as CoreDNS's record plugins do.
            return Reply.error(REFUSED, plugin=PLUGIN)
        decision = answers.decide(req.name, query.qtype, zone)
        if decision is None:
            return await next_handler(req)
        if decision.chase:
            decision = await self._chase(req, decision)
        wire = self._wire(query, decision, 65535, req.block.settings.max_udp_size)
        return Reply.of_wire(wire, plugin=PLUGIN)

    @staticmethod
    def _wire(query: Query, decision: Decision, limit: int, payload: int) -> bytes:
        return build_reply(
            query,
            rcode=decision.rcode,
            answer=decision.answer,
            authority=decision.authority,
            additional=decision.additional,
            limit=limit,
            payload=payload,
        )

    async def _chase(self, req: Request, decision: Decision) -> Decision:
        """A load balancer's hostname: its records looked up through the server (cache,
        forward...), as CoreDNS's upstream does: A/AAAA after the CNAME, SRV targets'
        addresses in the additional section."""
        answer = list(decision.answer)
        additional = list(decision.additional)
        for name, qtype, section in decision.chase:
            found = await req.lookup(name, qtype)
            if found is None or found.rcode != dns.rcode.NOERROR:
                continue
            message = found.to_message()
            if message is None:
                continue
            records = _records(message.answer)
            (answer if section == 0 else additional).extend(records)
        return Decision(decision.rcode, answer, decision.authority, additional, depends=None)

    # --- Transferer ------------------------------------------------------------------------

    def transfer(self, zone: str, serial: int | None) -> ZoneRecords | None:
        """The zone for the transfer plugin (CoreDNS's k8s_external Transfer): only our
        zones themselves, not names below them."""
        if self.answers is None or zone not in self.config.zones:
            return None
        return zone_records(self.answers, zone, serial)


def _records(rrsets: list[dns.rrset.RRset]) -> list[Record]:
    """dnspython RRsets (a looked-up answer) as wire builder records."""
    records: list[Record] = []
    for rrset in rrsets:
        owner = text_to_wire(rrset.name.to_text().lower())
        for rdata in rrset:
            records.append((owner, int(rrset.rdtype), rrset.ttl, (rdata.to_wire(),)))
    return records
