"""Exchanging one query with one upstream server over UDP, TCP or TLS, as CoreDNS's proxy does."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Literal

import dns.flags
import dns.message
import dns.rdataclass
import dns.rdatatype

from .address import UpstreamAddress
from .errors import UpstreamBadReply, UpstreamConnectError, UpstreamError, UpstreamTimeout
from .message import (
    Question,
    is_reply_to,
    is_response,
    is_truncated,
    message_id,
    question_of,
    random_id,
    well_framed,
    with_id,
)
from .pool import ConnectionPool, StreamConn

log = logging.getLogger(__name__)

Proto = Literal["udp", "tcp", "tls"]

_MAX_UDP_REPLY = 65535


class _StaleConnection(Exception):
    """A pooled connection failed on write or read: the peer closed or reset it while idle."""


class Upstream:
    """One upstream server: UDP exchange + pooled TCP/TLS connections.

    UDP uses a fresh connected socket per query, so the kernel picks a random source port and
    drops datagrams from any other address. TCP/TLS connections are used by one query at a time
    and pooled for `expire` seconds idle (`max_idle` caps the pool; 0 means no cap), and not
    reused once `max_age` seconds old (0: no limit).
    """

    def __init__(
        self,
        address: UpstreamAddress,
        *,
        expire: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        max_idle: int = 0,
        max_age: float = 0.0,
    ) -> None:
        self.address = address
        # Numeric only: no DNS lookup here, and IPv6 zone ids become the right scope id.
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(
                address.host, address.port, type=socket.SOCK_DGRAM, flags=socket.AI_NUMERICHOST
            )[0]
        except socket.gaierror as exc:  # e.g. an IPv6 zone naming no interface here
            raise ValueError(f"upstream {address}: {exc}") from None
        self._family = family
        self._sockaddr = sockaddr
        self._tls_context: ssl.SSLContext | None = None
        if address.transport == "tls":
            # No context given: verify against the system CAs, as CoreDNS's bare `tls` does.
            self._tls_context = tls_context or ssl.create_default_context()
        self._pool = ConnectionPool(expire=expire, max_idle=max_idle, max_age=max_age)
        self._closed = False
        self.conn_cache_hits = 0
        self.conn_cache_misses = 0

    def __repr__(self) -> str:
        return f"Upstream({self.address.transport}://{self.address})"

    @property
    def idle_connections(self) -> int:
        return len(self._pool)

    @property
    def max_age(self) -> float:
        return self._pool.max_age

    @property
    def max_idle(self) -> int:
        return self._pool.max_idle

    def choose_proto(
        self, *, force_tcp: bool, prefer_udp: bool, client_proto: Literal["udp", "tcp"]
    ) -> Proto:
        """CoreDNS's order: TLS upstreams always use TLS, then force_tcp, then prefer_udp,
        else the protocol the client used."""
        if self._tls_context is not None:
            return "tls"
        if force_tcp:
            return "tcp"
        if prefer_udp:
            return "udp"
        return client_proto

    async def exchange(
        self,
        query: bytes,
        *,
        deadline: float,
        force_tcp: bool = False,
        prefer_udp: bool = False,
        client_proto: Literal["udp", "tcp"] = "udp",
        tcp_on_truncation: bool | None = None,
    ) -> bytes:
        """Send the client's wire `query` and return the upstream's reply with the client's ID.

        The query goes out under a fresh random ID. `deadline` is absolute, in loop.time().
        A truncated UDP reply is retried over TCP when `tcp_on_truncation` is true; None means
        CoreDNS's rule: only with `prefer_udp` (otherwise the TC reply goes back to the client,
        which retries over TCP itself).

        Raises ValueError if `query` does not hold exactly one question, UpstreamTimeout,
        UpstreamConnectError or UpstreamBadReply.
        """
        reply = await self._exchange(
            query,
            deadline=deadline,
            proto=self.choose_proto(
                force_tcp=force_tcp, prefer_udp=prefer_udp, client_proto=client_proto
            ),
            tcp_on_truncation=prefer_udp if tcp_on_truncation is None else tcp_on_truncation,
            fresh_connection=False,
        )
        return query[:2] + reply[2:]

    async def _exchange(
        self,
        query: bytes,
        *,
        deadline: float,
        proto: Proto,
        tcp_on_truncation: bool,
        fresh_connection: bool,
    ) -> bytes:
        if self._closed:
            raise UpstreamError(f"upstream {self.address}: closed")
        question = question_of(query)
        if question is None:
            raise ValueError("query must hold exactly one well-formed question")
        if len(query) > 65535:
            raise ValueError("query longer than 65535 bytes")
        if asyncio.get_running_loop().time() >= deadline:
            raise UpstreamTimeout(f"upstream {self.address}: deadline already passed")
        sent_id = random_id()
        wire = with_id(query, sent_id)
        if proto == "udp":
            reply = await self._udp_exchange(wire, sent_id, question, deadline)
            if not (tcp_on_truncation and is_truncated(reply)):
                return reply
            # A new ID for the TCP attempt: the old one was seen by whoever saw the UDP query.
            sent_id = random_id()
            wire = with_id(query, sent_id)
        return await self._stream_exchange(
            wire, sent_id, question, deadline, fresh_connection=fresh_connection
        )

    async def _udp_exchange(
        self, wire: bytes, sent_id: int, question: Question, deadline: float
    ) -> bytes:
        loop = asyncio.get_running_loop()
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        ignored = 0
        try:
            sock.setblocking(False)
            try:
                sock.connect(self._sockaddr)
                try:
                    sock.send(wire)
                except BlockingIOError:
                    await loop.sock_sendall(sock, wire)
            except OSError as exc:
                raise UpstreamConnectError(f"upstream {self.address} udp: {exc}") from exc
            try:
                async with asyncio.timeout_at(deadline):
                    while True:
                        try:
                            data = await loop.sock_recv(sock, _MAX_UDP_REPLY)
                        except OSError as exc:  # ICMP port/host unreachable on a connected socket
                            raise UpstreamConnectError(
                                f"upstream {self.address} udp: {exc}"
                            ) from exc
                        if is_reply_to(data, sent_id, question) and well_framed(data):
                            return data
                        ignored += 1
                        log.debug(
                            "upstream: %s udp: ignored a datagram that does not answer our query",
                            self.address,
                        )
            except TimeoutError:
                note = f" ({ignored} unmatched datagrams ignored)" if ignored else ""
                raise UpstreamTimeout(f"upstream {self.address} udp: timed out{note}") from None
        finally:
            sock.close()

    async def _stream_exchange(
        self,
        wire: bytes,
        sent_id: int,
        question: Question,
        deadline: float,
        *,
        fresh_connection: bool,
    ) -> bytes:
        loop = asyncio.get_running_loop()
        frame = len(wire).to_bytes(2, "big") + wire
        conn = None if fresh_connection else self._pool.take(loop.time())
        if conn is not None:
            self.conn_cache_hits += 1
            try:
                return await self._roundtrip(conn, frame, sent_id, question, deadline)
            except _StaleConnection as exc:
                # As CoreDNS does on EOF from a cached connection: once more on a fresh one.
                log.debug("upstream: %s: pooled connection failed (%s), redialing", self, exc)
        else:
            self.conn_cache_misses += 1
        conn = await self._connect(deadline)
        try:
            return await self._roundtrip(conn, frame, sent_id, question, deadline)
        except _StaleConnection as exc:
            raise UpstreamConnectError(f"upstream {self.address}: {exc}") from exc.__cause__

    async def _connect(self, deadline: float) -> StreamConn:
        loop = asyncio.get_running_loop()
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout_at(deadline):
                await loop.sock_connect(sock, self._sockaddr)
                if self._tls_context is not None:
                    reader, writer = await asyncio.open_connection(
                        sock=sock,
                        ssl=self._tls_context,
                        server_hostname=self.address.tls_servername or self.address.host,
                    )
                else:
                    reader, writer = await asyncio.open_connection(sock=sock)
        except TimeoutError:
            sock.close()
            raise UpstreamTimeout(f"upstream {self.address}: connect timed out") from None
        except OSError as exc:  # refused, unreachable, TLS handshake or verification failure
            sock.close()
            raise UpstreamConnectError(f"upstream {self.address}: connect: {exc}") from exc
        except BaseException:
            sock.close()
            raise
        return StreamConn(reader, writer, created=loop.time())

    async def _roundtrip(
        self, conn: StreamConn, frame: bytes, sent_id: int, question: Question, deadline: float
    ) -> bytes:
        """One query on `conn`. The connection goes back to the pool only after a clean reply;
        on any failure it is closed, so a late reply can never be read by the next query."""
        try:
            try:
                async with asyncio.timeout_at(deadline):
                    conn.writer.write(frame)
                    await conn.writer.drain()
                    while True:
                        size = int.from_bytes(await conn.reader.readexactly(2), "big")
                        data = await conn.reader.readexactly(size)
                        if len(data) < 12:
                            raise UpstreamBadReply(
                                f"upstream {self.address}: {len(data)}-byte message is too short"
                            )
                        if message_id(data) != sent_id:
                            continue  # a reply to some earlier query: skip it, as CoreDNS does
                        if not is_response(data) or not is_reply_to(data, sent_id, question):
                            raise UpstreamBadReply(
                                f"upstream {self.address}: reply does not answer our question"
                            )
                        if not well_framed(data):
                            raise UpstreamBadReply(f"upstream {self.address}: malformed reply")
                        break
            except TimeoutError:
                raise UpstreamTimeout(f"upstream {self.address}: timed out") from None
            except (asyncio.IncompleteReadError, OSError) as exc:
                raise _StaleConnection(str(exc) or type(exc).__name__) from exc
        except BaseException:
            conn.close()
            raise
        self._pool.put(conn, asyncio.get_running_loop().time())
        return data

    async def close(self) -> None:
        """Close pooled connections; later exchanges raise UpstreamError."""
        self._closed = True
        await self._pool.close()


def probe_query(*, domain: str = ".", recursion_desired: bool = True) -> bytes:
    """CoreDNS's health-check query: `<domain> IN NS`, RD set unless `no_rec`."""
    msg = dns.message.make_query(domain, dns.rdatatype.NS, dns.rdataclass.IN, use_edns=False)
    if not recursion_desired:
        msg.flags &= ~dns.flags.RD
    return msg.to_wire()


async def probe(
    upstream: Upstream,
    *,
    timeout: float,
    domain: str = ".",
    recursion_desired: bool = True,
    force_tcp: bool = False,
) -> bool:
    """CoreDNS's in-band health check: True if any reply comes back, whatever its rcode
    (SERVFAIL, REFUSED, NXDOMAIN are healthy); False on timeouts and network errors.

    Uses UDP (TLS for tls upstreams, TCP with `force_tcp`), and a fresh connection rather than
    a pooled one, like CoreDNS's separate health-check client.
    """
    loop = asyncio.get_running_loop()
    query = probe_query(domain=domain, recursion_desired=recursion_desired)
    try:
        await upstream._exchange(
            query,
            deadline=loop.time() + timeout,
            proto=upstream.choose_proto(force_tcp=force_tcp, prefer_udp=False, client_proto="udp"),
            tcp_on_truncation=False,
            fresh_connection=True,
        )
    except UpstreamError as exc:
        log.debug("upstream: health check of %s failed: %s", upstream.address, exc)
        return False
    return True
