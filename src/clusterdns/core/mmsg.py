"""Batched UDP I/O with recvmmsg/sendmmsg (Linux), for the UDP receive thread.

Under load a DNS server's socket holds many queued queries; reading them one
recvfrom at a time costs a system call (and a GIL round trip) each. One
recvmmsg returns up to BATCH of them, and one sendmmsg sends every reply the
fast path produced for that batch, so the per-query system-call cost drops
to a fraction. Reached through ctypes, which releases the GIL around the call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import socket
import struct
import sys
from collections.abc import Callable
from typing import Final

BATCH: Final = 64
BUFFER: Final = 4096  # larger datagrams are truncated by the kernel: a query never needs more
MSG_WAITFORONE: Final = 0x10000
_SOCKADDR_SIZE: Final = 28  # sockaddr_in6, the larger of the two


class _IOVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IOVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.recvmmsg.argtypes = [
            ctypes.c_int,
            ctypes.POINTER(_MMsgHdr),
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_void_p,
        ]
        libc.sendmmsg.argtypes = [
            ctypes.c_int,
            ctypes.POINTER(_MMsgHdr),
            ctypes.c_uint,
            ctypes.c_int,
        ]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


def available() -> bool:
    return _LIBC is not None


def _client_of(raw: bytes) -> tuple[str, int]:
    family = raw[0] | (raw[1] << 8)  # sa_family is host-endian (little on x86/arm)
    port = (raw[2] << 8) | raw[3]
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port


class BatchSocket:
    """recvmmsg/sendmmsg over a bound, blocking UDP socket with a receive timeout."""

    def __init__(self, sock: socket.socket, *, timeout: float = 0.25) -> None:
        assert _LIBC is not None
        self.sock = sock
        self.fd = sock.fileno()
        sock.setblocking(True)
        seconds = int(timeout)
        timeval = struct.pack("ll", seconds, int((timeout - seconds) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        self._in_bufs = [ctypes.create_string_buffer(BUFFER) for _ in range(BATCH)]
        self._in_names = [ctypes.create_string_buffer(_SOCKADDR_SIZE) for _ in range(BATCH)]
        self._in_iov = (_IOVec * BATCH)()
        self._in = (_MMsgHdr * BATCH)()
        for i in range(BATCH):
            self._in_iov[i].iov_base = ctypes.addressof(self._in_bufs[i])
            self._in_iov[i].iov_len = BUFFER
            # The kernel only writes msg_namelen and msg_len back: point once, here.
            hdr = self._in[i].msg_hdr
            hdr.msg_name = ctypes.addressof(self._in_names[i])
            hdr.msg_namelen = _SOCKADDR_SIZE
            hdr.msg_iov = ctypes.pointer(self._in_iov[i])
            hdr.msg_iovlen = 1
        self._used = 0
        # Source addresses seen lately → (host, port): clients send many queries each.
        self._clients: dict[bytes, tuple[str, int]] = {}
        self._out_bufs = [ctypes.create_string_buffer(65535) for _ in range(BATCH)]
        self._out_iov = (_IOVec * BATCH)()
        self._out = (_MMsgHdr * BATCH)()
        for i in range(BATCH):
            self._out_iov[i].iov_base = ctypes.addressof(self._out_bufs[i])
            self._out[i].msg_hdr.msg_iov = ctypes.pointer(self._out_iov[i])
            self._out[i].msg_hdr.msg_iovlen = 1

    def serve_batch(self, handle: Callable[[bytes, tuple[str, int]], bytes | None]) -> int:
        """Receive up to BATCH datagrams, answer each with ``handle``, send the replies.

        ``handle`` returns reply bytes to send now, or None (dropped, or answered later
        by someone else). Returns the number received; 0 on timeout.
        """
        assert _LIBC is not None
        msgs = self._in
        for i in range(self._used):
            msgs[i].msg_hdr.msg_namelen = _SOCKADDR_SIZE
        received = _LIBC.recvmmsg(self.fd, msgs, BATCH, MSG_WAITFORONE, None)
        self._used = max(received, 0)
        if received < 0:
            err = ctypes.get_errno()
            if err in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                return 0
            raise OSError(err, "recvmmsg failed")
        out = self._out
        clients = self._clients
        count = 0
        for i in range(received):
            msg = msgs[i]
            data = ctypes.string_at(self._in_bufs[i], msg.msg_len)
            name = ctypes.string_at(self._in_names[i], msg.msg_hdr.msg_namelen)
            client = clients.get(name)
            if client is None:
                if len(clients) >= 4096:
                    clients.clear()
                client = clients[name] = _client_of(name)
            reply = handle(data, client)
            if reply is None:
                continue
            size = len(reply)
            ctypes.memmove(self._out_bufs[count], reply, size)
            self._out_iov[count].iov_len = size
            hdr = out[count].msg_hdr
            hdr.msg_name = ctypes.addressof(self._in_names[i])
            hdr.msg_namelen = msg.msg_hdr.msg_namelen
            count += 1
        sent = 0
        while sent < count:
            done = _LIBC.sendmmsg(self.fd, ctypes.byref(out[sent]), count - sent, 0)
            if done <= 0:
                break  # a full send buffer: UDP may drop, as a single sendto would
            sent += done
        return int(received)
