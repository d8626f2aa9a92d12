"""Small pure functions over DNS wire bytes, used on the forwarding hot path (no dnspython)."""

from __future__ import annotations

import secrets

from clusterdns.wire import FormError
from clusterdns.wire.check import check_message

# (lower-cased wire-format qname, qtype, qclass)
Question = tuple[bytes, int, int]

_HEADER_LEN = 12
_MAX_NAME_LEN = 255
_QR = 0x80
_TC = 0x02


def question_of(wire: bytes) -> Question | None:
    """The single question of a message, or None when the header says QDCOUNT != 1 or the
    question is malformed. The name keeps its wire form (length-prefixed labels), lower-cased:
    DNS names compare ASCII case-insensitively and label lengths (≤ 63) are never ASCII letters.
    A compression pointer is refused: nothing precedes the question that it could point to.
    """
    end = len(wire)
    if end < _HEADER_LEN + 5 or wire[4] != 0 or wire[5] != 1:
        return None
    pos = _HEADER_LEN
    while True:
        if pos >= end:
            return None
        length = wire[pos]
        if length == 0:
            break
        if length > 63:  # compression pointer or a reserved label type
            return None
        pos += length + 1
        if pos - _HEADER_LEN >= _MAX_NAME_LEN:
            return None
    name_end = pos + 1
    if name_end + 4 > end:
        return None
    return (
        wire[_HEADER_LEN:name_end].lower(),
        (wire[name_end] << 8) | wire[name_end + 1],
        (wire[name_end + 2] << 8) | wire[name_end + 3],
    )


def message_id(wire: bytes) -> int:
    """The 16-bit ID of a message of at least two bytes."""
    return (wire[0] << 8) | wire[1]


def with_id(wire: bytes, new_id: int) -> bytes:
    """A copy of `wire` carrying `new_id`."""
    return new_id.to_bytes(2, "big") + wire[2:]


def random_id() -> int:
    """A 16-bit query ID from the OS CSPRNG: IDs must not be guessable by an off-path spoofer."""
    return secrets.randbits(16)


def is_response(wire: bytes) -> bool:
    return len(wire) >= _HEADER_LEN and bool(wire[2] & _QR)


def is_truncated(wire: bytes) -> bool:
    return len(wire) >= _HEADER_LEN and bool(wire[2] & _TC)


def is_nodata(wire: bytes) -> bool:
    """NOERROR with an empty answer section (forward's ``next_on_nodata``)."""
    return len(wire) >= _HEADER_LEN and (wire[3] & 0x0F) == 0 and wire[6:8] == b"\x00\x00"


def is_reply_to(wire: bytes, sent_id: int, question: Question) -> bool:
    """Whether `wire` answers the query we sent: same ID, QR set, and the same question
    (qname case-insensitive, qtype, qclass). Anything else is ignored as a possible spoof."""
    return (
        len(wire) >= _HEADER_LEN
        and message_id(wire) == sent_id
        and bool(wire[2] & _QR)
        and question_of(wire) == question
    )


def well_framed(wire: bytes) -> bool:
    """Whether every record of `wire` is framed inside it and readable (wire.check_message):
    a reply that is not would raise later, wherever something decodes it."""
    try:
        check_message(wire)
    except FormError:
        return False
    return True
