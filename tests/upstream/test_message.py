"""The hand-written wire helpers, checked against dnspython."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rdataclass
import dns.rdatatype
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdns.upstream.message import (
    is_reply_to,
    is_truncated,
    question_of,
    random_id,
    with_id,
)


def _query(name: str, rdtype: str = "A", rdclass: str = "IN") -> bytes:
    return dns.message.make_query(name, rdtype, rdclass).to_wire()


QUESTION_CASES = [
    ("example.org.", "A", "IN", (b"\x07example\x03org\x00", 1, 1)),
    ("ExAmPlE.ORG.", "AAAA", "IN", (b"\x07example\x03org\x00", 28, 1)),
    (".", "NS", "IN", (b"\x00", 2, 1)),
    ("version.bind.", "TXT", "CH", (b"\x07version\x04bind\x00", 16, 3)),
]


@pytest.mark.parametrize(
    ("name", "rdtype", "rdclass", "expected"),
    QUESTION_CASES,
    ids=[f"{c[0]} {c[2]} {c[1]}" for c in QUESTION_CASES],
)
def test_question_of(name: str, rdtype: str, rdclass: str, expected: object) -> None:
    assert question_of(_query(name, rdtype, rdclass)) == expected


HEADER = bytes.fromhex("abcd 0100 0001 0000 0000 0000")
MALFORMED = [
    (b"", "empty"),
    (HEADER[:11], "short header"),
    (HEADER, "no question bytes"),
    (HEADER + b"\x07example", "name runs off the end"),
    (HEADER + b"\x07example\x00\x00\x01", "qtype/qclass cut short"),
    (HEADER + b"\xc0\x0c\x00\x01\x00\x01", "compression pointer"),
    (HEADER + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01", "label over 63"),
    (HEADER + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01", "name over 255"),
    (HEADER[:4] + b"\x00\x02" + HEADER[6:] + b"\x00\x00\x01\x00\x01", "qdcount 2"),
    (HEADER[:4] + b"\x00\x00" + HEADER[6:], "qdcount 0"),
]


@pytest.mark.parametrize(("wire", "why"), MALFORMED, ids=[c[1] for c in MALFORMED])
def test_question_of_malformed(wire: bytes, why: str) -> None:
    assert question_of(wire) is None


@settings(max_examples=500)
@given(
    st.one_of(
        st.binary(max_size=300),
        # a header announcing one question, then arbitrary bytes
        st.tuples(
            st.binary(min_size=4, max_size=4), st.binary(min_size=6, max_size=6), st.binary()
        ).map(lambda t: t[0] + b"\x00\x01" + t[1] + t[2]),
        # a valid-looking question, mutated
        st.lists(st.binary(min_size=1, max_size=63), max_size=6).map(
            lambda labels: (
                HEADER + b"".join(bytes([len(x)]) + x for x in labels) + b"\x00\x00\x01\x00\x01"
            )
        ),
    )
)
def test_question_of_agrees_with_dnspython(wire: bytes) -> None:
    result = question_of(wire)
    if result is not None:
        # whatever we accept, dnspython reads the same question
        # opcode 0: dnspython reads UPDATE (and others) with their own section rules
        query_opcode = wire[:2] + bytes([wire[2] & 0x87]) + wire[3:]
        msg = dns.message.from_wire(query_opcode, question_only=True)
        q = msg.question[0]
        wire_name = q.name.to_wire()
        assert wire_name is not None
        assert result == (wire_name.lower(), q.rdtype, q.rdclass)


def test_is_reply_to() -> None:
    query = dns.message.make_query("Example.org.", "A")
    query.id = 4242
    question = question_of(query.to_wire())
    assert question is not None
    reply = dns.message.make_response(query)
    wire = reply.to_wire()
    assert is_reply_to(wire, 4242, question)
    assert is_reply_to(wire.replace(b"Example", b"EXAMPLE"), 4242, question)
    assert not is_reply_to(wire, 4243, question)  # wrong ID
    assert not is_reply_to(query.to_wire(), 4242, question)  # QR clear
    aaaa = dns.message.make_response(dns.message.make_query("example.org.", "AAAA"))
    assert not is_reply_to(with_id(aaaa.to_wire(), 4242), 4242, question)  # wrong qtype
    ch = dns.message.make_response(dns.message.make_query("example.org.", "A", "CH"))
    assert not is_reply_to(with_id(ch.to_wire(), 4242), 4242, question)  # wrong qclass
    assert not is_reply_to(b"\x10\x92junk", 4242, question)


def test_is_truncated() -> None:
    reply = dns.message.make_response(dns.message.make_query("example.org.", "A"))
    assert not is_truncated(reply.to_wire())
    reply.flags |= dns.flags.TC
    assert is_truncated(reply.to_wire())
    assert not is_truncated(b"\x00")


def test_random_ids_spread() -> None:
    ids = {random_id() for _ in range(200)}
    assert len(ids) > 190
    assert all(0 <= i < 65536 for i in ids)
