"""A controllable loopback DNS server for tests: UDP and TCP (optionally TLS) on one port.

    async with Responder() as r:
        r.mode = "servfail"
        ... query 127.0.0.1:r.port ...
        assert r.count("udp") == 1

Modes (settable at any time):
    answer          A 192.0.2.1 for any A query (NODATA for other types), or the canned
                    `answers` for the name
    timeout         never reply
    servfail, refused, nxdomain
                    that rcode, no records
    truncate        UDP: TC set and no records; TCP: the full answer
    wrong_id        the answer under another ID
    wrong_question  the answer for another name
    garbage         a few bytes that are not a DNS message
    other_address   UDP: the answer sent from another socket (another port); TCP: the answer
    delay           the answer after `delay_ms`
    bad_then_answer UDP: wrong ID, wrong question, the query echoed without QR and garbage,
                    then the answer (an anti-spoofing check must skip the first four)
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from collections import Counter
from dataclasses import dataclass
from typing import Literal

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

Mode = Literal[
    "answer",
    "timeout",
    "servfail",
    "refused",
    "nxdomain",
    "truncate",
    "wrong_id",
    "wrong_question",
    "garbage",
    "other_address",
    "delay",
    "bad_then_answer",
]
TransportName = Literal["udp", "tcp", "tls"]

DEFAULT_ADDRESS = "192.0.2.1"
GARBAGE = b"junk!"
_RCODES = {
    "servfail": dns.rcode.SERVFAIL,
    "refused": dns.rcode.REFUSED,
    "nxdomain": dns.rcode.NXDOMAIN,
}


@dataclass(frozen=True)
class Received:
    qname: str  # lower-case, absolute ("example.org.")
    qtype: str  # "A", "NS"…
    transport: TransportName
    id: int
    flags: int


class Responder:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        mode: Mode = "answer",
        answers: dict[str, list[str]] | None = None,
        delay_ms: float = 0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.mode: Mode = mode
        # when set, the mode for queries over TCP/TLS (e.g. truncate over UDP, time out over TCP)
        self.tcp_mode: Mode | None = None
        # qname → zone-file lines; records of the query's type (or CNAME) are answered
        self.answers = answers or {}
        self.delay_ms = delay_ms
        self.tls_context = tls_context
        self.port = 0
        self.received: list[Received] = []
        self.tcp_connections = 0  # connections accepted since start
        # the next N queries received over TCP/TLS are met by closing the connection
        self.tcp_close_without_reply = 0
        self.udp_sources: list[tuple[str, int]] = []
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    async def __aenter__(self) -> Responder:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(50):  # the UDP port may be taken for TCP; try another
            udp_sock = socket.socket(family, socket.SOCK_DGRAM)
            udp_sock.bind((self.host, 0))
            port = udp_sock.getsockname()[1]
            tcp_sock = socket.socket(family, socket.SOCK_STREAM)
            tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp_sock.bind((self.host, port))
            except OSError as exc:
                udp_sock.close()
                tcp_sock.close()
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            break
        else:
            raise RuntimeError("responder: no free port for both UDP and TCP")
        self.port = port
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _UDPProtocol(self), sock=udp_sock
        )
        tcp_sock.listen(64)
        self._tcp = await asyncio.start_server(self._serve_tcp, sock=tcp_sock, ssl=self.tls_context)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._udp is not None:
            self._udp.close()
        await self.drop_tcp_connections()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 1)

    async def drop_tcp_connections(self) -> None:
        """Close every open TCP/TLS connection from the server side."""
        writers = list(self._writers)
        self._writers.clear()
        for w in writers:
            w.close()
        for w in writers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w.wait_closed(), 1)

    # -- observations --------------------------------------------------------------------

    def count(self, transport: TransportName | None = None) -> int:
        """Queries received, over one transport or all."""
        if transport is None:
            return len(self.received)
        return sum(1 for q in self.received if q.transport == transport)

    def counts(self) -> Counter[str]:
        return Counter(q.transport for q in self.received)

    @property
    def open_tcp_connections(self) -> int:
        return len(self._writers)

    # -- replies -------------------------------------------------------------------------

    def _record(self, wire: bytes, transport: TransportName) -> dns.message.Message | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        q = query.question[0] if query.question else None
        self.received.append(
            Received(
                qname=q.name.to_text().lower() if q is not None else "",
                qtype=dns.rdatatype.to_text(q.rdtype) if q is not None else "",
                transport=transport,
                id=query.id,
                flags=query.flags,
            )
        )
        return query

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        if not query.question:
            return reply
        q = query.question[0]
        canned = self.answers.get(q.name.to_text().lower()) or self.answers.get(
            q.name.to_text(omit_final_dot=True).lower()
        )
        if canned is not None:
            for line in canned:
                rrset = dns.rrset.from_text(*_split_rr(line))
                if rrset.rdtype in (q.rdtype, dns.rdatatype.CNAME):
                    reply.answer.append(rrset)
        elif q.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(q.name, 60, "IN", "A", DEFAULT_ADDRESS))
        return reply

    def replies(self, wire: bytes, transport: TransportName) -> list[bytes]:
        """What to send back for one query, in order (nothing for "timeout")."""
        query = self._record(wire, transport)
        if query is None:
            return []
        mode = self.mode_for(transport)
        if mode == "timeout":
            return []
        if mode == "garbage":
            return [GARBAGE]
        if mode in _RCODES:
            reply = dns.message.make_response(query)
            reply.set_rcode(_RCODES[mode])
            return [reply.to_wire()]
        if mode == "truncate" and transport == "udp":
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.TC
            return [reply.to_wire()]
        good = self._answer(query).to_wire()
        if mode == "wrong_id":
            return [_other_id(good)]
        if mode == "wrong_question":
            return [self._wrong_question(query)]
        if mode == "bad_then_answer" and transport == "udp":
            echoed = bytes(wire)  # the query itself: right ID and question, QR clear
            return [_other_id(good), self._wrong_question(query), echoed, GARBAGE, good]
        return [good]

    def _wrong_question(self, query: dns.message.Message) -> bytes:
        other = dns.message.make_query("wrong-question.example.", "A")
        other.id = query.id
        reply = dns.message.make_response(other)
        reply.answer.append(
            dns.rrset.from_text("wrong-question.example.", 60, "IN", "A", "192.0.2.66")
        )
        return reply.to_wire()

    def mode_for(self, transport: TransportName) -> Mode:
        if transport == "udp" or self.tcp_mode is None:
            return self.mode
        return self.tcp_mode

    async def _delay(self, transport: TransportName) -> None:
        if self.mode_for(transport) == "delay" and self.delay_ms > 0:
            await asyncio.sleep(self.delay_ms / 1000)

    # -- UDP -----------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        self.udp_sources.append(addr)
        task = asyncio.ensure_future(self._reply_udp(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply_udp(self, data: bytes, addr: tuple[str, int]) -> None:
        replies = self.replies(data, "udp")
        if not replies:
            return
        await self._delay("udp")
        if self.mode == "other_address":
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            with socket.socket(family, socket.SOCK_DGRAM) as other:
                other.bind((self.host, 0))
                for reply in replies:
                    other.sendto(reply, addr)
            return
        assert self._udp is not None
        for reply in replies:
            self._udp.sendto(reply, addr)

    # -- TCP / TLS -----------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tcp_connections += 1
        self._writers.add(writer)
        transport: TransportName = "tls" if self.tls_context is not None else "tcp"
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                data = await reader.readexactly(size)
                if self.tcp_close_without_reply > 0:
                    self.tcp_close_without_reply -= 1
                    self._record(data, transport)
                    break
                replies = self.replies(data, transport)
                await self._delay(transport)
                for reply in replies:
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.responder._on_datagram(data, addr)


def _other_id(wire: bytes) -> bytes:
    return (((wire[0] << 8 | wire[1]) + 1) & 0xFFFF).to_bytes(2, "big") + wire[2:]


def _split_rr(line: str) -> tuple[str, int, str, str, str]:
    name, ttl, rdclass, rdtype, rdata = line.split(None, 4)
    return name, int(ttl), rdclass, rdtype, rdata
