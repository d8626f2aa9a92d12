"""Introspection contracts: why a reply is what it is, and what record plugins and caches hold.

Nothing here runs on the ordinary query path. A question is *explained* when the
``introspect`` plugin asks the server's own chain for it with ``Request.why`` set to a
list; each plugin that decides something appends a :class:`Why` to it (the kubernetes
plugin the rule that produced the answer, forward the upstream it asked, cache the entry
it served and its time left). ``Request.why`` is None for every real query, so a plugin's
only cost is one ``is not None`` test where it decides.

What a record plugin can list (:class:`RecordLister`) and what a cache holds
(:class:`CacheLister`) are small Protocols, found by ``isinstance`` when asked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


class Rule(enum.StrEnum):
    """Which rule produced an answer: a stable vocabulary the tools print and test on."""

    # kubernetes
    CLUSTER_IP = "clusterip"  # <svc>.<ns>.svc: the Service's ClusterIP(s)
    HEADLESS = "headless-endpoint"  # <svc>.<ns>.svc of a headless Service: its endpoints
    ENDPOINT = "endpoint"  # <hostname>.<svc>.<ns>.svc: one endpoint's own name
    SRV_PORT = "srv-port"  # _<port>._<proto>.<svc>.<ns>.svc, or the _<proto> level
    EXTERNAL_NAME = "externalname-cname"  # an ExternalName Service: a CNAME to its target
    POD = "pod-record"  # <ip-with-dashes>.<ns>.pod
    PTR = "ptr"  # a reverse name of a ClusterIP or an endpoint
    ZONE = "zone-name"  # the zone apex, ns.dns, dns-version, svc, pod
    NAMESPACE = "namespace"  # <ns>.svc or <ns>.pod: an empty non-terminal
    NO_NAMESPACE = "nxdomain-namespace"  # the namespace does not exist (or is not served)
    NO_SERVICE = "nxdomain-service"  # the namespace exists, the Service does not
    SERVICE_HIDDEN = "nxdomain-filtered"  # the Service exists but a filter hides it
    NO_SUCH_NAME = "nxdomain-name"  # nothing the schema defines has this name
    NOT_SYNCED = "not-synced"  # before the first sync: SERVFAIL, absence not proven
    FALLTHROUGH = "fallthrough"  # not found here; the next plugin was asked
    # other record plugins
    HOSTS = "hosts-entry"
    ZONE_FILE = "zone-file"
    ETCD = "etcd-record"
    # plugins that pass answers on
    FORWARDED = "forwarded"  # asked an upstream server
    CACHED = "cached"  # served from the cache plugin, with the time left
    STORED = "stored-in-cache"  # a miss the cache plugin kept for next time
    ERROR = "error"  # a plugin failed; the server wrote the error reply
    ANSWERED = "answered"  # a plugin that does not explain itself answered


@dataclass(frozen=True, slots=True)
class Why:
    """One step of an explanation: which plugin, which rule, and the particulars."""

    plugin: str
    rule: Rule
    detail: str = ""
    ttl_left: int | None = None  # for cache entries: seconds of TTL left

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plugin": self.plugin, "rule": str(self.rule)}
        if self.detail:
            out["detail"] = self.detail
        if self.ttl_left is not None:
            out["ttl_left"] = self.ttl_left
        return out


@dataclass(frozen=True, slots=True)
class ListedName:
    """One name a record plugin would answer, with what it answers (zone-file lines)."""

    name: str
    rule: Rule
    detail: str
    records: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rule": str(self.rule),
            "detail": self.detail,
            "records": list(self.records),
        }


@dataclass(frozen=True, slots=True)
class CachedEntry:
    """One entry of a cache: its question, kind (success, denial, servfail) and TTLs."""

    name: str
    qtype: str
    kind: str
    ttl: int
    ttl_left: int
    stored_from: str  # the plugin whose reply it is

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.qtype,
            "kind": self.kind,
            "ttl": self.ttl,
            "ttl_left": self.ttl_left,
            "stored_from": self.stored_from,
        }


@runtime_checkable
class RecordLister(Protocol):
    """A record plugin that can say every name it would answer (kubernetes, hosts)."""

    name: str

    def list_records(self, select: str | None) -> list[ListedName]:
        """The names it answers, with their records; ``select`` (lower-case, absolute)
        keeps a zone's names or one name and the names under it; None: all."""
        ...


@runtime_checkable
class CacheLister(Protocol):
    """A cache that can list its entries."""

    name: str

    def cache_entries(self) -> list[CachedEntry]: ...


def selects(name: str, select: str | None) -> bool:
    """Is ``name`` (lower-case, absolute) ``select`` or below it?"""
    return select is None or select == "." or name == select or name.endswith("." + select)


@dataclass(frozen=True, slots=True)
class Explained:
    """What the server's chain answered to one question asked internally, and why."""

    wire: bytes  # the reply as a client would get it
    plugin: str  # the plugin the reply came from ("" for the server's own error reply)
    why: tuple[Why, ...]  # innermost decision first
    server: str  # the server block's label (dns://:53)
    zone: str  # the zone of the block that served it
    memo: tuple[float, ...] = ()  # seconds each reply-memo copy of the answer is kept for


async def _nothing(name: str, qtype: int) -> Explained | None:
    return None
