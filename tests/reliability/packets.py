"""Hand-built DNS packets for the fuzz tests: builders, the table of bad-input classes with
what the server must do with each, the corpus on disk, and hypothesis strategies for
structured mutation.

The table is the specification (CoreDNS's behaviour through miekg/dns): a message shorter
than a header or with QR set is dropped without a word; a readable header with anything
unreadable after it is FORMERR (the question echoed only when it parsed); an opcode other
than QUERY is NOTIMP; an EDNS version other than 0 is BADVERS. Everything else is a query
and gets the zone's answer.
"""

from __future__ import annotations

import pathlib
import struct
from dataclasses import dataclass

from hypothesis import strategies as st

CORPUS = pathlib.Path(__file__).parent / "corpus"
DROP = "drop"

# The name every good query asks: a Service of the demo cluster (examples/cluster), served
# by the kubernetes plugin's fast path.
GOOD_NAME = "kube-dns.kube-system.svc.cluster.local."
GOOD_ADDRESS = "10.96.0.10"


def wire_name(text: str) -> bytes:
    labels = [label for label in text.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\x00"


def header(
    msg_id: int = 0x1234,
    flags: int = 0x0100,
    qd: int = 1,
    an: int = 0,
    ns: int = 0,
    ar: int = 0,
) -> bytes:
    return struct.pack("!HHHHHH", msg_id, flags, qd, an, ns, ar)


def question(name: str | bytes = GOOD_NAME, qtype: int = 1, qclass: int = 1) -> bytes:
    raw = wire_name(name) if isinstance(name, str) else name
    return raw + struct.pack("!HH", qtype, qclass)


def rr(owner: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes, rdlength: int = -1) -> bytes:
    length = len(rdata) if rdlength < 0 else rdlength
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, length) + rdata


def opt(
    payload: int = 1232,
    *,
    version: int = 0,
    do: bool = False,
    options: bytes = b"",
    owner: bytes = b"\x00",
    rdlength: int = -1,
) -> bytes:
    ttl = (version << 16) | (0x8000 if do else 0)
    return rr(owner, 41, payload, ttl, options, rdlength)


def good_query(msg_id: int = 0x1234, *, edns: bool = True) -> bytes:
    if edns:
        return header(msg_id, ar=1) + question() + opt()
    return header(msg_id) + question()


QUESTION = question()
QUESTION_END = 12 + len(QUESTION)


@dataclass(frozen=True)
class Case:
    """One class of bad input: the bytes, and the rcode name the reply must carry (or
    ``drop``). ``echo``: the reply repeats the question (False when it was unreadable)."""

    name: str
    data: bytes
    expect: str
    echo: bool = True


_LONG_NAME = b"".join(b"\x3f" + b"a" * 63 for _ in range(4)) + b"\x00"  # 257 octets
_COOKIE = struct.pack("!HH", 10, 8) + b"\x01\x02\x03\x04\x05\x06\x07\x08"

