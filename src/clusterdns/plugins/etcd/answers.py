"""The etcd plugin's one decision function: a question and the keys in memory → an Outcome.

It follows CoreDNS's ``plugin/backend_lookup.go`` and ``plugin/etcd`` step for step (the
prefix-then-exact read, the apex and ``ns.dns`` look-ups, CNAME chasing, SRV weights,
groups, TTLs from leases) so an existing SkyDNS tree answers as it does under CoreDNS.
Where CoreDNS gives a wrong answer we don't copy it; each such place says so.

Both the fast path (a UDP thread) and ``serve`` (the event loop) call :meth:`Answers.outcome`.
It only reads the store, which swaps whole snapshots, so it is safe on any thread. A
CNAME, SRV or MX target outside the zone needs the server's own resolution (``forward``,
``cache``...): the outcome lists those look-ups; the fast path then hands the query to
the chain, whose ``serve`` makes them and decides again with their answers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.plugins.etcd.records import (
    RecordError,
    Service,
    decode,
    domain,
    fqdn,
    group,
    is_subdomain,
    key_path,
    matches_wildcard,
    split255,
    target_strip,
    wildcard_path,
)
from clusterdns.wire import text_to_wire
from clusterdns.wire.build import (
    SOA_TIMERS,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_MX,
    TYPE_NS,
    TYPE_PTR,
    TYPE_SOA,
    TYPE_SRV,
    TYPE_TXT,
    Record,
    mx_rdata,
    name_rdata,
    soa_rdata,
    srv_rdata,
    txt_rdata,
)
from clusterdns.wire.names import join

log = logging.getLogger("clusterdns.plugins.etcd")

DEFAULT_TTL: Final = 300  # CoreDNS: no ttl in the value and no lease
MIN_LEASE_TTL: Final = 30
MAX_LEASE_TTL: Final = 86400
MAX_CNAME_CHAIN: Final = 10
# No reply holds more records than this: each takes at least 12 bytes (a compressed owner,
# the fixed fields, one byte of RDATA) of at most 65535. Past it we stop collecting.
MAX_ANSWER: Final = 65535 // 12
SOA_TTL: Final = 30  # CoreDNS's etcd MinTTL, and min(MinTTL, 300) for the record itself
NOERROR: Final = 0
SERVFAIL: Final = 2
NXDOMAIN: Final = 3


class Entry(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def value(self) -> bytes: ...
    @property
    def lease(self) -> int: ...
    @property
    def mod_revision(self) -> int: ...


class RecordStore(Protocol):
    """What the answers read: sources/etcd/store.py's EtcdStore (or a test double)."""

    def get(self, key: str) -> Entry | None: ...
    def range(self, prefix: str) -> Sequence[Entry]: ...
    def has_prefix(self, prefix: str) -> bool: ...
    def lease_remaining(self, lease: int) -> float | None: ...


# Resolves a name outside the zone through the server: its answer records, or None when
# the look-up failed or was not made. Every look-up asked for is also noted in
# Outcome.lookups: the fast path passes such outcomes to the chain, which makes them.
Lookups = Callable[[str, int], "Sequence[Record] | None"]


class _NotFound(Exception):
    """CoreDNS's errKeyNotFound: nothing at or below the name."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to answer, without the parts that belong to one query (ID, case, EDNS, size).

    ``soa`` is 1 when the zone's SOA is the answer, 2 when it goes in the authority
    section (negative answers and errors, as CoreDNS's BackendError writes them); its
    serial is filled in when the reply is built. ``depends`` are the etcd paths that were
    read (a key at or below one of them changing may change the outcome); ``expires`` is
    when a leased record's TTL ticks (monotonic seconds). ``fallthrough``: pass the query
    to the next plugin."""

    rcode: int
    zone: str
    answer: tuple[Record, ...] = ()
    additional: tuple[Record, ...] = ()
    soa: int = 0
    depends: frozenset[str] = frozenset()
    expires: float = math.inf
    fallthrough: bool = False
    lookups: frozenset[tuple[str, int]] = frozenset()


