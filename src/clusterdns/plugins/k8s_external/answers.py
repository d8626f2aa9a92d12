"""What k8s_external answers, decided per query from the kubernetes plugin's cluster model.

The names, as CoreDNS's k8s_external with its kubernetes plugin's External():

- ``<svc>.<ns>.<zone>``: A/AAAA of the Service's external addresses (spec.externalIPs,
  load balancer ingress IPs); an ingress hostname is a CNAME whose target the chain looks
  up through the server. SRV ``0 <100/n> <port> <svc>.<ns>.<zone>`` per port.
- ``_<port>._<proto>.<svc>.<ns>.<zone>``: SRV of the ports that match.
- with ``headless``, a Service without external addresses that is headless (or any such
  Service under an endpoint label) answers with its ready endpoints,
  ``<endpoint>.<svc>.<ns>.<zone>`` with one.
- the zone's apex: SOA, NS ``ns1.<apex>.<zone>``; ``ns1.<apex>.<zone>`` has the kube-dns
  Service's external addresses (without a kube-dns Service, the server's own address).
- PTR of an external IP (in a reverse zone of k8s_external) points at
  ``<svc>.<ns>.<first zone>``.

Anything else that exists is NODATA; a name with no such Service, port or endpoint is
NXDOMAIN (or falls through); both carry the zone's SOA.

Who reads and who writes: as the kubernetes plugin's answer table, UDP receive threads may
call :meth:`ExternalAnswers.decide` while the event loop writes the model; every read is a
dict lookup or a read of an immutable record. PTR answers scan every Service, so they are
decided on the event loop only (the fast path leaves them to the chain).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Final, Protocol, runtime_checkable

import dns.name
import dns.reversename

from clusterdns.core.fast import Depends
from clusterdns.plugins.k8s_external.config import ExternalConfig
from clusterdns.sources.convert import canonical_ip
from clusterdns.sources.model import ClusterModel, Endpoint, Service, ServicePort
from clusterdns.wire import text_to_wire
from clusterdns.wire.build import (
    SOA_TIMERS,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_NS,
    TYPE_PTR,
    TYPE_SOA,
    TYPE_SRV,
    Record,
    address_rdata,
    name_rdata,
    soa_rdata,
    srv_rdata,
)
from clusterdns.wire.names import in_zone, join, prefixed

NOERROR: Final = 0
NXDOMAIN: Final = 3
DNS_SERVICE: Final = ("kube-system", "kube-dns")  # whose external IPs ns1.<apex>.<zone> has
# A Service or endpoint without ports still has addresses (CoreDNS's port -1 sentinel).
NO_PORT: Final = (ServicePort("", -1, ""),)

# (address: an IP, or a load balancer's hostname; port, -1 for none; the SRV target for
# an IP, wire form)
Item = tuple[str, int, bytes]
# A name to look up through the server and where its answer goes: (name, qtype, section
# index: 0 answer, 2 additional).
Chase = tuple[str, int, int]


class _Table(Protocol):
    """What k8s_external reads of the kubernetes plugin's answer table."""

    serial: int
    deferring: bool

    def namespace_visible(self, namespace: str) -> bool: ...

    def service_visible(self, svc: Service) -> bool: ...


class _KubeSettings(Protocol):
    ttl: int
    noendpoints: bool


@runtime_checkable
class ExternalSource(Protocol):
    """The plugin k8s_external serves from (kubernetes, CoreDNS's Externaler): its model,
    visibility rules and change log. Read through the plugin on every query: on reload it
    may adopt its predecessor's model."""

    name: str
    model: ClusterModel
    table: _Table
    config: _KubeSettings
    own_addresses: tuple[str, ...]

    @property
    def generation(self) -> int: ...

    def changes_since(self, generation: int) -> frozenset[Hashable] | None: ...

    def endpoint_label(self, ip: str, hostname: str | None, pod_name: str | None) -> str:
        """An endpoint's label: its hostname, its Pod's name (endpoint_pod_names), its IP."""
        ...


