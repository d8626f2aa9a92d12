"""file's handler: authoritative answers from parsed zones, reloaded when the serial changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

from clusterdns.core.explain import ListedName, Rule, Why, selects
from clusterdns.core.plugin import Plugin, ZoneRecords
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.file.transfer import zone_records
from clusterdns.plugins.file.zone import Answer, Result, ZoneData, ZoneError, load_zone
from clusterdns.wire import AnswerTemplate

log = logging.getLogger("clusterdns.plugins.file")

# Zone transfers are the transfer plugin's; what reaches us is refused (as CoreDNS).
XFR_TYPES: Final = frozenset({int(dns.rdatatype.AXFR), int(dns.rdatatype.IXFR)})

# Templates cached per zone version; names that do not exist (NXDOMAIN, wildcard
# matches) are built per query so a scan cannot grow the table.
TEMPLATE_LIMIT: Final = 100_000

FileStat = tuple[int, int] | None


def file_stat(path: str) -> FileStat:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


@dataclass
class ZoneSource:
    """Where a zone comes from and what version of it is being served."""

    origin: str
    path: str
    data: ZoneData
    stat: FileStat
    templates: dict[tuple[bytes, int], AnswerTemplate]


def build_message(answer: Answer, response: dns.message.Message) -> dns.message.Message:
    """Fill ``response`` (our own, empty) with a lookup's sections, rcode and AA bit."""
    if answer.authoritative:
        response.flags |= dns.flags.AA
    else:
        response.flags &= ~dns.flags.AA
    if answer.result is Result.NXDOMAIN:
        response.set_rcode(dns.rcode.NXDOMAIN)
    response.answer = list(answer.answer)
    response.authority = list(answer.authority)
    response.additional = list(answer.additional)
    return response


class File(Plugin):
    def __init__(self, sources: list[ZoneSource], reload: float) -> None:
        self.sources = {source.origin: source for source in sources}
        # Longest zone first, so the most specific one answers.
        self.zones: tuple[str, ...] = tuple(
            sorted(self.sources, key=lambda zone: len(dns.name.from_text(zone)), reverse=True)
        )
        self.reload = reload
        self.generation = 0
        self._poller: asyncio.Task[None] | None = None

    def match(self, name: str) -> ZoneSource | None:
        for zone in self.zones:
            if zone == "." or name == zone or name.endswith("." + zone):
                return self.sources[zone]
        return None

    def changes_since(self, generation: int) -> frozenset[Hashable] | None:
        """VersionedRecords (core/fast.py): any change may touch any name."""
        return None

    def list_records(self, select: str | None) -> list[ListedName]:
        """Every owner name of the zones with its records (core/explain.py RecordLister)."""
        rows: list[ListedName] = []
        for origin in sorted(self.sources):
            source = self.sources[origin]
            for owner, types in sorted(source.data.records.items()):
                text = owner.to_text().lower()
                if not selects(text, select):
                    continue
                lines = tuple(
                    line for rrset in types.values() for line in rrset.to_text().splitlines()
                )
                rows.append(ListedName(text, Rule.ZONE_FILE, source.path, lines))
        return rows

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        source = self.match(req.name)
        if source is None:
            return await next_handler(req)
        if req.qtype in XFR_TYPES:
            return Reply.error(dns.rcode.REFUSED, plugin="file")
        data = source.data
        if req.why is not None:
            req.why.append(Why("file", Rule.ZONE_FILE, f"zone {source.origin} from {source.path}"))
        key = (req.query.qname_lower, req.qtype)
        template = source.templates.get(key)
        if template is not None:
            return Reply.of_template(template, plugin="file")
        qname = dns.name.from_text(req.name)
        answer = data.lookup(qname, req.qtype)
        # Names the zone holds are a bounded set: encode their replies once.
        if qname in data.existing and len(source.templates) < TEMPLATE_LIMIT:
            template = self._template(qname, req.qtype, answer)
            source.templates[key] = template
            return Reply.of_template(template, plugin="file")
        response = build_message(answer, req.make_response())
        return Reply.of(response, plugin="file")

    def transfer(self, zone: str, serial: int | None) -> ZoneRecords | None:
        """Transferer (core/plugin.py): one of our zones exactly, as it is served now."""
        source = self.sources.get(zone)
        return None if source is None else zone_records(source.data, serial)

    @staticmethod
    def _template(qname: dns.name.Name, qtype: int, answer: Answer) -> AnswerTemplate:
        query = dns.message.make_query(qname, dns.rdatatype.RdataType.make(qtype), flags=0)
        response = dns.message.make_response(query)
        return AnswerTemplate.from_message(build_message(answer, response))

    async def reload_if_changed(self) -> bool:
        """Re-parse changed files; serve a new version only if its SOA serial differs."""
        swapped = False
        for source in list(self.sources.values()):
            stat = file_stat(source.path)
            if stat is None or stat == source.stat:
                continue
            origin = dns.name.from_text(source.origin)
            try:
                data = await asyncio.to_thread(load_zone, source.path, origin)
            except ZoneError as err:
                log.error("file: keeping zone %s: %s", source.origin, err)
                source.stat = stat
                continue
            source.stat = stat
            if data.serial == source.data.serial:
                continue
            log.info(
                "file: reloaded zone %s, serial %d → %d",
                source.origin,
                source.data.serial,
                data.serial,
            )
            self.sources[source.origin] = ZoneSource(source.origin, source.path, data, stat, {})
            swapped = True
        if swapped:
            self.generation += 1
        return swapped

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.reload)
            try:
                await self.reload_if_changed()
            except Exception:
                log.exception("file: reload failed")

    async def start(self) -> None:
        if self.reload > 0:
            self._poller = asyncio.ensure_future(self._poll())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
