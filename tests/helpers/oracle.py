"""The dnspython oracle for replies built on the wire (clusterdns.wire.build).

The same records, handed to dnspython's renderer through render_message (per-record
truncation, EDNS mirrored), must give the same bytes as build_reply: header, the client's
question, every compression pointer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.wire import Query
from clusterdns.wire.build import Record
from clusterdns.wire.render import render_message


def _rrsets(records: Sequence[Record]) -> list[dns.rrset.RRset]:
    """Records as RRsets in their order (consecutive records of one owner and type share one,
    as the renderer writes them record by record either way)."""
    out: list[dns.rrset.RRset] = []
    for owner, rtype, ttl, parts in records:
        wire = b"".join(parts)
        rdata = dns.rdata.from_wire(dns.rdataclass.IN, rtype, wire, 0, len(wire))
        name = dns.name.from_wire(owner, 0)[0]
        last = out[-1] if out else None
        if last is not None and last.name == name and last.rdtype == rtype and last.ttl == ttl:
            last.add(rdata)
            continue
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, dns.rdatatype.RdataType.make(rtype))
        rrset.update_ttl(ttl)
        rrset.add(rdata)
        out.append(rrset)
    return out


def oracle_reply(
    query: Query,
    *,
    rcode: int,
    answer: Sequence[Record] = (),
    authority: Sequence[Record] = (),
    additional: Sequence[Record] = (),
    limit: int = 65535,
    payload: int = 4096,
) -> bytes:
    message = dns.message.Message(id=query.id)
    message.flags = dns.flags.QR | dns.flags.AA
    message.set_rcode(dns.rcode.Rcode.make(rcode))
    message.question = [
        dns.rrset.RRset(
            dns.name.from_wire(query.qname_wire, 0)[0],
            dns.rdataclass.RdataClass.make(query.qclass),
            dns.rdatatype.RdataType.make(query.qtype),
        )
    ]
    message.answer = _rrsets(answer)
    message.authority = _rrsets(authority)
    message.additional = _rrsets(additional)
    return render_message(message, query, limit=limit, payload=payload)


class Decision(Protocol):
    """A record plugin's decision: rcode and the records of each section."""

    rcode: int
    answer: Sequence[Record]
    authority: Sequence[Record]
    additional: Sequence[Record]


def oracle_for(query: Query, decision: Decision, *, limit: int, payload: int = 4096) -> bytes:
    """oracle_reply() of a decision's records."""
    return oracle_reply(
        query,
        rcode=decision.rcode,
        answer=decision.answer,
        authority=decision.authority,
        additional=decision.additional,
        limit=limit,
        payload=payload,
    )
