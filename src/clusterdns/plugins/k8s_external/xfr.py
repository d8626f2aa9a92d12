"""k8s_external's zone for the ``transfer`` plugin (CoreDNS's k8s_external Transfer).

SOA, NS and the nameserver's addresses, then for every Service with external addresses
(and, with ``headless``, every headless Service with ready endpoints), in (namespace,
name) order, the records a query for each of its names returns: ``<svc>.<ns>.<zone>`` A,
AAAA (or the load balancer hostname's CNAME) and SRV; ``_<port>._<proto>`` SRV per named
port; each endpoint's name for headless Services; then the SOA again. An IXFR whose
serial is not older than ours gets the SOA alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from clusterdns.plugins.k8s_external.answers import ExternalAnswers
from clusterdns.sources.model import Service
from clusterdns.wire import text_to_wire
from clusterdns.wire.build import TYPE_A, TYPE_AAAA, TYPE_SRV, Record
from clusterdns.wire.names import join

_NAME_TYPES = (TYPE_A, TYPE_AAAA, TYPE_SRV)


def zone_records(
    answers: ExternalAnswers, zone: str, serial: int | None
) -> Iterator[Sequence[Record]]:
    soa = answers.soa(zone)
    yield [soa]
    if serial is not None and serial >= answers.source.table.serial:
        return
    yield [answers.ns(zone)]
    ns_owner = text_to_wire(join("ns1", join(answers.config.apex, zone)))
    hosts = answers.ns_addresses()
    yield answers.address_records(ns_owner, hosts, TYPE_A) + answers.address_records(
        ns_owner, hosts, TYPE_AAAA
    )
    source = answers.source
    services = sorted(source.model.services(), key=lambda s: (s.namespace, s.name))
    for svc in services:
        if not source.table.service_visible(svc):
            continue
        records = list(_service_records(answers, svc, zone))
        if records:
            yield records
    yield [soa]


def _service_records(answers: ExternalAnswers, svc: Service, zone: str) -> Iterator[Record]:
    """What queries for the Service's names answer, each record once."""
    base = join(f"{svc.name}.{svc.namespace}", zone)
    if svc.external:
        ports = svc.ports
        names = [base]
    elif answers.config.headless and svc.headless:
        source = answers.source
        endpoints = answers.source.model.endpoints(svc.namespace, svc.name)
        served = [ep for ep in endpoints if ep.ready or svc.publish_not_ready]
        ports = tuple(port for ep in served for port in ep.ports)
        labels = dict.fromkeys(
            source.endpoint_label(ip, ep.hostname, ep.pod_name)
            for ep in served
            for ip in ep.addresses
        )
        names = [base, *(f"{label}.{base}" for label in labels)]
    else:
        return
    seen: set[tuple[bytes, int, tuple[bytes, ...]]] = set()
    named = dict.fromkeys(
        f"_{p.name.lower()}._{p.protocol.lower()}.{base}" for p in ports if p.name
    )
    for name, types in [(n, _NAME_TYPES) for n in names] + [(n, (TYPE_SRV,)) for n in named]:
        for qtype in types:
            decision = answers.decide(name, qtype, zone)
            if decision is None or decision.rcode != 0:
                continue
            for record in decision.answer:
                key = (record[0], record[1], record[3])
                if key not in seen:
                    seen.add(key)
                    yield record
