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
import time
from collections.abc import Callable
from typing import Final

from clusterdns.core.memo import Entry

BATCH: Final = 64
# One message's buffer, for its query and then its reply (larger replies are sent on
# their own); larger datagrams are truncated by the kernel: a query never needs more.
SLOT: Final = 4096
MSG_WAITFORONE: Final = 0x10000
_SOCKADDR_SIZE: Final = 28  # sockaddr_in6, the larger of the two
# Linux's SO_TIMESTAMPNS (== SCM_TIMESTAMPNS) on x86 and arm; the kernel stamps each
# datagram with the wall-clock time it arrived (a struct timespec).
SO_TIMESTAMPNS: Final = 35
# One control message: cmsghdr (len, level, type) then the timespec.
_CONTROL: Final = 32
_TIMESPEC = struct.Struct("qq")
# A query that waited in the socket's receive queue longer than this is dropped unread:
# under overload the queue holds seconds of questions, and answering them oldest first
# makes every client wait that long. Forwarders (CoreDNS's forward, NodeLocal DNSCache)
# give up on a query after 2 s, stubs retry after 5 s; dropping costs a fraction of
# answering, so the queue empties fast once the load drops, and the answers given go to
# questions still being waited for. (1 s dropped queries a stub would still have taken
# when the event loop held the GIL through 1,000 API updates a second: bench/ 1b.)
LATE_AFTER: Final = 2.0
# A full batch whose oldest datagram waited this long means a backlog: then, when the
# batch holds several client addresses, each gets at most SHARE of its first-sight answers
# (memo hits are cheap and always served), so one pod's flood of never-seen names cannot
# starve the others.
BACKLOGGED_AFTER: Final = 0.05
SHARE: Final = BATCH // 4


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


