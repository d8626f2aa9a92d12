"""The floor of CPython UDP serving: answer every query by echoing it with QR set.

The same blocking recvfrom/sendto loop in a thread as clusterdns's ``--udp-mode thread``, and
no DNS work at all, so what it reaches is the most a one-socket CPython server can do here.

    python bench/echo.py PORT
"""

from __future__ import annotations

import signal
import socket
import sys
import threading


def serve(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
    sock.bind(("127.0.0.1", port))
    recvfrom = sock.recvfrom
    sendto = sock.sendto
    flags = b"\x81\x80"  # QR, RD, RA, NOERROR: the question comes back as the reply

    def run() -> None:
        while True:
            data, addr = recvfrom(65535)
            if len(data) >= 12:
                sendto(data[:2] + flags + data[4:], addr)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    serve(int(sys.argv[1]))
