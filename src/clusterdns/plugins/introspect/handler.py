"""introspect's HTTP endpoints: the records the record plugins answer, the caches' entries,
and per question which plugin answered and by which rule (core/explain.py).

Handlers run on the event loop and only read: a record plugin's model and a cache's tables
are copied in one step before they are walked, and /explain asks the chain exactly as a
query would (it may fill the cache, as a query does).
"""

from __future__ import annotations

import json
import math
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from aiohttp import web

from clusterdns.core.explain import CacheLister, Explained, RecordLister
from clusterdns.core.fast import VersionedRecords
from clusterdns.core.plugin import Plugin
from clusterdns.core.process import Process

PLUGIN = "introspect"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data, indent=2) + "\n", content_type="application/json"
    )


def _absolute(text: str) -> str:
    """A name as the record plugins keep it: lower-case, absolute; ValueError if not one."""
    try:
        return dns.name.from_text(text.strip().lower()).to_text()
    except dns.exception.DNSException as err:
        raise ValueError(f"not a domain name: {text!r} ({err})") from None


def explained_json(found: Explained) -> dict[str, Any]:
    """An explanation as JSON: the reply's rcode and records, the plugin, the rules."""
    message = dns.message.from_wire(found.wire)
    sections = {}
    for section, rrsets in (
        ("answer", message.answer),
        ("authority", message.authority),
        ("additional", message.additional),
    ):
        sections[section] = [line for rrset in rrsets for line in rrset.to_text().splitlines()]
    memo: dict[str, Any] = {"copies": len(found.memo)}
    if found.memo:
        left = max(found.memo)
        memo["kept"] = "until the data changes" if math.isinf(left) else f"{left:.1f}s"
    return {
        "rcode": dns.rcode.to_text(message.rcode()),
        "flags": dns.flags.to_text(message.flags),
        "plugin": found.plugin,
        "server": found.server,
        "zone": found.zone,
        "why": [step.to_json() for step in found.why],
        **sections,
        "memo": memo,
    }


class Introspect(Plugin):
    in_chain = False

    def __init__(self, process: Process) -> None:
        self.process = process

    def _plugins(self) -> list[tuple[str, tuple[str, ...], Plugin]]:
        """(server label, zones, plugin) of the running configuration, each plugin once."""
        instance = self.process.current()
        if instance is None:
            return []
        seen: set[int] = set()
        found = []
        for block in instance.blocks:
            for plugin in block.plugins:
                if id(plugin) not in seen:
                    seen.add(id(plugin))
                    found.append((block.server_label, block.zones, plugin))
        return found

    async def index(self, request: web.BaseRequest) -> web.StreamResponse:
        return _json(
            {
                "endpoints": {
                    "/records[?zone=Z|name=N]": "the names the record plugins answer",
                    "/cache": "cache entries with their TTL left, and the reply memo's size",
                    "/explain?name=N&type=T": "ask the server and say who answered and why",
                }
            }
        )

    async def records(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = request.query.get("name") or request.query.get("zone")
        try:
            select = None if raw is None else _absolute(raw)
        except ValueError as err:
            return _json({"error": str(err)}, status=400)
        out = []
        for server, zones, plugin in self._plugins():
            if isinstance(plugin, RecordLister):
                rows = plugin.list_records(select)
                if isinstance(plugin, VersionedRecords):
                    zones = plugin.zones  # the plugin's own zones, not the block's
                out.append(
                    {
                        "server": server,
                        "zones": list(zones),
                        "plugin": plugin.name,
                        "names": [row.to_json() for row in rows],
                    }
                )
        return _json({"select": select, "plugins": out})

    async def cache(self, request: web.BaseRequest) -> web.StreamResponse:
        out = []
        for server, zones, plugin in self._plugins():
            if isinstance(plugin, CacheLister):
                entries = sorted(plugin.cache_entries(), key=lambda e: (e.name, e.qtype))
                out.append(
                    {
                        "server": server,
                        "zones": list(zones),
                        "plugin": plugin.name,
                        "entries": [entry.to_json() for entry in entries],
                    }
                )
        hits, size = self.process.metrics.memo.totals()
        return _json({"caches": out, "reply_memo": {"entries": size, "hits": hits}})

    async def explain(self, request: web.BaseRequest) -> web.StreamResponse:
        name = request.query.get("name")
        if not name:
            return _json({"error": "name= is required"}, status=400)
        text = request.query.get("type", "A")
        try:
            qtype = int(dns.rdatatype.from_text(text.upper()))
            qname = _absolute(name)
        except (ValueError, dns.exception.DNSException) as err:
            return _json({"error": f"bad question: {err}"}, status=400)
        found = await self.process.explain(qname, qtype)
        if found is None:
            return _json({"error": f"no server block here serves {qname}"}, status=404)
        question = {
            "name": qname,
            "type": dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype)),
        }
        return _json({"question": question, **explained_json(found)})
