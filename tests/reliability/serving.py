"""A clusterdns server on loopback in a thread of its own, for tests that talk to it with
blocking sockets (hypothesis cannot drive an async test), and the blocking clients."""

from __future__ import annotations

import asyncio
import os
import pathlib
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

from clusterdns.core.lifecycle import App
from clusterdns.core.process import Process
from clusterdns.core.server import ServerOptions

T = TypeVar("T")

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parents[2] / "examples" / "cluster"

FUZZ_COREFILE = """
.:0 {{
    bind 127.0.0.1
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        manifests {manifests}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    chaos v1
    forward . 127.0.0.1:{upstream}
    cache 30
    loadbalance
}}
"""


def budget(default: int) -> int:
    """hypothesis examples for one fuzz test: small in CI, CLUSTERDNS_FUZZ_EXAMPLES for the
    long run (e.g. 100000)."""
    return int(os.environ.get("CLUSTERDNS_FUZZ_EXAMPLES") or default)


class ThreadedServer:
    """An App serving ``corefile_text`` on its own event loop in a daemon thread."""

    def __init__(self, corefile_text: str, options: ServerOptions | None = None) -> None:
        self._scratch = tempfile.TemporaryDirectory(prefix="clusterdns-reliab-")
        self.path = pathlib.Path(self._scratch.name) / "Corefile"
        self.path.write_text(corefile_text)
        self.loop = asyncio.new_event_loop()
        self.app = App(config_path=str(self.path), process=Process(), options=options)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="dns-srv")

    def start(self) -> ThreadedServer:
        self.thread.start()
        self.call(self.app.start, timeout=20)
        return self

    def call(self, make: Callable[[], Any], timeout: float = 10) -> Any:
        """Run the coroutine ``make()`` on the server's loop and wait for its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(make(), self.loop)
        return future.result(timeout)

    def on_loop(self, fn: Callable[[], T], timeout: float = 10) -> T:
        async def run() -> T:
            return fn()

        result: T = self.call(run, timeout)
        return result

    @property
    def port(self) -> int:
        return self.app.server.bound_port("127.0.0.1", 0)

    def stop(self) -> None:
        try:
            self.call(self.app.shutdown, timeout=20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.loop.is_running():
                self.loop.close()
            self._scratch.cleanup()


@contextmanager
def threaded_server(
    corefile_text: str, options: ServerOptions | None = None
) -> Iterator[ThreadedServer]:
    server = ThreadedServer(corefile_text, options).start()
    try:
        yield server
    finally:
        server.stop()


def udp_exchange(
    port: int, data: bytes, *, timeout: float = 2.0, linger: float = 0.0
) -> list[bytes]:
    """Send one datagram; every reply that arrives within ``timeout`` of the first (or of the
    send, when none does) and ``linger`` after it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.send(data)
        replies: list[bytes] = []
        sock.settimeout(timeout)
        try:
            replies.append(sock.recv(65535))
            if linger:
                sock.settimeout(linger)
                while True:
                    replies.append(sock.recv(65535))
        except TimeoutError:
            pass
        return replies


def tcp_frame(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def read_frame(sock: socket.socket) -> bytes | None:
    """One length-prefixed message, or None when the server closed the connection."""
    head = _read_exactly(sock, 2)
    if head is None:
        return None
    (length,) = struct.unpack("!H", head)
    return _read_exactly(sock, length)


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    out = b""
    while len(out) < size:
        chunk = sock.recv(size - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def good_answer(port: int, data: bytes, *, within: float = 3.0) -> bytes:
    """Ask until answered (a UDP datagram can be lost on a busy machine); the reply."""
    deadline = time.monotonic() + within
    while True:
        replies = udp_exchange(port, data, timeout=0.5)
        if replies:
            return replies[0]
        if time.monotonic() > deadline:
            raise AssertionError("no answer to a good query")


__all__ = [
    "EXAMPLES_DIR",
    "FUZZ_COREFILE",
    "ThreadedServer",
    "budget",
    "good_answer",
    "read_frame",
    "tcp_frame",
    "threaded_server",
    "udp_exchange",
]
