"""The answer table: every name the cluster defines, answered from the Service records.

Nothing is stored per name. A query under ``<svc>.<ns>.svc.<zone>`` is parsed to its
Service, whose names (the Service, its endpoints, ``_port._proto`` and the ``_proto``
empty non-terminals) are built from the model's record when asked, a few Services' worth
kept (``views``). Replies are encoded as :class:`AnswerTemplate` on first use: positive
ones of a Service's names are kept (bounded) until that Service changes, the rest
(NODATA, apex, pod names, PTR) memoised (bounded) until the next change, and NXDOMAIN for
names that cannot exist comes from one template per zone and question shape.
:meth:`AnswerTable.outcome` is the one place that decides an answer; the templates and the
dnspython path both render what it returns.
"""

from __future__ import annotations

import itertools
import logging
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from clusterdns.plugins.kubernetes.config import KubernetesConfig, PodMode
from clusterdns.plugins.kubernetes.names import (
    endpoint_label,
    in_zone,
    ip_from_reverse,
    ip_label,
    is_reverse,
    pod_label_ip,
)
from clusterdns.sources.model import Change, ClusterModel, Service
from clusterdns.wire import AnswerTemplate, Query, text_to_wire

log = logging.getLogger("clusterdns.plugins.kubernetes")

IN: Final = dns.rdataclass.IN
A: Final = dns.rdatatype.A
AAAA: Final = dns.rdatatype.AAAA
CNAME: Final = dns.rdatatype.CNAME
NS: Final = dns.rdatatype.NS
PTR: Final = dns.rdatatype.PTR
SOA: Final = dns.rdatatype.SOA
SRV: Final = dns.rdatatype.SRV
TXT: Final = dns.rdatatype.TXT
NOERROR: Final = dns.rcode.NOERROR
NXDOMAIN: Final = dns.rcode.NXDOMAIN
SERVFAIL: Final = dns.rcode.SERVFAIL

DNS_SCHEMA_VERSION: Final = "1.1.0"
DNS_VERSION_TTL: Final = 28800  # as CoreDNS (and the spec's example)
DNS_SERVICE: Final = ("kube-system", "kube-dns")  # whose ClusterIP ns.dns.<zone> answers
EAGER_TYPES: Final = (A, AAAA, SRV, CNAME, TXT, SOA, NS)
TEMPLATE_TYPES: Final = (*EAGER_TYPES, dns.rdatatype.PTR)
# Replies kept at most: positive ones of Service names (forgotten when their Service
# changes) and the rest (cleared by any change). The oldest tenth goes when full, so a scan
# of many names cannot grow memory or thrash the whole memo; the server's reply memo in
# front of the plugin serves the hot names.
TEMPLATE_LIMIT: Final = 100_000  # the server's reply memo holds as many
MEMO_LIMIT: Final = 50_000
# Services whose names are kept built (a headless Service's view holds all its endpoints).
VIEW_LIMIT: Final = 1024
CNAME_DEPTH: Final = 8
_APEX_LABELS: Final = frozenset({b"dns", b"svc", b"pod", b"dns-version"})
_FLAGS: Final = dns.flags.QR | dns.flags.AA

ServiceKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Item:
    """One address behind a name (CoreDNS's msg.Service): an IP, a port (-1 for none) and the
    name an SRV record for it points to."""

    ip: str
    port: int
    target: str


@dataclass(slots=True)
class NameData:
    """What one existing name holds. A name with nothing is an empty non-terminal (NODATA)."""

    items: tuple[Item, ...] = ()
    cname: str | None = None
    txt: str | None = None
    ptrs: tuple[str, ...] = ()
    apex: bool = False


EMPTY: Final = NameData()


@dataclass(slots=True)
class Outcome:
    rcode: int
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)


def join(label: str, zone: str) -> str:
    return f"{label}." if zone == "." else f"{label}.{zone}"


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def _rdata(cls: Any, *args: Any) -> dns.rdata.Rdata:
    """Construct rdata directly (dnspython's constructors are untyped)."""
    rdata: dns.rdata.Rdata = cls(*args)
    return rdata


def encode(name: str, qtype: int, outcome: Outcome) -> AnswerTemplate:
    """The template of ``outcome`` as the reply to (name, qtype), question in lower case."""
    return AnswerTemplate.from_message(build_message(_name(name), qtype, outcome))