_MMSG_SIZE: Final = ctypes.sizeof(_MMsgHdr)


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
            ctypes.c_void_p,  # into an array of _MMsgHdr: a batch is sent in runs
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
    """recvmmsg/sendmmsg over a bound, blocking UDP socket with a receive timeout.

    Every message of a batch has one slot of one shared buffer, read and written
    through a memoryview (no ctypes call per message): the reply is written over the
    query in its own slot, behind the query's ID, so a memo hit costs a dict lookup
    and one copy. The send headers point at the same slots and sender addresses
    once, at start; per batch only the reply lengths change.
    """

    def __init__(
        self, sock: socket.socket, *, timeout: float = 0.25, late_after: float = LATE_AFTER
    ) -> None:
        assert _LIBC is not None
        self.sock = sock
        self.late_after = late_after
        self.late = 0  # datagrams dropped for waiting longer than late_after, so far
        self.over_share = 0  # dropped for their client's share of a backlogged batch
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self._stamped = True
        except OSError:
            self._stamped = False
        self.fd = sock.fileno()
        sock.setblocking(True)
        self.set_timeout(timeout)
        self._namelen = 16 if sock.family == socket.AF_INET else _SOCKADDR_SIZE
        # Where the client's address (without the port) lies in a sockaddr.
        self._host_at = (4, 8) if sock.family == socket.AF_INET else (8, 24)
        # One slot per message for query and reply; sender addresses side by side.
        self._data = bytearray(BATCH * SLOT)
        self._c_data = (ctypes.c_char * len(self._data)).from_buffer(self._data)
        self._view = memoryview(self._data)
        self._names = bytearray(BATCH * _SOCKADDR_SIZE)
        self._c_names = (ctypes.c_char * len(self._names)).from_buffer(self._names)
        self._control = bytearray(BATCH * _CONTROL)
        self._c_control = (ctypes.c_char * len(self._control)).from_buffer(self._control)
        data_base = ctypes.addressof(self._c_data)
        names_base = ctypes.addressof(self._c_names)
        control_base = ctypes.addressof(self._c_control)
        self._in_iov = (_IOVec * BATCH)()
        self._out_iov_raw = bytearray(ctypes.sizeof(_IOVec) * BATCH)
        self._out_iov = (_IOVec * BATCH).from_buffer(self._out_iov_raw)
        self._in_raw = bytearray(ctypes.sizeof(_MMsgHdr) * BATCH)
        self._in = (_MMsgHdr * BATCH).from_buffer(self._in_raw)
        self._out = (_MMsgHdr * BATCH)()
        for i in range(BATCH):
            for iov in (self._in_iov[i], self._out_iov[i]):
                iov.iov_base = data_base + i * SLOT
                iov.iov_len = SLOT
            for hdr, iovs in (
                (self._in[i].msg_hdr, self._in_iov),
                (self._out[i].msg_hdr, self._out_iov),
            ):
                hdr.msg_name = names_base + i * _SOCKADDR_SIZE
                hdr.msg_namelen = self._namelen  # the kernel writes back the same size
                hdr.msg_iov = ctypes.pointer(iovs[i])
                hdr.msg_iovlen = 1
            if self._stamped:
                self._in[i].msg_hdr.msg_control = control_base + i * _CONTROL
                self._in[i].msg_hdr.msg_controllen = _CONTROL
        # Views of the headers' length fields, read and written like lists.
        u32_stride = ctypes.sizeof(_MMsgHdr) // 4
        self._in_lens = memoryview(self._in_raw).cast("I")[
            _MMsgHdr.msg_len.offset // 4 :: u32_stride
        ]
        u64_stride = ctypes.sizeof(_IOVec) // 8
        self._out_lens = memoryview(self._out_iov_raw).cast("Q")[
            _IOVec.iov_len.offset // 8 :: u64_stride
        ]
        # The kernel shortens msg_controllen to what it wrote: restored before each call.
        control_offset = _MMsgHdr.msg_hdr.offset + _MsgHdr.msg_controllen.offset
        self._control_lens = memoryview(self._in_raw).cast("Q")[
            control_offset // 8 :: ctypes.sizeof(_MMsgHdr) // 8
        ]
        self._full_control = memoryview(struct.pack(f"{BATCH}Q", *[_CONTROL] * BATCH)).cast("Q")
        self._offsets = [i * SLOT for i in range(BATCH)]
        # Source addresses seen lately → (host, port): clients send many queries each.
        self._clients: dict[bytes, tuple[str, int]] = {}

    def set_timeout(self, timeout: float) -> None:
        """How long a receive waits for its first datagram (SO_RCVTIMEO; not 0, which
        would mean for ever)."""
        assert timeout > 0
        seconds = int(timeout)
        timeval = struct.pack("ll", seconds, int((timeout - seconds) * 1e6))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)

    def serve_batch(
        self,
        handle: Callable[[bytes, tuple[str, int]], bytes | None],
        current_memo: Callable[[], dict[bytes, Entry]],
        account: Callable[[int, float], None] | None = None,
    ) -> int:
        """Receive up to BATCH datagrams, answer each, send the replies.

        ``current_memo()`` is called once the batch is in (not before: data may change
        while the receive blocks). A query whose bytes after the ID are in the memo it
        returns (and not expired) is answered from there; the rest go to ``handle``, which returns reply bytes to send now, or
        None (dropped, or answered later by someone else). Returns how many datagrams
        were received (0 on timeout). ``account(memo hits, seconds spent answering)`` is
        called before the replies leave: a client that has its answer finds it counted.
        """
        assert _LIBC is not None
        if self._stamped:
            self._control_lens[:] = self._full_control
        received: int = _LIBC.recvmmsg(self.fd, self._in, BATCH, MSG_WAITFORONE, None)
        if received <= 0:
            if received < 0:
                err = ctypes.get_errno()
                if err not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR):
                    raise OSError(err, "recvmmsg failed")
            return 0
        started = time.perf_counter()
        now = time.monotonic()
        lens = self._in_lens.tolist()
        view = self._view
        out_lens = self._out_lens
        offsets = self._offsets
        get = current_memo().get
        hits = 0
        skipped: list[int] = []
        first = 0
        shares: dict[bytes, int] | None = None
        if self._stamped:
            first, backlogged = self._late_ones(received)
            skipped.extend(range(first))
            if backlogged:
                host_from, host_to = self._host_at
                names_view = self._names
                hosts = {
                    bytes(names_view[i * _SOCKADDR_SIZE + host_from : i * _SOCKADDR_SIZE + host_to])
                    for i in range(first, received)
                }
                # Only when others wait too: a lone client (one node's cache, a benchmark)
                # keeps the whole batch, its backlog bounded by late_after alone.
                if len(hosts) > 1:
                    shares = {}
        names = self._names
        namelen = self._namelen
        clients = self._clients
        for i in range(first, received):
            offset = offsets[i]
            size = lens[i]
            entry = get(bytes(view[offset + 2 : offset + size]))
            if entry is not None and entry[1] > now:
                tail = entry[0]
                end = offset + 2 + len(tail)
                view[offset + 2 : end] = tail
                out_lens[i] = end - offset
                entry[2][0] += 1
                hits += 1
                continue
            start = i * _SOCKADDR_SIZE
            if shares is not None:
                host = bytes(names[start + host_from : start + host_to])
                share = shares.get(host, 0) + 1
                if share > SHARE:
                    skipped.append(i)
                    self.over_share += 1
                    continue
                shares[host] = share
            client = clients.get(bytes(names[start : start + namelen])) or self._client(i)
            reply = handle(bytes(view[offset : offset + size]), client)
            if reply is None:
                skipped.append(i)
                continue
            if len(reply) > SLOT:
                skipped.append(i)
                try:
                    self.sock.sendto(reply, client)
                except OSError:
                    pass
                continue
            view[offset : offset + len(reply)] = reply
            out_lens[i] = len(reply)
        elapsed = time.perf_counter() - started
        if account is not None:
            account(hits, elapsed)
        if not skipped:
            self._send(0, received)
        else:
            start = 0
            for index in (*skipped, received):
                if index > start:
                    self._send(start, index)
                start = index + 1
        return received

    def _late_ones(self, received: int) -> tuple[int, bool]:
        """How many datagrams at the head of the batch (the oldest) waited too long, and
        whether the batch is part of a backlog."""
        control = self._control
        lens = self._control_lens
        now = time.time()
        deadline = now - self.late_after
        late = 0
        # Datagrams arrive in order: the first one's stamp says whether any is late.
        while late < received and lens[late] >= _CONTROL:
            seconds, nanos = _TIMESPEC.unpack_from(control, late * _CONTROL + 16)
            arrived = seconds + nanos * 1e-9
            if arrived >= deadline:
                self.late += late
                return late, received == BATCH and arrived < now - BACKLOGGED_AFTER
            late += 1
        self.late += late
        return late, False

    def _client(self, index: int) -> tuple[str, int]:
        start = index * _SOCKADDR_SIZE
        raw = bytes(self._names[start : start + self._namelen])
        client = self._clients.get(raw)
        if client is None:
            if len(self._clients) >= 4096:
                self._clients.clear()
            client = self._clients[raw] = _client_of(raw)
        return client

    def _send(self, start: int, stop: int) -> None:
        assert _LIBC is not None
        base = ctypes.addressof(self._out)
        while start < stop:
            done = _LIBC.sendmmsg(self.fd, base + start * _MMSG_SIZE, stop - start, 0)
            if done <= 0:
                return  # a full send buffer: UDP may drop, as a single sendto would
            start += done
