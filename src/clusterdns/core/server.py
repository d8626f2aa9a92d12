"""UDP and TCP listeners, per-query dispatch, and atomic configuration swaps."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

import dns.message
import dns.rcode
import dns.rdatatype

from clusterdns.core import mmsg
from clusterdns.core.block import Block, FilteredAnswer, ZoneMux
from clusterdns.core.instance import WILDCARD, Instance
from clusterdns.core.memo import DEFAULT_SIZE as DEFAULT_MEMO_SIZE
from clusterdns.core.memo import Entry, ReplyMemo
from clusterdns.core.plugin import SLOW, PluginError
from clusterdns.core.process import Process
from clusterdns.core.request import Reply, Request, Transport
from clusterdns.wire import AnswerTemplate, DropQuery, FormError, Query, parse_query
from clusterdns.wire.render import (
    error_reply,
    render_message,
    render_template,
    reply_limit,
)

log = logging.getLogger("clusterdns.server")

FORMERR: Final = dns.rcode.FORMERR
SERVFAIL: Final = dns.rcode.SERVFAIL
NOTIMP: Final = dns.rcode.NOTIMP
REFUSED: Final = dns.rcode.REFUSED
BADVERS: Final = dns.rcode.BADVERS
_LENGTH: Final = struct.Struct("!H")
# On reload the old configuration keeps serving while the new one gets ready
# (a kubernetes plugin whose settings changed re-lists the cluster), this long at most.
RELOAD_READY_TIMEOUT: Final = 5.0
# Internal lookups (an ExternalName target) that lead to more lookups stop here.
MAX_LOOKUP_DEPTH: Final = 4


@dataclass
class ServerOptions:
    tcp_idle_timeout: float = 10.0
    tcp_max_connections: int = 1000
    udp_receive_buffer: int = 4 * 1024 * 1024
    reuse_port: bool = False
    # "batch": a dedicated receive thread per UDP socket reading and answering
    # with recvmmsg/sendmmsg, serving fast-path answers itself and handing the
    # rest to the event loop; "thread": the same, one recvfrom/sendto at a time;
    # "loop": everything on the event loop. bench/RESULTS.md: batch is 1.21x
    # thread and 1.16x loop at 1k services.
    udp_mode: str = "batch"
    # Entries of each UDP socket's reply memo (core/memo.py); 0 turns it off.
    reply_memo: int = DEFAULT_MEMO_SIZE


class Dispatcher:
    """Turns raw query bytes into reply bytes for one listening address."""

    def __init__(self, server: DnsServer, mux: ZoneMux) -> None:
        self.server = server
        self.mux = mux

    def prepare(
        self,
        data: bytes,
        transport: Transport,
        client: tuple[str, int],
        memo: ReplyMemo | None = None,
    ) -> bytes | Request | None:
        """Everything decided without the chain: drops, FORMERR, NOTIMP, BADVERS, REFUSED,
        and fast-path answers (kept in ``memo`` when their plugin allows it)."""
        try:
            query = parse_query(data)
        except DropQuery:
            return None
        except FormError as err:
            return error_reply(
                data, FORMERR, question_end=err.question_end, edns_do=None, payload=0
            )
        edns = query.edns
        if query.opcode != 0:
            return error_reply(
                data, NOTIMP, question_end=query.question_end,
                edns_do=None if edns is None else edns.do, payload=4096,
            )  # fmt: skip
        if edns is not None and edns.version != 0:
            return error_reply(
                data, BADVERS, question_end=query.question_end, edns_do=edns.do, payload=4096
            )
        hit = self.mux.match(query)
        if hit is None:
            return error_reply(
                data, REFUSED, question_end=query.question_end,
                edns_do=None if edns is None else edns.do, payload=4096,
            )  # fmt: skip
        block, zone = hit
        if block.fast_hooks:
            fast = self.fast_answer(query, block, zone, transport, client, memo)
            if fast is not None:
                return fast
        req = Request(query, transport=transport, client=client, block=block, zone=zone)
        req.lookup_via = self.lookup
        return req

    async def lookup(self, origin: Request, name: str, qtype: int) -> Reply | None:
        """An internal query for ``name`` through the blocks of this listener."""
        depth = origin.meta.get("lookup_depth", 0)
        if depth >= MAX_LOOKUP_DEPTH:
            return None
        try:
            wire = dns.message.make_query(
                name, dns.rdatatype.RdataType.make(qtype), want_dnssec=origin.do
            ).to_wire()
            query = parse_query(wire)
        except Exception:
            return None
        hit = self.mux.match(query)
        if hit is None:
            return None
        block, zone = hit
        req = Request(query, transport="tcp", client=origin.client, block=block, zone=zone)
        req.lookup_via = self.lookup
        req.meta["lookup_depth"] = depth + 1
        try:
            return await block.chain(req)
        except Exception:
            return None

    def fast_answer(
        self,
        query: Query,
        block: Block,
        zone: str,
        transport: Transport,
        client: tuple[str, int],
        memo: ReplyMemo | None = None,
    ) -> bytes | None:
        """Answer from precomputed bytes without a coroutine, or None for the chain."""
        started = time.perf_counter()
        for plugin_name, hook in block.fast_hooks:
            result = hook(query)
            if result is None:
                continue
            if result is SLOW:
                return None
            filters: tuple[Callable[[bytes], bytes | None], ...] = ()
            if isinstance(result, FilteredAnswer):
                filters = result.filters
                result = result.result
            if isinstance(result, AnswerTemplate):
                max_udp = block.settings.max_udp_size
                limit = (
                    65535 if transport == "tcp" else reply_limit(query, tcp=False, max_udp=max_udp)
                )
                wire = render_template(result, query, limit=limit, payload=max_udp)
                if wire is None:
                    return None  # needs truncation: the chain does it record by record
            else:
                assert isinstance(result, bytes)
                wire = result
            # Filters reorder answers (loadbalance): nothing to do for one record.
            reordered = False
            if filters and (wire[6] or wire[7] > 1):
                for keep_or_change in filters:
                    filtered = keep_or_change(wire)
                    if filtered is None:
                        return None
                    reordered = reordered or filtered is not wire
                    wire = filtered
            if memo is not None and not reordered and block.memoizable:
                self._memoize(
                    memo, query, block, zone, transport, client, plugin_name, result, wire
                )
            if block.observers:
                duration = time.perf_counter() - started
                rcode = wire[3] & 0xF
                for fast_observer in block.fast_observers:
                    fast_observer(
                        block.server_label,
                        zone,
                        transport,
                        client,
                        query,
                        rcode,
                        wire,
                        duration,
                        plugin_name,
                    )
                if block.request_observers:
                    req = Request(query, transport=transport, client=client, block=block, zone=zone)
                    for observer in block.request_observers:
                        observer(req, rcode, wire, duration, plugin_name)
            return wire
        return None

    @staticmethod
    def _memoize(
        memo: ReplyMemo,
        query: Query,
        block: Block,
        zone: str,
        transport: Transport,
        client: tuple[str, int],
        plugin_name: str,
        result: object,
        wire: bytes,
    ) -> None:
        """Keep a fast answer for identical queries, if its plugin vouches for it (one memo
        per transport: UDP and TCP replies to the same bytes differ in truncation)."""
        plugin = block.plugin(plugin_name)
        if plugin is None or plugin.fast_memo is None:
            return
        terms = plugin.fast_memo(query, result)
        if terms is None:
            return
        until, sinks, token = terms
        rcode = wire[3] & 0xF
        family = 2 if ":" in client[0] else 1
        for observer in block.memo_observers:
            assert observer.memo_sink is not None
            sinks += (
                observer.memo_sink(
                    block.server_label, zone, transport, family, query, rcode, wire, plugin_name
                ),
            )
        memo.put(query.data[2:], wire[2:], until, sinks, None if token is None else (plugin, token))

    async def resolve(self, req: Request) -> bytes:
        block = req.block
        started = time.perf_counter()
        try:
            reply = await block.chain(req)
        except PluginError as err:
            reply = Reply.error(err.rcode, plugin=err.plugin)
        except FormError:
            reply = Reply.error(FORMERR)
        except Exception:
            self.server.process.metrics.panics.inc()
            log.exception("core: recovered from an exception serving %s %d", req.name, req.qtype)
            reply = Reply.error(SERVFAIL)
        wire = encode(req, reply)
        if block.observers:
            duration = time.perf_counter() - started
            rcode = wire[3] & 0xF
            for observer in block.observers:
                observer(req, rcode, wire, duration, reply.plugin)
        return wire


def encode(req: Request, reply: Reply) -> bytes:
    """Render a plugin's reply for this query and transport (EDNS, truncation, ID)."""
    query: Query = req.query
    max_udp = req.block.settings.max_udp_size
    limit = reply_limit(query, tcp=req.transport == "tcp", max_udp=max_udp)
    if reply.template is not None:
        wire = render_template(reply.template, query, limit=limit, payload=max_udp)
        if wire is not None:
            return wire
        return render_message(
            dns.message.from_wire(reply.template.wire), query, limit=limit, payload=max_udp
        )
    if reply.message is not None:
        return render_message(reply.message, query, limit=limit, payload=max_udp)
    if reply.wire is not None:
        wire = reply.wire
        if len(wire) <= limit:
            return query.data[:2] + wire[2:]
        return render_message(dns.message.from_wire(wire), query, limit=limit, payload=max_udp)
    edns = query.edns
    return error_reply(
        query.data, reply.rcode, question_end=query.question_end,
        edns_do=None if edns is None else edns.do, payload=max_udp,
    )  # fmt: skip


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, dispatcher: Dispatcher, memo_size: int = DEFAULT_MEMO_SIZE) -> None:
        self.dispatcher = dispatcher
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.memo_stats = dispatcher.server.process.metrics.memo
        self.memo = ReplyMemo(memo_size, self.memo_stats)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        memo = self.memo
        mux = self.dispatcher.mux
        memo.check(mux, mux.memo_watch)
        tail = memo.answer(data[2:], time.monotonic())
        if tail is not None and self.transport is not None:
            self.transport.sendto(data[:2] + tail, addr)
            return
        prepared = self.dispatcher.prepare(data, "udp", (addr[0], addr[1]), memo)
        if prepared is None:
            return
        if isinstance(prepared, bytes):
            assert self.transport is not None
            self.transport.sendto(prepared, addr)
            return
        task = asyncio.ensure_future(self._answer(prepared, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, req: Request, addr: tuple[str, int]) -> None:
        wire = await self.dispatcher.resolve(req)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(wire, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("core: udp error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.memo_stats.retire(self.memo)


class UdpThread:
    """A blocking receive loop in its own thread for one UDP socket.

    Fast-path answers never touch the event loop; queries that need the
    chain are handed to it with call_soon_threadsafe and answered from there.
    The dispatcher's data (mux, answer tables) is only read here, and every
    read is a single dict lookup, atomic under the GIL.
    """

    def __init__(
        self,
        sock: socket.socket,
        dispatcher: Dispatcher,
        loop: asyncio.AbstractEventLoop,
        *,
        batched: bool = True,
        memo_size: int = DEFAULT_MEMO_SIZE,
    ) -> None:
        self.sock = sock
        self.batched = batched
        self.memo_size = memo_size
        self.dispatcher = dispatcher
        self.loop = loop
        self.tasks: set[asyncio.Task[None]] = set()
        self._running = True
        sock.setblocking(True)
        sock.settimeout(0.25)
        self.thread = threading.Thread(
            target=self._run, name=f"udp-{sock.getsockname()[:2]}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        stats = self.dispatcher.server.process.metrics.memo
        memo = ReplyMemo(self.memo_size, stats)
        try:
            if self.batched and mmsg.available():
                self._run_batched(memo)
            else:
                self._run_single(memo)
        finally:
            stats.retire(memo)

    def _run_batched(self, memo: ReplyMemo) -> None:
        batch = mmsg.BatchSocket(self.sock)
        dispatcher = self.dispatcher
        prepare = dispatcher.prepare
        handoff = self.loop.call_soon_threadsafe
        spawn = self._spawn

        def handle(data: bytes, client: tuple[str, int]) -> bytes | None:
            try:
                prepared = prepare(data, "udp", client, memo)
            except Exception:
                log.exception("core: udp fast path failed")
                return None
            if prepared is None or isinstance(prepared, bytes):
                return prepared
            try:
                handoff(spawn, prepared, client)
            except RuntimeError:
                pass  # the loop is closed: we are shutting down
            return None

        def current_memo() -> dict[bytes, Entry]:
            mux = dispatcher.mux
            memo.check(mux, mux.memo_watch)
            return memo.entries

        while self._running:
            try:
                _, hits, seconds = batch.serve_batch(handle, current_memo)
            except OSError:
                if not self._running:
                    return
                continue
            except Exception:
                # A bug must not take the socket's only reader down with it.
                log.exception("core: udp receive loop failed; going on")
                continue
            if hits:
                memo.hits += hits
                memo.hit_seconds += seconds  # the batch's time, charged to its hits

    def _run_single(self, memo: ReplyMemo) -> None:
        recvfrom = self.sock.recvfrom
        sendto = self.sock.sendto
        dispatcher = self.dispatcher
        prepare = dispatcher.prepare
        handoff = self.loop.call_soon_threadsafe
        spawn = self._spawn
        clock = time.monotonic
        while self._running:
            try:
                data, addr = recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if not self._running:
                    return
                continue
            try:
                mux = dispatcher.mux
                memo.check(mux, mux.memo_watch)
                tail = memo.answer(data[2:], clock())
                if tail is not None:
                    try:
                        sendto(data[:2] + tail, addr)
                    except OSError:
                        pass
                    continue
                prepared = prepare(data, "udp", (addr[0], addr[1]), memo)
            except Exception:
                log.exception("core: udp fast path failed")
                continue
            if prepared is None:
                continue
            if isinstance(prepared, bytes):
                try:
                    sendto(prepared, addr)
                except OSError:
                    pass
                continue
            try:
                handoff(spawn, prepared, addr)
            except RuntimeError:
                return  # the loop is closed: we are shutting down

    def _spawn(self, req: Request, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._answer(req, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, req: Request, addr: tuple[str, int]) -> None:
        wire = await self.dispatcher.resolve(req)
        try:
            self.sock.sendto(wire, addr)
        except OSError:
            pass

    def close(self) -> None:
        self._running = False
        # Wake the blocked recvfrom now rather than at its timeout.
        try:
            host, port = self.sock.getsockname()[:2]
            with socket.socket(self.sock.family, socket.SOCK_DGRAM) as waker:
                waker.sendto(
                    b"",
                    (
                        host
                        if host not in ("0.0.0.0", "::")
                        else ("127.0.0.1" if self.sock.family == socket.AF_INET else "::1"),
                        port,
                    ),
                )
        except OSError:
            pass

    async def wait_closed(self) -> None:
        await asyncio.to_thread(self.thread.join, 2.0)
        self.sock.close()


class TcpConnections:
    """What the TCP connections of one listener share: the dispatcher and the count."""

    def __init__(self, server: DnsServer, dispatcher: Dispatcher) -> None:
        self.server = server
        self.dispatcher = dispatcher
        self.active = 0
        # Every connection of the listener runs on the event loop: one memo for all.
        self.memo_stats = server.process.metrics.memo
        self.memo = ReplyMemo(server.options.reply_memo, self.memo_stats)

    def close(self) -> None:
        self.memo_stats.retire(self.memo)

    def protocol(self) -> TcpDnsProtocol:
        return TcpDnsProtocol(self)


class TcpDnsProtocol(asyncio.Protocol):
    """One TCP connection: two-byte framing, pipelined queries answered as each is ready
    (in any order), an idle timeout, and the listener's connection cap.

    A Protocol with its own framing buffer rather than streams: no coroutine and no
    timeout wrapper per query (streams cost ~2.3x the CPU of UDP per query, bench/).
    """

    def __init__(self, shared: TcpConnections) -> None:
        self.shared = shared
        self.dispatcher = shared.dispatcher
        self.transport: asyncio.Transport | None = None
        self.client = ("", 0)
        self.buffer = bytearray()
        self.pending = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.eof = False
        self.counted = False
        self.last_activity = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        options = self.shared.server.options
        if self.shared.active >= options.tcp_max_connections:
            self.transport.close()
            return
        self.shared.active += 1
        self.counted = True
        peer = transport.get_extra_info("peername") or ("", 0)
        self.client = (str(peer[0]), int(peer[1]))
        loop = asyncio.get_running_loop()
        self.last_activity = loop.time()
        self.idle_timer = loop.call_later(options.tcp_idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.last_activity = asyncio.get_running_loop().time()
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 2:
            length = (buffer[0] << 8) | buffer[1]
            if len(buffer) < 2 + length:
                break
            message = bytes(buffer[2 : 2 + length])
            del buffer[: 2 + length]
            memo = self.shared.memo
            mux = self.dispatcher.mux
            memo.check(mux, mux.memo_watch)
            tail = memo.answer(message[2:], time.monotonic())
            if tail is not None:
                transport.write(_LENGTH.pack(len(tail) + 2) + message[:2] + tail)
                continue
            prepared = self.dispatcher.prepare(message, "tcp", self.client, memo)
            if prepared is None:
                continue
            if isinstance(prepared, bytes):
                transport.write(_LENGTH.pack(len(prepared)) + prepared)
                continue
            self.pending += 1
            task = asyncio.ensure_future(self._answer(prepared))
            self.tasks.add(task)  # a strong reference until it is done
            task.add_done_callback(self.tasks.discard)

    async def _answer(self, req: Request) -> None:
        try:
            wire = await self.dispatcher.resolve(req)
        finally:
            self.pending -= 1
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(_LENGTH.pack(len(wire)) + wire)
            if self.eof and self.pending == 0:
                transport.close()

    def eof_received(self) -> bool:
        # Half-closed by the client: finish what it asked, then close.
        self.eof = True
        return self.pending != 0

    def _check_idle(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        timeout = self.shared.server.options.tcp_idle_timeout
        loop = asyncio.get_running_loop()
        quiet = loop.time() - self.last_activity
        if quiet >= timeout and self.pending == 0:
            transport.close()
            return
        self.idle_timer = loop.call_later(max(timeout - quiet, 0.05), self._check_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.shared.active -= 1
            self.counted = False
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self.transport = None


class Listener:
    """The UDP and TCP sockets of one (host, port)."""

    def __init__(self, host: str, port: int, dispatcher: Dispatcher) -> None:
        self.host = host
        self.port = port
        self.dispatcher = dispatcher
        self.udp: list[tuple[asyncio.DatagramTransport, UdpListener]] = []
        self.udp_threads: list[UdpThread] = []
        self.tcp: list[asyncio.AbstractServer] = []
        self.tcp_connections = TcpConnections(dispatcher.server, dispatcher)
        self.bound_port = port

    async def open(self, options: ServerOptions) -> None:
        hosts = ["0.0.0.0", "::"] if self.host == WILDCARD else [self.host]
        loop = asyncio.get_running_loop()
        try:
            for host in hosts:
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                try:
                    udp_sock = _udp_socket(host, self.bound_port, family, options)
                except OSError as err:
                    if self.host == WILDCARD and family == socket.AF_INET6:
                        log.warning("core: no IPv6 listener on port %d: %s", self.bound_port, err)
                        continue
                    raise
                self.bound_port = udp_sock.getsockname()[1]
                if options.udp_mode in ("thread", "batch"):
                    batched = options.udp_mode == "batch"
                    worker = UdpThread(
                        udp_sock, self.dispatcher, loop,
                        batched=batched, memo_size=options.reply_memo,
                    )  # fmt: skip
                    worker.start()
                    self.udp_threads.append(worker)
                else:
                    transport, protocol = await loop.create_datagram_endpoint(
                        lambda: UdpListener(self.dispatcher, options.reply_memo), sock=udp_sock
                    )
                    self.udp.append((transport, protocol))
                tcp_sock = _tcp_socket(host, self.bound_port, family, options)
                server = await loop.create_server(self.tcp_connections.protocol, sock=tcp_sock)
                self.tcp.append(server)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for transport, _ in self.udp:
            transport.close()
        for server in self.tcp:
            server.close()
        for worker in self.udp_threads:
            worker.close()
        for worker in self.udp_threads:
            await worker.wait_closed()
        self.tcp_connections.close()
        self.udp_threads.clear()
        self.udp.clear()
        self.tcp.clear()


def _udp_socket(host: str, port: int, family: int, options: ServerOptions) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if options.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, options.udp_receive_buffer)
        except OSError:
            pass
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _tcp_socket(host: str, port: int, family: int, options: ServerOptions) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if options.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class DnsServer:
    """Owns the listeners and the running Instance; swaps instances atomically."""

    def __init__(self, process: Process, options: ServerOptions | None = None) -> None:
        self.process = process
        self.options = options or ServerOptions()
        self.instance: Instance | None = None
        self.listeners: dict[tuple[str, int], Listener] = {}
        # Port 0 (tests) means "any free port", but one port for every
        # listener that asked for it, so all addresses answer on the same one.
        self._port_zero: int = 0
        process.current = lambda: self.instance
        process.bound_port = self.bound_port

    def bound_port(self, host: str = WILDCARD, port: int = 0) -> int:
        """The real port of a listener configured with port 0 (tests)."""
        listener = self.listeners.get((host, port))
        if listener is None:
            raise KeyError(f"no listener for {host or '*'}:{port}")
        return listener.bound_port

    async def _open(self, listener: Listener, *, any_port: bool) -> None:
        # With "any free port" the UDP port the kernel picks may be taken for
        # TCP (or on ::1) by someone else: pick another rather than fail.
        for attempt in range(20):
            try:
                await listener.open(self.options)
                return
            except OSError:
                if not any_port or attempt == 19:
                    raise
                listener.bound_port = 0

    async def swap(self, new: Instance) -> None:
        """Serve ``new`` in place of the running instance without dropping a query.

        Sockets for addresses both configurations use are kept; new ones are
        bound before anything changes, so a bind failure leaves the old
        configuration serving (and re-raises).
        """
        old_instance = self.instance
        if old_instance is not None:
            new.adopt_from(old_instance)
        await new.start()
        if old_instance is not None and not await new.wait_ready(RELOAD_READY_TIMEOUT):
            # As CoreDNS does after its startup wait: serve what is known.
            log.warning("reload: new configuration not ready after %gs, swapping anyway: %s",
                        RELOAD_READY_TIMEOUT, ", ".join(new.not_ready()))  # fmt: skip
        opened: list[tuple[str, int]] = []
        try:
            for address, mux in new.muxes.items():
                if address not in self.listeners:
                    listener = Listener(address[0], address[1], Dispatcher(self, mux))
                    if address[1] == 0:
                        listener.bound_port = self._port_zero
                    await self._open(listener, any_port=address[1] == 0 and not self._port_zero)
                    if address[1] == 0:
                        self._port_zero = listener.bound_port
                    self.listeners[address] = listener
                    opened.append(address)
            await self.process.http.apply(new.services.routes)
        except BaseException:
            for address in opened:
                await self.listeners.pop(address).close()
            await new.stop()
            raise
        # The swap itself: plain assignments, no await in between.
        for address, mux in new.muxes.items():
            self.listeners[address].dispatcher.mux = mux
        old, self.instance = self.instance, new
        for address in [a for a in self.listeners if a not in new.muxes]:
            await self.listeners.pop(address).close()
        if old is not None:
            await old.stop()

    async def stop(self) -> None:
        pending: list[asyncio.Task[None]] = []
        for listener in self.listeners.values():
            pending += [task for _, proto in listener.udp for task in proto.tasks]
            pending += [task for worker in listener.udp_threads for task in worker.tasks]
            await listener.close()
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        self.listeners.clear()
        await self.process.http.close()
        if self.instance is not None:
            await self.instance.stop()
            self.instance = None
