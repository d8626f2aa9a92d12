"""A file zone for the ``transfer`` plugin (CoreDNS's file Transfer): the apex's records,
SOA first, then every other name's in canonical order, then the SOA again; an IXFR whose
serial equals the zone's gets the SOA alone."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import dns.rrset

from clusterdns.plugins.file.zone import SOA, ZoneData
from clusterdns.wire.build import Record


def zone_records(data: ZoneData, serial: int | None) -> Iterator[Sequence[Record]]:
    soa = _records(data.soa)
    yield soa
    if serial is not None and serial == data.serial:
        return
    apex = data.records.get(data.origin, {})
    yield [r for rtype, rrset in apex.items() if rtype != SOA for r in _records(rrset)]
    for name in sorted(data.records):
        if name != data.origin:
            yield [r for rrset in data.records[name].values() for r in _records(rrset)]
    yield soa


def _records(rrset: dns.rrset.RRset) -> list[Record]:
    owner = rrset.name.canonicalize().to_wire()
    assert owner is not None  # to_wire() without a file returns the bytes
    return [(owner, int(rrset.rdtype), rrset.ttl, (rdata.to_wire(),)) for rdata in rrset]