CASES: list[Case] = [
    Case("zero-length datagram", b"", DROP),
    Case("shorter than a header", good_query()[:11], DROP),
    Case("a response (QR set)", header(flags=0x8100) + QUESTION, DROP),
    Case("header only, question missing", header(), "FORMERR", echo=False),
    Case("question name cut mid-label", header() + QUESTION[:9], "FORMERR", echo=False),
    Case("question without type and class", header() + wire_name(GOOD_NAME), "FORMERR", echo=False),
    Case("question with half its class", header() + QUESTION[:-1], "FORMERR", echo=False),
    Case("no question (qdcount 0)", header(qd=0), "FORMERR", echo=False),
    Case("two questions", header(qd=2) + QUESTION * 2, "FORMERR", echo=False),
    Case("qdcount 2, one question present", header(qd=2) + QUESTION, "FORMERR", echo=False),
    Case("qdcount 65535", header(qd=0xFFFF) + QUESTION, "FORMERR", echo=False),
    Case("ancount 1, no answer present", header(an=1) + QUESTION, "FORMERR"),
    Case("arcount 1, no OPT present", header(ar=1) + QUESTION, "FORMERR"),
    Case("arcount 65535", header(ar=0xFFFF) + QUESTION + opt(), "FORMERR", echo=False),
    Case("OPT record header cut", header(ar=1) + QUESTION + opt()[:7], "FORMERR"),
    Case("OPT rdlength past the end", header(ar=1) + QUESTION + opt(rdlength=40), "FORMERR"),
    Case(
        "additional record rdlength past the end",
        header(ar=1) + QUESTION + rr(b"\x00", 1, 1, 0, b"\x7f\x00", rdlength=300),
        "FORMERR",
    ),
    Case(
        "answer record cut after its owner",
        header(an=1) + QUESTION + b"\x03foo\x00\x00",
        "FORMERR",
    ),
    Case(
        "compression pointer in the question",
        header() + b"\xc0\x0c\x00\x01\x00\x01",
        "FORMERR",
        echo=False,
    ),
    Case(
        "compression loop in a record owner (points at itself)",
        header(ar=1) + QUESTION + rr(struct.pack("!H", 0xC000 | QUESTION_END), 1, 1, 0, bytes(4)),
        "FORMERR",
    ),
    Case(
        "compression loop between two owners",
        header(an=1, ar=1)
        + QUESTION
        + rr(struct.pack("!H", 0xC000 | (QUESTION_END + 16)), 1, 1, 0, bytes(4))
        + rr(struct.pack("!H", 0xC000 | QUESTION_END), 1, 1, 0, bytes(4)),
        "FORMERR",
    ),
    Case(
        "forward pointer past the end of the message",
        header(ar=1) + QUESTION + rr(b"\xc3\xff", 1, 1, 0, bytes(4)),
        "FORMERR",
    ),
    Case(
        "compression pointer cut in half",
        header(ar=1) + QUESTION + b"\xc0",
        "FORMERR",
    ),
    Case(
        "reserved label type 0x40 in a record owner",
        header(ar=1) + QUESTION + rr(b"\x41abc\x00", 1, 1, 0, bytes(4)),
        "FORMERR",
    ),
    Case(
        "label of 64 octets",
        header() + question(b"\x40" + b"a" * 64 + b"\x00"),
        "FORMERR",
        echo=False,
    ),
    Case(
        "label length 0xff",
        header() + b"\xff" + b"a" * 40 + b"\x00\x00\x01\x00\x01",
        "FORMERR",
        echo=False,
    ),
    Case("name of 257 octets", header() + question(_LONG_NAME), "FORMERR", echo=False),
    Case(
        "oversized datagram: good query and 16000 bytes of trailing junk",
        good_query(edns=False) + bytes(16000),
        "NOERROR",
    ),
    Case("unknown type 65280 on a Service name", header() + question(qtype=65280), "NOERROR"),
    Case("type 0 on a Service name", header() + question(qtype=0), "NOERROR"),
    Case("unknown class 300", header() + question(qclass=300), "NOERROR"),
    Case("class NONE (254)", header() + question(qclass=254), "NOERROR"),
    Case("opcode IQUERY (1)", header(flags=0x0900) + QUESTION, "NOTIMP"),
    Case("opcode STATUS (2)", header(flags=0x1100) + QUESTION, "NOTIMP"),
    Case("opcode NOTIFY (4)", header(flags=0x2100) + QUESTION, "NOTIMP"),
    Case("opcode UPDATE (5)", header(flags=0x2900) + QUESTION, "NOTIMP"),
    Case("opcode 15", header(flags=0x7900) + QUESTION, "NOTIMP"),
    Case(
        "opcode NOTIFY with a cut question",
        header(flags=0x2100) + QUESTION[:5],
        "FORMERR",
        echo=False,
    ),
    Case("EDNS version 1", header(ar=1) + QUESTION + opt(version=1), "BADVERS"),
    Case(
        "EDNS version 255 with DO", header(ar=1) + QUESTION + opt(version=255, do=True), "BADVERS"
    ),
    Case("two OPT records", header(ar=2) + QUESTION + opt() + opt(), "FORMERR"),
    Case("OPT owner not the root", header(ar=1) + QUESTION + opt(owner=b"\x01a\x00"), "FORMERR"),
    Case("OPT in the answer section", header(an=1) + QUESTION + opt(), "NOERROR"),
    Case("OPT in the authority section", header(ns=1) + QUESTION + opt(), "NOERROR"),
    Case("OPT payload 0 (treated as 512)", header(ar=1) + QUESTION + opt(payload=0), "NOERROR"),
    Case("OPT with a cookie option", header(ar=1) + QUESTION + opt(options=_COOKIE), "NOERROR"),
    Case(
        "OPT option length past the OPT's end",
        header(ar=1) + QUESTION + opt(options=struct.pack("!HH", 10, 200) + b"\x01\x02"),
        "NOERROR",
    ),
    Case("TC, AA, Z and AD set in a query", header(flags=0x07F0) + QUESTION, "NOERROR"),
    Case(
        "the root name (served by the . block: forwarded)", header() + question(b"\x00"), "NOERROR"
    ),
]


def case_ids() -> list[str]:
    return [case.name for case in CASES]


