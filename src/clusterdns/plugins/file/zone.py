"""One parsed zone and authoritative lookups in it: delegations, CNAME chains,
wildcards (RFC 4592, empty non-terminals included) and negative answers with SOA."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

import dns.name
import dns.rdatatype
import dns.rrset
import dns.zone
from dns.rdtypes.ANY.SOA import SOA as SoaRdata

SOA: Final = int(dns.rdatatype.SOA)
NS: Final = int(dns.rdatatype.NS)
CNAME: Final = int(dns.rdatatype.CNAME)
DNAME: Final = int(dns.rdatatype.DNAME)
DS: Final = int(dns.rdatatype.DS)
A: Final = int(dns.rdatatype.A)
AAAA: Final = int(dns.rdatatype.AAAA)
MX: Final = int(dns.rdatatype.MX)
SRV: Final = int(dns.rdatatype.SRV)
MAX_CHAIN: Final = 8
WILDCARD: Final = b"*"


class ZoneError(Exception):
    """A zone file that cannot be served (unreadable, bad syntax, no SOA)."""


class Result(enum.Enum):
    SUCCESS = "success"
    NODATA = "nodata"
    NXDOMAIN = "nxdomain"
    DELEGATION = "delegation"


@dataclass
class Answer:
    result: Result
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)

    @property
    def authoritative(self) -> bool:
        return self.result is not Result.DELEGATION


def _renamed(rrset: dns.rrset.RRset, owner: dns.name.Name) -> dns.rrset.RRset:
    """A wildcard's records under the name that asked (RFC 4592 synthesis)."""
    copy = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype, rrset.covers)
    for rdata in rrset:
        copy.add(rdata)
    copy.ttl = rrset.ttl
    return copy


