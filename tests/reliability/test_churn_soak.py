"""Churn soak: steady queries while Services are created, changed and deleted through the
Kubernetes API test server, every answer checked against what the cluster said at that
moment (allowing the propagation window), RSS and the latency tail watched.

CI runs a short soak; the long one is

    CLUSTERDNS_SOAK_SECONDS=3600 python3 -m pytest tests/reliability/test_churn_soak.py -s

(``CLUSTERDNS_SOAK_CHANGES_PER_MINUTE`` and ``CLUSTERDNS_SOAK_QPS`` change the load).
"""

from __future__ import annotations

import asyncio
import bisect
import ipaddress
import os
import random
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.helpers.kubeapi import KubeAPIServer, namespace, service
from tests.helpers.server import ServerProcess

# CI: 10 s, about 2,000 answers checked against ~170 changes (the long soak sets more).
SECONDS = float(os.environ.get("CLUSTERDNS_SOAK_SECONDS", "10"))
CHANGES_PER_MINUTE = float(os.environ.get("CLUSTERDNS_SOAK_CHANGES_PER_MINUTE", "1000"))
QPS = float(os.environ.get("CLUSTERDNS_SOAK_QPS", "200"))
POOL = 300  # Service names churned (about two thirds exist at any time)
# How long after the API server has a change an answer may still show the state before:
# the watch event's trip, the model update and the memo check (milliseconds here; the
# bound is generous because the machine running the suite is shared).
WINDOW = 1.5
ZONE = "cluster.local"
NS = "soak"

COREFILE = """\
.:53 {{
    errors
    health 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        endpoint {url}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30
    loop
    reload
    loadbalance
}}
"""


@dataclass
class History:
    """Each name's states as the API server had them: (monotonic time, ClusterIP or None)."""

    states: dict[str, list[tuple[float, str | None]]] = field(default_factory=dict)

    def record(self, name: str, value: str | None) -> None:
        self.states.setdefault(name, [(0.0, None)]).append((time.monotonic(), value))

    def possible(self, name: str, sent: float, received: float) -> set[str | None]:
        """Every state of ``name`` that held at some time in [sent - WINDOW, received]."""
        states = self.states.get(name, [(0.0, None)])
        times = [t for t, _ in states]
        first = max(bisect.bisect_right(times, sent - WINDOW) - 1, 0)
        last = bisect.bisect_right(times, received) - 1
        return {value for _, value in states[first : last + 1]}


@dataclass
class Answer:
    name: str
    sent: float
    received: float
    value: str | None  # the A record, or None for NXDOMAIN


def ask_steadily(port: int, names: list[str], stop: threading.Event, out: list[Answer]) -> None:
    """Queries at QPS from one thread, one at a time (a blocking socket), until ``stop``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    rng = random.Random(5)
    interval = 1.0 / QPS
    next_at = time.monotonic()
    qid = 0
    while not stop.is_set():
        name = rng.choice(names)
        qid = (qid + 1) & 0xFFFF
        query = dns.message.make_query(f"{name}.{NS}.svc.{ZONE}.", "A", id=qid)
        sent = time.monotonic()
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        try:
            while True:
                data = sock.recv(4096)
                if data[:2] == qid.to_bytes(2, "big"):
                    break
        except TimeoutError:
            out.append(Answer(name, sent, time.monotonic(), "timeout"))
            continue
        received = time.monotonic()
        reply = dns.message.from_wire(data)
        if reply.rcode() == dns.rcode.NXDOMAIN:
            value = None
        else:
            addresses = [rdata.address for rrset in reply.answer for rdata in rrset]
            value = addresses[0] if len(addresses) == 1 else f"unexpected {addresses}"
        out.append(Answer(name, sent, received, value))
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            next_at = time.monotonic()
    sock.close()


def wait_answering(port: int, name: str, timeout: float = 20.0) -> None:
    """Until the server has synced: ``name`` (a Service that exists) has an address."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        while time.monotonic() < deadline:
            sock.sendto(dns.message.make_query(name, "A").to_wire(), ("127.0.0.1", port))
            try:
                if dns.message.from_wire(sock.recv(4096)).answer:
                    return
            except TimeoutError:
                pass
            time.sleep(0.1)
    raise AssertionError(f"{name} never answered")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def churn(
    api: KubeAPIServer,
    history: History,
    names: list[str],
    live: dict[str, dict[str, object]],
    until: float,
) -> int:
    """Create, change and delete Services at CHANGES_PER_MINUTE until ``until``; ``live``
    holds the Services that exist."""
    rng = random.Random(11)
    addresses = (str(ip) for ip in ipaddress.ip_network("10.100.0.0/16").hosts())
    interval = 60.0 / CHANGES_PER_MINUTE
    changes = 0
    next_at = time.monotonic()
    while time.monotonic() < until:
        name = rng.choice(names)
        existing = live.get(name)
        if existing is None:
            ip = next(addresses)
            live[name] = api.create(service(name, NS, cluster_ip=ip))
            history.record(name, ip)
        elif rng.random() < 0.5:
            ip = next(addresses)
            existing["spec"]["clusterIP"] = ip  # type: ignore[index]
            existing["spec"]["clusterIPs"] = [ip]  # type: ignore[index]
            live[name] = api.update(existing)
            history.record(name, ip)
        else:
            api.delete(existing)
            del live[name]
            history.record(name, None)
        changes += 1
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return changes


