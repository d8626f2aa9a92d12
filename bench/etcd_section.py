"""Section 9 of bench/run.py (issue 11): the etcd plugin and ``clusterdns sync`` on a real etcd.

    python bench/run.py --only etcd [--quick] [--big N]

Two parts, each with a peer in the same run:

* **QPS**: the generated cluster's Service names (bench/fixture.py) written into a real
  single-member etcd as SkyDNS keys, served by ``clusterdns serve`` with the ``etcd`` plugin,
  against section 1's clusterdns (``kubernetes`` plugin, manifests) and knot on the same
  names: A questions only, unique (every name once, random letter case, fresh servers) then
  warm (two unmeasured passes, then alternated rounds).
* **Propagation**: the API test server → two ``clusterdns sync`` (leader and standby) →
  etcd → two ``clusterdns serve`` replicas with the etcd plugin; for each of N Services
  created one at a time, the time until both replicas answer it. A clusterdns with the
  kubernetes plugin watching the same API server is polled too, as the direct path.

This module does not import bench/run.py (run.py imports it): the helpers it shares with
the other sections (Rounds, table, fmt, median, cpu_seconds, BIG) come from the module that
defined the Context it is given, i.e. the running run.py, so ``--big`` applies here too.
etcd is started as tests/helpers/etcd.py starts it (loopback ports, a temporary data dir,
/health), with the few lines copied: bench/ does not import tests/ for it.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import dns.message
import dns.rdatatype
from bench import load
from bench.fixture import SERVICE_BASE, ZONE, Cluster, ip, write_a_queries
from bench.peers import OUT, ClusterDNS, Knot, Server, implemented_plugins, tree_rss_kib

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
HERE = OUT / "etcd"  # this section's fixtures, dnsperf output and logs
SERVER_CORES = "0"  # as run.py: servers on core 0, dnsperf on core 1
PATH = "/skydns"
ETCD_PREFIX = PATH + "/" + "/".join(reversed(ZONE.split(".")))  # /skydns/local/cluster
TXN_OPS = 1000  # puts per transaction when loading (etcd started with --max-txn-ops 1000)

_handed_out: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1, never the same twice in a process (etcd binds it only
    later). As tests/helpers/etcd.py picks them."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port")


# --- etcd: one member on loopback ----------------------------------------------------------


@dataclass
class EtcdMember(Server):
    """A single-member etcd (Debian's etcd-server 3.4) with a temporary data dir."""

    label: str = "etcd"
    cores: str | None = None  # not pinned: idle during the QPS runs
    peer_port: int = 0
    data_dir: Path | None = None
    probe_name: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        self.port = self.port or free_port()
        self.peer_port = self.peer_port or free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="clusterdns-bench-etcd-"))

    def command(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            ETCD, "--name", "bench", "--data-dir", str(self.data_dir / "bench.etcd"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"bench={peer}", "--initial-cluster-state", "new",
            "--initial-cluster-token", f"clusterdns-bench-{self.port}",
            "--heartbeat-interval", "50", "--election-timeout", "500",
            "--max-txn-ops", str(TXN_OPS),
            "--log-level", "error", "--logger", "zap", "--log-outputs", "stderr",
        ]  # fmt: skip

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError):
            return False

    def start(self, timeout: float = 60.0) -> Server:
        self.port = self.port or free_port()  # before Server.start picks one
        return super().start(timeout=timeout)

    def stop(self) -> None:
        super().stop()
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- the v3 JSON gateway -----------------------------------------------------------------

    def call(self, path: str, body: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}{path}", data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            answer: dict[str, Any] = json.loads(resp.read())
        if "error" in answer or "code" in answer:
            raise RuntimeError(f"etcd {path}: {answer}")
        return answer

    def put_all(self, items: list[tuple[str, str]]) -> float:
        """Put every (key, value), TXN_OPS per transaction; seconds taken."""
        started = time.perf_counter()
        for start in range(0, len(items), TXN_OPS):
            ops = [
                {"requestPut": {"key": _b64(key), "value": _b64(value)}}
                for key, value in items[start : start + TXN_OPS]
            ]
            answer = self.call("/v3/kv/txn", {"success": ops})
            if not answer.get("succeeded"):
                raise RuntimeError(f"etcd txn failed: {answer}")
        return time.perf_counter() - started

    def count(self, prefix: str) -> int:
        """Keys under ``prefix`` (count only)."""
        key = prefix.encode()
        end = key[:-1] + bytes([key[-1] + 1])
        answer = self.call(
            "/v3/kv/range",
            {"key": _b64(key), "range_end": _b64(end), "count_only": True},
        )
        return int(answer.get("count", 0))


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def skydns_items(cluster: Cluster) -> list[tuple[str, str]]:
    """/skydns/local/cluster/svc/<ns>/<svc> = {"host": ClusterIP, "ttl": 30} per Service."""
    items = []
    for i in range(cluster.services):
        name, ns, cluster_ip = cluster.service(i)
        value = json.dumps({"host": cluster_ip, "ttl": 30}, separators=(",", ":"))
        items.append((f"{ETCD_PREFIX}/svc/{ns}/{name}", value))
    return items


