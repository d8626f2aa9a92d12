"""Fuzzing the pure decoders: the query parser (wire/query.py), the error replies built from
what it read, and the reply checks of upstream/ (upstream/message.py). Bad input only
raises our typed wire errors, never anything else, and never hangs.

CI runs a small budget; the long run: CLUSTERDNS_FUZZ_EXAMPLES=100000 python3 -m pytest
tests/reliability/test_fuzz_wire.py (docs/reliability.md)."""

from __future__ import annotations

import os
import pathlib
import struct
import subprocess
import sys
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
    msg_id, flags, qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHHHH", reply)
    assert msg_id == struct.unpack_from("!H", data)[0]
    assert flags & 0x8000 and flags & 0xF == dns.rcode.FORMERR
    assert (qdcount, ancount, nscount, arcount) == (1 if question_end else 0, 0, 0, 0)
    assert len(reply) == 12 + (question_end - 12 if question_end else 0)
    if (flags >> 11) & 0xF == 0:  # dnspython reads other opcodes' sections differently
        parsed = dns.message.from_wire(reply)
        assert len(parsed.question) == qdcount


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


def _sample_reply() -> bytes:
    """A reply with one record of each type wire.check_message looks inside."""
    import dns.rrset

    query = dns.message.make_query("www.example.org.", "A", use_edns=0, payload=1232)
    reply = dns.message.make_response(query)
    for rdtype, rdata in [
        ("CNAME", "web.example.org."),
        ("A", "192.0.2.1"),
        ("AAAA", "2001:db8::1"),
        ("MX", "10 mail.example.org."),
        ("SRV", "0 5 80 web.example.org."),
        ("TXT", '"hello" "world"'),
        ("PTR", "host.example.org."),
    ]:
        reply.answer.append(dns.rrset.from_text("www.example.org.", 60, "IN", rdtype, rdata))
    reply.authority.append(
        dns.rrset.from_text(
            "example.org.", 60, "IN", "SOA", "ns.example.org. host.example.org. 1 2 3 4 5"
        )
    )
    reply.additional.append(dns.rrset.from_text("ns.example.org.", 60, "IN", "NS", "a.b."))
    return reply.to_wire()


SAMPLE_REPLY = _sample_reply()


def _types_and_classes(data: bytes) -> set[tuple[int, int]]:
    from clusterdns.wire import skip_name
    from clusterdns.wire.query import HEADER, RR_FIXED

    _, _, qd, an, ns, ar = HEADER.unpack_from(data)
    pos = 12
    for _ in range(qd):
        pos = skip_name(data, pos) + 4
    seen = set()
    for _ in range(an + ns + ar):
        pos = skip_name(data, pos)
        rtype, rclass, _, rdlength = RR_FIXED.unpack_from(data, pos)
        seen.add((rtype, rclass))
        pos += 10 + rdlength
    return seen


_CHECKED = {1, 28, 2, 5, 12, 39, 15, 33, 6, 16}


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(SAMPLE_REPLY) - 1), st.integers(0, 255)), max_size=4))
def test_what_check_message_accepts_dnspython_reads(pokes: list[tuple[int, int]]) -> None:
    """The promise forward relies on: a reply wire.check_message lets in can be decoded
    later (loadbalance, truncation), for the record types it looks inside."""
    from clusterdns.wire.check import check_message

    data = bytearray(SAMPLE_REPLY)
    for at, value in pokes:
        data[at] = value
    try:
        check_message(bytes(data))
    except FormError:
        return
    kinds = _types_and_classes(bytes(data))
    assume(all(rtype in _CHECKED and rclass == 1 for rtype, rclass in kinds if rtype != 41))
    assume(struct.unpack_from("!H", data, 4)[0] == 1 and (data[2] >> 3) & 0xF == 0)
    dns.message.from_wire(bytes(data))


def test_check_message_accepts_what_dnspython_writes() -> None:
    from clusterdns.wire.check import check_message

    check_message(SAMPLE_REPLY)
    with pytest.raises(FormError):
        check_message(SAMPLE_REPLY[:-3])


def test_atheris_entry_point(tmp_path: pathlib.Path) -> None:
    """The optional coverage-guided target (tests/reliability/atheris_wire.py) runs from the
    corpus for a few thousand inputs without a crash. Skipped when atheris is absent."""
    pytest.importorskip("atheris")
    from tests.reliability.packets import read_corpus

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for entry in read_corpus():
        (corpus / entry.path.stem).write_bytes(entry.data)
    (corpus / "sample-reply").write_bytes(SAMPLE_REPLY)
    root = pathlib.Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=f"{root / 'src'}{os.pathsep}{root}")
    runs = budget(5000)
    out = subprocess.run(
        [sys.executable, "-m", "tests.reliability.atheris_wire", f"-runs={runs}",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        capture_output=True, text=True, timeout=max(120, runs // 100), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Done {runs} runs" in out.stderr
