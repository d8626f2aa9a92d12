"""The servers a benchmark runs: clusterdns, knotd and dnsmasq, with configs and process control.

Every server is a subprocess on 127.0.0.1, optionally pinned with ``taskset``; ``start()``
returns once it answers a probe query, ``stop()`` sends SIGTERM then SIGKILL after a bound.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.server import free_port  # noqa: E402  (one helper for tests and bench)


def probe(port: int, name: str, qtype: str = "A", timeout: float = 0.3) -> int | None:
    """The rcode of one UDP query, None on timeout."""
    query = dns.message.make_query(name, dns.rdatatype.from_text(qtype))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
            data, _ = sock.recvfrom(65535)
        except OSError:
            return None
    return int(dns.message.from_wire(data).rcode())


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants."""
    total = rss_kib(pid)
    for child in children(pid):
        total += tree_rss_kib(child)
    return total


def pinned(cmd: list[str], cores: str | None) -> list[str]:
    return ["taskset", "-c", cores, *cmd] if cores else cmd


@dataclass
class Server:
    """A server subprocess; subclasses write the config and say how to probe it."""

    label: str
    cores: str | None = "0"
    workdir: Path = field(default_factory=lambda: OUT / "run")
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_after: float = 0.0
    probe_name: str = "svc-0.ns-0.svc.cluster.local"

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files into self.workdir (port already chosen)."""

    def is_ready(self) -> bool:
        return probe(self.port, self.probe_name) == 0

    def start(self, timeout: float = 120.0) -> Server:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.prepare()
        log = (self.workdir / f"{self.label}.log").open("wb")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            pinned(self.command(), self.cores),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited with {self.proc.returncode}; see "
                    f"{self.workdir / (self.label + '.log')}"
                )
            if self.is_ready():
                self.ready_after = time.monotonic() - self.started_at
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"{self.label} not ready after {timeout}s")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_kib(self) -> int:
        return tree_rss_kib(self.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- clusterdns ----------------------------------------------------------------------------

KUBERNETES_COREFILE = """\
.:{port} {{
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        {source}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus 127.0.0.1:{metrics}
    forward . {upstream}
    cache 30
    loop
    reload
    loadbalance
}}
"""

FORWARD_COREFILE = """\
.:{port} {{
    errors
    ready 127.0.0.1:{ready}
    prometheus 127.0.0.1:{metrics}
    forward . {upstream}
    cache 30
}}
"""

STANDARD_PLUGINS = (
    "errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache", "loop",
    "reload", "loadbalance",
)  # fmt: skip


def udp_modes() -> tuple[list[str], str | None]:
    """The ``--udp-mode`` choices of ``clusterdns serve`` and its default (from its parser)."""
    code = (
        "import json, argparse\n"
        "from clusterdns.cli import build_parser\n"
        "p = build_parser()\n"
        "sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))\n"
        "serve = sub.choices['serve']\n"
        "act = next((a for a in serve._actions if '--udp-mode' in a.option_strings), None)\n"
        "print(json.dumps([list(act.choices), act.default] if act else [[], None]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    modes, default = json.loads(out.stdout)
    return list(modes), default


def implemented_plugins() -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "clusterdns.cli", "plugins"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return out.stdout.split()


def standard_corefile(
    port: int,
    *,
    source: str,
    upstream: str,
    ready: int,
    health: int,
    metrics: int,
    pods: str = "insecure",
    available: list[str] | None = None,
) -> tuple[str, list[str]]:
    """The standard Kubernetes Corefile, less the plugins clusterdns lacks (and which)."""
    text = KUBERNETES_COREFILE.format(
        port=port, source=source, upstream=upstream, ready=ready, health=health, metrics=metrics
    ).replace("pods insecure", f"pods {pods}")
    available = implemented_plugins() if available is None else available
    missing = [p for p in STANDARD_PLUGINS if p not in available]
    # Every directive we may drop is a one-liner inside the server block.
    lines = [
        line
        for line in text.splitlines()
        if not (
            line.startswith("    ") and not line.startswith("     ") and line.split()[0] in missing
        )
    ]
    return "\n".join(lines) + "\n", missing


@dataclass
class ClusterDNS(Server):
    label: str = "clusterdns"
    source: str = ""  # "manifests DIR" or "endpoint URL": the kubernetes block's source line
    upstream: str = "127.0.0.1:9"  # forward target (port 9, discard: nothing answers)
    corefile_kind: str = "kubernetes"  # or "forward": forward + cache only
    pods_mode: str = "insecure"
    missing: list[str] = field(default_factory=list)  # standard plugins we lack
    udp_mode: str | None = None  # None: the server's default
    workers: int = 1
    loop: str = "auto"
    extra_env: dict[str, str] = field(default_factory=dict)
    ready_port: int = 0
    health_port: int = 0
    metrics_port: int = 0
    wait_ready_endpoint: bool = True

    def prepare(self) -> None:
        self.ready_port = self.ready_port or free_port()
        self.health_port = self.health_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        if self.corefile_kind == "forward":
            text = FORWARD_COREFILE.format(
                port=self.port, ready=self.ready_port, metrics=self.metrics_port,
                upstream=self.upstream,
            )  # fmt: skip
        else:
            text, self.missing = standard_corefile(
                self.port,
                source=self.source,
                upstream=self.upstream,
                ready=self.ready_port,
                health=self.health_port,
                metrics=self.metrics_port,
                pods=self.pods_mode,
            )
        (self.workdir / f"{self.label}.Corefile").write_text(text)

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "clusterdns.cli", "serve",
            "--conf", str(self.workdir / f"{self.label}.Corefile"),
            "--loop", self.loop, "--log-level", "warning",
        ]  # fmt: skip
        if self.udp_mode is not None:
            cmd += ["--udp-mode", self.udp_mode]
        if self.workers > 1:
            cmd += ["--workers", str(self.workers)]
        return cmd

    def ready_status(self) -> int | None:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ready_port}/ready", timeout=0.5
            ) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)
        except OSError:
            return None

    def is_ready(self) -> bool:
        if self.wait_ready_endpoint and self.ready_status() != 200:
            return False
        return probe(self.port, self.probe_name) is not None


# --- knot ----------------------------------------------------------------------------------

KNOT_CONF = """\
server:
    listen: 127.0.0.1@{port}
    rundir: "{dir}"
    udp-workers: {workers}
    tcp-workers: {workers}
    background-workers: 1
