"""Fuzzing the pure decoders: the query parser (wire/query.py), the error replies built from
what it read, and the reply checks of upstream/ (upstream/message.py). Bad input only
raises our typed wire errors, never anything else, and never hangs.

CI runs a small budget; the long run: CLUSTERDNS_FUZZ_EXAMPLES=100000 python3 -m pytest
tests/reliability/test_fuzz_wire.py (docs/reliability.md)."""

from __future__ import annotations

import struct
import time

import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from clusterdns.upstream.message import is_reply_to, is_response, is_truncated, question_of
from clusterdns.wire import DropQuery, FormError, parse_query
from clusterdns.wire.render import error_reply
from tests.reliability.packets import CASES, DROP, Case, mutated, queries, read_corpus
from tests.reliability.serving import budget

FUZZ = settings(
    max_examples=budget(200),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


def decode(data: bytes) -> str:
    """What the header gate makes of ``data``: drop, FORMERR, NOTIMP, BADVERS or query.
    Raises anything that is not one of our wire errors (the bug the fuzzing looks for)."""
    try:
        query = parse_query(data)
    except DropQuery:
        return DROP
    except FormError as err:
        reply = error_reply(data, 1, question_end=err.question_end, edns_do=None, payload=0)
        _check_error_reply(data, reply, err.question_end)
        return "FORMERR"
    if query.opcode != 0:
        return "NOTIMP"
    if query.edns is not None and query.edns.version != 0:
        return "BADVERS"
    assert 12 < query.question_end <= len(data)
    assert len(query.qname_wire) <= 255
    assert query.name.endswith(".")
    return "query"


def _check_error_reply(data: bytes, reply: bytes, question_end: int) -> None:
    parsed = dns.message.from_wire(reply)
    assert parsed.id == struct.unpack_from("!H", data)[0]
    assert parsed.rcode() == dns.rcode.FORMERR
    assert len(parsed.question) == (1 if question_end else 0)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_bad_input_class_decodes_as_the_table_says(case: Case) -> None:
    outcome = decode(case.data)
    expected = case.expect if case.expect in (DROP, "FORMERR", "NOTIMP", "BADVERS") else "query"
    assert outcome == expected
    if case.expect == "FORMERR":
        with pytest.raises(FormError) as info:
            parse_query(case.data)
        assert bool(info.value.question_end) is case.echo


@pytest.mark.parametrize("entry", read_corpus(), ids=lambda entry: entry.path.stem)
def test_corpus_decodes_without_surprises(entry: object) -> None:
    from tests.reliability.packets import CorpusEntry

    assert isinstance(entry, CorpusEntry)
    outcome = decode(entry.data)
    if entry.expect in (DROP, "FORMERR", "NOTIMP", "BADVERS"):
        assert outcome == entry.expect


@FUZZ
@given(mutated())
def test_mutated_queries_only_raise_wire_errors(data: bytes) -> None:
    started = time.perf_counter()
    decode(data)
    assert time.perf_counter() - started < 0.5, "parsing one datagram must not take long"


@FUZZ
@given(queries())
def test_valid_queries_parse_as_dnspython_reads_them(data: bytes) -> None:
    assume((data[2] >> 3) & 0xF == 0)  # dnspython reads other opcodes' sections differently
    oracle = dns.message.from_wire(data, question_only=True)
    query = parse_query(data)
    assert query.id == oracle.id
    assert query.qtype == oracle.question[0].rdtype
    assert query.qclass == oracle.question[0].rdclass
    assert query.qname_wire == oracle.question[0].name.to_wire()


@FUZZ
@given(st.binary(max_size=600) | mutated())
def test_upstream_reply_checks_never_raise(data: bytes) -> None:
    question = question_of(data)
    if question is not None:
        assert len(question[0]) <= 255
    assert isinstance(is_response(data), bool)
    assert isinstance(is_truncated(data), bool)
    if len(data) >= 2:
        sent_id = struct.unpack_from("!H", data)[0]
        assert isinstance(is_reply_to(data, sent_id, (b"\x00", 1, 1)), bool)


def test_compression_pointer_chain_at_the_limit_is_bounded() -> None:
    """126 pointers on the way to a name: accepted (miekg's limit); one more is a loop."""
    from tests.reliability.packets import QUESTION, header

    # The pointer chain sits in the rdata of an unknown-type record, so the message stays
    # well framed; each pointer points at the one before, the first at a root name.
    def build(count: int) -> bytes:
        base = len(header() + QUESTION) + 11
        junk = bytearray(b"\x00")
        target = base
        for _ in range(count):
            pointer_at = base + len(junk)
            junk += struct.pack("!H", 0xC000 | target)
            target = pointer_at
        record = struct.pack("!H", 0xC000 | target) + struct.pack("!HHIH", 1, 1, 0, 4) + bytes(4)
        return (
            header(ar=2)
            + QUESTION
            + b"\x00"
            + struct.pack("!HHIH", 65280, 1, 0, len(junk))
            + bytes(junk)
            + record
        )

    parse_query(build(125))  # the owner's own pointer makes 126
    with pytest.raises(FormError, match="loop"):
        parse_query(build(126))
