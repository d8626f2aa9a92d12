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

import datetime
import ipaddress
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
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


@dataclass(frozen=True)
class TLSFiles:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        context.load_cert_chain(str(self.client_cert), str(self.client_key))
        return context


def make_tls_files(directory: Path) -> TLSFiles:
    """Generate the files with ``cryptography`` (a test dependency)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    pem = serialization.Encoding.PEM

    def certificate(
        name: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
        usage: list[x509.ObjectIdentifier] | None,
    ) -> x509.Certificate:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer[0] if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), True)
        )
        if usage is None:  # the CA
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usage), False)
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                False,
            )
        return builder.sign(issuer[1] if issuer else key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = certificate("clusterdns test ca", ca_key, None, None)
    files = TLSFiles(
        directory / "ca.pem", directory / "server.pem", directory / "server-key.pem",
        directory / "client.pem", directory / "client-key.pem",
    )  # fmt: skip
    files.ca.write_bytes(ca_cert.public_bytes(pem))
    server, client = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
    # The server's certificate is a client one too: etcd's JSON gateway dials the member's
    # own gRPC port with it, and --client-cert-auth checks it like any client's.
    for cert_path, key_path, usage in (
        (files.server_cert, files.server_key, [server, client]),
        (files.client_cert, files.client_key, [client]),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(cert_path.stem, key, (ca_cert.subject, ca_key), usage)
        cert_path.write_bytes(cert.public_bytes(pem))
        key_path.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
    return files


class EtcdMember:
    def __init__(
        self,
        name: str,
        data_dir: Path,
        extra_args: tuple[str, ...] = (),
        tls: TLSFiles | None = None,
    ) -> None:
        self.name = name
        self.extra_args = extra_args
        self.tls = tls
        self.data_dir = data_dir
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

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
                "--experimental-watch-progress-notify-interval", "1s",
                "--log-level", "error", "--logger", "zap", "--log-outputs", "stderr",
                *self.extra_args,
                *self._tls_args(),
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        return [
            "--cert-file", str(self.tls.server_cert), "--key-file", str(self.tls.server_key),
            "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth",
        ]  # fmt: skip

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
            context = self.tls.client_context() if self.tls else None
            url = f"{self.client_url}/health"
            with urllib.request.urlopen(url, timeout=0.5, context=context) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False


class EtcdCluster:
    """``size`` etcd members on 127.0.0.1, each with its own data dir under a temp dir."""

    def __init__(
        self,
        size: int = 1,
        *,
        start_timeout: float = 20.0,
        extra_args: tuple[str, ...] = (),
        tls: bool = False,
    ) -> None:
        require_etcd()
        assert size in (1, 3, 5), "an odd number of members"
        self._tmp = tempfile.TemporaryDirectory(prefix="clusterdns-etcd-")
        root = Path(self._tmp.name)
        # With tls: clients must present a certificate signed by the test CA (peers do not).
        self.tls = make_tls_files(root) if tls else None
        self.members = [
            EtcdMember(f"m{i}", root / f"m{i}.etcd", extra_args, self.tls) for i in range(size)
        ]
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
        if self.tls is not None:
            dial += ["--cacert", str(self.tls.ca), "--cert", str(self.tls.client_cert),
                     "--key", str(self.tls.client_key)]  # fmt: skip
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