# --- clusterdns with the etcd plugin -------------------------------------------------------

# The standard Corefile (bench/peers.py) with the kubernetes block replaced by an etcd block:
# the same plugins around it, so the record plugin is the only difference.
ETCD_COREFILE = """\
.:{port} {{
    errors
    health 127.0.0.1:{health}
    ready 127.0.0.1:{ready}
    etcd {zone} {{
        path {path}
        endpoint {endpoint}
    }}
    prometheus 127.0.0.1:{metrics}
    forward . {upstream}
    cache 30
    loop
    reload
    loadbalance
}}
"""


@dataclass
class EtcdClusterDNS(ClusterDNS):
    """``clusterdns serve`` whose records come from the etcd plugin."""

    label: str = "clusterdns-etcd"
    etcd_url: str = ""
    available: list[str] = field(default_factory=list)

    def prepare(self) -> None:
        self.ready_port = self.ready_port or free_port()
        self.health_port = self.health_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        text = ETCD_COREFILE.format(
            port=self.port, health=self.health_port, ready=self.ready_port, zone=ZONE,
            path=PATH, endpoint=self.etcd_url, metrics=self.metrics_port,
            upstream=self.upstream,
        )  # fmt: skip
        available = self.available or implemented_plugins()
        # Drop the one-line directives clusterdns lacks, as peers.standard_corefile does.
        self.missing = [
            line.split()[0]
            for line in text.splitlines()
            if line.startswith("    ") and not line.startswith("     ")
            and line.split()[0] not in available and line.split()[0] != "}"
        ]  # fmt: skip
        lines = [
            line
            for line in text.splitlines()
            if not (
                line.startswith("    ")
                and not line.startswith("     ")
                and line.split()[0] in self.missing
            )
        ]
        (self.workdir / f"{self.label}.Corefile").write_text("\n".join(lines) + "\n")


@dataclass
class Process(Server):
    """A long-running command that is not a DNS server (``clusterdns sync``)."""

    label: str = "sync"
    cores: str | None = None
    argv: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        return self.argv

    def is_ready(self) -> bool:
        return True  # readiness is checked on etcd's side

    def log_text(self) -> str:
        path = self.workdir / f"{self.label}.log"
        return path.read_text(errors="replace") if path.exists() else ""


# --- small helpers -------------------------------------------------------------------------


def a_queries(cluster: Cluster, path: Path, count: int = 100_000, seed: int = 1) -> Path:
    """Section 1's generator, A questions only: ``count`` Services drawn with seed 1."""
    rng = random.Random(seed)
    names = [cluster.fqdn(rng.randrange(cluster.services)) for _ in range(count)]
    return write_a_queries(path, names)


