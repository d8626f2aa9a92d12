"""Template output to records: one RR in zone-file text, read as miekg/dns's NewRR does.

``OWNER [TTL] [CLASS] TYPE RDATA`` with TTL and CLASS in either order, names relative
to the root (``example.net`` is ``example.net.``), TTL 3600 and class IN when left out,
parentheses across lines (an SOA's numbers).
"""

from __future__ import annotations

from typing import Final

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tokenizer
import dns.ttl

DEFAULT_TTL: Final = 3600


class RecordError(ValueError):
    """The text is not one resource record."""


def parse_rr(text: str) -> dns.rrset.RRset:
    try:
        return _parse(text)
    except RecordError:
        raise
    except (dns.exception.DNSException, ValueError) as err:
        raise RecordError(f"{err}: {text!r}") from None


def _parse(text: str) -> dns.rrset.RRset:
    tok = dns.tokenizer.Tokenizer(text)
    first = tok.get()
    if first.is_eol_or_eof():
        raise RecordError(f"no record in {text!r}")
    if not first.is_identifier():
        raise RecordError(f"bad owner name in {text!r}")
    owner = dns.name.from_text(first.value, origin=dns.name.root)
    ttl: int | None = None
    rdclass: dns.rdataclass.RdataClass | None = None
    while True:
        token = tok.get()
        if token.is_eol_or_eof():
            raise RecordError(f"not a record (no type): {text!r}")
        if not token.is_identifier():
            raise RecordError(f"unexpected {token.value!r} in {text!r}")
        value = token.value
        if ttl is None and value[:1].isdigit():
            ttl = dns.ttl.from_text(value)
            continue
        if rdclass is None:
            try:
                rdclass = dns.rdataclass.from_text(value)
                continue
            except dns.rdataclass.UnknownRdataclass:
                pass
        rdtype = dns.rdatatype.from_text(value)
        break
    if rdclass is None:
        rdclass = dns.rdataclass.IN
    rdata = dns.rdata.from_text(rdclass, rdtype, tok, origin=dns.name.root, relativize=False)
    rrset = dns.rrset.RRset(owner, rdclass, rdtype)
    rrset.update_ttl(DEFAULT_TTL if ttl is None else ttl)
    rrset.add(rdata)
    return rrset