def corpus_file(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") + ".hex"


def write_corpus_file(name: str, data: bytes, expect: str, note: str = "") -> pathlib.Path:
    """One case as ``<name>.hex``: comment lines (``# expect: RCODE|drop``), then hex."""
    path = CORPUS / corpus_file(name)
    lines = [f"# {name}", f"# expect: {expect}"]
    if note:
        lines.append(f"# {note}")
    hexed = data.hex()
    lines += [hexed[i : i + 64] for i in range(0, len(hexed), 64)] or [""]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class CorpusEntry:
    path: pathlib.Path
    data: bytes
    expect: str


def read_corpus() -> list[CorpusEntry]:
    entries = []
    for path in sorted(CORPUS.glob("*.hex")):
        expect = ""
        body = []
        for line in path.read_text().splitlines():
            if line.startswith("# expect:"):
                expect = line.split(":", 1)[1].strip()
            elif not line.startswith("#"):
                body.append(line.strip())
        entries.append(CorpusEntry(path, bytes.fromhex("".join(body)), expect))
    return entries


# --- hypothesis strategies: valid queries, then structured mutations of them ---------------

_LABEL = st.binary(min_size=1, max_size=12).filter(lambda b: b"." not in b) | st.sampled_from(
    [b"kube-dns", b"kube-system", b"svc", b"cluster", b"local", b"in-addr", b"arpa", b"*", b"_tcp"]
)
_QTYPES = st.sampled_from(
    [1, 2, 5, 6, 12, 15, 16, 28, 33, 35, 41, 99, 252, 255, 65280]
) | st.integers(0, 0xFFFF)


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    """A well-formed query (maybe with EDNS, records in any section) for the demo cluster or
    a name outside it."""
    if draw(st.booleans()):
        name = wire_name(GOOD_NAME)
    else:
        labels = draw(st.lists(_LABEL, min_size=0, max_size=6))
        tail = draw(
            st.sampled_from([b"\x07cluster\x05local\x00", b"\x07example\x03org\x00", b"\x00"])
        )
        name = b"".join(bytes([len(label)]) + label for label in labels) + tail
    qtype = draw(_QTYPES)
    qclass = draw(st.sampled_from([1, 1, 1, 3, 254, 255]) | st.integers(0, 0xFFFF))
    flags = draw(st.sampled_from([0x0100, 0x0000, 0x0110, 0x0120]) | st.integers(0, 0xFFFF))
    records = b""
    ar = 0
    if draw(st.booleans()):
        records += opt(
            draw(st.integers(0, 0xFFFF)),
            version=draw(st.sampled_from([0, 0, 0, 1])),
            do=draw(st.booleans()),
            options=draw(st.sampled_from([b"", _COOKIE])),
        )
        ar = 1
    msg_id = draw(st.integers(0, 0xFFFF))
    return (
        header(msg_id, flags & 0x7FFF, 1, 0, 0, ar)
        + name
        + struct.pack("!HH", qtype, qclass)
        + records
    )


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid query put through a few structured mutations: overwritten bytes, counts that
    lie, cut or extended messages, pointers planted anywhere, bytes inserted or removed."""
    data = bytearray(draw(queries()))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(
                ["byte", "count", "cut", "extend", "pointer", "insert", "delete", "flags", "label"]
            )
        )
        if kind == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "count" and len(data) >= 12:
            slot = draw(st.sampled_from([4, 6, 8, 10]))
            struct.pack_into(
                "!H",
                data,
                slot,
                draw(st.sampled_from([0, 1, 2, 3, 0xFFFF]) | st.integers(0, 0xFFFF)),
            )
        elif kind == "cut" and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        elif kind == "extend":
            data += draw(st.binary(max_size=40))
        elif kind == "pointer" and len(data) >= 14:
            at = draw(st.integers(12, len(data) - 2))
            struct.pack_into(
                "!H", data, at, 0xC000 | draw(st.integers(0, min(len(data) + 8, 0x3FFF)))
            )
        elif kind == "insert":
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            at = draw(st.integers(0, len(data) - 1))
            del data[at : at + draw(st.integers(1, 8))]
        elif kind == "flags" and len(data) >= 4:
            data[2] = draw(st.integers(0, 0x7F))  # QR stays clear: a query, so a reply is owed
        elif kind == "label" and len(data) > 12:
            data[12] = draw(st.sampled_from([0x3F, 0x40, 0x7F, 0x80, 0xBF, 0xC0, 0xFF]))
    return bytes(data)


__all__ = [
    "CASES",
    "CORPUS",
    "DROP",
    "GOOD_ADDRESS",
    "GOOD_NAME",
    "Case",
    "CorpusEntry",
    "good_query",
    "header",
    "mutated",
    "opt",
    "queries",
    "question",
    "read_corpus",
    "rr",
    "write_corpus_file",
]


if __name__ == "__main__":
    # python3 -m tests.reliability.packets: (re)write the table's cases into the corpus.
    CORPUS.mkdir(exist_ok=True)
    for case in CASES:
        write_corpus_file(case.name, case.data, case.expect, "from the CASES table in packets.py")
    print(f"{len(CASES)} cases written to {CORPUS}")