@pytest.mark.timeout(SECONDS * 3 + 60)
async def test_answers_stay_right_under_churn(tmp_path: Path) -> None:
    names = [f"svc-{n}" for n in range(POOL)]
    history = History()
    async with KubeAPIServer(bookmark_interval=1.0) as api:
        api.create(namespace(NS))
        live: dict[str, dict[str, object]] = {}
        for number, name in enumerate(names[: POOL // 2]):
            ip = f"10.99.{number // 250}.{number % 250 + 1}"
            live[name] = api.create(service(name, NS, cluster_ip=ip))
            history.record(name, ip)
        # --dns-port puts the server on a free port whatever the Corefile says.
        async with ServerProcess(COREFILE.format(url=api.url), tmp_path) as server:
            assert server.process is not None
            pid = server.process.pid
            port = server.port
            await asyncio.to_thread(wait_answering, port, f"{names[0]}.{NS}.svc.{ZONE}.")
            answers: list[Answer] = []
            stop = threading.Event()
            asker = threading.Thread(
                target=ask_steadily, args=(port, names, stop, answers), daemon=True
            )
            rss: list[tuple[float, int]] = [(time.monotonic(), rss_kib(pid))]
            started = time.monotonic()
            asker.start()
            churner = asyncio.ensure_future(churn(api, history, names, live, started + SECONDS))
            while not churner.done():
                await asyncio.sleep(1.0)
                rss.append((time.monotonic(), rss_kib(pid)))
            changes = churner.result()
            stop.set()
            await asyncio.to_thread(asker.join, 5.0)

    wrong = [
        a
        for a in answers
        if a.value == "timeout" or a.value not in history.possible(a.name, a.sent, a.received)
    ]
    checked = len(answers)
    assert changes >= SECONDS * CHANGES_PER_MINUTE / 60 * 0.5, "the churn did not keep pace"
    assert checked >= SECONDS * QPS * 0.3, f"only {checked} answers in {SECONDS} s"
    assert not wrong, f"{len(wrong)} of {checked} answers wrong or missing, e.g. " + "; ".join(
        f"{a.name} at +{a.sent - started:.3f}s: {a.value}, cluster had "
        f"{sorted(map(str, history.possible(a.name, a.sent, a.received)))}"
        for a in wrong[:5]
    )
    # RSS flat: after the first quarter (model, memo and cache filled), no growth beyond
    # a fifth (and a few MiB of allocator noise).
    settled = [kib for t, kib in rss if t >= started + SECONDS / 4]
    assert settled and max(settled) <= settled[0] * 1.2 + 4096, rss
    # No growing latency tail: the last third's p99 is not far above the first third's.
    third = len(answers) // 3
    early = [a.received - a.sent for a in answers[:third]]
    late = [a.received - a.sent for a in answers[-third:]]
    p99_early = statistics.quantiles(early, n=100)[98]
    p99_late = statistics.quantiles(late, n=100)[98]
    assert p99_late <= p99_early * 4 + 0.02, (p99_early, p99_late)
    print(
        f"soak: {SECONDS:.0f} s, {changes} changes, {checked} answers checked, 0 wrong; "
        f"RSS {rss[0][1] / 1024:.1f} → {max(k for _, k in rss) / 1024:.1f} (max) → "
        f"{rss[-1][1] / 1024:.1f} MiB; p99 {p99_early * 1e3:.2f} → {p99_late * 1e3:.2f} ms"
    )
