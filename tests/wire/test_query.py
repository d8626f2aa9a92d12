"""The hand-written query decoder against dnspython as the oracle."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdns.wire import DropQuery, FormError, parse_query
from clusterdns.wire.render import error_reply, render_message


def wire_of(name: str, rdtype: str = "A", **kwargs: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kwargs).to_wire()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "rdtype", "use_edns", "payload", "want_do"),
    [
        pytest.param(
            "mysql-service.default.svc.cluster.local.", "A", False, 0, False, id="plain A"
        ),
        pytest.param(
            "MySQL-Service.Default.SVC.cluster.local.", "AAAA", 0, 1232, False, id="mixed case EDNS"
        ),
        pytest.param(
            "_http._tcp.demo.default.svc.cluster.local.", "SRV", 0, 4096, True, id="SRV with DO"
        ),
        pytest.param(".", "NS", 0, 512, False, id="root"),
    ],
)
def test_parse_matches_dnspython(
    name: str, rdtype: str, use_edns: object, payload: int, want_do: bool
) -> None:
    kwargs: dict[str, object] = {}
    if use_edns is not False:
        kwargs.update(use_edns=use_edns, payload=payload, want_dnssec=want_do)
    data = wire_of(name, rdtype, **kwargs)
    query = parse_query(data)
    oracle = dns.message.from_wire(data)
    assert query.id == oracle.id
    assert query.qtype == dns.rdatatype.from_text(rdtype)
    assert query.name == oracle.question[0].name.to_text().lower()
    assert query.original_name == oracle.question[0].name.to_text()
    if use_edns is False:
        assert query.edns is None
    else:
        assert query.edns is not None
        assert query.edns.payload == payload
        assert query.edns.do is want_do


@pytest.mark.parametrize(
    ("data", "error"),
    [
        pytest.param(b"", DropQuery, id="empty"),
        pytest.param(b"\x00\x01\x02", DropQuery, id="shorter than header"),
        pytest.param(
            struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01",
            DropQuery,
            id="response",
        ),
        pytest.param(struct.pack("!HHHHHH", 1, 0, 0, 0, 0, 0), FormError, id="no question"),
        pytest.param(
            struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01" * 2,
            FormError,
            id="two questions",
        ),
        pytest.param(
            struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x05abc", FormError, id="name past end"
        ),
        pytest.param(
            struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
            FormError,
            id="pointer in question",
        ),
        pytest.param(
            struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 1) + b"\x00\x00\x01\x00\x01",
            FormError,
            id="missing additional",
        ),
    ],
)
def test_bad_input(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_query(data)


def test_formerr_reply_keeps_id_and_drops_unreadable_question() -> None:
    data = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 2, 0, 0, 0)
    reply = dns.message.from_wire(error_reply(data, 1, question_end=0, edns_do=None, payload=0))
    assert reply.id == 0xBEEF
    assert reply.rcode() == 1
    assert not reply.question
    assert reply.flags & dns.flags.QR and reply.flags & dns.flags.RD


def test_render_truncates_record_by_record_and_sets_tc() -> None:
    query_wire = wire_of("big.example.", "TXT")
    query = parse_query(query_wire)
    response = dns.message.make_response(dns.message.from_wire(query_wire))
    rrset = response.find_rrset(
        response.answer, dns.name.from_text("big.example."), 1, 16, create=True
    )
    for i in range(40):
        rrset.add(dns.rdata.from_text(1, 16, f'"record number {i:03d} padding padding padding"'))
    full = render_message(response, query, limit=65535, payload=1232)
    assert len(full) > 512 and not dns.message.from_wire(full).flags & dns.flags.TC
    short = render_message(response, query, limit=512, payload=1232)
    parsed = dns.message.from_wire(short)
    assert len(short) <= 512
    assert parsed.flags & dns.flags.TC
    # Some records are kept (dnspython's prefer_truncation would keep none).
    assert 0 < len(parsed.answer[0]) < 40


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_wire_errors(data: bytes) -> None:
    try:
        parse_query(data)
    except (DropQuery, FormError):
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_mutated_queries_only_raise_wire_errors(position: int, value: int) -> None:
    data = bytearray(wire_of("svc.ns.svc.cluster.local.", "SRV", use_edns=0, payload=1232))
    if position < len(data):
        data[position] = value
    try:
        parse_query(bytes(data))
    except (DropQuery, FormError):
        pass