def unique_files(cluster: Cluster, folder: Path, rounds: int, count: int) -> list[Path]:
    """``count`` Services drawn once, in random order and random letter case, split into
    ``rounds`` disjoint files: no name is asked twice, in any round."""
    rng = random.Random(2000)
    order = list(range(cluster.services))
    rng.shuffle(order)
    chosen = order[:count]
    return [
        _unique_file(cluster, folder / f"round{n}.txt", chosen[n::rounds], rng)
        for n in range(rounds)
    ]


def _unique_file(cluster: Cluster, path: Path, services: list[int], rng: random.Random) -> Path:
    lines = []
    for i in services:
        name = cluster.fqdn(i)
        lines.append("".join(c.upper() if rng.random() < 0.5 else c for c in name) + " A")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def a_addresses(port: int, name: str, timeout: float = 1.0) -> tuple[int | None, set[str], int]:
    """(rcode, A addresses, TTL of the first A) of one UDP query; rcode None on timeout."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query.to_wire(), ("127.0.0.1", port))
            data, _ = sock.recvfrom(65535)
        except OSError:
            return None, set(), 0
    msg = dns.message.from_wire(data)
    found: set[str] = set()
    ttl = 0
    for rrset in msg.answer:
        if rrset.rdtype == dns.rdatatype.A:
            found.update(rr.address for rr in rrset)
            ttl = ttl or rrset.ttl
    return int(msg.rcode()), found, ttl


def poll_all(ports: list[int], name: str, want: str | None, deadline: float) -> list[float | None]:
    """Ask every port for ``name`` A, round robin, until each answers as wanted (``want`` an
    address: it is among the A records; None: NXDOMAIN); per port, the perf_counter time it
    first did, None if not by ``deadline``."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    wire = bytearray(query.to_wire())
    seen: list[float | None] = [None] * len(ports)
    qid = random.randrange(0x10000)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.perf_counter() < deadline and None in seen:
            for slot, port in enumerate(ports):
                if seen[slot] is not None:
                    continue
                qid = (qid + 1) & 0xFFFF
                wire[0:2] = qid.to_bytes(2, "big")
                try:
                    sock.sendto(bytes(wire), ("127.0.0.1", port))
                    for _ in range(20):  # skip late replies to earlier questions
                        data, _ = sock.recvfrom(4096)
                        if data[:2] == wire[0:2]:
                            break
                    else:
                        continue
                except OSError:
                    continue
                now = time.perf_counter()
                msg = dns.message.from_wire(data)
                if want is None:
                    ok = msg.rcode() == 3
                else:
                    ok = any(
                        rr.address == want for rrset in msg.answer for rr in rrset
                        if rrset.rdtype == dns.rdatatype.A
                    )  # fmt: skip
                if ok:
                    seen[slot] = now
    return seen


def metrics(server: ClusterDNS, names: tuple[str, ...]) -> dict[str, float]:
    """Each named series from /metrics, summed over its labels (nan if absent)."""
    found = dict.fromkeys(names, float("nan"))
    try:
        url = f"http://127.0.0.1:{server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return found
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in found:
            value = float(line.rsplit(" ", 1)[1])
            found[name] = value if found[name] != found[name] else found[name] + value
    return found


ETCD_METRICS = (
    "clusterdns_etcd_synced", "clusterdns_etcd_keys", "clusterdns_etcd_errors_total",
    "clusterdns_etcd_relists_total", "clusterdns_etcd_generation",
)  # fmt: skip


# --- the section ---------------------------------------------------------------------------


def section_etcd(ctx: Any) -> str:
    """9. The etcd plugin against the kubernetes plugin and knot; Kubernetes → etcd → DNS."""
    run = sys.modules[type(ctx).__module__]  # the running bench/run.py
    HERE.mkdir(parents=True, exist_ok=True)
    load_text = f"`uptime` at the start: {_uptime()}"
    parts = []
    for title, part in (
        ("QPS: the etcd plugin, the kubernetes plugin and knot on the same names", _qps),
        ("Propagation: Kubernetes → clusterdns sync → etcd → every DNS replica", _propagation),
    ):
        try:
            text = part(ctx, run)
        except Exception:
            print(traceback.format_exc(), flush=True)
            text = "**This part failed:**\n\n```\n" + traceback.format_exc() + "```\n"
        parts.append(f"#### {title}\n\n{text}")
    load_text += f"; at the end: {_uptime()}"
    return (
        "etcd: Debian's etcd-server "
        + _etcd_version()
        + ", one member on loopback ports with a temporary data dir, not pinned. "
        + load_text
        + " (this machine has 2 cores; other benchmarks may have run at the same time, so "
        "only ratios measured in the same rounds mean anything).\n\n" + "\n".join(parts)
    )


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"


