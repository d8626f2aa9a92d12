"""loadbalance: round-robin the address records of every answer, preferred subnets first."""

from __future__ import annotations

import ipaddress
import itertools
import logging
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import dns.message
import dns.rdatatype
import dns.rrset

from clusterdns.core.plugin import Plugin, SetupContext, only_once, parse_duration
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import Directive
from clusterdns.wire import AnswerTemplate, FormError, skip_name

log = logging.getLogger("clusterdns.plugins.loadbalance")

_HEADER: Final = struct.Struct("!HHHHHH")
_RR_FIXED: Final = struct.Struct("!HHIH")
TYPE_A: Final = 1
TYPE_MX: Final = 15
TYPE_AAAA: Final = 28
TYPE_AXFR: Final = 252
TYPE_IXFR: Final = 251
ROTATED: Final = frozenset((dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.MX))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Preference:
    """``prefer CIDR...``: addresses in the first subnet, then the second..., then the rest,
    each group in the order it had (CoreDNS 1.13's subnet ordering, after the shuffle)."""

    __slots__ = ("_subnets",)

    def __init__(self, subnets: Sequence[Network]) -> None:
        # (packed length, network bits, mask bits): an address is in it when
        # address & mask == network, compared as integers.
        self._subnets = tuple(
            (4 if n.version == 4 else 16, int(n.network_address), int(n.netmask)) for n in subnets
        )

    def rank(self, packed: bytes) -> int:
        """The index of the first subnet holding the address (IPv4 4 bytes, IPv6 16), or
        the number of subnets when none does."""
        value = int.from_bytes(packed, "big")
        size = len(packed)
        for index, (length, network, mask) in enumerate(self._subnets):
            if length == size and value & mask == network:
                return index
        return len(self._subnets)


class _NeedsDecoding(Exception):
    """The wire layout is not one slicing can rotate safely: use dnspython."""


def _skip_name(data: bytes, pos: int) -> int:
    try:
        return skip_name(data, pos)
    except FormError:
        raise _NeedsDecoding from None


def rotate_wire(wire: bytes, shift: int, prefer: Preference | None = None) -> bytes | None:
    """Rotate every run of same-owner A/AAAA records by ``shift``, by slicing bytes, and
    with ``prefer`` move the addresses of preferred subnets to the front of each run.

    Records of a run have identical owner bytes and fixed-size data, so every record
    keeps its offset and compression pointers stay valid. Returns None when nothing
    needs to move; raises _NeedsDecoding for layouts slicing cannot handle (MX sets,
    address records of one name that are not contiguous).
    """
    if len(wire) < 12:
        raise _NeedsDecoding
    _, _, qdcount, an, ns, ar = _HEADER.unpack_from(wire)
    pos = 12
    for _ in range(qdcount):
        pos = _skip_name(wire, pos) + 4
    records: list[tuple[int, int, int, int, bytes]] = []  # start, end, section, type, owner
    for index in range(an + ns + ar):
        section = 0 if index < an else 1 if index < an + ns else 2
        start = pos
        name_end = _skip_name(wire, pos)
        if name_end + 10 > len(wire):
            raise _NeedsDecoding
        rtype, _, _, rdlength = _RR_FIXED.unpack_from(wire, name_end)
        pos = name_end + 10 + rdlength
        if pos > len(wire):
            raise _NeedsDecoding
        records.append((start, pos, section, rtype, wire[start:name_end]))
    runs: list[tuple[int, int]] = []  # [first, last) indexes into records
    seen: set[tuple[int, int, bytes]] = set()
    index = 0
    while index < len(records):
        _, _, section, rtype, owner = records[index]
        last = index + 1
        if rtype in (TYPE_A, TYPE_AAAA):
            while last < len(records) and records[last][2:] == (section, rtype, owner):
                last += 1
            if (section, rtype, owner) in seen:
                raise _NeedsDecoding  # the same set split in two places
            seen.add((section, rtype, owner))
            if last - index > 1:
                runs.append((index, last))
        elif rtype == TYPE_MX and last < len(records) and records[last][3] == TYPE_MX:
            raise _NeedsDecoding  # MX data holds names other records may point into
        index = last
    if not runs:
        return None
    out = bytearray(wire)
    for first, last in runs:
        chunk = [wire[records[i][0] : records[i][1]] for i in range(first, last)]
        k = shift % len(chunk)
        chunk = chunk[k:] + chunk[:k]
        if prefer is not None:
            size = 4 if records[first][3] == TYPE_A else 16  # RDATA ends each record
            chunk.sort(key=lambda record: prefer.rank(record[-size:]))  # stable
        out[records[first][0] : records[last - 1][1]] = b"".join(chunk)
    return bytes(out)


def _question_end(wire: bytes) -> int:
    return _skip_name(wire, 12) + 4