class ZoneData:
    """An immutable snapshot of one zone, indexed for lookups."""

    def __init__(self, origin: dns.name.Name, zone: dns.zone.Zone) -> None:
        self.origin = origin
        self.records: dict[dns.name.Name, dict[int, dns.rrset.RRset]] = {}
        for name, node in zone.nodes.items():
            owner = name if name.is_absolute() else name.derelativize(origin)
            types: dict[int, dns.rrset.RRset] = {}
            for rdataset in node.rdatasets:
                if rdataset.covers:
                    continue  # RRSIGs: no DNSSEC here
                rrset = dns.rrset.RRset(owner, rdataset.rdclass, rdataset.rdtype)
                for rdata in rdataset:
                    rrset.add(rdata)
                rrset.ttl = rdataset.ttl
                types[int(rdataset.rdtype)] = rrset
            if types:
                self.records[owner] = types
        apex = self.records.get(origin, {})
        soa = apex.get(SOA)
        if soa is None:
            raise ZoneError(f"no SOA record at the zone apex {origin}")
        self.soa = soa
        first = next(iter(soa))
        assert isinstance(first, SoaRdata)
        self.serial: int = first.serial
        self.ns: dns.rrset.RRset | None = apex.get(NS)
        # Every owner name and every name between it and the apex (empty non-terminals).
        self.existing: set[dns.name.Name] = set()
        for name in self.records:
            while name != origin and name not in self.existing:
                self.existing.add(name)
                name = name.parent()
        self.existing.add(origin)
        self.cuts = {name for name, types in self.records.items() if NS in types} - {origin}

    @property
    def apex_ns(self) -> list[dns.rrset.RRset]:
        return [self.ns] if self.ns is not None else []

    def glue(self, ns: dns.rrset.RRset) -> list[dns.rrset.RRset]:
        """A/AAAA for name servers below the NS owner (CoreDNS's bailiwick rule)."""
        glue: list[dns.rrset.RRset] = []
        for rdata in ns:
            target = rdata.target
            if not target.is_subdomain(ns.name):
                continue
            types = self.records.get(target, {})
            glue.extend(types[t] for t in (A, AAAA) if t in types)
        return glue

    def _additional(self, rrset: dns.rrset.RRset) -> list[dns.rrset.RRset]:
        """Addresses of in-zone MX and SRV targets."""
        if rrset.rdtype not in (MX, SRV):
            return []
        extra: list[dns.rrset.RRset] = []
        for rdata in rrset:
            target = rdata.exchange if rrset.rdtype == MX else rdata.target
            types = self.records.get(target, {}) if target.is_subdomain(self.origin) else {}
            extra.extend(types[t] for t in (A, AAAA) if t in types)
        return extra

    def lookup(self, qname: dns.name.Name, qtype: int) -> Answer:
        origin = self.origin
        if qname == origin and qtype == SOA:
            return Answer(Result.SUCCESS, [self.soa], self.apex_ns)
        if qname == origin and qtype == NS and self.ns is not None:
            return Answer(Result.SUCCESS, [self.ns], [], self.glue(self.ns))
        # Walk down from the apex: a zone cut on the way means a referral.
        depth = len(origin)
        for labels in range(depth + 1, len(qname) + 1):
            _, ancestor = qname.split(labels)
            if ancestor not in self.cuts:
                continue
            if ancestor == qname and qtype == DS:
                continue  # DS lives on the parent side of the cut
            ns = self.records[ancestor][NS]
            return Answer(Result.DELEGATION, [], [ns], self.glue(ns))
        types = self.records.get(qname)
        if types is not None:
            return self._from_node(qname, types, qtype, synthesized=False)
        if qname in self.existing:
            # An empty non-terminal: the name exists, it has no records (RFC 4592 2.2.2).
            return Answer(Result.NODATA, [], [self.soa])
        encloser = qname.parent()
        while encloser not in self.existing:
            encloser = encloser.parent()
        wildcard = self.records.get(dns.name.Name((WILDCARD, *encloser.labels)))
        if wildcard is not None:
            return self._from_node(qname, wildcard, qtype, synthesized=True)
        return Answer(Result.NXDOMAIN, [], [self.soa])

    def _from_node(
        self,
        qname: dns.name.Name,
        types: dict[int, dns.rrset.RRset],
        qtype: int,
        *,
        synthesized: bool,
    ) -> Answer:
        cname = types.get(CNAME)
        if cname is not None and qtype != CNAME:
            first = _renamed(cname, qname) if synthesized else cname
            return Answer(Result.SUCCESS, self._chase(first, qtype), self.apex_ns)
        rrset = types.get(qtype)
        if rrset is None:
            return Answer(Result.NODATA, [], [self.soa])
        answer = _renamed(rrset, qname) if synthesized else rrset
        return Answer(Result.SUCCESS, [answer], self.apex_ns, self._additional(rrset))

    def _chase(self, cname: dns.rrset.RRset, qtype: int) -> list[dns.rrset.RRset]:
        """The CNAME chain inside the zone and the records it ends on."""
        answer = [cname]
        seen = {cname.name}
        target: dns.name.Name = next(iter(cname)).target
        for _ in range(MAX_CHAIN):
            if target in seen or not target.is_subdomain(self.origin):
                break
            types = self.records.get(target)
            if types is None:
                break  # out of zone data: the client follows the CNAME itself
            seen.add(target)
            next_cname = types.get(CNAME)
            if next_cname is None:
                if qtype in types:
                    answer.append(types[qtype])
                break
            answer.append(next_cname)
            target = next(iter(next_cname)).target
        return answer


def load_zone(path: str, origin: dns.name.Name) -> ZoneData:
    """Parse an RFC 1035 master file for ``origin``; raises ZoneError."""
    try:
        zone = dns.zone.from_file(path, origin=origin, relativize=False, check_origin=False)
    except OSError as err:
        raise ZoneError(f"cannot read {path}: {err.strerror or err}") from err
    except Exception as err:  # dnspython's syntax errors carry the line number
        raise ZoneError(f"cannot parse {path}: {err}") from err
    return ZoneData(origin, zone)
