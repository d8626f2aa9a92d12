"""--workers N: one port, N processes, metrics and readiness summed across them."""

from __future__ import annotations

import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.error

import dns.exception
import dns.message
import dns.query

from tests.core.test_lifecycle import _wait_udp, http_get
from tests.helpers.server import free_port


def _ask_with_retry(query: dns.message.Message, port: int) -> dns.message.Message:
    # The kernel may still hand a datagram to the dying socket in the instant
    # it closes; a client retry (as every stub resolver does) must succeed.
    try:
        return dns.query.udp(query, "127.0.0.1", port=port, timeout=1)
    except dns.exception.Timeout:
        return dns.query.udp(query, "127.0.0.1", port=port, timeout=2)


def _alive(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def _txt_requests(metrics_port: int) -> float:
    body = http_get(f"http://127.0.0.1:{metrics_port}/metrics")[1]
    pattern = r'^coredns_dns_requests_total\{[^}]*type="TXT"[^}]*\} (\S+)$'
    return sum(float(v) for v in re.findall(pattern, body, re.M))


def _status(url: str) -> int:
    """The HTTP status of ``url``; 0 while nothing listens there yet (the workers' UDP
    sockets may answer before their HTTP listeners are up)."""
    try:
        return http_get(url)[0]
    except urllib.error.URLError:
        return 0


def test_workers_share_the_port_sum_metrics_and_survive_a_worker_death(
    tmp_path: pathlib.Path,
) -> None:
    port, metrics, ready = free_port(), free_port(), free_port()
    path = tmp_path / "Corefile"
    path.write_text(
        f".:{port} {{\n  bind 127.0.0.1\n  prometheus 127.0.0.1:{metrics}\n  ready 127.0.0.1:{ready}\n  chaos v\n}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterdns.cli", "serve", "--conf", str(path), "--workers", "2"],
    )
    try:
        _wait_udp(port)
        deadline = time.monotonic() + 10
        while _status(f"http://127.0.0.1:{ready}/ready") != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert http_get(f"http://127.0.0.1:{ready}/ready") == (200, "OK")
        query = dns.message.make_query("version.bind.", "TXT", "CH")
        time.sleep(1.2)
        before = _txt_requests(metrics)
        sent = 300
        for _ in range(sent):
            # A new socket (source port) per query spreads them over the workers.
            assert dns.query.udp(query, "127.0.0.1", port=port, timeout=2).rcode() == 0
        # Snapshots are published twice a second; whichever worker answers the scrape,
        # the sum is the same once both have published.
        deadline = time.monotonic() + 5
        counted: list[float] = []
        while time.monotonic() < deadline:
            counted = [_txt_requests(metrics) - before for _ in range(4)]
            if counted == [sent] * 4:
                break
            time.sleep(0.1)
        assert counted == [sent] * 4
        # Kill one worker: the other keeps answering and the supervisor restarts it.
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
        subprocess.run(["kill", "-9", children[0]], check=True)
        # Queries already queued on the killed worker's socket die with it;
        # once the kernel has closed that socket, none may be lost.
        deadline = time.monotonic() + 5
        while _alive(children[0]) and time.monotonic() < deadline:
            time.sleep(0.02)
        for _ in range(50):
            assert _ask_with_retry(query, port).rcode() == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            now = subprocess.run(
                ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
            ).stdout.split()
            if len(now) == 2 and children[0] not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2 and children[0] not in now
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def test_workers_stop_when_the_supervisor_is_killed(tmp_path: pathlib.Path) -> None:
    port = free_port()
    path = tmp_path / "Corefile"
    path.write_text(f".:{port} {{\n  bind 127.0.0.1\n  chaos v\n}}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clusterdns.cli", "serve", "--conf", str(path), "--workers", "2"]
    )
    try:
        _wait_udp(port)
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
        ).stdout.split()
        assert len(children) == 2
        proc.kill()
        proc.wait(timeout=5)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in children)
    finally:
        subprocess.run(["pkill", "-f", str(path)], check=False)
