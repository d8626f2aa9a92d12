"""The kubernetes plugin's zone for the ``transfer`` plugin (CoreDNS's kubernetes xfr.go).

SOA; NS ``ns.dns.<zone>`` and its addresses (what an NS query here answers); then every
visible Service, by name then namespace:

- with ClusterIPs: A/AAAA at ``<svc>.<ns>.svc.<zone>``; per port an SRV ``0 100 <port>``
  there, and for a named port at ``_<port>._<proto>.<svc>.<ns>.svc.<zone>``;
- headless: A/AAAA of each served endpoint at the Service's name and at the endpoint's own
  name, and SRV ``0 <100/n>`` at ``_<port>._<proto>`` naming each endpoint;
- ExternalName: the CNAME;

then the SOA again. Pods (``<ip>.<ns>.pod``) and ``dns-version`` are not part of it, as in
CoreDNS. An IXFR whose serial equals the zone's gets the SOA alone. Reverse zones are not
transferred (CoreDNS would send the forward names under them).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from clusterdns.plugins.kubernetes.answers import AnswerTable
from clusterdns.plugins.kubernetes.names import endpoint_label, is_reverse
from clusterdns.sources.convert import canonical_ip
from clusterdns.sources.model import Service
from clusterdns.wire import text_to_wire
from clusterdns.wire.build import (
    TYPE_CNAME,
    TYPE_NS,
    TYPE_SRV,
    Record,
    address_rdata,
    name_rdata,
    srv_rdata,
)
from clusterdns.wire.names import join


def zone_records(
    table: AnswerTable, zone: str, serial: int | None
) -> Iterator[Sequence[Record]] | None:
    """The zone's records in batches, or None when ``zone`` is not one of ours to transfer."""
    if zone not in table.zones or is_reverse(zone):
        return None
    return _records(table, zone, serial)


def _records(table: AnswerTable, zone: str, serial: int | None) -> Iterator[Sequence[Record]]:
    soa = table.soa(zone)
    yield [soa]
    if serial is not None and serial == table.serial:
        return
    ttl = table.ttl
    ns_name = text_to_wire(join("ns.dns", zone))
    yield [(text_to_wire(zone), TYPE_NS, ttl, name_rdata(ns_name))]
    ns_data = table.names.get(ns_name)
    if ns_data is not None:
        yield [_address(ns_name, ip, ttl) for ip in dict.fromkeys(i[0] for i in ns_data.items)]
    services = sorted(table.model.services(), key=lambda s: (s.name, s.namespace))
    for svc in services:
        if table.service_visible(svc):
            records = _service(table, svc, zone)
            if records:
                yield records
    yield [soa]


def _address(owner: bytes, ip: str, ttl: int) -> Record:
    rtype, rdata = address_rdata(ip)
    return (owner, rtype, ttl, rdata)


def _service(table: AnswerTable, svc: Service, zone: str) -> list[Record]:
    ttl = table.ttl
    base_text = join(f"{svc.name}.{svc.namespace}.svc", zone).lower()
    base = text_to_wire(base_text)
    records: list[Record] = []
    if svc.type == "ExternalName":
        target = svc.external_name
        if target and canonical_ip(target) is None:
            cname = text_to_wire(target.lower().rstrip(".") + ".")
            records.append((base, TYPE_CNAME, ttl, name_rdata(cname)))
        return records
    if svc.cluster_ips:
        records += [_address(base, ip, ttl) for ip in svc.cluster_ips]
        for port in svc.ports:
            srv = srv_rdata(0, 100, port.port, base)
            records.append((base, TYPE_SRV, ttl, srv))
            if port.name:
                owner = text_to_wire(f"_{port.name}._{port.protocol}.{base_text}".lower())
                records.append((owner, TYPE_SRV, ttl, srv))
        return list(dict.fromkeys(records))  # e.g. port 53 over UDP and TCP: one SRV
    if table.config.noendpoints:
        return records
    served = [
        ep
        for ep in table.model.endpoints(svc.namespace, svc.name)
        if ep.ready or svc.publish_not_ready
    ]
    addresses = sum(len(ep.addresses) for ep in served)
    weight = max(1, 100 // addresses) if addresses else 0
    pod_names = table.config.endpoint_pod_names
    for ep in served:
        for ip in ep.addresses:
            records.append(_address(base, ip, ttl))
            label = endpoint_label(ip, ep.hostname, ep.pod_name, pod_names=pod_names)
            name = text_to_wire(f"{label[:63]}.{base_text}")
            records.append(_address(name, ip, ttl))
            for port in ep.ports:
                if port.name:
                    owner = text_to_wire(f"_{port.name}._{port.protocol}.{base_text}".lower())
                    records.append((owner, TYPE_SRV, ttl, srv_rdata(0, weight, port.port, name)))
    return list(dict.fromkeys(records))
