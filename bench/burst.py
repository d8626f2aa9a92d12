"""Overload recovery (issue 14): a burst of first-sight questions far beyond what the server
answers, then how long until a fresh question is answered again.

Starts clusterdns (standard Corefile, the 100k-Service manifests fixture of bench/run.py),
sends BURST never-seen A and SRV questions as fast as one Python sender can from 64 source
ports (open loop: nothing waits for answers), and from the moment the burst ends asks a
fresh question every 50 ms for 3 s from another address, none waiting for another. Reports
the burst rate, how many burst questions were answered, the time from the burst's end to
the first answered probe and to the first probe answered within 100 ms, and the probes
never answered (sent while the socket's queue was full, they are dropped by the kernel).

    python bench/burst.py [--services 100000] [--burst 120000]
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import threading
import time
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dns.message  # noqa: E402
from bench.first_sight import questions  # noqa: E402
from bench.fixture import Cluster  # noqa: E402
from bench.run import Context  # noqa: E402


def burst_questions(cluster: Cluster, count: int, rng: random.Random) -> list[bytes]:
    """Never-seen SRV and A questions in turn (bench/first_sight.py's, random letter case)."""
    srv = questions(cluster, "SRV", (count + 1) // 2, rng)
    a = questions(cluster, "A", count // 2, rng)
    return [wire for pair in zip_longest(srv, a) for wire in pair if wire is not None]


def collect(probe: socket.socket, got_at: dict[int, float], until: float, idle: float) -> None:
    """Note when each probe's reply (by ID) first came, until ``until``."""
    while time.monotonic() < until:
        try:
            reply = probe.recv(4096)
            got_at.setdefault(int.from_bytes(reply[:2], "big"), time.monotonic())
        except BlockingIOError:
            time.sleep(idle)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=120_000)
    args = parser.parse_args()
    cluster = Cluster(args.services)
    ctx = Context(quick=True)
    server = ctx.server("burst-cd", lambda: ctx.standard(cluster))
    try:
        wires = burst_questions(cluster, args.burst, random.Random(3))
        target = ("127.0.0.1", server.port)
        senders = []
        for _ in range(64):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            senders.append(sock)
        answered = [0]

        def drain() -> None:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                for sock in senders:
                    try:
                        while True:
                            sock.recv(4096)
                            answered[0] += 1
                    except BlockingIOError:
                        pass
                time.sleep(0.01)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        started = time.monotonic()
        dropped_at_send = 0
        for n, wire in enumerate(wires):
            try:
                senders[n % 64].sendto(wire, target)
            except BlockingIOError:
                dropped_at_send += 1
        ended = time.monotonic()
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.2", 0))
        probe.setblocking(False)
        sent_at: dict[int, float] = {}
        got_at: dict[int, float] = {}
        # A fresh question every 50 ms for 3 s, none waiting for another.
        for n in range(60):
            name = f"probe{n}-{random.getrandbits(32):x}.ns-1.svc.cluster.local."
            query = dns.message.make_query(name, "A")
            query.id = n
            sent_at[n] = time.monotonic()
            probe.sendto(query.to_wire(), target)
            collect(probe, got_at, sent_at[n] + 0.05, 0.002)
        collect(probe, got_at, time.monotonic() + 3, 0.005)
        fast = [n for n in sent_at if n in got_at and got_at[n] - sent_at[n] < 0.1]
        first_answer = min((got_at[n] - ended for n in got_at), default=None)
        first_fast = min((sent_at[n] - ended for n in fast), default=None)
        lost_probes = [round(sent_at[n] - ended, 2) for n in sent_at if n not in got_at]
        reader.join()
        rate = len(wires) / (ended - started)
        print(
            f"burst: {len(wires):,} first-sight A/SRV questions in {ended - started:.2f} s "
            f"({rate:,.0f}/s offered, {dropped_at_send:,} refused by the sender's buffer); "
            f"{answered[0]:,} answered within 15 s"
        )
        print(
            f"after the burst: first probe answered {first_answer:.2f} s after it ended; "
            f"first probe answered within 100 ms sent {first_fast:.2f} s after it ended"
            if first_answer is not None and first_fast is not None
            else f"after the burst: probes first answered {first_answer}, fast {first_fast}"
        )
        print(f"probes (one every 50 ms for 3 s) never answered, sent at: {lost_probes}")
    finally:
        ctx.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
