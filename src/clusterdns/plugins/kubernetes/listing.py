"""Every name the kubernetes plugin answers, with its records: for introspection and the
``clusterdns records`` command, never on the query path.

The candidate names come from the model (each visible Service, its endpoints' names, its
named ports, the pods behind its endpoints, the reverse names of its addresses), and every
record listed is what :meth:`AnswerTable.decide` answers for that name, encoded and read
back as a client would: the listing cannot say something the server would not.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype

from clusterdns.core.explain import ListedName, Why, selects
from clusterdns.plugins.kubernetes.answers import AnswerTable
from clusterdns.plugins.kubernetes.config import PodMode
from clusterdns.plugins.kubernetes.names import endpoint_label, ip_label, is_reverse, reverse_name
from clusterdns.sources.model import Service
from clusterdns.wire import parse_query, text_to_wire
from clusterdns.wire.names import join, label_offsets

# The types asked of every name: a name's addresses, its SRV records, its alias.
ASKED = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV, dns.rdatatype.CNAME)


def list_names(table: AnswerTable, select: str | None = None) -> list[ListedName]:
    """The names ``table`` answers (those at or below ``select`` if given), sorted by
    namespace and Service, each with the records a client would get."""
    rows: list[ListedName] = []
    seen: set[str] = set()
    for name in _candidates(table):
        if name in seen or not selects(name, select):
            continue
        seen.add(name)
        row = describe(table, name)
        if row is not None:
            rows.append(row)
    return rows


def describe(table: AnswerTable, name: str) -> ListedName | None:
    """What ``name`` answers for A, AAAA, SRV and CNAME (PTR for a reverse name), or None
    when it does not exist."""
    types = (dns.rdatatype.PTR,) if is_reverse(name) or name.endswith(".arpa.") else ASKED
    records: list[str] = []
    first: Why | None = None
    for qtype in types:
        why: list[Why] = []
        wire = text_to_wire(name)
        answer = table.decide(wire, label_offsets(wire), qtype, True, why=why)
        if first is None and why:
            first = why[0]
        if answer is None or answer.rcode != dns.rcode.NOERROR:
            if answer is not None and qtype == types[0]:
                return None  # the name does not exist
            continue
        query = parse_query(dns.message.make_query(name, qtype).to_wire())
        reply = dns.message.from_wire(answer.to_wire(query, 65535, 4096))
        for rrset in reply.answer:
            for line in rrset.to_text().splitlines():
                if line not in records:
                    records.append(line)
    if first is None or not records:
        return None
    return ListedName(name, first.rule, first.detail, tuple(records))


def _candidates(table: AnswerTable) -> Iterator[str]:
    model = table.model
    config = table.config
    services = sorted(model.services(), key=lambda s: (s.namespace, s.name))
    reverse_zones = [z for z in config.zones if is_reverse(z)]
    multicluster = set(config.multicluster_zones)
    for zone in config.forward_zones:
        if zone in multicluster:
            yield from _import_names(table, zone)
            continue
        for svc in services:
            if not table.service_visible(svc):
                continue
            base = join(f"{svc.name}.{svc.namespace}.svc", zone).lower()
            yield base
            if svc.type == "ExternalName":
                continue
            yield from _service_subnames(table, svc, base)
        if config.pods is not PodMode.DISABLED:
            for svc in services:
                for ep in model.endpoints(svc.namespace, svc.name):
                    if ep.pod_name:
                        for ip in ep.addresses:
                            yield join(f"{ip_label(ip)}.{svc.namespace}.pod", zone).lower()
    if reverse_zones:
        for svc in services:
            ips = list(svc.cluster_ips)
            for ep in model.endpoints(svc.namespace, svc.name):
                ips += ep.addresses
            for ip in ips:
                name = reverse_name(ip)
                if any(selects(name, zone) for zone in reverse_zones):
                    yield name


def _import_names(table: AnswerTable, zone: str) -> Iterator[str]:
    """A multicluster zone's ServiceImports, their endpoints' and named ports' names."""
    model = table.model
    pod_names = table.config.endpoint_pod_names
    for imported in sorted(model.service_imports(), key=lambda i: (i.namespace, i.name)):
        base = join(f"{imported.name}.{imported.namespace}.svc", zone).lower()
        yield base
        ports = list(imported.ports)
        for cluster, ep in model.import_endpoints(imported.namespace, imported.name):
            ports += ep.ports
            for ip in ep.addresses:
                label = endpoint_label(ip, ep.hostname, ep.pod_name, pod_names=pod_names)
                yield f"{label}.{cluster.lower()}.{base}" if cluster else f"{label}.{base}"
        for port in ports:
            if port.name:
                yield f"_{port.name.lower()}._{port.protocol.lower()}.{base}"


def _service_subnames(table: AnswerTable, svc: Service, base: str) -> Iterator[str]:
    """Endpoint names and named-port (SRV) names below a Service's own name."""
    config = table.config
    endpoints = () if config.noendpoints else table.model.endpoints(svc.namespace, svc.name)
    ports = list(svc.ports)
    for ep in endpoints:
        ports += ep.ports
        for ip in ep.addresses:
            label = endpoint_label(
                ip, ep.hostname, ep.pod_name, pod_names=config.endpoint_pod_names
            )
            yield f"{label}.{base}"
    for port in ports:
        if port.name:
            yield f"_{port.name.lower()}._{port.protocol.lower()}.{base}"