def build_message(qname: dns.name.Name, qtype: int, outcome: Outcome) -> dns.message.Message:
    message = dns.message.Message(id=0)
    message.flags = _FLAGS
    message.set_rcode(dns.rcode.Rcode.make(outcome.rcode))
    message.question = [dns.rrset.RRset(qname, IN, dns.rdatatype.RdataType.make(qtype))]
    message.answer = list(outcome.answer)
    message.authority = list(outcome.authority)
    message.additional = list(outcome.additional)
    return message


def _filler(length: int) -> bytes:
    """Wire labels ("x...") taking exactly ``length`` bytes (length is 0 or at least 2)."""
    out = bytearray()
    while length > 0:
        size = min(63, length - 1)
        if 0 < length - (size + 1) < 2:
            size -= 1  # never leave a single byte: a label needs two at least
        out += bytes([size]) + b"x" * size
        length -= size + 1
    return bytes(out)


def _may_fall_through(fallthrough: tuple[str, ...] | None, zone: str) -> bool:
    """Whether ``fallthrough`` covers any name in ``zone`` (both lower-case, absolute)."""
    if fallthrough is None:
        return False
    if not fallthrough or zone == ".":
        return True  # `fallthrough` alone: every name; or a root zone holds every name
    return any(
        f == "." or f == zone or zone.endswith("." + f) or f.endswith("." + zone)
        for f in fallthrough
    )


def ptr_key(ip: str) -> ServiceKey:
    """Where a positive PTR reply is kept, as if by a Service: forgotten when the model says
    the IP's owners changed (Change.ips). The empty namespace cannot be a real one."""
    return ("", ip)


