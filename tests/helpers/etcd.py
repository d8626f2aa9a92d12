"""A real etcd cluster on loopback for tests: 1 or 3 members, temporary data dirs, free ports.

    with EtcdCluster(size=3) as cluster:       # started and healthy
        cluster.etcdctl("put", "/skydns/local/kube/default/mysql-service", value)
        cluster.kill(0)                          # SIGKILL one member
        cluster.restart(0)                       # same ports, same data dir
        cluster.stop_all(); cluster.restart_all()

Tests skip when ``/usr/bin/etcd`` (Debian's ``etcd-server``) is missing: use the
``etcd_cluster``/``etcd3`` fixtures of the test packages, or :func:`require_etcd`.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
_tokens = itertools.count()
_handed_out: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (as tests.helpers.server picks them: bind port 0),
    never the same one twice in a process, since etcd binds it only later."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


def require_etcd() -> None:
    if not (os.access(ETCD, os.X_OK) and os.access(ETCDCTL, os.X_OK)):
        pytest.skip("etcd is not installed (Debian: apt-get install etcd-server etcd-client)")


class EtcdMember:
    def __init__(self, name: str, data_dir: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.name = name
        self.extra_args = extra_args
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, initial_cluster: str, token: str) -> None:
        assert not self.running, f"{self.name} is already running"
        log = open(self.data_dir.parent / f"{self.name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                ETCD, "--name", self.name, "--data-dir", str(self.data_dir),
                "--listen-client-urls", self.client_url,
                "--advertise-client-urls", self.client_url,
                "--listen-peer-urls", self.peer_url,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-token", token,
                "--initial-cluster-state", "new",
                # Fast elections on loopback; still safe on a busy 2-core machine.
                "--heartbeat-interval", "50", "--election-timeout", "500",
                "--experimental-watch-progress-notify-interval", "2s",
                "--log-level", "error", "--logger", "zap", "--log-outputs", "stderr",
                *self.extra_args,
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def signal(self, signum: int, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=0.5) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False


class EtcdCluster:
    """``size`` etcd members on 127.0.0.1, each with its own data dir under a temp dir."""

    def __init__(
        self, size: int = 1, *, start_timeout: float = 20.0, extra_args: tuple[str, ...] = ()
    ) -> None:
        require_etcd()
        assert size in (1, 3, 5), "an odd number of members"
        self._tmp = tempfile.TemporaryDirectory(prefix="clusterdns-etcd-")
        root = Path(self._tmp.name)
        self.members = [EtcdMember(f"m{i}", root / f"m{i}.etcd", extra_args) for i in range(size)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        self.token = f"clusterdns-test-{os.getpid()}-{next(_tokens)}"
        self.start_timeout = start_timeout

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self) -> EtcdCluster:
        for member in self.members:
            if not member.running:
                member.start(self.initial_cluster, self.token)
        self.wait_healthy()
        return self

    def wait_healthy(self, members: list[int] | None = None, timeout: float | None = None) -> None:
        """Wait until the given members (default: the running ones) report healthy."""
        chosen = [self.members[i] for i in members] if members is not None else None
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while time.monotonic() < deadline:
            waiting = [m for m in (chosen or self.members) if m.running or chosen]
            if all(m.healthy() for m in waiting):
                return
            for member in waiting:
                if member.process is not None and member.process.poll() is not None:
                    raise RuntimeError(f"etcd {member.name} exited:\n{self.log(member.name)}")
            time.sleep(0.05)
        raise TimeoutError(f"etcd not healthy in time:\n{self.log(self.members[0].name)}")

    def log(self, name: str) -> str:
        path = Path(self._tmp.name) / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self, index: int) -> None:
        """SIGKILL one member (no goodbye to peers or clients)."""
        self.members[index].signal(signal.SIGKILL)

    def stop(self, index: int) -> None:
        self.members[index].signal(signal.SIGTERM)

    def restart(self, index: int, *, wait: bool = True) -> None:
        member = self.members[index]
        member.signal(signal.SIGTERM)
        member.start(self.initial_cluster, self.token)
        if wait:
            self.wait_healthy([index])

    def stop_all(self) -> None:
        for member in self.members:
            member.signal(signal.SIGTERM)

    def restart_all(self) -> None:
        self.stop_all()
        self.start()

    def close(self) -> None:
        self.stop_all()
        self._tmp.cleanup()

    def __enter__(self) -> EtcdCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- etcdctl -------------------------------------------------------------------------

    def etcdctl(
        self, *args: str, input: bytes | None = None, timeout: float = 10.0, api: int = 3
    ) -> str:
        """``ETCDCTL_API=3 etcdctl --endpoints <running members> ARGS``; its stdout.
        ``api=2`` talks the v2 API (members started with ``--enable-v2``)."""
        endpoints = ",".join(m.client_url for m in self.members if m.running) or self.endpoints[0]
        env = dict(os.environ, ETCDCTL_API=str(api))
        dial = ["--dial-timeout", "2s"] if api == 3 else []
        done = subprocess.run(
            [ETCDCTL, "--endpoints", endpoints, *dial, *args],
            input=input, capture_output=True, env=env, timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode()

    def revision(self) -> int:
        """The cluster's current revision."""
        out = json.loads(self.etcdctl("endpoint", "status", "-w", "json"))
        return max(int(status["Status"]["header"]["revision"]) for status in out)
