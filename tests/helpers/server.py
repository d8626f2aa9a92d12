"""Run clusterdns for a test: in-process on port 0, or as a subprocess on a free port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from clusterdns.core.instance import WILDCARD
from clusterdns.core.lifecycle import App


@dataclass
class RunningServer:
    app: App
    corefile: Path

    @property
    def port(self) -> int:
        """The UDP/TCP port of the (only) DNS listener."""
        ports = {port for (_, port) in self.app.server.listeners}
        assert len(ports) == 1, f"expected one DNS port, got {sorted(ports)}"
        (configured,) = ports
        hosts = [h for (h, p) in self.app.server.listeners if p == configured]
        host = WILDCARD if WILDCARD in hosts else hosts[0]
        return self.app.server.bound_port(host, configured)

    def http_port(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """The real port of an HTTP endpoint (health, ready, prometheus) set to ``host:port``."""
        return self.app.process.http.bound_port(host, port)

    def plugin(self, name: str) -> object:
        instance = self.app.instance
        assert instance is not None
        for plugin in instance.plugins():
            if plugin.name == name:
                return plugin
        raise KeyError(name)


@asynccontextmanager
async def running_server(
    corefile_text: str, *, tmp_path: Path | None = None
) -> AsyncIterator[RunningServer]:
    """Serve ``corefile_text`` in this event loop on port 0 (every block's port is forced to 0)."""
    with tempfile.TemporaryDirectory(prefix="clusterdns-test-") as scratch:
        folder = tmp_path if tmp_path is not None else Path(scratch)
        path = folder / "Corefile"
        path.write_text(corefile_text)
        app = App(config_path=str(path), dns_port=0)
        await app.start()
        try:
            yield RunningServer(app, path)
        finally:
            await app.shutdown()


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (best effort)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


class ServerProcess:
    """``python -m clusterdns.cli serve --conf <file> --dns-port <free port>`` as a subprocess.

    Use as ``with ServerProcess(text, tmp_path) as server:`` or ``async with``; ``port``
    is the DNS port and ``output()`` what it logged so far.
    """

    def __init__(self, corefile_text: str, tmp_path: Path, *, port: int | None = None) -> None:
        self.corefile = tmp_path / "Corefile"
        self.corefile.write_text(corefile_text)
        self.port = port if port is not None else free_port()
        self.log_path = tmp_path / "clusterdns.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "clusterdns.cli", "serve",
                "--conf", str(self.corefile), "--dns-port", str(self.port),
            ],
            stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Wait until the TCP side of the DNS port accepts connections."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"clusterdns exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"clusterdns did not listen on {self.port}:\n{self.output()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        self.start()
        self.wait_listening()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> ServerProcess:
        self.start()
        await asyncio.to_thread(self.wait_listening)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


def demo_corefile(upstream_port: int) -> str:
    """The standard Kubernetes query path over the packaged demo cluster, with `introspect`
    on a free loopback port and forward to ``upstream_port`` (a loopback responder)."""
    from clusterdns.cli import demo_cluster_dir

    return f"""\
.:0 {{
    introspect 127.0.0.1:0
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        manifests {demo_cluster_dir()}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . 127.0.0.1:{upstream_port}
    cache 30
}}
"""
