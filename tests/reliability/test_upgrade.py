"""Zero lost queries through a restart on the same node: a second `serve --reuse-port`
started beside the running one takes the port over, then the first gets SIGTERM, under
steady UDP load from many source ports, and every query sent is answered.

The load is a bounded loop on loopback: ``RATE`` queries a second from ``SOURCES`` sockets
(distinct source ports, so the kernel spreads them over both processes' sockets), each
query with its own ID, no retries; a query is lost when no reply came within 2 s of the
end. Long run: CLUSTERDNS_UPGRADE_SECONDS=60 (and CLUSTERDNS_UPGRADE_ROUNDS=10) holds the
load longer and upgrades more times."""

from __future__ import annotations

import os
import pathlib
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

import dns.message
import pytest

from tests.helpers.server import free_port

RATE = 2000
SOURCES = 64
# CI: half a second of load before and after each restart, besides the ~1.5 s of load
# while the new process starts (what a restart loses is lost around the hand-over).
SECONDS = float(os.environ.get("CLUSTERDNS_UPGRADE_SECONDS") or 1)
ROUNDS = int(os.environ.get("CLUSTERDNS_UPGRADE_ROUNDS") or 2)

pytestmark = pytest.mark.timeout(120 + ROUNDS * (SECONDS + 20))

# A cluster name the kubernetes plugin answers on its fast path (the UDP thread), as
# almost every query a cluster DNS server gets; its address tells the generation apart.
QUERY = dns.message.make_query("gen.default.svc.cluster.local.", "A")
QUERY.id = 0
TEMPLATE = QUERY.to_wire()


@dataclass
class Load:
    """Steady queries from many sockets; every one accounted for."""

    port: int
    sent: dict[tuple[int, int], float] = field(default_factory=dict)  # (socket, id) → when
    answered: dict[tuple[int, int], bytes] = field(default_factory=dict)
    stray: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.socks = []
        for _ in range(SOURCES):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            self.socks.append(sock)
        self._by_fd = {sock.fileno(): index for index, sock in enumerate(self.socks)}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, grace: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(30)
        end = time.monotonic() + grace
        while time.monotonic() < end and len(self.answered) < len(self.sent):
            self._receive(0.05)
        for sock in self.socks:
            sock.close()

    @property
    def lost(self) -> list[tuple[int, int]]:
        return [key for key in self.sent if key not in self.answered]

    def _receive(self, timeout: float) -> None:
        ready, _, _ = select.select(self.socks, [], [], timeout)
        for sock in ready:
            index = self._by_fd[sock.fileno()]
            while True:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    break
                key = (index, struct.unpack_from("!H", data)[0])
                if key in self.sent and key not in self.answered:
                    self.answered[key] = data
                else:
                    self.stray += 1

    def _run(self) -> None:
        interval = 1.0 / RATE
        next_send = time.monotonic()
        serial = 0
        while not self._stop.is_set():
            now = time.monotonic()
            while next_send <= now:
                index = serial % SOURCES
                msg_id = (serial // SOURCES) % 0x10000
                key = (index, msg_id)
                serial += 1
                next_send += interval
                if key in self.sent:
                    continue  # an ID comes back only after 65536 rounds: not in a test
                self.sent[key] = now
                try:
                    self.socks[index].sendto(
                        struct.pack("!H", msg_id) + TEMPLATE[2:], ("127.0.0.1", self.port)
                    )
                except OSError:
                    pass  # counted as sent: it will show up as lost
            self._receive(max(0.0, min(0.005, next_send - time.monotonic())))


def _spawn(
    corefile: pathlib.Path, log: pathlib.Path, udp_mode: str = "batch"
) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    out = open(log, "wb")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "clusterdns.cli", "serve", "--conf", str(corefile),
             "--reuse-port", "--udp-mode", udp_mode],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    finally:
        out.close()


def _wait_logged(proc: subprocess.Popen[bytes], log: pathlib.Path, text: str) -> None:
    deadline = time.monotonic() + 20
    while text not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, f"never logged {text!r}"
        time.sleep(0.05)


