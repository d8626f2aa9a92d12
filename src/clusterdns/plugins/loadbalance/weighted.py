"""loadbalance's ``weighted WEIGHTFILE`` policy (CoreDNS 1.11): one address record of each
section is picked at random, in proportion to the weight its name and IP have in the file,
and put first; the other records keep their order.

The file is read at setup and, every ``reload`` interval, again when its content changed
(a broken file then keeps the weights in force). Only replies to A, AAAA and SRV questions
are touched, as in CoreDNS.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import dns.message
import dns.name
import dns.rdata
import dns.rdatatype
import dns.rrset

from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Handler, Reply, Request

log = logging.getLogger("clusterdns.plugins.loadbalance")

DEFAULT_RELOAD = 30.0
WEIGHTED_TYPES = frozenset((dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV))
ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)
# name (absolute, as written) -> IP -> weight 1..255
Weights = dict[str, dict[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]
Record = tuple[dns.name.Name, int, dns.rdata.Rdata]


class WeightFileError(ValueError):
    """A weight file that cannot be used: the message names the file and the line."""


def parse_weights(text: str, path: str) -> Weights:
    """The weight file: a name on its own line, then ``IP WEIGHT`` lines for it; ``#``
    comments and blank lines ignored."""
    weights: Weights = {}
    name: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        where = f"{path}:{number}"
        if len(fields) == 1:
            try:
                ipaddress.ip_address(fields[0])
            except ValueError:
                pass
            else:
                raise WeightFileError(f"{where}: {fields[0]!r} is not a name (no weight given?)")
            name = fields[0] if fields[0].endswith(".") else fields[0] + "."
            weights.setdefault(name, {})
        elif len(fields) == 2:
            try:
                ip = ipaddress.ip_address(fields[0])
            except ValueError:
                raise WeightFileError(f"{where}: {fields[0]!r} is not an IP address") from None
            if not (fields[1].isdigit() and 1 <= int(fields[1]) <= 255):
                raise WeightFileError(f"{where}: weight {fields[1]!r} is not 1..255")
            if name is None:
                raise WeightFileError(f"{where}: a weight before any name")
            weights[name][ip] = int(fields[1])
        else:
            raise WeightFileError(f"{where}: cannot parse {line!r}")
    return weights


def _flatten(section: Sequence[dns.rrset.RRset]) -> list[tuple[int, Record]]:
    return [(rrset.rdtype, (rrset.name, rrset.ttl, rd)) for rrset in section for rd in rrset]


def _rebuild(records: Sequence[tuple[int, Record]]) -> list[dns.rrset.RRset]:
    """Records back into RRsets, one per run of the same name and type, in order."""
    out: list[dns.rrset.RRset] = []
    for rdtype, (name, ttl, rdata) in records:
        last = out[-1] if out else None
        if last is None or last.name != name or last.rdtype != rdtype or last.ttl != ttl:
            last = dns.rrset.RRset(name, rdata.rdclass, dns.rdatatype.RdataType.make(rdtype))
            last.update_ttl(ttl)
            out.append(last)
        last.add(rdata)
    return out


class WeightedBalance(Plugin):
    """``loadbalance weighted WEIGHTFILE { reload DURATION }``."""

    name = "loadbalance"

    def __init__(
        self,
        path: Path,
        *,
        reload: float = DEFAULT_RELOAD,
        weights: Weights | None = None,
        digest: bytes = b"",
        choose: Callable[[int], int] | None = None,
    ) -> None:
        self.path = path
        self.reload = reload
        self.weights: Weights = weights or {}
        self._digest = digest
        # A number in [0, total): random.randrange, replaceable in tests.
        self._choose = choose or random.randrange
        self._poller: asyncio.Task[None] | None = None

    # -- the weight file -------------------------------------------------------------------

    @staticmethod
    def read(path: Path) -> tuple[Weights, bytes]:
        """The file's weights and content digest; OSError if unreadable, WeightFileError."""
        data = path.read_bytes()
        return parse_weights(data.decode("utf-8", "replace"), str(path)), hashlib.sha256(
            data
        ).digest()

    def reload_if_changed(self) -> bool:
        try:
            data = self.path.read_bytes()
        except OSError as err:
            log.warning("loadbalance: cannot read weight file %s: %s", self.path, err)
            return False
        digest = hashlib.sha256(data).digest()
        if digest == self._digest:
            return False
        try:
            weights = parse_weights(data.decode("utf-8", "replace"), str(self.path))
        except WeightFileError as err:
            log.error("loadbalance: %s (keeping the weights in force)", err)
            return False
        self.weights, self._digest = weights, digest
        log.info("loadbalance: reloaded weight file %s", self.path)
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.reload)
            self.reload_if_changed()

    async def start(self) -> None:
        if self.reload > 0:
            self._poller = asyncio.ensure_future(self._poll())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass

    # -- the reply ---------------------------------------------------------------------------

    def _top(self, addresses: Sequence[tuple[int, Record]]) -> int:
        """The index of the address record to put first: weighted by the file (default 1),
        heaviest first when the random number is laid over the weights, as CoreDNS does."""
        weighted: list[tuple[int, int]] = []
        for index, (_, (name, _, rdata)) in enumerate(addresses):
            by_ip = self.weights.get(name.to_text(), {})
            weight = by_ip.get(ipaddress.ip_address(rdata.address), 1)  # type: ignore[attr-defined]
            weighted.append((weight, index))
        weighted.sort(key=lambda item: -item[0])  # stable: equal weights keep their order
        pick = self._choose(sum(w for w, _ in weighted))
        for weight, index in weighted:
            if pick < weight:
                return index
            pick -= weight
        return 0

    def reorder(self, section: Sequence[dns.rrset.RRset]) -> list[dns.rrset.RRset] | None:
        """The section with a weighted pick first among its address records (CNAMEs, other
        records, the addresses, MX: CoreDNS's order); None when it has no addresses."""
        records = _flatten(section)
        addresses = [r for r in records if r[0] in ADDRESS_TYPES]
        if not addresses:
            return None
        top = self._top(addresses)
        addresses[0], addresses[top] = addresses[top], addresses[0]
        cnames = [r for r in records if r[0] == dns.rdatatype.CNAME]
        mx = [r for r in records if r[0] == dns.rdatatype.MX]
        rest = [
            r
            for r in records
            if r[0] not in (dns.rdatatype.CNAME, dns.rdatatype.MX, *ADDRESS_TYPES)
        ]
        return _rebuild(cnames + rest + addresses + mx)

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        reply = await next_handler(req)
        if reply.rcode != 0 or not reply.written or req.qtype not in WEIGHTED_TYPES:
            return reply
        if reply.message is not None:
            wire = reply.message.to_wire(max_size=65535, want_shuffle=False)
            message: dns.message.Message | None = dns.message.from_wire(wire)
        else:
            message = reply.to_message()  # a private copy: never edit what next returned
        if message is None:
            return reply
        changed = False
        for attr in ("answer", "additional"):
            reordered = self.reorder(getattr(message, attr))
            if reordered is not None:
                setattr(message, attr, reordered)
                changed = True
        if not changed:
            return reply
        return Reply(reply.rcode, plugin=reply.plugin, message=message)