@dataclass(slots=True)
class _Trace:
    """What one outcome read: paths, the earliest TTL tick, the look-ups it asked for."""

    paths: set[str] = field(default_factory=set)
    expires: float = math.inf
    lookups: set[tuple[str, int]] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    root: str  # normalised path, e.g. /skydns
    zones: tuple[str, ...]  # lower-case absolute
    fallthrough: Fallthrough = field(default_factory=Fallthrough)
    min_lease_ttl: int = MIN_LEASE_TTL
    max_lease_ttl: int = MAX_LEASE_TTL


def soa_record(zone: str, serial: int) -> Record:
    """CoreDNS's SOA for an etcd zone: ns.dns.ZONE, hostmaster.ZONE, 7200 1800 86400 30."""
    prefix = zone if zone != "." else ""
    return (
        text_to_wire(zone),
        TYPE_SOA,
        SOA_TTL,
        soa_rdata(
            text_to_wire("ns.dns." + prefix),
            text_to_wire("hostmaster." + prefix),
            serial,
            *SOA_TIMERS,
            SOA_TTL,
        ),
    )


def _wire(name: str) -> bytes | None:
    try:
        return text_to_wire(name)
    except ValueError:
        return None


class Answers:
    """Outcomes from the keys of one store, for the zones of one ``etcd`` directive."""

    def __init__(
        self,
        store: RecordStore,
        settings: AnswerSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        # Decoded values by key, with the revision they were decoded at: a value is
        # decoded once, not per query. Entries of deleted keys are dropped by forget().
        self._decoded: dict[str, tuple[int, Service | RecordError]] = {}

    def forget(self, keys: frozenset[str] | None) -> None:
        """Drop decoded values of changed keys (None: all of them)."""
        if keys is None:
            self._decoded = {}
            return
        decoded = self._decoded
        for key in keys:
            decoded.pop(key, None)

    def zone_of(self, name: str) -> str | None:
        """The longest of our zones that ``name`` is in."""
        best: str | None = None
        for zone in self.settings.zones:
            if is_subdomain(name, zone) and (best is None or len(zone) > len(best)):
                best = zone
        return best

    # --- the decision ------------------------------------------------------------------

    def outcome(self, name: str, owner: bytes, qtype: int, zone: str, lookups: Lookups) -> Outcome:
        """The answer to ``name``/``qtype`` (lower-case text; ``owner`` its wire form) in
        ``zone``. ``lookups`` resolves names outside the zone."""
        trace = _Trace()
        records: list[Record] = []
        extra: list[Record] = []
        soa = 0
        try:
            if qtype in (TYPE_A, TYPE_AAAA, TYPE_TXT):
                records = self._follow(name, owner, zone, qtype, [], trace, lookups)
            elif qtype == TYPE_CNAME:
                records = self._cname(name, owner, trace)
            elif qtype == TYPE_PTR:
                records = self._ptr(name, owner, trace)
            elif qtype in (TYPE_SRV, TYPE_MX):
                records, extra = self._targets(name, owner, zone, qtype, trace, lookups)
            elif qtype == TYPE_SOA and name == zone:
                soa = 1
            elif qtype == TYPE_NS and name == zone:
                records, extra = self._ns(name, owner, zone, trace)
            else:
                # Any other type (and SOA below the apex: CoreDNS answers the zone's SOA
                # for any name, an answer whose owner is not the question; we give the
                # NODATA or NXDOMAIN the name deserves): does the name exist?
                self._apex_or_services(name, zone, qtype, trace)
        except _NotFound:
            if name != zone:
                if self.settings.fallthrough.through(name):
                    return self._done(NXDOMAIN, zone, trace, fallthrough=True)
                return self._done(NXDOMAIN, zone, trace, soa=2)
            # The apex exists (it has an SOA): NODATA where CoreDNS says NXDOMAIN for an
            # empty zone.
        except RecordError:
            return self._done(SERVFAIL, zone, trace, soa=2)
        if soa:
            return self._done(NOERROR, zone, trace, soa=1)
        if not records:
            return self._done(NOERROR, zone, trace, soa=2)
        return self._done(NOERROR, zone, trace, answer=records, additional=extra)

    def _done(
        self,
        rcode: int,
        zone: str,
        trace: _Trace,
        *,
        answer: Sequence[Record] = (),
        additional: Sequence[Record] = (),
        soa: int = 0,
        fallthrough: bool = False,
    ) -> Outcome:
        return Outcome(
            rcode=rcode,
            zone=zone,
            answer=tuple(answer),
            additional=tuple(additional),
            soa=soa,
            depends=frozenset(trace.paths),
            expires=trace.expires,
            fallthrough=fallthrough,
            lookups=frozenset(trace.lookups),
        )

    # --- reading keys (CoreDNS's Records, get, loopNodes, TTL, Services) --------------------

    def _entries(self, path: str, recursive: bool) -> Sequence[Entry] | None:
        store = self.store
        if recursive:
            found = store.range(path if path.endswith("/") else path + "/")
            if found:
                return found
            path = path.removesuffix("/")
        entry = store.get(path)
        if entry is not None:
            return [entry]
        if not recursive and store.has_prefix(path + "/"):
            # An exact look-up (CNAME, PTR) of a name that has records only below it:
            # the name exists, so NODATA (CoreDNS says NXDOMAIN).
            return []
        return None

    def _decode(self, entry: Entry) -> Service:
        known = self._decoded.get(entry.key)
        if known is not None and known[0] == entry.mod_revision:
            result = known[1]
        else:
            try:
                result = decode(entry.key, entry.value, entry.lease)
                if not result.lease and not result.ttl:
                    result = _with_ttl(result, DEFAULT_TTL)
            except RecordError as err:
                # Once per revision of the key: names at and above it are SERVFAIL.
                log.warning("etcd: cannot decode %s", err)
                result = err
            self._decoded[entry.key] = (entry.mod_revision, result)
        if isinstance(result, RecordError):
            raise result
        return result

    def services(
        self, name: str, qtype: int, trace: _Trace, *, exact: bool = False
    ) -> list[Service]:
        """The values at ``name`` (and below it unless ``exact``), grouped, each with its
        TTL resolved; _NotFound when there are none."""
        root = self.settings.root
        path, star = wildcard_path(name, root)
        trace.paths.add(path)
        entries = self._entries(path, not exact)
        if entries is None:
            raise _NotFound
        segments = key_path(name, root).split("/") if star else ()
        found: list[Service] = []
        for entry in entries:
            if star and not matches_wildcard(entry.key, segments):
                continue
            service = self._decode(entry)
            if service.lease:
                service = self._leased(service, trace)
            if service.includes(qtype):
                found.append(service)
        return group(found)

    def _leased(self, service: Service, trace: _Trace) -> Service:
        """CoreDNS's TTL(): the lease's remaining seconds clamped to min/max-lease-ttl, or
        the value's ttl if smaller; and when that number will next change."""
        remaining = self.store.lease_remaining(service.lease)
        now = self.clock()
        if remaining is None:
            # Not fetched yet (or being fetched again): look again in a second.
            trace.expires = min(trace.expires, now + 1.0)
            return _with_ttl(service, service.ttl or DEFAULT_TTL)
        whole = int(remaining)  # etcd's TimeToLive answers whole seconds, rounded down
        ttl = self._lease_ttl(whole, service.ttl)
        if whole > 0:
            # The smallest whole-second remainder that still gives this TTL; below it,
            # the TTL changes.
            low, high = 1, whole
            while low < high:
                middle = (low + high) // 2
                if self._lease_ttl(middle, service.ttl) == ttl:
                    high = middle
                else:
                    low = middle + 1
            trace.expires = min(trace.expires, now + (remaining - low))
        return _with_ttl(service, ttl)

    def _lease_ttl(self, whole: int, own: int) -> int:
        settings = self.settings
        lease = min(max(whole, settings.min_lease_ttl), settings.max_lease_ttl) if whole > 0 else 0
        if lease == 0:
            return own or DEFAULT_TTL
        return min(lease, own) if own else lease

    def _apex_or_services(self, name: str, zone: str, qtype: int, trace: _Trace) -> list[Service]:
        """checkForApex: the zone's own name reads ``apex.dns.ZONE`` first."""
        if name != zone:
            return self.services(name, qtype, trace)
        try:
            return self.services(join("apex.dns", zone), qtype, trace)
        except _NotFound:
            return self.services(name, qtype, trace)

    # --- record types ---------------------------------------------------------------------

    def _follow(
        self,
        name: str,
        owner: bytes,
        zone: str,
        qtype: int,
        previous: list[str],
        trace: _Trace,
        lookups: Lookups,
    ) -> list[Record]:
        """A, AAAA and TXT: the values' addresses (or texts), CNAMEs followed within the
        zone and looked up through the server outside it (plugin.A, AAAA, TXT)."""
        if qtype == TYPE_TXT:
            services = self.services(name, qtype, trace)
        else:
            services = self._apex_or_services(name, zone, qtype, trace)
        records: list[Record] = []
        seen: set[str] = set()
        for service in services:
            if len(records) >= MAX_ANSWER:
                break  # nothing after this could be sent (a name with 100k records below it)
            kind = service.host_type
            if kind == TYPE_CNAME:
                target = fqdn(service.host.lower())
                # x CNAME x (or a name below x, SkyDNS reads recursively) is a loop.
                if is_subdomain(target, name) or len(previous) > MAX_CNAME_CHAIN:
                    continue
                if target in previous:
                    continue
                target_wire = _wire(target)
                if target_wire is None:
                    continue
                cname = (owner, TYPE_CNAME, service.ttl, name_rdata(target_wire))
                if is_subdomain(target, zone):
                    try:
                        found = self._follow(
                            target, target_wire, zone, qtype, [*previous, target], trace, lookups
                        )
                    except (_NotFound, RecordError):
                        continue
                    if found:  # CoreDNS adds the CNAME only when its target resolved
                        records.append(cname)
                        records.extend(found)
                    continue
                trace.lookups.add((target, qtype))
                answer = lookups(target, qtype)
                if answer is None:
                    continue
                records.append(cname)
                records.extend(answer)
            elif kind != qtype:
                continue
            elif kind == TYPE_TXT and service.text not in seen:
                seen.add(service.text)
                strings = split255(service.text.encode())
                records.append((owner, TYPE_TXT, service.ttl, txt_rdata(*strings)))
            elif kind != TYPE_TXT and service.host not in seen:
                seen.add(service.host)
                records.append((owner, qtype, service.ttl, (service.ip,)))
        return records

    def _cname(self, name: str, owner: bytes, trace: _Trace) -> list[Record]:
        services = self.services(name, TYPE_CNAME, trace, exact=True)
        if services and services[0].host_type not in (TYPE_A, TYPE_AAAA):
            target = _wire(fqdn(services[0].host.lower()))
            if target is not None:
                return [(owner, TYPE_CNAME, services[0].ttl, name_rdata(target))]
        return []

    def _ptr(self, name: str, owner: bytes, trace: _Trace) -> list[Record]:
        records: list[Record] = []
        seen: set[str] = set()
        for service in self.services(name, TYPE_PTR, trace, exact=True):
            if service.host_type in (TYPE_A, TYPE_AAAA) or service.host in seen:
                continue
            seen.add(service.host)
            target = _wire(fqdn(service.host.lower()))
            if target is not None:
                records.append((owner, TYPE_PTR, service.ttl, name_rdata(target)))
        return records

    def _targets(
        self,
        name: str,
        owner: bytes,
        zone: str,
        qtype: int,
        trace: _Trace,
        lookups: Lookups,
    ) -> tuple[list[Record], list[Record]]:
        """SRV and MX (plugin.SRV, plugin.MX): a name as host is the target, with its
        addresses in the additional section; an IP as host makes the target the key's own
        name, with that address."""
        services = self.services(name, qtype, trace)
        mx = qtype == TYPE_MX
        if mx:
            services = [service for service in services if service.mail]
        totals: dict[int, int] = {}
        for service in services:
            totals[service.priority] = totals.get(service.priority, 0) + (service.weight or 100)
        records: list[Record] = []
        extra: list[Record] = []
        seen: set[tuple[str, int, bytes]] = set()
        looked_up: set[str] = set()
        for service in services:
            if not mx and service.port == -1:
                continue
            kind = service.host_type
            if kind == TYPE_CNAME:
                target = target_strip(fqdn(service.host.lower()), service.targetstrip)
                target_wire = _wire(target)
                if target_wire is None:
                    continue
                records.append(self._target_record(owner, service, target_wire, totals, mx))
                if target in looked_up:
                    continue
                looked_up.add(target)
                if not is_subdomain(target, zone):
                    trace.lookups.add((target, TYPE_A))
                    extra.extend(lookups(target, TYPE_A) or ())
                    trace.lookups.add((target, TYPE_AAAA))
                    aaaa = lookups(target, TYPE_AAAA) or ()
                    extra.extend(record for record in aaaa if record[1] != TYPE_CNAME)
                    continue
                try:
                    extra.extend(
                        self._follow(target, target_wire, zone, TYPE_A, [], trace, lookups)
                    )
                except (_NotFound, RecordError):
                    pass
            elif kind in (TYPE_A, TYPE_AAAA):
                own = domain(service.key, self.settings.root)
                target = target_strip(own, service.targetstrip)
                target_wire = _wire(target)
                if target_wire is None:
                    continue
                number = service.priority & 0xFFFF if mx else service.port & 0xFFFF
                if (target, number, b"") not in seen:
                    seen.add((target, number, b""))
                    records.append(self._target_record(owner, service, target_wire, totals, mx))
                # CoreDNS names an MX target's address after the unstripped key name.
                address_owner = own if mx else target
                address_wire = _wire(address_owner)
                if address_wire is not None and (address_owner, 0, service.ip) not in seen:
                    seen.add((address_owner, 0, service.ip))
                    extra.append((address_wire, kind, service.ttl, (service.ip,)))
        return records, extra

    @staticmethod
    def _target_record(
        owner: bytes, service: Service, target: bytes, totals: dict[int, int], mx: bool
    ) -> Record:
        if mx:
            return (owner, TYPE_MX, service.ttl, mx_rdata(service.priority & 0xFFFF, target))
        total = totals[service.priority]
        share = 100.0 / total if total else 0.0
        share *= service.weight if service.weight else 100
        weight = math.floor(share) if math.isfinite(share) else 0
        weight = (weight & 0xFFFF) or 1
        rdata = srv_rdata(service.priority & 0xFFFF, weight, service.port & 0xFFFF, target)
        return (owner, TYPE_SRV, service.ttl, rdata)

    def _ns(
        self, name: str, owner: bytes, zone: str, trace: _Trace
    ) -> tuple[list[Record], list[Record]]:
        """The apex NS records live at ns.dns.ZONE, one value per name server, its host
        an IP; the server's name is the key's (plugin.NS)."""
        records: list[Record] = []
        extra: list[Record] = []
        seen: set[str] = set()
        for service in self.services(join("ns.dns", zone), TYPE_NS, trace):
            kind = service.host_type
            if kind == TYPE_CNAME:
                raise RecordError(f"NS record must be an IP address: {service.host}")
            if kind not in (TYPE_A, TYPE_AAAA):
                continue
            target = target_strip(domain(service.key, self.settings.root), service.targetstrip)
            target_wire = _wire(target)
            if target_wire is None:
                continue
            extra.append((target_wire, kind, service.ttl, (service.ip,)))
            if target not in seen:
                seen.add(target)
                records.append((owner, TYPE_NS, service.ttl, name_rdata(target_wire)))
        return records, extra


_TTL_AT: Final = Service._fields.index("ttl")


def _with_ttl(service: Service, ttl: int) -> Service:
    # NamedTuple._replace builds a dict per call: slicing the tuple is several times faster.
    return Service._make((*service[:_TTL_AT], ttl, *service[_TTL_AT + 1 :]))
