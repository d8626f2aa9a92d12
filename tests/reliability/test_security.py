"""Security defaults, each checked against a running server (docs/security.md has the table).

- listeners bind where told: `bind` for DNS, an explicit loopback host for the HTTP
  endpoints (health, ready, prometheus, pprof, introspect), and nothing answers on another
  loopback address (Linux routes all of 127/8 to lo, so 127.0.0.2 stands for "another
  interface");
- UDP replies never exceed the client's EDNS size capped at 4096 (or `bufsize`), nor 512
  without EDNS, for the worst questions a client can ask of the standard Corefile over the
  demo cluster; `any` answers ANY with one HINFO (RFC 8482);
- with `acl`, a client outside the allowed networks gets REFUSED and nothing is forwarded
  for it, including names the cache or the reply memo already hold;
- secrets (bearer tokens, basic-auth passwords, client keys, etcd passwords) never reach
  the logs, error messages, `clusterdns sync`'s output, or the pprof/introspect pages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import yaml

from clusterdns.cli import demo_cluster_dir
from clusterdns.core.http import split_http_address
from clusterdns.plugins.etcd.config import EtcdConfig
from clusterdns.sources.kube.kubeconfig import from_kubeconfig
from tests.helpers.etcd import EtcdCluster, require_etcd
from tests.helpers.kubeapi import KubeAPIServer, service
from tests.helpers.responder import Responder
from tests.helpers.server import RunningServer, free_port, running_server

pytestmark = pytest.mark.timeout(120)

OTHER = "127.0.0.2"  # another local address: a listener bound to 127.0.0.1 must refuse it


# --- binding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plugin", "default", "host"),
    [
        # CoreDNS's defaults, kept: health and ready bind every address (kubelet probes the
        # pod IP); prometheus and pprof bind localhost; introspect is ours, loopback only.
        ("health", ":8080", ""),
        ("ready", ":8181", ""),
        ("prometheus", "localhost:9153", "localhost"),
        ("pprof", "localhost:6053", "localhost"),
        ("introspect", "127.0.0.1:8182", "127.0.0.1"),
    ],
)
def test_http_default_addresses(plugin: str, default: str, host: str) -> None:
    module = importlib.import_module(f"clusterdns.plugins.{plugin}")
    if not hasattr(module, "DEFAULT_ADDRESS"):
        module = importlib.import_module(f"clusterdns.plugins.{plugin}.setup")
    configured = module.DEFAULT_ADDRESS
    assert configured == default
    assert split_http_address(default, default_port=0)[0] == host


def refused(host: str, port: int) -> bool:
    """True when a TCP connection to host:port is refused (nothing listens there)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def http_status(host: str, port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def udp_answered(host: str, port: int) -> bool:
    query = dns.message.make_query("whoami.example.org", "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(query.to_wire(), (host, port))
            sock.recvfrom(65535)
        except (TimeoutError, ConnectionRefusedError):
            return False
    return True


async def test_listeners_bind_only_where_told() -> None:
    ports = {name: free_port() for name in ("health", "ready", "prometheus", "pprof", "intro")}
    corefile = f"""
.:0 {{
    bind 127.0.0.1
    health 127.0.0.1:{ports["health"]}
    ready 127.0.0.1:{ports["ready"]}
    prometheus 127.0.0.1:{ports["prometheus"]}
    pprof 127.0.0.1:{ports["pprof"]}
    introspect 127.0.0.1:{ports["intro"]}
    whoami
}}
"""
    paths = {
        "health": "/health",
        "ready": "/ready",
        "prometheus": "/metrics",
        "pprof": "/debug/pprof/",
        "intro": "/",
    }
    async with running_server(corefile) as server:
        dns_port = server.port
        assert await asyncio.to_thread(udp_answered, "127.0.0.1", dns_port)
        assert not await asyncio.to_thread(udp_answered, OTHER, dns_port)
        assert not refused("127.0.0.1", dns_port)
        assert refused(OTHER, dns_port), "DNS over TCP answered on an address not bound"
        for name, port in ports.items():
            status = await asyncio.to_thread(http_status, "127.0.0.1", port, paths[name])
            assert status == 200, f"{name} on 127.0.0.1:{port} → {status}"
            assert refused(OTHER, port), f"{name} reachable on {OTHER}:{port}"


# --- amplification ---------------------------------------------------------------------------

# A headless Service with many endpoints, each with a hostname: its A and SRV answers are
# the largest the kubernetes plugin builds (SRV with an A record per target in additional).
BIG_ENDPOINTS = 400


def big_headless_manifest() -> str:
    endpoints = "\n".join(
        f'  - addresses: ["10.250.{i // 250}.{i % 250 + 1}"]\n'
        f"    hostname: big-{i}\n"
        f"    conditions:\n"
        f"      ready: true"
        for i in range(BIG_ENDPOINTS)
    )
    return f"""\
apiVersion: v1
kind: Service
metadata:
  name: big
  namespace: default
spec:
  clusterIP: None
  ports:
    - name: http
      port: 80
      protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: big-1
  namespace: default
  labels:
    kubernetes.io/service-name: big
addressType: IPv4
endpoints:
{endpoints}
ports:
  - name: http
    port: 80
    protocol: TCP
"""


def standard_corefile(cluster: Path, upstream: int, *, extra: str = "") -> str:
    """src/clusterdns/Corefile.default, HTTP endpoints on loopback port 0, forward to a
    loopback responder, the manifests source on ``cluster``."""
    text = (Path(demo_cluster_dir()).parent.parent / "Corefile.default").read_text()
    text = (
        text.replace(".:1053 {", ".:0 {" + extra)
        .replace("    health {\n       lameduck 5s\n    }", "    health 127.0.0.1:0")
        .replace("    ready\n", "    ready 127.0.0.1:0\n")
        .replace("prometheus :9153", "prometheus 127.0.0.1:0")
        .replace("{$CLUSTERDNS_DEMO_CLUSTER}", str(cluster))
        .replace("forward . /etc/resolv.conf", f"forward . 127.0.0.1:{upstream}")
    )
    assert "127.0.0.1:0" in text and str(cluster) in text and f":{upstream}" in text
    return text


# Upstream answers as large as a UDP datagram can carry: forward must cut them to the cap.
BIG_TXT = [f'big.example.org. 60 IN TXT "{chr(97 + i % 26) * 250}"' for i in range(60)]
MANY_A = [f"many.example.org. 60 IN A 192.0.2.{i}" for i in range(1, 255)]


@dataclass
class Amplification:
    question: str
    payload: int | None
    query_bytes: int
    reply_bytes: int
    truncated: bool

    @property
    def factor(self) -> float:
        return self.reply_bytes / self.query_bytes


@pytest.fixture
async def standard(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, Responder]]:
    cluster = tmp_path / "cluster"
    shutil.copytree(demo_cluster_dir(), cluster)
    (cluster / "big.yaml").write_text(big_headless_manifest())
    canned = {"big.example.org.": BIG_TXT, "many.example.org.": MANY_A}
    async with (
        Responder(answers=canned) as r,
        running_server(standard_corefile(cluster, r.port)) as server,
    ):
        yield server, r


def ask_raw(port: int, query: dns.message.Message) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        data, _ = sock.recvfrom(65535)
    return data


QUESTIONS = [
    ("big.default.svc.cluster.local", "A"),
    ("big.default.svc.cluster.local", "ANY"),
    ("_http._tcp.big.default.svc.cluster.local", "SRV"),
    ("big.default.svc.cluster.local", "SRV"),
    ("*.default.svc.cluster.local", "SRV"),
    ("kube-dns.kube-system.svc.cluster.local", "ANY"),
    ("_dns._udp.kube-dns.kube-system.svc.cluster.local", "SRV"),
    ("dns-version.cluster.local", "TXT"),
    ("cluster.local", "DNSKEY"),
    ("cluster.local", "TYPE65280"),
    ("big.example.org", "TXT"),
    ("big.example.org", "ANY"),
    ("many.example.org", "A"),
    ("example.org", "DNSKEY"),
]
# Largest first: a reply memoised for a large buffer must still be cut for a small one.
PAYLOADS: list[int | None] = [65535, 4096, 1232, 512, None]


async def test_udp_replies_never_exceed_the_cap(
    standard: tuple[RunningServer, Responder],
) -> None:
    server, _ = standard
    results: list[Amplification] = []
    for name, rdtype in QUESTIONS:
        for payload in PAYLOADS:
            for _ in range(2):  # the second time may come from the memo or the cache
                query = dns.message.make_query(
                    name, rdtype, use_edns=0 if payload else False, payload=payload or 512
                )
                wire = await asyncio.to_thread(ask_raw, server.port, query)
                reply = dns.message.from_wire(wire)
                assert reply.id == query.id
                cap = 512 if payload is None else max(512, min(payload, 4096))
                label = f"{name} {rdtype} payload={payload}"
                assert len(wire) <= cap, f"{label}: {len(wire)} bytes > {cap}"
                if payload is None:
                    assert reply.edns < 0, f"{label}: OPT in a reply to a query without"
                results.append(
                    Amplification(
                        label,
                        payload,
                        len(query.to_wire()),
                        len(wire),
                        bool(reply.flags & dns.flags.TC),
                    )
                )
    # The questions above are the worst there are: make sure they are big enough that the
    # caps were actually reached (a test that never truncates proves nothing).
    assert any(r.truncated and r.payload == 4096 for r in results)
    assert any(r.truncated and r.payload is None for r in results)
    # pytest -s shows the table docs/security.md quotes
    for r in results[::2]:
        print(
            f"{r.question:70} {r.query_bytes:4} → {r.reply_bytes:5} B {r.factor:5.1f}x"
            f"{' TC' if r.truncated else ''}"
        )
    worst = max(results, key=lambda r: r.factor)
    print(f"\nworst amplification: {worst.factor:.1f}x ({worst.question}, {worst.reply_bytes} B)")
    assert worst.reply_bytes <= 4096


async def test_bufsize_lowers_the_cap(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster"
    shutil.copytree(demo_cluster_dir(), cluster)
    (cluster / "big.yaml").write_text(big_headless_manifest())
    async with Responder(answers={"big.example.org.": BIG_TXT}) as r:
        corefile = standard_corefile(cluster, r.port, extra="\n    bufsize 1232")
        async with running_server(corefile) as server:
            for name, rdtype in [
                ("_http._tcp.big.default.svc.cluster.local", "SRV"),
                ("big.example.org", "TXT"),
            ]:
                for _ in range(2):
                    query = dns.message.make_query(name, rdtype, use_edns=0, payload=65535)
                    wire = await asyncio.to_thread(ask_raw, server.port, query)
                    assert len(wire) <= 1232
                    assert dns.message.from_wire(wire).flags & dns.flags.TC


async def test_any_answers_one_hinfo(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster"
    shutil.copytree(demo_cluster_dir(), cluster)
    async with Responder(answers={"big.example.org.": BIG_TXT}) as r:
        corefile = standard_corefile(cluster, r.port, extra="\n    any")
        async with running_server(corefile) as server:
            for name in ("kube-dns.kube-system.svc.cluster.local", "big.example.org"):
                for payload in (None, 4096):
                    query = dns.message.make_query(
                        name, "ANY", use_edns=0 if payload else False, payload=payload or 512
                    )
                    wire = await asyncio.to_thread(ask_raw, server.port, query)
                    reply = dns.message.from_wire(wire)
                    assert reply.rcode() == dns.rcode.NOERROR
                    assert [rrset.rdtype for rrset in reply.answer] == [dns.rdatatype.HINFO]
                    assert len(reply.answer[0]) == 1
                    assert len(wire) < 3 * len(query.to_wire())
            assert not any(q.qtype == "ANY" for q in r.received), "ANY was forwarded"


# --- acl: no recursion for clients outside the allowed networks -----------------------------

ALLOWED = "127.0.0.1"
BLOCKED = "127.0.0.2"


def ask_from(port: int, source: str, name: str, *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, "A", use_edns=0)
    if tcp:
        with socket.create_connection(("127.0.0.1", port), 5, (source, 0)) as sock:
            wire = query.to_wire()
            sock.sendall(len(wire).to_bytes(2, "big") + wire)
            size = int.from_bytes(_recv_exact(sock, 2), "big")
            return dns.message.from_wire(_recv_exact(sock, size))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(5)
        sock.sendto(query.to_wire(), ("127.0.0.1", port))
        data, _ = sock.recvfrom(65535)
    return dns.message.from_wire(data)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


@pytest.mark.parametrize("cache", ["cache 30", ""], ids=["with cache", "without cache"])
async def test_acl_no_recursion_for_blocked_clients(cache: str) -> None:
    async with Responder() as upstream:
        corefile = f"""
.:0 {{
    acl {{
        allow net {ALLOWED}/32
        block
    }}
    {cache}
    forward . 127.0.0.1:{upstream.port}
}}
"""
        async with running_server(corefile) as server:
            port = server.port

            def asked(name: str) -> int:
                return sum(1 for q in upstream.received if q.qname == name + ".")

            # a blocked client's fresh name: REFUSED, nothing sent upstream
            for tcp in (False, True):
                name = f"fresh-{'tcp' if tcp else 'udp'}.example.org"
                reply = await asyncio.to_thread(ask_from, port, BLOCKED, name, tcp=tcp)
                assert reply.rcode() == dns.rcode.REFUSED
                assert not reply.answer
                assert asked(name) == 0
            # an allowed client is forwarded, several times (memo and cache warm up)
            for _ in range(4):
                reply = await asyncio.to_thread(ask_from, port, ALLOWED, "warm.example.org")
                assert reply.rcode() == dns.rcode.NOERROR
                assert reply.answer[0][0].to_text() == "192.0.2.1"
            assert asked("warm.example.org") >= 1
            before = asked("warm.example.org")
            # then the blocked client asks the same, warm name: still REFUSED, no answer
            for tcp in (False, True, False):
                reply = await asyncio.to_thread(
                    ask_from, port, BLOCKED, "warm.example.org", tcp=tcp
                )
                assert reply.rcode() == dns.rcode.REFUSED
                assert not reply.answer
            assert asked("warm.example.org") == before
            # and the allowed client still gets its answer
            reply = await asyncio.to_thread(ask_from, port, ALLOWED, "warm.example.org")
            assert reply.answer


# --- secrets never logged --------------------------------------------------------------------

TOKEN = "tok-SECRET-7f3a9c1e"  # the API server's token
WRONG_TOKEN = "tok-SECRET-wrong-55b1"
PASSWORD = "pw-SECRET-41d2e8"
ETCD_PASSWORD = "etcdpw-SECRET-93c0"


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A client certificate and key, and the key's base64 lines (what must never be seen)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
            "-days", "1", "-subj", "/CN=clusterdns-test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    lines = [line for line in (d / "key.pem").read_text().splitlines() if "-----" not in line]
    return d / "cert.pem", d / "key.pem", lines


def secrets_in(text: str, key_lines: list[str]) -> list[str]:
    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    wanted = [TOKEN, WRONG_TOKEN, PASSWORD, ETCD_PASSWORD, basic, *key_lines]
    # also the first half of each, in case a message cuts a secret short
    return [s for s in wanted if s in text or s[: len(s) // 2 + 4] in text]


def kubeconfig(path: Path, url: str, user: dict[str, str]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "main",
        "clusters": [{"name": "c", "cluster": {"server": url}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "main", "context": {"cluster": "c", "user": "u"}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


def users(cert: Path, key: Path) -> dict[str, dict[str, str]]:
    return {
        "token": {"token": TOKEN},
        "wrong-token": {"token": WRONG_TOKEN},
        "basic-auth": {"username": "admin", "password": PASSWORD},
        "client-key": {"client-certificate": str(cert), "client-key": str(key)},
    }


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "clusterdns.cli", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def until(
    what: str,
    condition: Callable[[], bool],
    process: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 20.0,
) -> None:
    """Poll ``condition`` (in a thread: it may run etcdctl) until it holds; fail naming
    ``what`` after ``timeout`` seconds, or at once when the process has exited."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert process.poll() is None, f"exited with {process.returncode}:\n{logged(log)}"
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}\n{logged(log)}"
        await asyncio.sleep(0.05)


def logged(log: Path) -> str:
    return log.read_text(errors="replace")


async def put_through_faults(
    api: KubeAPIServer, process: subprocess.Popen[bytes], log: Path
) -> None:
    """500s, then the API answering, then unreachable, then back: each phase lasts until
    the process has met it (the API counts its requests; a refusal shows in the log),
    rather than for a fixed time it may or may not have been up for."""
    failed = api.failed_requests  # the API may have served an earlier process
    api.fail_requests(500, 60.0)
    await until("requests answered 500", lambda: api.failed_requests >= failed + 3, process, log)
    api.fail_requests(500, 0.0)
    seen = len(api.auth_headers)
    await until("requests after the 500s", lambda: len(api.auth_headers) >= seen + 3, process, log)
    await api.stop()
    offset = len(logged(log))
    await until(
        "a refused connection logged",
        lambda: "Cannot connect" in logged(log)[offset:],
        process,
        log,
    )
    await api.start()
    seen = len(api.auth_headers)
    await until(
        "a request once the API is back", lambda: len(api.auth_headers) > seen, process, log
    )


@pytest.mark.parametrize("who", ["token", "wrong-token", "basic-auth", "client-key"])
async def test_serve_never_logs_kubeconfig_secrets(
    who: str, tmp_path: Path, client_key: tuple[Path, Path, list[str]]
) -> None:
    cert, key, key_lines = client_key
    async with KubeAPIServer(token=TOKEN, bookmark_interval=0.2) as api:
        api.create(service("mysql", cluster_ip="10.96.0.7"))
        config = kubeconfig(tmp_path / "kubeconfig", api.url, users(cert, key)[who])
        corefile = tmp_path / "Corefile"
        corefile.write_text(
            f".:{free_port()} {{\n    errors\n    log\n"
            f"    kubernetes cluster.local {{\n        kubeconfig {config} main\n    }}\n}}\n"
        )
        log = tmp_path / "serve.log"
        process = spawn(["serve", "--conf", str(corefile), "--log-level", "debug"], log)
        try:
            await put_through_faults(api, process, log)
        finally:
            await asyncio.to_thread(stop, process)
        sent = [h for h in api.auth_headers if h]
    text = log.read_text(errors="replace")
    if who == "token":
        assert f"Bearer {TOKEN}" in sent  # the secret was used, and succeeded
        assert api.list_requests
    if who == "basic-auth":
        assert any(h.startswith("Basic ") for h in sent)
    assert "debug" in text.lower() or len(text) > 0
    assert not secrets_in(text, key_lines), text[-3000:]


async def test_sync_never_logs_secrets(
    tmp_path: Path, client_key: tuple[Path, Path, list[str]]
) -> None:
    require_etcd()
    cert, key, key_lines = client_key
    with EtcdCluster(size=1) as etcd:
        etcd.etcdctl("user", "add", "root:rootpw")
        etcd.etcdctl("user", "add", f"sync:{ETCD_PASSWORD}")
        etcd.etcdctl("role", "add", "skydns")
        etcd.etcdctl("role", "grant-permission", "skydns", "--prefix=true", "readwrite", "/")
        etcd.etcdctl("user", "grant-role", "sync", "skydns")
        etcd.etcdctl("auth", "enable")
        async with KubeAPIServer(token=TOKEN, bookmark_interval=0.2) as api:
            api.create(service("mysql", cluster_ip="10.96.0.7"))
            texts: list[str] = []

            def records_written() -> bool:
                listed = etcd.etcdctl("--user", "root:rootpw", "get", "/skydns", "--prefix")
                return "mysql" in listed

            for who, password in [("basic-auth", "not-" + ETCD_PASSWORD), ("token", ETCD_PASSWORD)]:
                config = kubeconfig(tmp_path / f"kc-{who}", api.url, users(cert, key)[who])
                log = tmp_path / f"sync-{who}.log"
                process = spawn(
                    [
                        "sync", "--kubeconfig", str(config), "--etcd", *etcd.endpoints,
                        "--credentials", "sync", password, "--lease-ttl", "2s",
                        "--log-level", "debug",
                    ],
                    log,
                )  # fmt: skip
                try:
                    await put_through_faults(api, process, log)
                    if password == ETCD_PASSWORD:
                        # the good run writes the records before it is stopped
                        await until("the records in etcd", records_written, process, log)
                finally:
                    await asyncio.to_thread(stop, process)
                texts.append(log.read_text(errors="replace"))
            # the good run wrote the records: the credentials were used
            assert "mysql" in etcd.etcdctl("--user", "root:rootpw", "get", "/skydns", "--prefix")
    for text in texts:
        assert not secrets_in(text, key_lines), text[-3000:]


async def test_etcd_plugin_never_logs_its_password(tmp_path: Path) -> None:
    """A server with the wrong password and one with the right one (the user has no role,
    so etcd denies it the read) side by side: etcd turns each down, then goes away and
    comes back; queries meanwhile. Two at once because each waits out the plugin's 5 s
    for a first list before its queries are answered."""
    require_etcd()
    with EtcdCluster(size=1) as etcd:
        etcd.etcdctl("user", "add", "root:rootpw")
        etcd.etcdctl("user", "add", f"reader:{ETCD_PASSWORD}")
        etcd.etcdctl("auth", "enable")
        runs: list[tuple[int, Path, subprocess.Popen[bytes]]] = []
        try:
            for n, password in enumerate(("not-" + ETCD_PASSWORD, ETCD_PASSWORD)):
                port = free_port()
                corefile = tmp_path / f"Corefile-{n}"
                corefile.write_text(
                    f".:{port} {{\n    errors\n    log\n    etcd skydns.local {{\n"
                    f"        endpoint {' '.join(etcd.endpoints)}\n"
                    f"        credentials reader {password}\n    }}\n}}\n"
                )
                log = tmp_path / f"serve-{n}.log"
                runs.append((port, log, spawn(["serve", "--conf", str(corefile), *DEBUG], log)))
            # etcd checked the credentials it was given
            for (_, log, process), refusal in zip(
                runs, ["authentication failed", "permission denied"], strict=True
            ):
                await until(f"etcd's {refusal!r} logged", shows(log, refusal), process, log)
            offsets = [len(logged(log)) for _, log, _ in runs]
            etcd.stop(0)
            for (_, log, process), offset in zip(runs, offsets, strict=True):
                await until(
                    "a refused connection to etcd logged",
                    shows(log, "Cannot connect", offset),
                    process,
                    log,
                )
            for port, _, _ in runs:
                for name in ("a.skydns.local", "a.skydns.local", "b.skydns.local"):
                    with contextlib.suppress(Exception):
                        query = dns.message.make_query(name, "A")
                        await asyncio.to_thread(ask_raw, port, query)
            etcd.restart(0)
        finally:
            for _, _, process in runs:
                await asyncio.to_thread(stop, process)
        for _, log, _ in runs:
            text = logged(log)
            assert not secrets_in(text, []), text[-3000:]


DEBUG = ["--log-level", "debug"]


def shows(log: Path, text: str, offset: int = 0) -> Callable[[], bool]:
    """A condition for until(): ``text`` logged past ``offset``."""
    return lambda: text in logged(log)[offset:]


async def test_pprof_and_introspect_pages_hold_no_token(tmp_path: Path) -> None:
    pprof, intro = free_port(), free_port()
    async with KubeAPIServer(token=TOKEN, bookmark_interval=0.2) as api:
        api.create(service("mysql", cluster_ip="10.96.0.7"))
        config = kubeconfig(tmp_path / "kubeconfig", api.url, {"token": TOKEN})
        corefile = f"""
.:0 {{
    pprof 127.0.0.1:{pprof}
    introspect 127.0.0.1:{intro}
    kubernetes cluster.local {{
        kubeconfig {config} main
    }}
}}
"""
        async with running_server(corefile):
            await asyncio.sleep(1.0)
            pages = [
                f"http://127.0.0.1:{pprof}/debug/pprof/{page}"
                for page in ("", "goroutine?debug=2", "threads", "heap?n=1000", "gc")
            ] + [
                f"http://127.0.0.1:{intro}{page}"
                for page in (
                    "/",
                    "/records",
                    "/cache",
                    "/explain?name=mysql.default.svc.cluster.local",
                )
            ]
            for url in pages:
                body = await asyncio.to_thread(fetch_text, url)
                assert TOKEN not in body, url
            assert f"Bearer {TOKEN}" in api.auth_headers


def fetch_text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode(errors="replace"))
    except urllib.error.HTTPError as err:
        return str(err.read().decode(errors="replace"))


@pytest.mark.parametrize("who", ["token", "basic-auth", "client-key"])
def test_connection_repr_holds_no_secret(
    who: str, tmp_path: Path, client_key: tuple[Path, Path, list[str]]
) -> None:
    """A connection or its credentials formatted into a message shows no secret."""
    cert, key, key_lines = client_key
    config = kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1", users(cert, key)[who])
    connection = from_kubeconfig(config)
    text = f"{connection!r} {connection.credentials!r} {connection}"
    assert not secrets_in(text, key_lines), text
    etcd = EtcdConfig(zones=("skydns.local.",), credentials=("reader", ETCD_PASSWORD))
    assert ETCD_PASSWORD not in repr(etcd)


# --- pods verified ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "name", "expected"),
    [
        ("insecure", "169-254-169-254.default.pod.cluster.local", ["169.254.169.254"]),
        ("verified", "169-254-169-254.default.pod.cluster.local", []),
        ("verified", "10-244-1-20.default.pod.cluster.local", ["10.244.1.20"]),  # web-0
        ("disabled", "10-244-1-20.default.pod.cluster.local", []),
    ],
    ids=lambda v: str(v),
)
async def test_pods_verified_answers_only_real_pods(
    mode: str, name: str, expected: list[str]
) -> None:
    corefile = f"""
.:0 {{
    kubernetes cluster.local {{
        manifests {demo_cluster_dir()}
        pods {mode}
    }}
}}
"""
    async with running_server(corefile) as server:
        query = dns.message.make_query(name, "A")
        reply = dns.message.from_wire(await asyncio.to_thread(ask_raw, server.port, query))
        got = [rdata.to_text() for rrset in reply.answer for rdata in rrset]
        assert got == expected
        if not expected:
            assert reply.rcode() == dns.rcode.NXDOMAIN
