"""Coverage-guided fuzzing of the wire decoders with atheris (libFuzzer), optional.

    python3 -m pip install -e '.[fuzz]'     # atheris: a binary wheel for CPython 3.11, x86-64
    python3 -m tests.reliability.atheris_wire -runs=1000000 -artifact_prefix=/tmp/ CORPUS_DIR

CORPUS_DIR: a folder of raw messages to start from (test_atheris_entry_point writes
tests/reliability/corpus there, decoded); libFuzzer adds what it finds to it.

The target feeds arbitrary bytes to the query gate (parse_query, and the FORMERR reply
built from what it read), the upstream reply check (check_message) and the reply matching
of upstream/ (question_of, is_reply_to). Any exception other than our wire errors, and
any reply check that lets through bytes dnspython then cannot read, is a crash that
libFuzzer saves as a reproducer. The hypothesis tests next to this file run in CI; this
runs as long as you let it.
"""

from __future__ import annotations

import struct
import sys

import atheris

# Only dnspython and ours: left open, the hook also instruments what they import (asyncio,
# ssl, email...), which took ~12 s at every start and guides nothing here.
with atheris.instrument_imports(include=["dns", "clusterdns"]):
    import dns.message

    from clusterdns.upstream.message import is_reply_to, question_of
    from clusterdns.wire import DropQuery, FormError, parse_query
    from clusterdns.wire.check import check_message
    from clusterdns.wire.render import error_reply

# Types wire.check_message looks inside: past it, dnspython must read the message.
_CHECKED = {1, 28, 2, 5, 12, 39, 15, 33, 6, 16}


def _types(data: bytes) -> set[int]:
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
        seen.add(rtype if rclass == 1 or rtype == 41 else -1)
        pos += 10 + rdlength
    return seen


def test_one_input(data: bytes) -> None:
    try:
        query = parse_query(data)
    except DropQuery:
        pass
    except FormError as err:
        reply = error_reply(data, 1, question_end=err.question_end, edns_do=None, payload=0)
        assert reply[:2] == data[:2]
    else:
        assert query.question_end <= len(data)
        _ = query.name
    question = question_of(data)
    if len(data) >= 2 and question is not None:
        is_reply_to(data, struct.unpack_from("!H", data)[0], question)
    try:
        check_message(data)
    except FormError:
        return
    # Accepted: dnspython must be able to read it, for the types the check looks inside,
    # a plain query opcode and one question, as upstream replies are. (Not OPT: dnspython
    # also judges what EDNS options say, e.g. an unknown ECS family; the check frames them.)
    one_question = len(data) >= 12 and data[4:6] == b"\x00\x01"
    if one_question and (data[2] >> 3) & 0xF == 0 and _types(data) <= _CHECKED:
        dns.message.from_wire(data)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