def _generation(reply: bytes) -> int:
    return int(dns.message.from_wire(reply).answer[0][0].to_text().rsplit(".", 1)[1]) - 10


MANIFEST = """apiVersion: v1
kind: Service
metadata:
  name: gen
  namespace: default
spec:
  clusterIP: 10.96.0.{address}
  ports:
    - name: http
      port: 80
      protocol: TCP
"""


def _start_generation(
    tmp_path: pathlib.Path,
    port: int,
    tag: str,
    udp_mode: str,
    procs: list[subprocess.Popen[bytes]],
) -> subprocess.Popen[bytes]:
    """`serve --reuse-port` on ``port`` whose Service `gen` answers 10.96.0.<10 + N> for
    tag vN (which generation answered shows in the reply); ready when it logs serving."""
    manifests = tmp_path / f"cluster-{tag}"
    manifests.mkdir()
    (manifests / "gen.yaml").write_text(MANIFEST.format(address=10 + int(tag[1:])))
    corefile = tmp_path / f"Corefile.{tag}"
    corefile.write_text(
        f".:{port} {{\n    bind 127.0.0.1\n"
        f"    kubernetes cluster.local {{\n        manifests {manifests}\n    }}\n}}\n"
    )
    log = tmp_path / f"{tag}.log"
    proc = _spawn(corefile, log, udp_mode)
    procs.append(proc)
    _wait_logged(proc, log, "serving, pid")
    return proc


@pytest.mark.parametrize("udp_mode", ["batch", "thread", "loop"])
def test_reuse_port_restart_loses_no_query(tmp_path: pathlib.Path, udp_mode: str) -> None:
    """ROUNDS times: a new process beside the running one, then SIGTERM to the old one
    (no lameduck: it closes at once), under RATE queries a second. Not one lost."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start(tag: str) -> subprocess.Popen[bytes]:
        return _start_generation(tmp_path, port, tag, udp_mode, procs)

    try:
        old = start("v0")
        load = Load(port)
        load.start()
        try:
            for round_ in range(1, ROUNDS + 1):
                time.sleep(SECONDS / 2)
                new = start(f"v{round_}")  # beside the old one, on the same port
                time.sleep(0.3)
                old.send_signal(signal.SIGTERM)
                assert old.wait(20) == 0
                time.sleep(SECONDS / 2)
                old = new
        finally:
            load.stop()
        lost = load.lost
        assert len(load.sent) >= RATE * SECONDS * ROUNDS * 0.5, "the load loop fell behind"
        assert not lost, f"{len(lost)} of {len(load.sent)} queries lost"
        # Answers came from every generation, the last one's at the end.
        generations = {_generation(reply) for reply in load.answered.values()}
        assert generations == set(range(ROUNDS + 1))
        last = max(load.answered, key=lambda key: load.sent[key])
        assert _generation(load.answered[last]) == ROUNDS
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_rolling_restart_of_two_replicas_loses_no_query(tmp_path: pathlib.Path) -> None:
    """Two replicas behind one address (both `serve --reuse-port` on the port, as two pods
    behind the kube-dns address on a node would be with a node-local VIP): each in turn is
    stopped with SIGTERM (its lameduck off) and replaced by a new one while the other keeps
    serving, under RATE queries a second. Not one lost."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start(tag: str) -> subprocess.Popen[bytes]:
        return _start_generation(tmp_path, port, tag, "batch", procs)

    try:
        replicas = [start("v0"), start("v1")]
        load = Load(port)
        load.start()
        try:
            for index, tag in enumerate(("v2", "v3")):
                time.sleep(SECONDS / 2)
                replicas[index].send_signal(signal.SIGTERM)  # the other replica takes over
                assert replicas[index].wait(20) == 0
                replicas[index] = start(tag)  # its replacement joins
            time.sleep(SECONDS / 2)
        finally:
            load.stop()
        lost = load.lost
        assert len(load.sent) >= RATE * SECONDS * 0.5, "the load loop fell behind"
        assert not lost, f"{len(lost)} of {len(load.sent)} queries lost"
        generations = {_generation(reply) for reply in load.answered.values()}
        assert {2, 3} <= generations, "the replacements answered"
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