database:
    storage: "{dir}/knot-db"
log:
  - target: stderr
    any: warning
template:
  - id: default
    storage: "{dir}"
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
{zones}
"""


@dataclass
class Knot(Server):
    label: str = "knot"
    zones: dict[str, Path] = field(default_factory=dict)  # domain → zone file
    workers: int = 1

    def prepare(self) -> None:
        zones = "\n".join(f'  - domain: {d}\n    file: "{f}"' for d, f in self.zones.items())
        conf = KNOT_CONF.format(port=self.port, dir=self.workdir, workers=self.workers, zones=zones)
        (self.workdir / "knot.conf").write_text(conf)

    def command(self) -> list[str]:
        return ["knotd", "-c", str(self.workdir / "knot.conf")]


# --- dnsmasq -------------------------------------------------------------------------------


@dataclass
class Dnsmasq(Server):
    label: str = "dnsmasq"
    hosts: Path | None = None
    srv_conf: Path | None = None
    upstream: str | None = None  # "127.0.0.1#PORT": forward and cache instead of --no-resolv
    local: tuple[str, ...] = ("cluster.local", "10.in-addr.arpa")
    cache_size: int = 10000

    def prepare(self) -> None:
        lines = [
            f"port={self.port}", "listen-address=127.0.0.1", "bind-interfaces", "no-hosts",
            "no-resolv", "user=root", "group=root", "pid-file=", "local-ttl=30",
            f"cache-size={self.cache_size}", "dns-forward-max=1000",
        ]  # fmt: skip
        if self.hosts is not None:
            lines.append(f"addn-hosts={self.hosts}")
        if self.srv_conf is not None:
            lines.append(f"conf-file={self.srv_conf}")
        for domain in self.local:
            lines.append(f"local=/{domain}/")
        if self.upstream is not None:
            lines.append(f"server={self.upstream}")
        (self.workdir / "dnsmasq.conf").write_text("\n".join(lines) + "\n")

    def command(self) -> list[str]:
        return ["dnsmasq", "-k", f"--conf-file={self.workdir / 'dnsmasq.conf'}"]


# --- an upstream for forward/cache ---------------------------------------------------------


def write_example_zone(folder: Path, names: int) -> Path:
    """example.org with ``names`` A records (host-i), served by a knotd upstream."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "example.org.zone"
    with path.open("w") as out:
        out.write("$ORIGIN example.org.\n$TTL 300\n")
        out.write("@ IN SOA ns.example.org. hostmaster.example.org. 1 7200 1800 86400 300\n")
        out.write("@ IN NS ns\nns IN A 127.0.0.1\n")
        for i in range(names):
            out.write(f"host-{i} IN A 192.0.{(i >> 8) & 255}.{i & 255}\n")
    return path


@dataclass
class PythonEcho(Server):
    """bench/echo.py: the CPython one-socket floor (echoes each query with QR set)."""

    label: str = "python-echo"

    def command(self) -> list[str]:
        return [sys.executable, str(ROOT / "bench" / "echo.py"), str(self.port)]
