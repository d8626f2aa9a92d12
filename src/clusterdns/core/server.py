"""The server: listeners per address (UDP in core/udp.py, TCP in core/tcp.py, both
dispatched by core/dispatch.py) and atomic configuration swaps."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from typing import Final

from clusterdns.core.dispatch import Dispatcher
from clusterdns.core.explain import Explained
from clusterdns.core.instance import WILDCARD, Instance
from clusterdns.core.memo import DEFAULT_SIZE as DEFAULT_MEMO_SIZE
from clusterdns.core.process import Process
from clusterdns.core.tcp import TcpConnections
from clusterdns.core.udp import UdpListener, UdpThread

log = logging.getLogger("clusterdns.server")

# On reload the old configuration keeps serving while the new one gets ready
# (a kubernetes plugin whose settings changed re-lists the cluster), this long at most.
RELOAD_READY_TIMEOUT: Final = 5.0


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
        for transport, protocol in self.udp:
            await protocol.retire()  # answers what is queued before the socket goes
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


class ListenError(OSError):
    """A DNS socket that could not be bound: ``str()`` names the address, port and
    protocol, ``0.0.0.0:53/udp: [Errno 98] Address already in use``; errno is kept."""

    def __init__(self, host: str, port: int, protocol: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.where = f"[{host}]:{port}/{protocol}" if ":" in host else f"{host}:{port}/{protocol}"
        self.cause = cause

    def __str__(self) -> str:
        return f"{self.where}: {self.cause}"


def _bind(sock: socket.socket, host: str, port: int, protocol: str) -> None:
    try:
        sock.bind((host, port))
    except OSError as err:
        raise ListenError(host, port, protocol, err) from err


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
        _bind(sock, host, port, "udp")
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
        _bind(sock, host, port, "tcp")
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
        process.explain = self.explain

    def bound_port(self, host: str = WILDCARD, port: int = 0) -> int:
        """The real port of a listener configured with port 0 (tests)."""
        listener = self.listeners.get((host, port))
        if listener is None:
            raise KeyError(f"no listener for {host or '*'}:{port}")
        return listener.bound_port

    async def explain(self, name: str, qtype: int) -> Explained | None:
        """The first listener's explanation of ``name``/``qtype`` (core/explain.py)."""
        for listener in list(self.listeners.values()):
            found = await listener.dispatcher.explain(name, qtype)
            if found is not None:
                return found
        return None

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