def rotate_message(
    message: dns.message.Message, shift: int, prefer: Preference | None = None
) -> dns.message.Message:
    """Rotate A, AAAA and MX sets of a private message copy in place, CNAMEs left first;
    with ``prefer``, addresses of preferred subnets first within each set."""
    for section in (message.answer, message.authority, message.additional):
        for position, rrset in enumerate(section):
            if rrset.rdtype not in ROTATED or len(rrset) < 2:
                continue
            items = list(rrset)
            k = shift % len(items)
            items = items[k:] + items[:k]
            if prefer is not None and rrset.rdtype != dns.rdatatype.MX:
                items.sort(key=lambda rd: prefer.rank(ipaddress.ip_address(rd.address).packed))
            rotated = dns.rrset.RRset(rrset.name, rrset.rdclass, rrset.rdtype)
            rotated.update_ttl(rrset.ttl)
            for rdata in items:
                rotated.add(rdata)
            section[position] = rotated
    return message


def _private_copy(reply: Reply) -> dns.message.Message | None:
    if reply.message is not None:
        # Keep the record order: dnspython shuffles RRsets when rendering by default.
        wire = reply.message.to_wire(max_size=65535, want_shuffle=False)
        return dns.message.from_wire(wire)
    return reply.to_message()


class LoadBalance(Plugin):
    def __init__(self, prefer: Preference | None = None) -> None:
        self._turn = itertools.count(1)
        self.prefer = prefer

    def filter_fast(self, wire: bytes) -> bytes | None:
        """Rotate a finished reply synchronously, for a core fast path that lets later
        plugins answer and then filters their bytes. None: the reply needs the chain."""
        if len(wire) < 12 or wire[3] & 0xF or not wire[2] & 0x80:
            return wire
        try:
            rotated = rotate_wire(wire, next(self._turn), self.prefer)
        except _NeedsDecoding:
            return None
        return wire if rotated is None else rotated

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        reply = await next_handler(req)
        if reply.rcode != 0 or not reply.written or req.qtype in (TYPE_AXFR, TYPE_IXFR):
            return reply
        shift = next(self._turn)
        try:
            if reply.template is not None:
                wire = rotate_wire(reply.template.wire, shift, self.prefer)
                if wire is None:
                    return reply
                return Reply.of_template(
                    AnswerTemplate(wire, _question_end(wire)), plugin=reply.plugin
                )
            if reply.wire is not None:
                wire = rotate_wire(reply.wire, shift, self.prefer)
                return reply if wire is None else Reply.of_wire(wire, plugin=reply.plugin)
        except _NeedsDecoding:
            pass
        message = _private_copy(reply)  # never edit what next returned
        if message is None:
            return reply
        rotate_message(message, shift, self.prefer)
        return Reply(reply.rcode, plugin=reply.plugin, message=message)


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    args = directive.expect_args(0, 2)
    if args and args[0] == "weighted":
        return _weighted(directive, args)
    if args and args[0] != "round_robin":
        raise directive.error(f"unknown policy: {args[0]}")
    if len(args) > 1:
        raise directive.error(f"unknown property for {args[0]}")
    subnets: list[Network] = []
    for item in directive.block_items():
        if item.name != "prefer":
            raise item.error(f"unknown property '{item.name}'")
        item.no_block()
        for text in item.arg_texts():
            if "/" not in text:
                raise item.error(f"invalid CIDR {text!r}: a CIDR needs a /prefix")
            try:
                subnets.append(ipaddress.ip_network(text, strict=False))
            except ValueError as err:
                raise item.error(f"invalid CIDR {text!r}: {err}") from None
    return LoadBalance(Preference(subnets) if subnets else None)


def _weighted(directive: Directive, args: Sequence[str]) -> Plugin:
    """``loadbalance weighted WEIGHTFILE { reload DURATION }`` (see weighted.py)."""
    from clusterdns.plugins.loadbalance.weighted import (
        DEFAULT_RELOAD,
        WeightedBalance,
        WeightFileError,
    )

    if len(args) < 2:
        raise directive.error("missing weight file argument")
    path = Path(args[1])
    reload = DEFAULT_RELOAD
    for item in directive.block_items():
        if item.name != "reload":
            raise item.error(f"unknown property '{item.name}'")
        item.no_block()
        (text,) = item.expect_args(1, 1)
        reload = parse_duration(item, text)
    try:
        weights, digest = WeightedBalance.read(path)
    except WeightFileError as err:
        raise directive.error(str(err)) from None
    except OSError as err:
        if reload <= 0:
            raise directive.error(f"cannot read weight file {path}: {err}") from None
        # As CoreDNS: a file that is not there yet is read once it appears.
        log.warning("loadbalance: cannot read weight file %s (will retry): %s", path, err)
        weights, digest = {}, b""
    return WeightedBalance(path, reload=reload, weights=weights, digest=digest)