class AnswerTable:
    """Names and encoded replies for one ``kubernetes`` block. See the module docstring."""

    def __init__(
        self, config: KubernetesConfig, model: ClusterModel, *, own_addresses: Sequence[str]
    ) -> None:
        self.config = config
        self.model = model
        self.own_addresses = tuple(own_addresses)
        self.zones = tuple(sorted(config.zones, key=len, reverse=True))
        self.zone_wires = frozenset(text_to_wire(z) for z in config.zones)
        self.forward_zones = config.forward_zones
        # The few names of each zone's apex (the zone, dns, ns.dns, svc, pod, dns-version).
        self.names: dict[str, NameData] = {}
        # Positive replies of Service names, kept until that Service changes (at most
        # TEMPLATE_LIMIT; the oldest tenth goes when full), and which Service each is of.
        self.templates: dict[tuple[bytes, int], AnswerTemplate] = {}
        self.template_service: dict[tuple[bytes, int], ServiceKey] = {}
        self.templated: dict[ServiceKey, list[tuple[bytes, int]]] = {}
        # Everything else (NODATA, NXDOMAIN, apex, PTR, pods...): until the next change.
        self.memo: dict[tuple[bytes, int], AnswerTemplate] = {}
        # The names of a few Services, built when asked: (service, zone) → name → data.
        self.views: dict[tuple[ServiceKey, str], dict[str, NameData]] = {}
        # ExternalName Services' names: those whose target is one of ours (their replies
        # include the target's records, so they live in the memo), and, in wire form,
        # those whose target is elsewhere (the handler chases them through the server,
        # CoreDNS's upstream, so the fast path must not answer them).
        self.externals: dict[ServiceKey, tuple[str, ...]] = {}
        self.cname_names: set[str] = set()
        self.external_cnames: set[bytes] = set()
        self.forward_zone_wires = frozenset(text_to_wire(z) for z in config.forward_zones)
        # Forward zones some of whose names may fall through: their NXDOMAIN is decided by
        # outcome(). The standard Corefile's `fallthrough in-addr.arpa ip6.arpa` leaves
        # cluster.local on the fast path.
        self.negative_zone_wires = frozenset(
            text_to_wire(z)
            for z in config.forward_zones
            if not _may_fall_through(config.fallthrough.zones, z)
        )
        # NXDOMAIN replies for names that cannot exist, one per (zone, where the zone
        # starts in the question): the SOA owner is a pointer to that spot, so one encoded
        # reply serves every such name.
        self.negatives: dict[tuple[bytes, int], AnswerTemplate] = {}
        # True until the plugin has the initial lists (or gave up waiting): changes are
        # not applied one by one, the plugin calls rebuild() once instead.
        self.deferring = True
        self.generation = 0
        self.serial = int(time.time())
        self.ttl = config.ttl

    def stored(self) -> int:
        """How many encoded replies are kept (the ``names`` metric)."""
        return len(self.templates) + len(self.memo)

    # --- updates ---------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Start over from the model (start, and a Change with ``full``).

        Nothing per Service is built here: a Service's names are parsed from the query
        and answered from its record (see _view), so this costs a scan for ExternalNames.
        """
        self.names.clear()
        self.templates.clear()
        self.template_service.clear()
        self.templated.clear()
        self.views.clear()
        self.externals.clear()
        self.cname_names.clear()
        self.external_cnames.clear()
        self._build_apex()
        for svc in list(self.model.services()):
            if svc.type == "ExternalName":
                self._refresh_external((svc.namespace, svc.name))
        self._changed()

    def apply(self, change: Change) -> None:
        """Forget what ``change`` touched (nothing while deferring: see rebuild())."""
        if self.deferring:
            return
        if change.full:
            self.rebuild()
            return
        self.memo.clear()  # again in _changed; here so no stale negative outlives the update
        keys = set(change.services)
        if change.namespaces:
            namespaces = change.namespaces
            for ns in namespaces:
                keys.update((svc.namespace, svc.name) for svc in self.model.services_in(ns))
            # Visibility follows the namespace: what was built for its Services goes too.
            keys.update(k for k in self.templated if k[0] in namespaces)
            keys.update(k for k in self.externals if k[0] in namespaces)
            keys.update(k for k, _ in self.views if k[0] in namespaces)
        for key in keys:
            self._forget_service(key)
            self._refresh_external(key)
        for ip in change.ips:
            self._forget_service(ptr_key(ip))
        if DNS_SERVICE in keys:
            self._build_apex()
        self._changed()

    def _changed(self) -> None:
        self.memo.clear()
        self.negatives.clear()  # they carry the SOA serial
        self.generation += 1
        self.serial = max(self.serial, int(time.time()))

    def _build_apex(self) -> None:
        ns_items = self._ns_items
        for zone in self.config.zones:
            names: dict[str, NameData] = {zone: NameData(apex=True), join("dns", zone): EMPTY}
            ns_name = join("ns.dns", zone)
            names[ns_name] = NameData(items=tuple(Item(ip, -1, ns_name) for ip in ns_items()))
            if not is_reverse(zone):
                names[join("svc", zone)] = EMPTY
                names[join("pod", zone)] = EMPTY
                names[join("dns-version", zone)] = NameData(txt=DNS_SCHEMA_VERSION)
            self.names.update(names)

    def _ns_items(self) -> list[str]:
        svc = self.model.service(*DNS_SERVICE)
        if svc is not None and svc.cluster_ips:
            return list(svc.cluster_ips)
        return list(self.own_addresses)

    def _forget_service(self, key: ServiceKey) -> None:
        for template_key in self.templated.pop(key, ()):
            self.templates.pop(template_key, None)
            self.template_service.pop(template_key, None)
        for zone in self.forward_zones:
            self.views.pop((key, zone), None)

    def _refresh_external(self, key: ServiceKey) -> None:
        for name in self.externals.pop(key, ()):
            self.cname_names.discard(name)
            self.external_cnames.discard(text_to_wire(name))
        svc = self.model.service(*key)
        if svc is None or svc.type != "ExternalName" or not self.service_visible(svc):
            return
        names = []
        for zone in self.forward_zones:
            for name, data in self._service_names(svc, zone).items():
                assert data.cname is not None
                names.append(name)
                if self.zone_for(data.cname) is not None:
                    self.cname_names.add(name)
                else:
                    self.external_cnames.add(text_to_wire(name))
        if names:
            self.externals[key] = tuple(names)

    def _view(self, key: ServiceKey, zone: str) -> dict[str, NameData]:
        """The names Service ``key`` defines under ``zone`` (built on first use, a few
        kept); empty when it has none (missing, filtered out, headless without endpoints)."""
        view = self.views.get((key, zone))
        if view is not None:
            return view
        svc = self.model.service(*key)
        if svc is None:
            return {}
        view = self._service_names(svc, zone) if self.service_visible(svc) else {}
        if len(self.views) >= VIEW_LIMIT:
            for old in list(itertools.islice(self.views, VIEW_LIMIT // 10)):
                del self.views[old]
        self.views[(key, zone)] = view
        return view

    def _service_names(self, svc: Service, zone: str) -> dict[str, NameData]:
        config = self.config
        base = join(f"{svc.name}.{svc.namespace}.svc".lower(), zone)
        if svc.type == "ExternalName":
            if not svc.external_name:
                return {}
            return {base: NameData(cname=svc.external_name.lower().rstrip(".") + ".")}
        endpoints = () if config.noendpoints else self.model.endpoints(svc.namespace, svc.name)
        served = [ep for ep in endpoints if ep.ready or svc.publish_not_ready]
        if config.ignore_empty_service and not svc.headless and not served:
            return {}
        names: dict[str, list[Item]] = {}
        ents: set[str] = set()

        def add(name: str, item: Item) -> None:
            names.setdefault(name, []).append(item)

        def port_name(port_name: str, protocol: str) -> str:
            proto = f"_{protocol.lower()}.{base}"
            ents.add(proto)
            return f"_{port_name.lower()}.{proto}"

        for ep in served:
            for ip in ep.addresses:
                label = endpoint_label(
                    ip, ep.hostname, ep.pod_name, pod_names=config.endpoint_pod_names
                )
                ep_name = f"{label}.{base}"
                for port in ep.ports or (None,):
                    number = port.port if port is not None else -1
                    add(ep_name, Item(ip, number, ep_name))
                    if svc.headless:
                        add(base, Item(ip, number, ep_name))
                        if port is not None and port.name:
                            add(port_name(port.name, port.protocol), Item(ip, number, ep_name))
        if not svc.headless:
            for port in svc.ports or (None,):
                number = port.port if port is not None else -1
                for ip in svc.cluster_ips:
                    add(base, Item(ip, number, base))
                    if port is not None and port.name:
                        add(port_name(port.name, port.protocol), Item(ip, number, base))
        result = {name: NameData(items=tuple(items)) for name, items in names.items()}
        if base in result:
            for ent in ents:
                result.setdefault(ent, EMPTY)
        else:
            # Headless without endpoints: the spec says NXDOMAIN, so nothing below exists.
            result = {}
        return result

    @staticmethod
    def _service_key(name: str, zone: str, *, any_depth: bool = False) -> ServiceKey | None:
        """The Service a name below ``<svc>.<ns>.svc.<zone>`` would belong to (by its
        shape only), else None. Names more than two labels below a Service cannot exist;
        ``any_depth`` names their would-be Service all the same (what decides that they
        don't)."""
        relative = name[: -len(zone)] if zone != "." else name
        labels = relative.rstrip(".").split(".")
        if len(labels) >= 3 and (any_depth or len(labels) <= 5) and labels[-1] == "svc":
            return (labels[-2], labels[-3])
        return None

    def service_key(self, name: str, *, any_depth: bool = False) -> ServiceKey | None:
        """_service_key() for a name in one of the forward zones (lower-case, absolute)."""
        zone = self.zone_for(name)
        if zone is None or zone not in self.forward_zones:
            return None
        return self._service_key(name, zone, any_depth=any_depth)

    def has_names(self, key: ServiceKey) -> bool:
        """Does Service ``key`` define any name (PTR answers only point at those)?"""
        return bool(self.forward_zones) and bool(self._view(key, self.forward_zones[0]))

    # --- visibility ------------------------------------------------------------------------

    def namespace_visible(self, namespace: str) -> bool:
        config = self.config
        if config.namespaces and namespace not in config.namespaces:
            return False
        if not self.model.namespace_exists(namespace):
            return False
        if config.namespace_labels is not None:
            ns = self.model.namespace(namespace)
            return ns is not None and config.namespace_labels.matches(ns.labels)
        return True

    def service_visible(self, svc: Service) -> bool:
        if self.config.labels is not None and not self.config.labels.matches(svc.labels):
            return False
        return self.namespace_visible(svc.namespace)

    # --- answers ---------------------------------------------------------------------------

    def zone_for(self, name: str) -> str | None:
        for zone in self.zones:
            if in_zone(name, zone):
                return zone
        return None

    def ours(self, query: Query) -> bool:
        lower = query.qname_lower
        zones = self.zone_wires
        return any(lower[offset:] in zones for offset in query.label_offsets)

    def negative(self, query: Query) -> AnswerTemplate | None:
        """NXDOMAIN for a name that cannot exist, decided on the wire without building
        anything for the name: the search-path misses ``ndots:5`` produces by the dozen.

        Mirrors outcome(): below a forward zone, only the apex names, ``<ns>.svc``,
        what is under ``pod`` and the names of an existing Service may exist; None (ask
        outcome()) for those, for reverse zones, before the first sync, and in zones where
        fallthrough may apply. Reads the model: safe from the UDP thread (dict lookups).
        """
        if self.deferring or not self.model.synced or query.qclass != IN:
            return None
        lower = query.qname_lower
        offsets = query.label_offsets
        for index, offset in enumerate(offsets):  # noqa: B007 (used after the loop)
            zone = lower[offset:]
            if zone in self.zone_wires:
                break
        else:
            return None
        if index == 0 or zone not in self.negative_zone_wires:
            return None
        last = lower[offsets[index - 1] + 1 : offset]
        if last == b"pod" or (index == 1 and last in _APEX_LABELS):
            return None
        if last == b"svc":
            if index == 2:
                return None  # a namespace
            if index <= 5:
                ns = lower[offsets[index - 2] + 1 : offsets[index - 1]]
                svc = lower[offsets[index - 3] + 1 : offsets[index - 2]]
                if self.model.service(ns.decode("latin-1"), svc.decode("latin-1")) is not None:
                    return None
        elif index == 2 and last == b"dns" and lower[offsets[0] + 1 : offsets[1]] == b"ns":
            return None
        key = (zone, offset)
        template = self.negatives.get(key)
        if template is None:
            template = self._negative_template(zone, 12 + offset)
            self.negatives[key] = template
        return template

    def _negative_template(self, zone_wire: bytes, pointer: int) -> AnswerTemplate:
        zone = dns.name.from_wire(zone_wire, 0)[0].to_text()
        soa = self.soa(zone)
        rdata = soa[0].to_wire()  # mname and rname uncompressed
        assert rdata is not None
        owner = (0xC000 | pointer).to_bytes(2, "big")
        record = owner + struct.pack("!HHIH", SOA, IN, soa.ttl, len(rdata)) + rdata
        header = struct.pack("!HHHHHH", 0, _FLAGS | NXDOMAIN, 1, 0, 1, 0)
        # The question here is a stand-in name of the same shape (filler labels, then the
        # zone): render_template() copies the client's own question in.
        question = _filler(pointer - 12) + zone_wire + struct.pack("!HH", A, IN)
        return AnswerTemplate(header + question + record, len(header) + len(question))

    def lookup(self, query: Query) -> AnswerTemplate | None:
        """The encoded reply to ``query`` when it is fully determined, else None."""
        key = (query.qname_lower, query.qtype)
        template = self.templates.get(key)
        if template is not None:
            return template
        template = self.memo.get(key)
        if template is not None:
            return template
        if query.qclass != IN:
            return None
        name = query.name
        outcome = self.outcome(name, query.qtype)
        if outcome is None:
            return None
        template = encode(name, query.qtype, outcome)
        service = None
        if outcome.answer and query.qtype in TEMPLATE_TYPES and name not in self.cname_names:
            zone = self.zone_for(name)
            if zone in self.forward_zones:
                service = self._service_key(name, zone)
            elif query.qtype == PTR:
                ip = ip_from_reverse(name)
                service = None if ip is None else ptr_key(ip)
        if service is not None:
            # A positive answer of a Service's name: kept until that Service changes.
            if len(self.templates) >= TEMPLATE_LIMIT:
                self._evict_templates()
            self.templates[key] = template
            self.template_service[key] = service
            self.templated.setdefault(service, []).append(key)
        elif outcome.rcode != SERVFAIL:
            if len(self.memo) >= MEMO_LIMIT:
                for old in list(itertools.islice(self.memo, MEMO_LIMIT // 10)):
                    del self.memo[old]
            self.memo[key] = template
        return template

    def _evict_templates(self) -> None:
        for old in list(itertools.islice(self.template_service, TEMPLATE_LIMIT // 10)):
            service = self.template_service.pop(old)
            self.templates.pop(old, None)
            keys = self.templated.get(service)
            if keys is not None:
                keys.remove(old)
                if not keys:
                    del self.templated[service]

    def outcome(self, name: str, qtype: int) -> Outcome | None:
        """The answer to (name, qtype); None when it is not ours or falls through."""
        zone = self.zone_for(name)
        if zone is None:
            return None
        data = self._static(name, zone)
        if data is None:
            data = self._dynamic(name, zone)
        if data is not None:
            return self._positive(name, data, qtype, zone)
        if self.config.fallthrough.through(name):
            return None
        # CoreDNS: before the first sync a missing name is not proof of absence.
        rcode = NXDOMAIN if self.model.synced else SERVFAIL
        return Outcome(rcode, authority=[self.soa(zone)])

    def _static(self, name: str, zone: str) -> NameData | None:
        """An apex name or a Service's name."""
        data = self.names.get(name)
        if data is not None or zone not in self.forward_zones:
            return data
        key = self._service_key(name, zone)
        return None if key is None else self._view(key, zone).get(name)

    def _positive(self, name: str, data: NameData, qtype: int, zone: str) -> Outcome:
        answer, additional = self._records(name, data, qtype, zone, 0)
        if not answer:
            return Outcome(NOERROR, authority=[self.soa(zone)])
        return Outcome(NOERROR, answer=answer, additional=additional)

    def _records(
        self, name: str, data: NameData, qtype: int, zone: str, depth: int
    ) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset]]:
        owner = _name(name)
        ttl = self.ttl
        if data.cname is not None:
            rrset = dns.rrset.RRset(owner, IN, CNAME)
            rrset.update_ttl(ttl)
            rrset.add(_rdata(dns.rdtypes.ANY.CNAME.CNAME, IN, CNAME, _name(data.cname)))
            answer = [rrset]
            additional: list[dns.rrset.RRset] = []
            target_zone = self.zone_for(data.cname)
            target = None if target_zone is None else self._static(data.cname, target_zone)
            if qtype != CNAME and target is not None and depth < CNAME_DEPTH:
                assert target_zone is not None
                more, extra = self._records(data.cname, target, qtype, target_zone, depth + 1)
                answer += more
                additional += extra
            return answer, additional
        if data.apex:
            if qtype == SOA:
                return [self.soa(zone)], []
            if qtype == NS:
                ns_name = join("ns.dns", zone)
                rrset = dns.rrset.RRset(owner, IN, NS)
                rrset.update_ttl(ttl)
                rrset.add(_rdata(dns.rdtypes.ANY.NS.NS, IN, NS, _name(ns_name)))
                ns_data = self.names.get(ns_name, EMPTY)
                return [rrset], self._addresses(ns_name, ns_data.items, A) + self._addresses(
                    ns_name, ns_data.items, AAAA
                )
            return [], []
        if data.txt is not None:
            if qtype != TXT:
                return [], []
            rrset = dns.rrset.RRset(owner, IN, TXT)
            rrset.update_ttl(DNS_VERSION_TTL)
            rrset.add(_rdata(dns.rdtypes.ANY.TXT.TXT, IN, TXT, [data.txt.encode()]))
            return [rrset], []
        if data.ptrs:
            if qtype != PTR:
                return [], []
            rrset = dns.rrset.RRset(owner, IN, PTR)
            rrset.update_ttl(ttl)
            for ptr in data.ptrs:
                rrset.add(_rdata(dns.rdtypes.ANY.PTR.PTR, IN, PTR, _name(ptr)))
            return [rrset], []
        if qtype in (A, AAAA):
            return self._addresses(name, data.items, qtype), []
        if qtype == SRV:
            return self._srv(owner, data.items)
        return [], []

    def _addresses(self, name: str, items: Iterable[Item], qtype: int) -> list[dns.rrset.RRset]:
        v6 = qtype == AAAA
        rrset = dns.rrset.RRset(_name(name), IN, dns.rdatatype.RdataType.make(qtype))
        rrset.update_ttl(self.ttl)
        for item in items:
            if (":" in item.ip) == v6:
                if v6:
                    rrset.add(_rdata(dns.rdtypes.IN.AAAA.AAAA, IN, AAAA, item.ip))
                else:
                    rrset.add(_rdata(dns.rdtypes.IN.A.A, IN, A, item.ip))
        return [rrset] if rrset else []

    def _srv(
        self, owner: dns.name.Name, items: Sequence[Item]
    ) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset]]:
        with_port = [item for item in items if item.port >= 0]
        if not with_port:
            return [], []
        # CoreDNS: equal priority 0, weight 100 split over every record before de-duplication.
        weight = 100 // len(with_port)
        rrset = dns.rrset.RRset(owner, IN, SRV)
        rrset.update_ttl(self.ttl)
        by_target: dict[str, list[Item]] = {}
        for item in with_port:
            rrset.add(
                _rdata(dns.rdtypes.IN.SRV.SRV, IN, SRV, 0, weight, item.port, _name(item.target))
            )
            by_target.setdefault(item.target, []).append(item)
        additional: list[dns.rrset.RRset] = []
        for target, target_items in by_target.items():
            additional += self._addresses(target, target_items, A)
            additional += self._addresses(target, target_items, AAAA)
        return [rrset], additional

    def soa(self, zone: str) -> dns.rrset.RRset:
        rrset = dns.rrset.RRset(_name(zone), IN, SOA)
        rrset.update_ttl(min(self.ttl, 300))
        mname, rname = _name(join("ns.dns", zone)), _name(join("hostmaster", zone))
        # CoreDNS's refresh, retry and expire; minimum is the records' TTL.
        rrset.add(
            _rdata(
                dns.rdtypes.ANY.SOA.SOA,
                IN,
                SOA,
                mname,
                rname,
                self.serial,
                7200,
                1800,
                86400,
                self.ttl,
            )
        )
        return rrset

    # --- names decided at query time ----------------------------------------------------------

    def _dynamic(self, name: str, zone: str) -> NameData | None:
        """Names not in the table that may still exist: namespaces, pods, reverse names."""
        if is_reverse(zone):
            ip = ip_from_reverse(name)
            if ip is None:
                return None
            targets = self._ptr_targets(ip)
            return NameData(ptrs=targets) if targets else None
        relative = name[: -len(zone)] if zone != "." else name
        labels = relative.rstrip(".").split(".")
        if len(labels) == 2 and labels[1] == "svc":
            return EMPTY if self.namespace_visible(labels[0]) else None
        if labels[-1] != "pod" or self.config.pods is PodMode.DISABLED:
            return None
        if len(labels) == 2:
            return EMPTY if self.namespace_visible(labels[0]) else None
        if len(labels) != 3 or not self.namespace_visible(labels[1]):
            return None
        ip = pod_label_ip(labels[0])
        if ip is None:
            return None
        if self.config.pods is PodMode.VERIFIED and not any(
            pod.namespace == labels[1] for pod in self.model.pods_by_ip(ip)
        ):
            return None
        return NameData(items=(Item(ip, -1, name),))

    def _ptr_targets(self, ip: str) -> tuple[str, ...]:
        """PTR targets for an IP: the Services owning it as ClusterIP, else its endpoints."""
        zone = self.config.primary_zone
        cluster: list[str] = []
        endpoints: list[str] = []
        for owner in self.model.ip_owners(ip):
            key = (owner.namespace, owner.service)
            if not self.has_names(key):  # filtered out, or no names (ignore empty_service)
                continue
            svc = self.model.service(*key)
            if svc is None:
                continue
            base = join(f"{svc.name}.{svc.namespace}.svc".lower(), zone)
            if ip in svc.cluster_ips:
                cluster.append(base)
            elif not self.config.noendpoints:
                label = self._endpoint_label_for(svc, ip, owner.hostname)
                endpoints.append(f"{label}.{base}")
        return tuple(cluster or endpoints)

    def _endpoint_label_for(self, svc: Service, ip: str, hostname: str | None) -> str:
        if hostname:
            return hostname.lower()
        if self.config.endpoint_pod_names:
            for ep in self.model.endpoints(svc.namespace, svc.name):
                if ip in ep.addresses and ep.pod_name:
                    return ep.pod_name.lower()
        return ip_label(ip)