def _etcd_version() -> str:
    try:
        out = subprocess.run([ETCD, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0].split(":", 1)[1].strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


def _start(ctx: Any, key: str, server: Server, timeout: float = 1200) -> Server:
    """Started and kept in ctx.servers (so the run stops it even if this section fails)."""
    return ctx.server(key, lambda: server, timeout=timeout)


QPS_HEADER = [
    "server", "median QPS", "range", "mean ms", "p99 ms", "server CPU µs/query",
    "lost (all rounds)", "rcodes (all rounds)", "QPS ratio vs kubernetes plugin",
    "QPS ratio vs knot",
]  # fmt: skip
ETCD_LABEL = "clusterdns, etcd plugin"
K8S_LABEL = "clusterdns, kubernetes plugin"


QPS_KEYS = ("etcd-qps-cd-etcd", "etcd-qps-cd-k8s", "etcd-qps-knot", "etcd-qps-etcd")


def _qps(ctx: Any, run: ModuleType) -> str:
    try:
        return _qps_measured(ctx, run)
    finally:
        ctx.stop(*QPS_KEYS)


def _qps_measured(ctx: Any, run: ModuleType) -> str:
    big: int = run.BIG
    cluster = Cluster(big)
    base = HERE / "fixtures" / cluster.tag  # not OUT/fixtures: other runs may write those
    started = time.perf_counter()
    manifests = cluster.write_manifests(base / "manifests")
    zones = cluster.write_knot_zones(base / "knot")
    queries = a_queries(cluster, base / "a-queries.txt")
    print(f"  etcd: fixture {cluster.tag}: {time.perf_counter() - started:.1f}s", flush=True)

    etcd = EtcdMember(label="etcd-qps")
    _start(ctx, "etcd-qps-etcd", etcd, timeout=60)
    items = skydns_items(cluster)
    put_seconds = etcd.put_all(items)
    stored = etcd.count(ETCD_PREFIX + "/")
    print(f"  etcd: {stored:,} keys written in {put_seconds:.1f}s", flush=True)

    servers: list[tuple[str, Server]] = []
    ready: dict[str, float] = {}
    for label, key, server in (
        (ETCD_LABEL, "etcd-qps-cd-etcd", EtcdClusterDNS(etcd_url=etcd.url, cores=SERVER_CORES)),
        (K8S_LABEL, "etcd-qps-cd-k8s",
         ClusterDNS(source=f"manifests {manifests}", cores=SERVER_CORES)),
        ("knot", "etcd-qps-knot", Knot(zones=zones, cores=SERVER_CORES)),
    ):  # fmt: skip
        started_server = _start(ctx, key, server)
        servers.append((label, started_server))
        ready[label] = started_server.ready_after

    # The same answers from all three, on a sample of names (and one that does not exist).
    rng = random.Random(7)
    sample = [rng.randrange(big) for _ in range(300)]
    wrong: dict[str, int] = {label: 0 for label, _ in servers}
    ttls: dict[str, set[int]] = {label: set() for label, _ in servers}
    for i in sample:
        expected = {cluster.service(i)[2]}
        for label, server in servers:
            rcode, found, ttl = a_addresses(server.port, cluster.fqdn(i))
            ttls[label].add(ttl)
            if rcode != 0 or found != expected:
                wrong[label] += 1
    missing_name = f"no-such-svc.ns-0.svc.{ZONE}"
    nx = {label: a_addresses(server.port, missing_name)[0] for label, server in servers}
    rss = {label: tree_rss_kib(server.pid) / 1024 for label, server in servers}

    # Unique first, on the fresh servers: every name once in random case, -n 1.
    count = min(big, 20_000 if ctx.quick else big)
    limit = 30.0 if ctx.quick else 60.0
    unique = run.Rounds()
    unique_rcodes: dict[str, dict[str, int]] = {label: {} for label, _ in servers}
    files = unique_files(cluster, HERE / "fixtures" / "unique", ctx.rounds, count)
    per_file = count // ctx.rounds
    print(f"  etcd: unique A questions, ~{per_file:,} per round", flush=True)
    for index, path in enumerate(files):
        for label, server in servers:
            res = _measure(
                run, unique, label, server,
                lambda s, out, p=path: load.dnsperf(
                    s.port, p, seconds=limit, max_runs=1, out=out
                ),
                HERE / "dnsperf" / f"unique-{index}.txt",
            )  # fmt: skip
            for code, n in res.rcodes.items():
                unique_rcodes[label][code] = unique_rcodes[label].get(code, 0) + n
            print(
                f"    unique round {index + 1} {label:<30} {res.qps:>9,.0f} qps  "
                f"p99 {res.p99_ms:.2f} ms  lost {res.lost}  {res.rcodes}",
                flush=True,
            )
    unique_command = unique.by_label["knot"][0].command

    # Warm: two unmeasured passes of the A file each, then alternated measured rounds.
    for _, server in servers:
        for _ in range(2):
            load.warm(server.port, queries, out=HERE / "dnsperf" / "warm.txt", seconds=60)
    warm = run.Rounds()
    warm_rcodes: dict[str, dict[str, int]] = {label: {} for label, _ in servers}
    print("  etcd: warm A questions", flush=True)
    for index in range(ctx.rounds):
        for label, server in servers:
            res = _measure(
                run, warm, label, server,
                lambda s, out: load.dnsperf(s.port, queries, seconds=ctx.seconds, out=out),
                HERE / "dnsperf" / f"warm-{index}.txt",
            )  # fmt: skip
            for code, n in res.rcodes.items():
                warm_rcodes[label][code] = warm_rcodes[label].get(code, 0) + n
            print(
                f"    warm round {index + 1} {label:<30} {res.qps:>9,.0f} qps  "
                f"mean {res.mean_ms:.3f} ms  p99 {res.p99_ms:.3f} ms  lost {res.lost}",
                flush=True,
            )
    warm_command = warm.by_label["knot"][0].command
    etcd_metrics = metrics(servers[0][1], ETCD_METRICS)  # type: ignore[arg-type]
    ctx.stop(*QPS_KEYS)

    fmt, median = run.fmt, run.median

    def rows(rounds: Any, rcodes: dict[str, dict[str, int]]) -> list[list[str]]:
        out = []
        for label, _ in servers:
            out.append(
                [
                    label,
                    fmt(rounds.med(label, "qps"), 0),
                    rounds.spread(label),
                    fmt(rounds.med(label, "mean_ms"), 3),
                    fmt(rounds.med(label, "p99_ms"), 3),
                    fmt(median(rounds.cpu_us[label]), 1),
                    f"{sum(r.lost for r in rounds.by_label[label]):,}",
                    " ".join(f"{c} {n:,}" for c, n in sorted(rcodes[label].items())) or "none",
                    fmt(rounds.ratio(label, K8S_LABEL), 2),
                    fmt(rounds.ratio(label, "knot"), 2),
                ]
            )
        return out

    def per_round(rounds: Any, a: str, b: str) -> str:
        pairs = zip(rounds.by_label[a], rounds.by_label[b], strict=False)
        return ", ".join(fmt(x.qps / y.qps) if y.qps else "n/a" for x, y in pairs)

    warm_ratio = warm.ratio(ETCD_LABEL, K8S_LABEL)
    unique_ratio = unique.ratio(ETCD_LABEL, K8S_LABEL)

    def verdict(value: float) -> str:
        return "met" if value >= 0.9 else "missed"

    checks = "; ".join(
        f"{label}: {wrong[label]} wrong of {len(sample)}, TTL {sorted(ttls[label])}, "
        f"`{missing_name}` rcode {nx[label]}"
        for label, _ in servers
    )
    return (
        f"{big:,} Services (section 1's cluster: svc-i in ns-(i mod {cluster.namespace_count})),"
        f" the same names three ways: **etcd plugin**: {stored:,} keys "
        f'`{ETCD_PREFIX}/svc/<ns>/<svc>` = `{{"host":"<ClusterIP>","ttl":30}}` '
        f'(the issue\'s `{{"host": IP}}` plus `ttl` 30, so all three answer with TTL 30), '
        f"written in {put_seconds:.1f} s as {TXN_OPS}-put transactions through etcd's v3 JSON "
        "gateway, served by `clusterdns serve` with section 1's standard Corefile whose "
        f"kubernetes block is replaced by `etcd {ZONE} {{ path {PATH}; endpoint <url> }}` "
        "(errors, health, ready, prometheus, forward, cache 30, loop, reload, loadbalance "
        "around it in both); **kubernetes plugin**: section 1's clusterdns (standard "
        "Corefile, manifests source); **knot**: section 1's zone files. Servers on core 0, "
        f"dnsperf on core 1. Ready after (s): "
        + ", ".join(f"{label} {fmt(ready[label], 1)}" for label, _ in servers)
        + ". RSS after ready (MiB): "
        + ", ".join(f"{label} {fmt(rss[label], 0)}" for label, _ in servers)
        + " (not like for like: knot also holds the SRV and PTR records, the kubernetes "
        "plugin the EndpointSlices; the etcd copy holds only the A keys)"
        + f".\n\nAnswers checked before load on {len(sample)} random names: {checks}.\n\n"
        f"**Unique** (first, on the fresh servers, before any other question): {count:,} "
        "Service names drawn once in random order and random letter case, split into "
        f"{ctx.rounds} disjoint files of ~{per_file:,} (one per round), A, each file run once "
        "(`-n 1`, -q 100) against each server in turn: no server is ever asked a name twice, "
        "so every question is first sight (the etcd plugin keeps outcomes per lower-cased "
        "question, the kubernetes plugin's reply memo keeps a reply on its second sight).\n\n"
        + run.table(QPS_HEADER, rows(unique, unique_rcodes))
        + f"\n\n- **unique: etcd plugin / kubernetes plugin = {fmt(unique_ratio)}** (per round "
        f"{per_round(unique, ETCD_LABEL, K8S_LABEL)}); etcd plugin / knot = "
        f"{fmt(unique.ratio(ETCD_LABEL, 'knot'))}; kubernetes plugin / knot = "
        f"{fmt(unique.ratio(K8S_LABEL, 'knot'))}\n"
        f"- command (per server, port differs): `{unique_command}`\n\n"
        f"**Warm** (after unique): 100,000 A questions drawn once from the {big:,} names "
        "(section 1's generator, seed 1, A only: etcd holds only A records here), two "
        f"unmeasured passes per server, then {ctx.rounds} rounds of {ctx.seconds:g} s, "
        "servers alternated in each round.\n\n"
        + run.table(QPS_HEADER, rows(warm, warm_rcodes))
        + f"\n\n- **warm: etcd plugin / kubernetes plugin = {fmt(warm_ratio)}** (per round "
        f"{per_round(warm, ETCD_LABEL, K8S_LABEL)}): goal ≥ 0.9, "
        f"**{verdict(warm_ratio)}**; etcd plugin / knot = "
        f"{fmt(warm.ratio(ETCD_LABEL, 'knot'))}; kubernetes plugin / knot = "
        f"{fmt(warm.ratio(K8S_LABEL, 'knot'))}\n"
        f"- p99 latency etcd plugin / kubernetes plugin = "
        f"{fmt(warm.ratio(ETCD_LABEL, K8S_LABEL, 'p99_ms'))} (lower is better)\n"
        f"- the etcd replica's metrics after the runs: "
        + ", ".join(f"`{k}` {fmt(v, 0)}" for k, v in etcd_metrics.items())
        + f"\n- command (per server, port differs): `{warm_command}`\n"
    )


def _measure(
    run: ModuleType, rounds: Any, label: str, server: Server, measure: Any, out: Path
) -> load.Result:
    before = run.cpu_seconds(server.pid)
    res: load.Result = measure(server, out)
    used = run.cpu_seconds(server.pid) - before
    rounds.add(label, res, used / res.completed * 1e6 if res.completed else float("nan"))
    return res


def _propagation(ctx: Any, run: ModuleType) -> str:
    from bench.apiserver import ApiServerThread

    fmt, median = run.fmt, run.median
    changes = 20 if ctx.quick else 100
    cluster = Cluster(1000)
    api = ApiServerThread().start()
    syncs: list[Process] = []
    try:
        count = api.call(api.server.load, cluster.api_objects(), timeout=120)
        etcd = EtcdMember(label="etcd-prop")
        _start(ctx, "etcd-prop-etcd", etcd, timeout=60)
        for n in range(2):
            argv = [
                sys.executable, "-m", "clusterdns.cli", "sync", "--endpoint", api.url,
                "--etcd", etcd.url, "--domain", ZONE, "--log-level", "info",
            ]  # fmt: skip
            sync = Process(label=f"sync-{n}", argv=argv)
            syncs.append(sync)
            _start(ctx, f"etcd-prop-sync-{n}", sync, timeout=10)
        sync_command = " ".join(syncs[0].argv[1:]).replace(api.url, "<api url>")
        sync_command = "clusterdns " + sync_command.split("clusterdns.cli ", 1)[1]
        sync_command = sync_command.replace(etcd.url, "<etcd url>")
        # The leader has reconciled: the last Service's keys are in etcd and a log says so.
        last_name, last_ns, _ = cluster.service(cluster.services - 1)
        deadline = time.monotonic() + 120
        reconciled = False
        while time.monotonic() < deadline:
            if etcd.count(f"{ETCD_PREFIX}/svc/{last_ns}/{last_name}/") and any(
                "reconciled" in s.log_text() for s in syncs
            ):
                reconciled = True
                break
            time.sleep(0.1)
        if not reconciled:
            raise TimeoutError(
                "clusterdns sync did not reconcile within 120 s: see "
                + ", ".join(str(s.workdir / f"{s.label}.log") for s in syncs)
            )
        keys_after_reconcile = etcd.count(ETCD_PREFIX + "/")
        replicas = [
            _start(
                ctx, f"etcd-prop-replica-{n}",
                EtcdClusterDNS(label=f"replica-{n}", etcd_url=etcd.url, cores=SERVER_CORES),
                timeout=120,
            )
            for n in range(2)
        ]  # fmt: skip
        direct = _start(
            ctx, "etcd-prop-direct",
            ClusterDNS(label="direct", source=f"endpoint {api.url}", cores=SERVER_CORES),
            timeout=120,
        )  # fmt: skip
        ports = [replicas[0].port, replicas[1].port, direct.port]
        print(f"  etcd: propagation, {changes} Services created then deleted", flush=True)
        both: dict[str, list[float]] = {"create": [], "delete": []}
        first: dict[str, list[float]] = {"create": [], "delete": []}
        straight: dict[str, list[float]] = {"create": [], "delete": []}
        late: dict[str, int] = {"create": 0, "delete": 0}
        for index in range(changes):
            name = f"prop-{index}"
            fqdn = f"{name}.ns-0.svc.{ZONE}"
            address = ip(SERVICE_BASE + 900_000 + index)
            obj = {
                "kind": "Service", "apiVersion": "v1",
                "metadata": {"name": name, "namespace": "ns-0"},
                "spec": {"type": "ClusterIP", "clusterIP": address, "clusterIPs": [address],
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
            }  # fmt: skip
            for action, want in (("create", address), ("delete", None)):
                fn = api.server.create if action == "create" else api.server.delete
                t0 = time.perf_counter()
                api.call(fn, json.loads(json.dumps(obj)))
                seen = poll_all(ports, fqdn, want, t0 + 10.0)
                if seen[0] is None or seen[1] is None:
                    late[action] += 1
                else:
                    both[action].append((max(seen[0], seen[1]) - t0) * 1000)
                    first[action].append((min(seen[0], seen[1]) - t0) * 1000)
                if seen[2] is not None:
                    straight[action].append((seen[2] - t0) * 1000)
            if index % 20 == 19:
                print(
                    f"    {index + 1} changes: both replicas p50 "
                    f"{fmt(median(both['create']), 1)} ms (create), not seen {late}",
                    flush=True,
                )
        replica_metrics = [metrics(r, ETCD_METRICS) for r in replicas]  # type: ignore[arg-type]
        leaders = [s.label for s in syncs if "elected leader" in s.log_text()]
        sync_errors = sum(
            1 for s in syncs for line in s.log_text().splitlines()
            if "error" in line.lower() or "traceback" in line.lower()
        )  # fmt: skip
    finally:
        ctx.stop(
            "etcd-prop-replica-0", "etcd-prop-replica-1", "etcd-prop-direct",
            "etcd-prop-sync-0", "etcd-prop-sync-1", "etcd-prop-etcd",
        )  # fmt: skip
        api.stop()

    def row(what: str, path: str, values: list[float], missed: int = 0) -> list[str]:
        ordered = sorted(values)
        return [
            what,
            path,
            fmt(median(values), 1),
            fmt(load.percentile(ordered, 0.99), 1) if values else "n/a",
            fmt(max(values), 1) if values else "n/a",
            f"{len(values)} of {changes}" + (f" ({missed} not within 10 s)" if missed else ""),
        ]

    rows = []
    for action, change in (("create", "create → A answered"), ("delete", "delete → NXDOMAIN")):
        rows.append(row(change, "**both etcd replicas** (API → sync → etcd → watch)",
                        both[action], late[action]))  # fmt: skip
        rows.append(row(change, "the first of the two replicas", first[action]))
        rows.append(row(change, "kubernetes plugin watching the API directly (reference)",
                        straight[action], changes - len(straight[action])))  # fmt: skip
    p99 = load.percentile(sorted(both["create"]), 0.99) if both["create"] else float("nan")
    met = "met" if p99 == p99 and p99 < 50 and not late["create"] else "missed"
    return (
        f"The API test server (bench/apiserver.py, in this process on core 1) holding "
        f"{cluster.services:,} Services ({count:,} objects); a fresh single-member etcd; two "
        f"`{sync_command}` (leader and standby, not pinned; after the leader's reconcile etcd "
        f"held {keys_after_reconcile:,} keys); two `clusterdns serve` replicas with the etcd "
        "Corefile above (both on core 0); and, as the reference, a clusterdns with the "
        "kubernetes plugin watching the same API server (standard Corefile, core 0). Each "
        f"change creates a Service `prop-i.ns-0` through the test server (which sends its "
        "watch event at once), then this process asks all three servers for the name, round "
        "robin over one UDP socket, until each answers with the new ClusterIP; then deletes "
        f"it and polls until NXDOMAIN (bounded: 10 s per change). {changes} Services, one at a "
        "time. Time from the create/delete call to the first right answer.\n\n"
        + run.table(["change", "path", "p50 ms", "p99 ms", "max ms", "seen"], rows)
        + f"\n\n- **Kubernetes → etcd → both replicas, create: p50 "
        f"{fmt(median(both['create']), 1)} ms, p99 {fmt(p99, 1)} ms**: goal p99 < 50 ms, "
        f"**{met}**\n"
        f"- leader: {', '.join(leaders) or 'none logged'}; log lines with 'error' or "
        f"'traceback' in the sync logs: {sync_errors}\n"
        "- the replicas' metrics after the changes: "
        + "; ".join(
            f"replica-{n}: " + ", ".join(f"`{k}` {fmt(v, 0)}" for k, v in m.items())
            for n, m in enumerate(replica_metrics)
        )
        + "\n"
    )


__all__ = ["section_etcd"]