class Decision:
    """One answer: rcode, records, what it depends on, and names the chain must look up."""

    __slots__ = ("additional", "answer", "authority", "chase", "depends", "rcode")

    def __init__(
        self,
        rcode: int,
        answer: Sequence[Record] = (),
        authority: Sequence[Record] = (),
        additional: Sequence[Record] = (),
        depends: Depends = None,
        chase: tuple[Chase, ...] = (),
    ) -> None:
        self.rcode = rcode
        self.answer = answer
        self.authority = authority
        self.additional = additional
        self.depends = depends
        self.chase = chase


def ip_from_reverse(name: str) -> str | None:
    """The IP of a complete reverse name (``4.3.2.1.in-addr.arpa.``), canonical; else None."""
    if not name.endswith((".in-addr.arpa.", ".ip6.arpa.")):
        return None
    try:
        text = dns.reversename.to_address(dns.name.from_text(name))
    except Exception:  # dnspython raises several types for names that spell no address
        return None
    ip = canonical_ip(text)
    expected = 4 if name.endswith(".in-addr.arpa.") else 32
    return ip if ip is not None and name.count(".") - 2 == expected else None


def is_ip(host: str) -> bool:
    return canonical_ip(host) is not None


def _strip(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def _matches(port: str, protocol: str, candidate: ServicePort) -> bool:
    """CoreDNS's matchPortAndProtocol: an empty query part matches anything."""
    return (not port or port == candidate.name.lower()) and (
        not protocol or protocol == candidate.protocol.lower()
    )


class ExternalAnswers:
    """The decisions of one ``k8s_external`` directive over its source's current state."""

    def __init__(self, config: ExternalConfig, source: ExternalSource) -> None:
        self.config = config
        self.source = source
        self.zones = tuple(sorted(config.zones, key=len, reverse=True))
        self._reverse: tuple[int, dict[str, list[Service]]] = (-1, {})

    # --- names -----------------------------------------------------------------------------

    def zone_of(self, name: str) -> str | None:
        """The longest of our zones holding ``name`` (lower-case, absolute)."""
        for zone in self.zones:
            if in_zone(name, zone):
                return zone
        return None

    def soa(self, zone: str) -> Record:
        ttl = self.config.ttl
        apex = join(self.config.apex, zone)
        rdata = soa_rdata(
            text_to_wire(join("ns1", apex)),
            text_to_wire(join("hostmaster", apex)),
            self.source.table.serial,
            *SOA_TIMERS,
            ttl,
        )
        return (text_to_wire(zone), TYPE_SOA, ttl, rdata)

    def ns(self, zone: str) -> Record:
        target = text_to_wire(join("ns1", join(self.config.apex, zone)))
        return (text_to_wire(zone), TYPE_NS, self.config.ttl, name_rdata(target))

    def ns_addresses(self) -> list[str]:
        """The nameserver's addresses: the kube-dns Service's external IPs (its endpoints
        when it is headless and ``headless`` is on), else the server's own address."""
        source = self.source
        svc = source.model.service(*DNS_SERVICE)
        if svc is None:
            return list(source.own_addresses)
        if self.config.headless and svc.headless:
            return [ip for ep in self._served(svc) for ip in ep.addresses]
        return [host for host in svc.external if is_ip(host)]

    def address_records(self, owner: bytes, hosts: Iterable[str], qtype: int) -> list[Record]:
        """A (or AAAA) records of the IPs among ``hosts``, each once."""
        want_v6 = qtype == TYPE_AAAA
        records: list[Record] = []
        seen: set[str] = set()
        for host in hosts:
            if host in seen or not is_ip(host) or (":" in host) != want_v6:
                continue
            seen.add(host)
            rtype, rdata = address_rdata(host)
            records.append((owner, rtype, self.config.ttl, rdata))
        return records

    # --- the decision ----------------------------------------------------------------------

    def decide(self, name: str, qtype: int, zone: str | None = None) -> Decision | None:
        """The answer for ``name`` (lower-case, absolute) and ``qtype``; None when it is not
        in our zones or falls through."""
        if zone is None:
            zone = self.zone_of(name)
            if zone is None:
                return None
        if name == zone:
            return self._apex(zone, qtype)
        apex = join(self.config.apex, zone)
        if in_zone(name, apex):
            return self._sub_apex(name, zone, apex, qtype)
        if qtype == TYPE_PTR:
            ip = ip_from_reverse(name)
            if ip is not None:
                return self._ptr(name, zone, ip)
        found = self._items(name, zone)
        if found is None:
            return self._negative(zone, name)
        items, depends = found
        if not items:
            return Decision(NOERROR, authority=(self.soa(zone),), depends=None)
        owner = text_to_wire(name)
        if qtype in (TYPE_A, TYPE_AAAA):
            answer, chase = self._addresses(owner, items, qtype)
            additional: list[Record] = []
        elif qtype == TYPE_SRV:
            answer, additional, chase = self._srv(owner, items)
        else:
            answer, additional, chase = [], [], []
        if not answer:
            return Decision(NOERROR, authority=(self.soa(zone),), depends=None)
        return Decision(NOERROR, answer, (), additional, depends=depends, chase=tuple(chase))

    def _negative(self, zone: str, name: str) -> Decision | None:
        if self.config.fallthrough.through(name):
            return None
        return Decision(NXDOMAIN, authority=(self.soa(zone),), depends=None)

    def _apex(self, zone: str, qtype: int) -> Decision:
        if qtype == TYPE_SOA:
            return Decision(NOERROR, (self.soa(zone),))
        if qtype == TYPE_NS:
            owner = text_to_wire(join("ns1", join(self.config.apex, zone)))
            hosts = self.ns_addresses()
            additional = self.address_records(owner, hosts, TYPE_A)
            additional += self.address_records(owner, hosts, TYPE_AAAA)
            return Decision(NOERROR, (self.ns(zone),), (), additional)
        return Decision(NOERROR, authority=(self.soa(zone),))

    def _sub_apex(self, name: str, zone: str, apex: str, qtype: int) -> Decision:
        """``<apex>.<zone>`` is an empty non-terminal, ``ns1.<apex>.<zone>`` the nameserver;
        nothing else exists below it (no fallthrough here, as CoreDNS)."""
        if name == apex:
            return Decision(NOERROR, authority=(self.soa(zone),))
        if name != join("ns1", apex):
            return Decision(NXDOMAIN, authority=(self.soa(zone),))
        answer: list[Record] = []
        if qtype in (TYPE_A, TYPE_AAAA):
            answer = self.address_records(text_to_wire(name), self.ns_addresses(), qtype)
        if not answer:
            return Decision(NOERROR, authority=(self.soa(zone),))
        return Decision(NOERROR, answer)

    def _items(self, name: str, zone: str) -> tuple[list[Item], Depends] | None:
        """The addresses behind a name below the apex and what they depend on: none for a
        namespace (NODATA); None when the name does not exist."""
        base = name[: -len(zone) - 1] if zone != "." else name[:-1]
        labels = base.split(".")
        namespace = labels[-1]
        source = self.source
        if not source.table.namespace_visible(namespace):
            return None
        if len(labels) == 1:
            return [], None
        service = labels[-2]
        rest = labels[:-2]
        port = protocol = endpoint = ""
        if len(rest) == 1:
            endpoint = _strip(rest[0])
        elif len(rest) == 2:
            port, protocol = _strip(rest[0]), _strip(rest[1])
        elif len(rest) > 2:
            return None
        svc = source.model.service(namespace, service)
        items: list[Item] = []
        if svc is not None and source.table.service_visible(svc):
            target = text_to_wire(join(f"{service}.{namespace}", zone))
            if self.config.headless and not svc.external and (svc.headless or endpoint):
                for ep in self._served(svc):
                    for ip in ep.addresses:
                        label = source.endpoint_label(ip, ep.hostname, ep.pod_name)
                        if endpoint and label != endpoint:
                            continue
                        for candidate in ep.ports or NO_PORT:
                            if _matches(port, protocol, candidate):
                                items.append((ip, candidate.port, prefixed(label, target)))
            else:
                # CoreDNS answers an endpoint label under such a Service with its
                # external addresses too (its port and protocol are empty: they match).
                for host in svc.external:
                    for candidate in svc.ports or NO_PORT:
                        if _matches(port, protocol, candidate):
                            items.append((host, candidate.port, target))
        if not items:
            return None
        return items, frozenset(((namespace, service),))

    def _served(self, svc: Service) -> list[Endpoint]:
        if self.source.config.noendpoints:
            return []
        endpoints = self.source.model.endpoints(svc.namespace, svc.name)
        return [ep for ep in endpoints if ep.ready or svc.publish_not_ready]

    def _addresses(
        self, owner: bytes, items: Sequence[Item], qtype: int
    ) -> tuple[list[Record], list[Chase]]:
        """A/AAAA of the IPs; a CNAME per hostname, whose target the chain looks up."""
        answer: list[Record] = []
        chase: list[Chase] = []
        cnames: set[str] = set()
        for host, _, _ in items:
            if is_ip(host) or host in cnames:
                continue
            cnames.add(host)
            target = text_to_wire(host + ".")
            answer.append((owner, TYPE_CNAME, self.source.config.ttl, name_rdata(target)))
            chase.append((host + ".", qtype, 0))
        answer += self.address_records(owner, (item[0] for item in items), qtype)
        return answer, chase

    def _srv(
        self, owner: bytes, items: Sequence[Item]
    ) -> tuple[list[Record], list[Record], list[Chase]]:
        """SRV per port, equal weight over every address (CoreDNS counts the portless ones
        too), targets' addresses in the additional section."""
        weight = max(1, 100 // len(items))
        srv_ttl = self.source.config.ttl  # CoreDNS: the kubernetes plugin's TTL
        answer: list[Record] = []
        additional: list[Record] = []
        chase: list[Chase] = []
        seen_srv: set[tuple[bytes, int]] = set()
        seen_extra: set[tuple[bytes, str]] = set()
        for host, port, target in items:
            if port < 0:
                continue
            hostname = not is_ip(host)
            if hostname:
                target = text_to_wire(host + ".")
            if (target, port) not in seen_srv:
                seen_srv.add((target, port))
                answer.append((owner, TYPE_SRV, srv_ttl, srv_rdata(0, weight, port, target)))
            if (target, host) in seen_extra:
                continue
            seen_extra.add((target, host))
            if hostname:
                chase += [(host + ".", TYPE_A, 2), (host + ".", TYPE_AAAA, 2)]
            else:
                rtype, rdata = address_rdata(host)
                additional.append((target, rtype, self.config.ttl, rdata))
        return answer, additional, chase

    def _ptr(self, name: str, zone: str, ip: str) -> Decision | None:
        """PTR of an external IP: the Services that have it, under our first zone."""
        first = self.config.zones[0]
        answer: list[Record] = []
        seen: set[bytes] = set()
        table = self.source.table
        for svc in self._reverse_index().get(ip, ()):
            if not table.namespace_visible(svc.namespace):
                continue
            target = text_to_wire(join(f"{svc.name}.{svc.namespace}", first))
            if target not in seen:
                seen.add(target)
                answer.append((text_to_wire(name), TYPE_PTR, self.config.ttl, name_rdata(target)))
        if not answer:
            return self._negative(zone, name)
        return Decision(NOERROR, answer)

    def _reverse_index(self) -> dict[str, list[Service]]:
        """External IP → the Services that have it; rebuilt after a change (event loop only)."""
        generation = self.source.generation
        built, index = self._reverse
        if built != generation:
            index = {}
            for svc in self.source.model.services():
                for host in svc.external:
                    index.setdefault(host, []).append(svc)
            self._reverse = (generation, index)
        return index
