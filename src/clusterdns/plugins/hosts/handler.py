"""hosts' handler: answers from a snapshot of encoded replies, swapped whole on reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Final

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.core.explain import ListedName, Rule, Why, selects
from clusterdns.core.fallthrough import Fallthrough
from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.hosts.hostsfile import HostsMap, in_zones, parse_hosts
from clusterdns.wire import AnswerTemplate, name_to_text, text_to_wire

log = logging.getLogger("clusterdns.plugins.hosts")

A: Final = int(dns.rdatatype.A)
AAAA: Final = int(dns.rdatatype.AAAA)
PTR: Final = int(dns.rdatatype.PTR)
# Above this many answers, templates are encoded on first use instead of at load time.
EAGER_LIMIT: Final = 20_000

FileStat = tuple[int, int] | None  # (mtime_ns, size), None when the file is missing


@dataclass(frozen=True)
class HostsOptions:
    path: str
    zones: tuple[str, ...]
    inline: tuple[str, ...]
    ttl: int = 3600
    reverse: bool = True
    reload: float = 5.0
    fallthrough: Fallthrough = field(default_factory=Fallthrough)


def file_stat(path: str) -> FileStat:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


class Snapshot:
    """One version of the data: the tables plus reply templates keyed by wire name and type."""

    def __init__(self, hosts: HostsMap, ttl: int) -> None:
        self.ttl = ttl
        self.v4 = {text_to_wire(name): ips for name, ips in hosts.v4.items()}
        self.v6 = {text_to_wire(name): ips for name, ips in hosts.v6.items()}
        self.reverse = {text_to_wire(name): names for name, names in hosts.reverse.items()}
        self.names = set(self.v4) | set(self.v6)
        self.templates: dict[tuple[bytes, int], AnswerTemplate] = {}
        keys = [(name, A) for name in self.names] + [(name, AAAA) for name in self.names]
        keys += [(name, PTR) for name in self.reverse]
        if len(keys) <= EAGER_LIMIT:
            for name, qtype in keys:
                self.template(name, qtype)

    def template(self, name: bytes, qtype: int) -> AnswerTemplate | None:
        """The reply for an A, AAAA or PTR question, or None if we have nothing for it."""
        key = (name, qtype)
        template = self.templates.get(key)
        if template is not None:
            return template
        if qtype == PTR:
            values = self.reverse.get(name)
            if values is None:
                return None
        elif name in self.names and qtype in (A, AAAA):
            values = (self.v4 if qtype == A else self.v6).get(name, [])
        else:
            return None
        template = AnswerTemplate.from_message(self._reply(name, qtype, values))
        self.templates[key] = template
        return template

    def _reply(self, name: bytes, qtype: int, values: list[str]) -> dns.message.Message:
        owner = dns.name.from_text(name_to_text(name))
        rdtype = dns.rdatatype.RdataType.make(qtype)
        query = dns.message.make_query(owner, rdtype, flags=0)
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        if values:
            reply.answer.append(
                dns.rrset.from_text_list(owner, self.ttl, dns.rdataclass.IN, rdtype, values)
            )
        return reply


class Hosts(Plugin):
    def __init__(self, options: HostsOptions) -> None:
        self.options = options
        reverse_zones = ("in-addr.arpa.", "ip6.arpa.") if options.reverse else ()
        self.zones: tuple[str, ...] = options.zones + reverse_zones
        self.generation = 0
        self._inline = parse_hosts(options.inline, options.zones, with_reverse=options.reverse)
        self._stat: FileStat = file_stat(options.path)
        self.snapshot = self._load(self._stat)
        self._poller: asyncio.Task[None] | None = None

    def _load(self, stat: FileStat) -> Snapshot:
        hosts = HostsMap()
        if stat is not None:
            try:
                with open(self.options.path, encoding="utf-8", errors="replace") as handle:
                    hosts = parse_hosts(
                        handle, self.options.zones, with_reverse=self.options.reverse
                    )
            except OSError as err:
                log.warning("hosts: cannot read %s: %s", self.options.path, err)
        return Snapshot(hosts.merge(self._inline), self.options.ttl)

    async def reload_if_changed(self) -> bool:
        """Re-read the file when its mtime or size changed; True if new data is served."""
        stat = file_stat(self.options.path)
        if stat == self._stat:
            return False
        snapshot = await asyncio.to_thread(self._load, stat)
        self._stat = stat
        self.snapshot = snapshot
        self.generation += 1
        log.info("hosts: reloaded %s (%d names)", self.options.path, len(snapshot.names))
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.reload)
            try:
                await self.reload_if_changed()
            except Exception:
                log.exception("hosts: reloading %s failed", self.options.path)

    async def start(self) -> None:
        if self.options.reload > 0:
            self._poller = asyncio.ensure_future(self._poll())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    def changes_since(self, generation: int) -> frozenset[Hashable] | None:
        """VersionedRecords (core/fast.py): any change may touch any name."""
        return None

    def list_records(self, select: str | None) -> list[ListedName]:
        """Every name of the hosts data with its addresses (core/explain.py RecordLister)."""
        snapshot = self.snapshot
        rows: list[ListedName] = []
        for name in sorted(snapshot.names | set(snapshot.reverse)):
            text = name_to_text(name)
            if not selects(text, select):
                continue
            records: list[str] = []
            for qtype, table in ((A, snapshot.v4), (AAAA, snapshot.v6), (PTR, snapshot.reverse)):
                kind = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))
                for value in table.get(name, ()):
                    records.append(f"{text} {snapshot.ttl} IN {kind} {value}")
            rows.append(ListedName(text, Rule.HOSTS, self.options.path, tuple(records)))
        return rows

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        qtype = req.qtype
        name = req.name
        if qtype != PTR and not in_zones(name, self.options.zones):
            return await next_handler(req)
        snapshot = self.snapshot
        key = req.query.qname_lower
        template = snapshot.template(key, qtype)
        if template is not None:
            if req.why is not None:
                req.why.append(Why("hosts", Rule.HOSTS, f"an entry of {self.options.path}"))
            return Reply.of_template(template, plugin="hosts")
        if qtype == PTR:
            # Reverse names we know nothing of always go on (CoreDNS).
            return await next_handler(req)
        if key in snapshot.names:
            # The name exists with other types: NOERROR, no records.
            return Reply.of(req.make_response(), plugin="hosts")
        if self.options.fallthrough.through(name):
            return await next_handler(req)
        # CoreDNS: no SOA to build an NXDOMAIN from, so SERVFAIL.
        return Reply.error(dns.rcode.SERVFAIL, plugin="hosts")
