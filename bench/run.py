"""Run the clusterdns benchmarks and rewrite bench/RESULTS.md.

    python bench/run.py [--quick] [--only NAME...] [--list]

Every figure is a ratio against a peer measured in the same run, with the servers alternated
round by round (A B C A B C ...) and medians of at least 3 rounds, because this machine is
small, shared and noisy. Servers are pinned to core 0 and dnsperf to core 1 (taskset); this
process pins itself to core 1 too. Each section's results are kept in bench/out/results.json
so ``--only`` refreshes some sections and RESULTS.md still shows the others (with their date).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dns.message  # noqa: E402
import dns.rdatatype  # noqa: E402
from bench import load  # noqa: E402
from bench.etcd_section import section_etcd  # noqa: E402
from bench.fixture import Cluster, write_a_queries  # noqa: E402
from bench.peers import (  # noqa: E402
    OUT,
    ClusterDNS,
    Dnsmasq,
    Knot,
    PythonEcho,
    Server,
    udp_modes,
    write_example_zone,
)

RESULTS = ROOT / "bench" / "RESULTS.md"
STORE = OUT / "results.json"
SERVER_CORES = "0"
BIG = 100_000  # the large cluster; --big changes it for smoke tests


# --- helpers -------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def fmt(value: float, digits: int = 2) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its descendants (workers)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            pids += [
                int(p) for p in Path(f"/proc/{current}/task/{current}/children").read_text().split()
            ]
        except OSError:
            pass
    return total


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:
        uv = "not installed"
    versions = {}
    for tool, cmd in (
        ("dnsperf", ["dnsperf", "-h"]),
        ("knotd", ["knotd", "--version"]),
        ("dnsmasq", ["dnsmasq", "--version"]),
    ):
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            out = (text.stdout + text.stderr).strip().splitlines()
            versions[tool] = next(
                (line for line in out if "ersion" in line), out[0] if out else "?"
            ).strip()
        except (OSError, subprocess.TimeoutExpired):
            versions[tool] = "missing"
    mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "uvloop": uv,
        "memory": f"{int(mem) // 1024} MiB",
        **versions,
    }


@dataclass
class Rounds:
    """Results per server label, one per round, in the order they ran."""

    by_label: dict[str, list[load.Result]] = field(default_factory=dict)
    cpu_us: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: str, result: load.Result, cpu_us: float) -> None:
        self.by_label.setdefault(label, []).append(result)
        self.cpu_us.setdefault(label, []).append(cpu_us)

    def med(self, label: str, attr: str) -> float:
        return median([getattr(r, attr) for r in self.by_label.get(label, [])])

    def ratio(self, a: str, b: str, attr: str = "qps") -> float:
        """Median over rounds of (a / b) measured in the same round."""
        pairs = zip(self.by_label.get(a, []), self.by_label.get(b, []), strict=False)
        return median([getattr(x, attr) / getattr(y, attr) for x, y in pairs if getattr(y, attr)])

    def spread(self, label: str, attr: str = "qps") -> str:
        values = [getattr(r, attr) for r in self.by_label.get(label, [])]
        return f"{min(values):,.0f}–{max(values):,.0f}" if values else "n/a"


def run_alternating(
    servers: list[tuple[str, Server]],
    rounds: int,
    measure: Callable[[Server, Path], load.Result],
) -> Rounds:
    """A B C A B C ...: one measurement per server per round, order fixed."""
    result = Rounds()
    for index in range(rounds):
        for label, server in servers:
            before = cpu_seconds(server.pid)
            res = measure(server, OUT / "dnsperf" / f"{label}-{index}.txt")
            used = cpu_seconds(server.pid) - before
            result.add(label, res, used / res.completed * 1e6 if res.completed else float("nan"))
            print(
                f"    round {index + 1} {label:<22} {res.qps:>10,.0f} qps  mean {res.mean_ms:.3f} ms"
                f"  p99 {res.p99_ms:.3f} ms  lost {res.lost}",
                flush=True,
            )
    return result


# --- the context: fixtures and servers shared between sections -----------------------------


class Context:
    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.seconds = 3.0 if quick else 10.0
        self.rounds = 3
        self.fixtures: dict[str, dict[str, object]] = {}
        self.servers: dict[str, Server] = {}
        self.commands: list[str] = []
        self.apis: dict[str, Any] = {}
        self.startup: tuple[dict[str, list[float]], dict[str, list[float]]] | None = None
        self.knot_qps = float("nan")  # section 1's median knot QPS at the large size
        self.code_seen: set[str] = set()  # hashes of the src/clusterdns trees measured
        self.udp_modes, self.udp_default = udp_modes()

    def fixture(self, cluster: Cluster) -> dict[str, object]:
        """Generated files for ``cluster`` (cached for this run)."""
        if cluster.tag in self.fixtures:
            return self.fixtures[cluster.tag]
        base = OUT / "fixtures" / cluster.tag
        started = time.perf_counter()
        files: dict[str, object] = {
            "manifests": cluster.write_manifests(base / "manifests"),
            "knot": cluster.write_knot_zones(base / "knot"),
            "dnsmasq": cluster.write_dnsmasq(base / "dnsmasq"),
            "queries": cluster.write_queries(base / "queries.txt", 100_000),
        }
        # The files just written (~100 MB at 100k) would otherwise be written back while
        # the first server starts: kernel work on the same cores, in that server's round.
        os.sync()
        print(f"  fixture {cluster.tag}: {time.perf_counter() - started:.1f}s", flush=True)
        self.fixtures[cluster.tag] = files
        return files

    def snapshot(self, server: Server) -> None:
        """Copy src/clusterdns as this server loads it: other people edit src/ during runs."""
        if not isinstance(server, ClusterDNS):
            return
        target = server.workdir / "src-snapshot"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            ROOT / "src" / "clusterdns", target / "clusterdns",
            ignore=shutil.ignore_patterns("__pycache__"),
        )  # fmt: skip
        digest = hashlib.sha1()
        for path in sorted((target / "clusterdns").rglob("*.py")):
            digest.update(path.read_bytes())
        server.code = digest.hexdigest()[:10]  # type: ignore[attr-defined]
        self.code_seen.add(server.code)  # type: ignore[attr-defined]

    def server(self, key: str, make: Callable[[], Server], timeout: float = 1200) -> Server:
        """A started server shared by sections (stopped at the end of the run)."""
        if key not in self.servers:
            server = make()
            server.workdir = OUT / "servers" / key
            server.workdir.mkdir(parents=True, exist_ok=True)
            self.snapshot(server)
            print(f"  starting {key} ...", flush=True)
            server.start(timeout=timeout)
            print(f"  {key} ready after {server.ready_after:.1f}s", flush=True)
            self.servers[key] = server
        code = getattr(self.servers[key], "code", None)
        if code:
            self.code_seen.add(code)
        return self.servers[key]

    def stop(self, *keys: str) -> None:
        for key in keys or list(self.servers):
            server = self.servers.pop(key, None)
            if server is not None:
                server.stop()
        if not keys:
            for api in self.apis.values():
                api.stop()
            self.apis.clear()

    def standard(self, cluster: Cluster, *, udp_mode: str | None = None) -> ClusterDNS:
        files = self.fixture(cluster)
        return ClusterDNS(
            label="clusterdns", source=f"manifests {files['manifests']}", udp_mode=udp_mode,
            cores=SERVER_CORES,
        )  # fmt: skip

    def knot(self, cluster: Cluster) -> Knot:
        return Knot(zones=self.fixture(cluster)["knot"], cores=SERVER_CORES)  # type: ignore[arg-type]

    def dnsmasq(self, cluster: Cluster) -> Dnsmasq:
        hosts, srv = self.fixture(cluster)["dnsmasq"]  # type: ignore[misc]
        return Dnsmasq(hosts=hosts, srv_conf=srv, cores=SERVER_CORES)

    def warm(self, server: Server, queries: Path) -> None:
        # Two passes: clusterdns builds a name's reply on first sight (event loop) and
        # keeps the finished bytes in its reply memo on second sight.
        for _ in range(2):
            load.warm(server.port, queries, out=OUT / "dnsperf" / "warm.txt", seconds=60)


# --- sections ------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def qps_rows(rounds: Rounds, labels: list[str], peer: str) -> list[list[str]]:
    rows = []
    for label in labels:
        rows.append(
            [
                label,
                fmt(rounds.med(label, "qps"), 0),
                rounds.spread(label),
                fmt(rounds.med(label, "mean_ms"), 3),
                fmt(rounds.med(label, "p99_ms"), 3),
                fmt(median(rounds.cpu_us[label]), 1),
                f"{sum(r.lost for r in rounds.by_label[label]):,}",
                fmt(rounds.ratio(label, peer), 2),
            ]
        )
    return rows


QPS_HEADER = [
    "server", "median QPS", "range", "mean ms", "p99 ms", "server CPU µs/query",
    "lost (all rounds)", "QPS ratio vs {peer}",
]  # fmt: skip


def cd_label(ctx: Context) -> str:
    return f"clusterdns ({ctx.udp_default or 'default'}, default)"


def _peers_for(ctx: Context, cluster: Cluster, size: int) -> list[tuple[str, Server]]:
    servers = [
        (cd_label(ctx), ctx.server(f"cd-{size}", lambda: ctx.standard(cluster))),
        ("knot", ctx.server(f"knot-{size}", lambda: ctx.knot(cluster))),
    ]
    if size < BIG:  # the other UDP modes at the small size only: a 100k start costs minutes
        for mode in ctx.udp_modes:
            if mode == ctx.udp_default:
                continue
            servers.append(
                (
                    f"clusterdns --udp-mode {mode}",
                    ctx.server(
                        f"cd-{mode}-{size}", lambda m=mode: ctx.standard(cluster, udp_mode=m)
                    ),
                )
            )
    servers.append(("dnsmasq", ctx.server(f"dnsmasq-{size}", lambda: ctx.dnsmasq(cluster))))
    return servers


def section_qps(ctx: Context) -> str:
    """1. Cluster-record QPS and latency at 1k and 100k services; the UDP modes compared."""
    parts = []
    sizes = [1000, BIG]
    missing: list[str] = []
    for size in sizes:
        cluster = Cluster(size)
        files = ctx.fixture(cluster)
        queries: Path = files["queries"]  # type: ignore[assignment]
        servers = _peers_for(ctx, cluster, size)
        missing = getattr(servers[0][1], "missing", [])
        for _, server in servers:
            ctx.warm(server, queries)
        print(f"  qps at {size} services", flush=True)
        rounds = run_alternating(
            servers,
            ctx.rounds,
            lambda s, out, q=queries, keep=size == BIG: load.dnsperf(
                s.port, q, seconds=ctx.seconds, out=out, samples=keep
            ),
        )
        command = rounds.by_label["knot"][0].command
        plot = ""
        if size == BIG:
            ctx.knot_qps = rounds.med("knot", "qps")
            plot = _warm_cdf(ctx, rounds, cd_label(ctx))
        labels = [label for label, _ in servers]
        cd = cd_label(ctx)
        modes = "".join(
            f"- {label} / {cd}: QPS {fmt(rounds.ratio(label, cd))}, "
            f"p99 {fmt(rounds.ratio(label, cd, 'p99_ms'))}, "
            f"CPU µs/query {fmt(median(rounds.cpu_us[label]) / median(rounds.cpu_us[cd]))}\n"
            for label in labels
            if label.startswith("clusterdns --udp-mode")
        )
        parts.append(
            f"#### {size:,} services ({cluster.namespace_count} namespaces)\n\n"
            + table([h.format(peer="knot") for h in QPS_HEADER], qps_rows(rounds, labels, "knot"))
            + "\n\n"
            + f"- **clusterdns/knot QPS = {fmt(rounds.ratio(cd, 'knot'))}** "
            f"(goal ≥ 1.0, unacceptable < 0.8)\n"
            f"- **clusterdns/dnsmasq QPS = {fmt(rounds.ratio(cd, 'dnsmasq'))}**\n"
            + modes
            + f"- p99 latency clusterdns/knot = {fmt(rounds.ratio(cd, 'knot', 'p99_ms'))}, "
            f"clusterdns/dnsmasq = {fmt(rounds.ratio(cd, 'dnsmasq', 'p99_ms'))} (lower is better)\n"
            f"- command (per server, port differs): `{command}`\n" + plot
        )
        ctx.commands.append(command)
        if size != sizes[-1]:
            ctx.stop(*(k for k in list(ctx.servers) if k.endswith(f"-{size}")))
    intro = (
        "Workload: 70% A hits, 10% SRV (`_http._tcp.svc-i.ns-j.svc.cluster.local`), 10% PTR "
        "(ClusterIP), 10% search-path NXDOMAIN (`svc-i.ns-j.svc.cluster.local.default.svc."
        "cluster.local`), 100,000 queries drawn once (seed 1) and replayed; dnsperf -q 100 "
        f"for {ctx.seconds:g} s per round, {ctx.rounds} rounds, servers alternated in the "
        "order of the table. Every server answered two unmeasured passes of the query file first "
        "(clusterdns builds a reply on first sight and memoises its bytes on the second; "
        "knot/dnsmasq have nothing to warm). Latency is "
        "from dnsperf -v per-query lines, so at saturation it mostly reflects queueing "
        "(100 outstanding / QPS). CPU µs/query = server utime+stime during the run / queries "
        "completed: the cost figure independent of who saturates first.\n\n"
        "clusterdns runs the standard Kubernetes Corefile (errors, health, ready, kubernetes "
        "cluster.local in-addr.arpa ip6.arpa { manifests DIR; pods insecure; fallthrough "
        "in-addr.arpa ip6.arpa; ttl 30 }, prometheus, forward . 127.0.0.1:9 (nothing listens), "
        "cache 30, loop, reload, loadbalance) with the manifests source (one JSON List file). "
        + (
            f"Dropped because clusterdns lacks them: {', '.join(missing)}. "
            if missing
            else "All of these plugins exist and are loaded. "
        )
        + "knot: knotd, 1 UDP worker, 1 TCP worker, zones cluster.local and "
        "10.in-addr.arpa with A, SRV and PTR records. dnsmasq: addn-hosts file (A+PTR), "
        "srv-host lines, `local=/cluster.local/` and `local=/10.in-addr.arpa/` for "
        "NXDOMAIN, --no-resolv. Same names, same answers (checked by the probe and by the "
        "rcode split dnsperf reports).\n\n"
    )
    return intro + "\n".join(parts)


def _warm_cdf(ctx: Context, rounds: Rounds, cd: str) -> str:
    """The latency CDF of the warm mix at the large size (every query of every round)."""
    from bench import plots

    samples = {
        "clusterdns": plots.merged([r.samples for r in rounds.by_label.get(cd, [])]),
        "knot": plots.merged([r.samples for r in rounds.by_label.get("knot", [])]),
    }
    for results in rounds.by_label.values():  # the arrays are large; the plot has them now
        for result in results:
            result.samples = None
    path = plots.cdf(
        plots.PLOTS / "latency-warm-mix.png",
        f"Warm mix at {BIG:,} services, saturation (dnsperf -q 100, {ctx.rounds} rounds of "
        f"{ctx.seconds:g} s), after two warm passes",
        samples,
    )
    return (
        f"\n{plots.link(path, 'latency CDF, warm mix')}\n\n"
        "Latency distribution of every query in the rounds above (dnsperf -v), clusterdns "
        "and knot. At saturation with 100 queries outstanding the median is mostly queueing "
        "(100 / QPS); the right panel shows the tail.\n"
    )


# --- first sight: a cold server, and questions that never repeat -----------------------------


def _ramp_points(res: load.Result, ready_wall: float) -> list[tuple[float, float]]:
    """dnsperf -S 0.1 lines as (seconds after ready at the interval's end, answers in it)."""
    points: list[tuple[float, float]] = []
    previous: float | None = None
    for stamp, rate in res.intervals:
        span = stamp - previous if previous is not None else 0.1
        points.append((stamp - ready_wall, rate * span))
        previous = stamp
    return points


def _time_to(points: list[tuple[float, float]], target: float, window: int = 5) -> float:
    """End of the first ``window`` intervals (0.5 s) whose answers average ≥ ``target`` per
    interval; nan if never."""
    for end in range(window, len(points) + 1):
        chunk = points[end - window : end]
        if sum(a for _, a in chunk) / window >= target:
            return chunk[-1][0]
    return float("nan")


def _first(points: list[tuple[float, float]], seconds: float) -> float:
    """Answers per second over the first ``seconds`` after ready (intervals ending by then)."""
    return sum(a for t, a in points if t <= seconds + 0.05) / seconds


COLD_HEADER = [
    "server", "s to ready", "answers/s, first 1 s", "answers/s, first 10 s", "warm QPS",
    "first 10 s / warm", "s to 90% of warm (per round)", "lost (cold runs)", "cold p99 ms",
    "CPU µs/query (cold run)", "memo hits (cold run)",
]  # fmt: skip
UNIQUE_HEADER = [
    "questions", "clusterdns QPS", "knot QPS", "clusterdns/knot (median)", "per round",
    "CPU µs/query clusterdns", "CPU µs/query knot", "p99 ratio", "lost cd / knot",
    "rcodes cd / knot",
]  # fmt: skip


def section_cold(ctx: Context) -> str:
    """1c. A fresh clusterdns and a fresh knot, measured from ready: the first-sight ramp."""
    from bench import plots

    cold_seconds = 10.0 if ctx.quick else 20.0
    rounds = 1 if ctx.quick else ctx.rounds
    parts = []
    for size in (1000, BIG):
        cluster = Cluster(size)
        files = ctx.fixture(cluster)
        queries: Path = files["queries"]  # type: ignore[assignment]
        makers: list[tuple[str, Callable[[], Server]]] = [
            ("clusterdns", lambda c=cluster: ctx.standard(c)),  # type: ignore[misc]
            ("knot", lambda c=cluster: ctx.knot(c)),  # type: ignore[misc]
        ]
        ramps: dict[str, list[list[tuple[float, float]]]] = {label: [] for label, _ in makers}
        stats: dict[str, dict[str, list[float]]] = {label: {} for label, _ in makers}
        command = warm_command = ""
        print(f"  cold start at {size} services", flush=True)
        for index in range(rounds):
            for label, make in makers:
                server = make()
                server.workdir = OUT / "servers" / f"cold-{label}-{size}"
                shutil.rmtree(server.workdir, ignore_errors=True)
                server.workdir.mkdir(parents=True, exist_ok=True)
                ctx.snapshot(server)
                try:
                    server.start(timeout=600)
                    ready_wall = time.time()  # the ramp starts here
                    before_cpu = cpu_seconds(server.pid)
                    before_hits = _memo_hits(server) if isinstance(server, ClusterDNS) else 0.0
                    cold = load.dnsperf(
                        server.port, queries, seconds=cold_seconds, stats_interval=0.1,
                        out=OUT / "dnsperf" / f"cold-{label}-{size}-{index}.txt",
                    )  # fmt: skip
                    cpu = cpu_seconds(server.pid) - before_cpu
                    hits = (
                        _memo_hits(server) - before_hits
                        if isinstance(server, ClusterDNS)
                        else float("nan")
                    )
                    ctx.warm(server, queries)
                    warm = load.dnsperf(
                        server.port, queries, seconds=ctx.seconds,
                        out=OUT / "dnsperf" / f"cold-warm-{label}-{size}-{index}.txt",
                    )  # fmt: skip
                finally:
                    server.stop()
                code = getattr(server, "code", None)
                if code:
                    ctx.code_seen.add(code)
                command, warm_command = cold.command, warm.command
                points = _ramp_points(cold, ready_wall)
                ramps[label].append(points)
                warm_per_interval = warm.qps / 10
                row = stats[label]
                for key, value in (
                    ("ready", server.ready_after),
                    ("launch", points[0][0] - 0.1 if points else float("nan")),
                    ("first1", _first(points, 1.0)),
                    ("first2", _first(points, 2.0)),
                    ("first10", _first(points, min(10.0, cold_seconds))),
                    ("cold_qps", cold.qps),
                    ("warm", warm.qps),
                    ("t90", _time_to(points, 0.9 * warm_per_interval)),
                    ("lost", float(cold.lost)),
                    ("p99", cold.p99_ms),
                    ("cpu", cpu / cold.completed * 1e6 if cold.completed else float("nan")),
                    ("hits", hits / cold.completed if cold.completed else float("nan")),
                ):
                    row.setdefault(key, []).append(value)
                print(
                    f"    round {index + 1} {label:<11} ready {server.ready_after:5.2f}s  "
                    f"first 1 s {row['first1'][-1]:>9,.0f}/s  first 10 s "
                    f"{row['first10'][-1]:>9,.0f}/s  warm {warm.qps:>9,.0f}  "
                    f"90% after {row['t90'][-1]:.1f}s  lost {cold.lost}",
                    flush=True,
                )

        def ratio(key: str, stats: dict[str, dict[str, list[float]]] = stats) -> float:
            pairs = zip(stats["clusterdns"][key], stats["knot"][key], strict=False)
            return median([a / b for a, b in pairs if b])

        def seconds_text(values: list[float]) -> str:
            shown = [f"> {cold_seconds:g}" if v != v else fmt(v, 1) for v in values]
            return ", ".join(shown)

        rows = []
        for label in ("clusterdns", "knot"):
            row = stats[label]
            rows.append(
                [
                    label,
                    fmt(median(row["ready"]), 2),
                    fmt(median(row["first1"]), 0),
                    fmt(median(row["first10"]), 0),
                    fmt(median(row["warm"]), 0),
                    fmt(median([a / b for a, b in zip(row["first10"], row["warm"], strict=False)])),
                    seconds_text(row["t90"]),
                    f"{sum(row['lost']):,.0f}",
                    fmt(median(row["p99"]), 2),
                    fmt(median(row["cpu"]), 1),
                    "n/a" if label == "knot" else f"{median(row['hits']):.0%}",
                ]
            )
        walls = [
            f"round {i + 1}: " + ", ".join(f"{a:,.0f}" for _, a in pts[:20])
            for i, pts in enumerate(ramps["clusterdns"])
        ]
        path = plots.ramp(
            plots.PLOTS / f"cold-ramp-{size}.png",
            f"Fresh process, {size:,} services, section 1 mix from ready (dnsperf -q 100), "
            f"{rounds} round(s)",
            ramps,
            {label: median(stats[label]["warm"]) / 10 for label in ramps},
        )
        t90 = stats["clusterdns"]["t90"]
        t90_med = median([v if v == v else float("inf") for v in t90])
        goal = ""
        if size == BIG:
            goal = (
                f"- goal: 90% of the warm rate within 2 s of ready at {BIG:,}: "
                f"**{'met' if t90_med <= 2 else 'missed'}** (median "
                f"{'> ' + fmt(cold_seconds, 0) if t90_med == float('inf') else fmt(t90_med, 1)} s)\n"
            )
        parts.append(
            f"#### {size:,} services ({cluster.namespace_count} namespaces)\n\n"
            + table(COLD_HEADER, rows)
            + f"\n\n- **first 10 s after ready, clusterdns/knot = {fmt(ratio('first10'))}**; "
            f"first 1 s {fmt(ratio('first1'))}, first 2 s {fmt(ratio('first2'))}; warm "
            f"clusterdns/knot = {fmt(ratio('warm'))}\n"
            + goal
            + f"- clusterdns answers in its first 20 intervals of 100 ms: {'; '.join(walls)}\n"
            f"- dnsperf's first query left ~{fmt(median(stats['clusterdns']['launch']) * 1000, 0)}"
            " ms after ready (process start, reading the query file); it counts against both.\n"
            f"- cold command: `{command}`; warm command: `{warm_command}`\n\n"
            + plots.link(path, f"cold-start ramp at {size:,} services")
            + "\n"
        )
    return (
        "Section 1's mix and query file (100,000 questions drawn once, replayed), against a "
        "**fresh** clusterdns (standard Corefile, manifests source) and a **fresh** knotd, "
        "each started for the round and stopped after it, alternated round by round "
        f"({rounds} rounds). No warm-up for either: dnsperf (-q 100, core 1) starts as soon "
        "as the server is ready (clusterdns: /ready 200 and one probe answered; knot: the "
        f"probe name answered) and runs {cold_seconds:g} s with `-S 0.1`, which prints the "
        "answers of every 100 ms interval with a wall-clock stamp; the ramp is those counts "
        "against the time since ready. Then the same process gets two unmeasured passes of "
        f"the file and one {ctx.seconds:g} s measured run: its warm rate, as in section 1. "
        "*s to 90% of warm* is the end of the first 500 ms (5 intervals) whose answers "
        "average ≥ 90% of that round's warm rate. At 100k services the file holds ~79k "
        "distinct questions, so clusterdns reaches its warm rate only once it has seen most "
        "of them once (or twice, if first sight does not fill the reply memo).\n\n"
        + "\n".join(parts)
    )


UNIQUE_KINDS = ("Service A, random letter case", "random label under a namespace",
                "external name + search suffix")  # fmt: skip


def write_unique(cluster: Cluster, folder: Path, index: int, count: int) -> dict[str, Path]:
    """Round ``index``'s query files, one per kind; no question repeats within or across
    rounds (letter case is drawn per round, labels are random, api<N> numbers never reused)."""
    import random

    from bench.fixture import ZONE

    rng = random.Random(1000 + index)
    folder.mkdir(parents=True, exist_ok=True)
    order = list(range(cluster.services))
    rng.shuffle(order)
    lines: dict[str, list[str]] = {kind: [] for kind in UNIQUE_KINDS}
    a, label, external = UNIQUE_KINDS
    for i in order[:count]:
        name = cluster.fqdn(i)
        lines[a].append("".join(c.upper() if rng.random() < 0.5 else c for c in name) + " A")
    for n in range(count):
        ns = f"ns-{rng.randrange(cluster.namespace_count)}"
        lines[label].append(f"{rng.getrandbits(48):012x}.{ns}.svc.{ZONE} A")
        ns = f"ns-{rng.randrange(cluster.namespace_count)}"
        lines[external].append(f"api{index * count + n}.example.com.{ns}.svc.{ZONE} A")
    paths = {}
    for number, kind in enumerate(UNIQUE_KINDS):
        path = folder / f"round{index}-kind{number}.txt"
        path.write_text("\n".join(lines[kind]) + "\n")
        paths[kind] = path
    return paths


def section_unique(ctx: Context) -> str:
    """1d. Questions that never repeat, at 100k services: clusterdns vs knot, same files."""
    from bench import plots

    cluster = Cluster(BIG)
    count = min(BIG, 20_000 if ctx.quick else 100_000)
    limit = 30.0 if ctx.quick else 60.0
    folder = OUT / "fixtures" / "unique"
    servers: list[tuple[str, Server]] = [
        ("clusterdns", ctx.server("unique-cd", lambda: ctx.standard(cluster))),
        ("knot", ctx.server("unique-knot", lambda: ctx.knot(cluster))),
    ]
    by_kind: dict[str, Rounds] = {kind: Rounds() for kind in UNIQUE_KINDS}
    totals: dict[str, list[tuple[int, float]]] = {"clusterdns": [], "knot": []}
    print(f"  unique questions at {BIG} services, {count:,} per kind", flush=True)
    for index in range(ctx.rounds):
        files = write_unique(cluster, folder, index, count)
        done = {label: [0, 0.0] for label, _ in servers}
        for kind in UNIQUE_KINDS:
            for label, server in servers:
                before = cpu_seconds(server.pid)
                res = load.dnsperf(
                    server.port, files[kind], seconds=limit, max_runs=1, samples=True,
                    out=OUT / "dnsperf" / f"unique-{label}-{index}.txt",
                )  # fmt: skip
                used = cpu_seconds(server.pid) - before
                by_kind[kind].add(
                    label, res, used / res.completed * 1e6 if res.completed else float("nan")
                )
                done[label][0] += res.completed
                done[label][1] += res.completed / res.qps if res.qps else float("nan")
                print(
                    f"    round {index + 1} {kind:<32} {label:<10} {res.qps:>9,.0f} qps  "
                    f"p99 {res.p99_ms:.2f} ms  lost {res.lost}  {res.rcodes}",
                    flush=True,
                )
        for label in done:
            totals[label].append((int(done[label][0]), float(done[label][1])))
    # One more round, unmeasured, with py-spy on clusterdns: where first-sight time goes.
    profile_text = _profile_unique(ctx, cluster, servers[0][1], folder, count, by_kind)
    ctx.stop("unique-cd", "unique-knot")

    rows = []
    for kind in UNIQUE_KINDS:
        r = by_kind[kind]
        per_round = [
            fmt(x.qps / y.qps) if y.qps else "n/a"
            for x, y in zip(r.by_label["clusterdns"], r.by_label["knot"], strict=False)
        ]
        rows.append(
            [
                kind,
                fmt(r.med("clusterdns", "qps"), 0),
                fmt(r.med("knot", "qps"), 0),
                f"**{fmt(r.ratio('clusterdns', 'knot'))}**",
                ", ".join(per_round),
                fmt(median(r.cpu_us["clusterdns"]), 1),
                fmt(median(r.cpu_us["knot"]), 1),
                fmt(r.ratio("clusterdns", "knot", "p99_ms")),
                f"{sum(x.lost for x in r.by_label['clusterdns']):,} / "
                f"{sum(x.lost for x in r.by_label['knot']):,}",
                _rcodes(r.by_label["clusterdns"]) + " / " + _rcodes(r.by_label["knot"]),
            ]
        )
    overall = [
        (a[0] / a[1]) / (b[0] / b[1])
        for a, b in zip(totals["clusterdns"], totals["knot"], strict=False)
        if a[1] and b[1]
    ]
    cd_rate = median([n / t for n, t in totals["clusterdns"] if t])
    knot_rate = median([n / t for n, t in totals["knot"] if t])
    rows.append(
        [
            "all three (queries ÷ time over the three runs)",
            fmt(cd_rate, 0),
            fmt(knot_rate, 0),
            f"**{fmt(median(overall))}**",
            ", ".join(fmt(v) for v in overall),
            "", "", "", "", "",
        ]
    )  # fmt: skip
    ratio = median(overall)
    verdict = "met" if ratio >= 0.5 else ("below goal" if ratio >= 0.3 else "not acceptable")
    styles = dict(zip(UNIQUE_KINDS, ("-", "--", ":"), strict=True))
    samples: dict[str, Any] = {}
    line_styles: dict[str, str] = {}
    for kind in UNIQUE_KINDS:
        for label in ("clusterdns", "knot"):
            key = f"{label}: {kind}"
            samples[key] = plots.merged([x.samples for x in by_kind[kind].by_label[label]])
            line_styles[key] = styles[kind]
    path = plots.cdf(
        plots.PLOTS / "latency-unique.png",
        f"Unique questions at {BIG:,} services (dnsperf -q 100 -n 1, {ctx.rounds} rounds of "
        f"{count:,} per kind), fresh servers, no warm-up",
        samples,
        line_styles,
    )
    command = by_kind[UNIQUE_KINDS[0]].by_label["knot"][0].command
    return (
        f"{BIG:,} services (the section 1 cluster), a **fresh** clusterdns (standard "
        "Corefile, manifests source) and a **fresh** knotd started for this section, no "
        f"warm-up for either. Each round writes three files of {count:,} questions that were "
        "never asked before, in this run or an earlier round: every Service's name once "
        "(random order) in random letter case (`SvC-12.nS-12.SVC.cluster.LOCAL`, A); a random "
        "12-hex-digit label under a random namespace (`3f9a…​.ns-7.svc.cluster.local`, "
        "NXDOMAIN); an external name with a pod's search suffix "
        "(`api<N>.example.com.ns-7.svc.cluster.local`, NXDOMAIN). dnsperf runs each file "
        f"once (-n 1, -q 100, bounded by -l {limit:g}) against clusterdns then knot, kinds "
        f"in that order, {ctx.rounds} rounds; both servers get the same files. Both keep "
        "what earlier rounds asked (clusterdns's reply memo fills and evicts from round 2). "
        "Goal: ≥ 0.5× knot, not acceptable below 0.3×.\n\n"
        + table(UNIQUE_HEADER, rows)
        + f"\n\n- **unique questions, clusterdns/knot = {fmt(ratio)}**: {verdict}\n"
        f"- command (per file, port differs): `{command}`\n\n"
        + plots.link(path, "latency CDF, unique questions")
        + "\n\n"
        + profile_text
    )


def _rcodes(results: list[load.Result]) -> str:
    total: dict[str, int] = {}
    for res in results:
        for code, n in res.rcodes.items():
            total[code] = total.get(code, 0) + n
    return " ".join(f"{code} {n:,}" for code, n in sorted(total.items())) or "none"


def _profile_unique(
    ctx: Context,
    cluster: Cluster,
    server: Server,
    folder: Path,
    count: int,
    by_kind: dict[str, Rounds],
) -> str:
    """py-spy on clusterdns while it answers one more round of never-seen questions."""
    import random

    if shutil.which("py-spy") is None:
        return "(py-spy is not installed: no profile. `scripts/install-bench-deps`.)\n"
    files = write_unique(cluster, folder, ctx.rounds, count)
    lines = [line for path in files.values() for line in path.read_text().splitlines()]
    random.Random(5).shuffle(lines)
    mixed = folder / "profile-round.txt"
    mixed.write_text("\n".join(lines) + "\n")
    rate = median(
        [r.qps for kind in UNIQUE_KINDS for r in by_kind[kind].by_label.get("clusterdns", [])]
    )
    expected = len(lines) / rate if rate == rate and rate else 10.0
    seconds = max(2, min(10, int(expected - 1.5)))
    qps, breakdown = _profile_under_load(
        server, mixed, "unique", seconds, load_seconds=seconds + 20, max_runs=1, top=30
    )
    return (
        "Where clusterdns's first-sight time goes: one more round of never-seen questions "
        f"({len(lines):,}, the three kinds shuffled together; ~{qps:,.0f} qps under the "
        f"profiler) with `py-spy record --nonblocking --threads --rate 250` for {seconds} s "
        "(collapsed stacks in bench/out/profile-unique.txt):\n\n" + breakdown
    )


def section_forward(ctx: Context) -> str:
    """2. Forwarded names served from cache: clusterdns cache+forward vs dnsmasq's cache."""
    names = 5000
    zone = write_example_zone(OUT / "fixtures" / "upstream", names)
    upstream = ctx.server("upstream-knot", lambda: _upstream(zone))
    target = f"127.0.0.1:{upstream.port}"
    qfile = OUT / "fixtures" / "upstream" / "queries.txt"
    import random

    rng = random.Random(2)
    write_a_queries(qfile, [f"host-{rng.randrange(names)}.example.org" for _ in range(100_000)])
    warmfile = write_a_queries(
        OUT / "fixtures" / "upstream" / "warm.txt", [f"host-{i}.example.org" for i in range(names)]
    )
    cluster = Cluster(1000)
    files = ctx.fixture(cluster)

    def cd_forward() -> Server:
        s = ClusterDNS(corefile_kind="forward", upstream=target, cores=SERVER_CORES)
        s.probe_name = "host-0.example.org"
        return s

    def cd_standard() -> Server:
        s = ClusterDNS(
            source=f"manifests {files['manifests']}", upstream=target, cores=SERVER_CORES
        )
        return s

    def dm() -> Server:
        s = Dnsmasq(upstream=f"127.0.0.1#{upstream.port}", local=(), cores=SERVER_CORES)
        s.probe_name = "host-0.example.org"
        return s

    servers: list[tuple[str, Server]] = [
        ("clusterdns forward+cache", ctx.server("cd-forward", cd_forward)),
        ("dnsmasq cache", ctx.server("dnsmasq-forward", dm)),
        ("clusterdns standard Corefile", ctx.server("cd-standard-fwd", cd_standard)),
    ]
    for _, server in servers:
        load.dnsperf(
            server.port, warmfile, seconds=30, max_runs=1, outstanding=20, verbose=False,
            out=OUT / "dnsperf" / "warm.txt",
        )  # fmt: skip
    rounds = run_alternating(
        servers,
        ctx.rounds,
        lambda s, out: load.dnsperf(s.port, qfile, seconds=ctx.seconds, out=out),
    )
    ctx.stop("cd-forward", "dnsmasq-forward", "cd-standard-fwd", "upstream-knot")
    labels = [label for label, _ in servers]
    cd = "clusterdns forward+cache"
    command = rounds.by_label[cd][0].command
    return (
        f"Upstream: knotd serving example.org ({names:,} A records, TTL 300) on another "
        "loopback port. Each cache was filled by one pass over all names, then dnsperf "
        f"replays 100,000 random lookups of them (-q 100, {ctx.seconds:g} s, {ctx.rounds} "
        "rounds, alternated). clusterdns `forward . UPSTREAM` + `cache 30` (so entries are "
        "refetched every 30 s, a handful of misses); dnsmasq `server=UPSTREAM`, "
        "cache-size=10000. The third row is the full standard Kubernetes Corefile answering "
        "the same non-cluster names.\n\n"
        + table(
            [h.format(peer="dnsmasq") for h in QPS_HEADER],
            qps_rows(rounds, labels, "dnsmasq cache"),
        )
        + f"\n\n- **clusterdns cache / dnsmasq cache QPS = "
        f"{fmt(rounds.ratio(cd, 'dnsmasq cache'))}**\n"
        f"- command: `{command}`\n"
    )


def _upstream(zone: Path) -> Server:
    s = Knot(zones={"example.org": zone}, cores=SERVER_CORES)
    s.probe_name = "host-0.example.org"
    return s


def section_latency(ctx: Context) -> str:
    """3. Latency at a fixed 10k qps at 100k names; TCP qps over persistent connections."""
    cluster = Cluster(BIG)
    files = ctx.fixture(cluster)
    queries: Path = files["queries"]  # type: ignore[assignment]
    servers: list[tuple[str, Server]] = [
        ("clusterdns", ctx.server(f"cd-{BIG}", lambda: ctx.standard(cluster))),
        ("knot", ctx.server(f"knot-{BIG}", lambda: ctx.knot(cluster))),
        ("dnsmasq", ctx.server(f"dnsmasq-{BIG}", lambda: ctx.dnsmasq(cluster))),
    ]
    for _, server in servers:
        ctx.warm(server, queries)
    print("  fixed 10k qps", flush=True)
    fixed = run_alternating(
        servers,
        ctx.rounds,
        lambda s, out: load.dnsperf(s.port, queries, seconds=ctx.seconds, max_qps=10_000, out=out),
    )
    print("  tcp", flush=True)
    tcp = run_alternating(
        servers,
        ctx.rounds,
        lambda s, out: load.dnsperf(
            s.port, queries, seconds=ctx.seconds, tcp=True, clients=4, out=out
        ),
    )
    rows = []
    for label, _ in servers:
        rows.append(
            [
                label,
                fmt(fixed.med(label, "qps"), 0),
                fmt(fixed.med(label, "p50_ms"), 3),
                fmt(fixed.med(label, "p99_ms"), 3),
                fmt(fixed.med(label, "p999_ms"), 3),
                fmt(median(fixed.cpu_us[label]), 1),
                fmt(fixed.ratio(label, "knot", "p99_ms")),
                fmt(fixed.ratio(label, "knot", "p999_ms")),
            ]
        )
    tcp_rows = [
        [
            label,
            fmt(tcp.med(label, "qps"), 0),
            tcp.spread(label),
            fmt(tcp.med(label, "p99_ms"), 3),
            fmt(median(tcp.cpu_us[label]), 1),
            f"{sum(r.lost for r in tcp.by_label[label]):,}",
            fmt(tcp.ratio(label, "knot")),
            fmt(tcp.ratio(label, "dnsmasq")),
        ]
        for label, _ in servers
    ]
    return (
        f"{BIG:,} services, the section 1 workload, dnsperf -Q 10000 (offered 10k qps) for "
        f"{ctx.seconds:g} s, {ctx.rounds} rounds alternated; percentiles over every query of "
        "the round (dnsperf -v), medians over rounds.\n\n"
        + table(
            [
                "server",
                "achieved QPS",
                "p50 ms",
                "p99 ms",
                "p99.9 ms",
                "server CPU µs/query",
                "p99 ratio vs knot",
                "p99.9 ratio vs knot",
            ],
            rows,
        )
        + f"\n\n- command: `{fixed.by_label['knot'][0].command}`\n\n"
        "TCP, persistent connections (dnsperf -m tcp -c 4: 4 connections, 100 outstanding "
        "queries over them, connections kept for the whole run):\n\n"
        + table(
            [
                "server",
                "median QPS",
                "range",
                "p99 ms",
                "server CPU µs/query",
                "lost (all rounds)",
                "ratio vs knot",
                "ratio vs dnsmasq",
            ],
            tcp_rows,
        )
        + f"\n\n- command: `{tcp.by_label['knot'][0].command}`\n"
        "- dnsmasq forks a child per TCP connection, knot runs 1 TCP worker here, "
        "clusterdns answers TCP on its asyncio (uvloop) event loop.\n"
    )


# --- the API test server sections ------------------------------------------------------------


def api_server(ctx: Context, cluster: Cluster) -> Any:
    """A test API server thread holding ``cluster`` (one per cluster, kept for the run)."""
    from bench.apiserver import ApiServerThread

    if cluster.tag not in ctx.apis:
        api = ApiServerThread().start()
        started = time.perf_counter()
        count = api.call(api.server.load, cluster.api_objects(), timeout=600)
        print(
            f"  api server {cluster.tag}: {count:,} objects in "
            f"{time.perf_counter() - started:.1f}s",
            flush=True,
        )
        ctx.apis[cluster.tag] = api
    return ctx.apis[cluster.tag]


def api_clusterdns(
    ctx: Context,
    cluster: Cluster,
    *,
    pods_mode: str = "insecure",
    key: str | None = None,
    timeout: float = 1200,
) -> ClusterDNS:
    """clusterdns (standard Corefile) started against the API server holding ``cluster``.

    With ``key`` it is kept in ctx.servers (stopped at the end of the run); without, the
    caller stops it. ``ready_after`` is spawn → /ready 200.
    """
    api = api_server(ctx, cluster)
    cd = ClusterDNS(source=f"endpoint {api.url}", cores=SERVER_CORES, pods_mode=pods_mode)
    cd.workdir = OUT / "servers" / f"api-{cluster.tag}-{pods_mode}"
    cd.workdir.mkdir(parents=True, exist_ok=True)
    ctx.snapshot(cd)
    print(f"  starting clusterdns on the api server ({cluster.tag}, pods {pods_mode})", flush=True)
    cd.start(timeout=timeout)
    if key is not None:
        ctx.servers[key] = cd
    return cd


BIG_KEY = "api-big-insecure"


def section_startup(ctx: Context) -> str:
    """6. Start-up to /ready 200 via the API test server at 100k/100k/100k (and RSS for 5)."""
    cluster = Cluster(BIG, pods=True)
    empty = Cluster(1, pods=True)
    big_label = f"{BIG // 1000}k services + slices + pods, pods insecure"
    verified_label = f"{BIG // 1000}k services + slices + pods, pods verified"
    empty_label = "empty cluster (1 service)"
    store: dict[str, list[float]] = {}
    rss: dict[str, list[float]] = {}
    notes: list[str] = []

    def measure(label: str, clu: Cluster, mode: str, keep: bool) -> float:
        print(f"  startup: {label}", flush=True)
        try:
            cd = api_clusterdns(ctx, clu, pods_mode=mode, key=BIG_KEY if keep else None)
        except (TimeoutError, RuntimeError) as exc:
            store.setdefault(label, []).append(float("nan"))
            rss.setdefault(label, []).append(float("nan"))
            notes.append(f"{label}: {exc}")
            return float("nan")
        time.sleep(1.0)
        store.setdefault(label, []).append(cd.ready_after)
        rss.setdefault(label, []).append(cd.rss_kib() / 1024)
        print(
            f"    ready after {cd.ready_after:.2f}s, rss {cd.rss_kib() / 1024:.0f} MiB", flush=True
        )
        if not keep:
            cd.stop()
        return cd.ready_after

    ctx.stop(BIG_KEY)
    measure(empty_label, empty, "insecure", False)
    first = measure(big_label, cluster, "insecure", True)
    measure(verified_label, cluster, "verified", False)
    # Repeat the standard case (3 rounds in all) unless one start already costs minutes.
    extra = 0 if ctx.quick else ctx.rounds - 1
    if extra and not first < 60:
        notes.append(
            f"only 1 round at {BIG:,}: one start took {fmt(first, 0)} s, 3 rounds would not "
            "fit the time budget"
        )
        extra = 0
    for _ in range(extra):
        measure(empty_label, empty, "insecure", False)
        ctx.stop(BIG_KEY)
        measure(big_label, cluster, "insecure", True)
    startup_profile = profile_startup(ctx, cluster) if first == first and first < 120 else ""
    base = median(store[empty_label])
    rows = [
        [
            label,
            fmt(median(values)),
            ", ".join(fmt(v) for v in values),
            fmt(median(values) - base),
            fmt(median(rss[label]), 0),
        ]
        for label, values in store.items()
    ]
    ctx.startup = (store, rss)
    big = median(store[big_label])
    verdict = f"**{'met' if big < 5 else 'missed'}**: {fmt(big)} s" + (
        "" if big < 5 else f", {fmt(big / 5, 1)}× the goal"
    )
    return (
        "Time from spawning `clusterdns serve` (pinned to core 0) to `/ready` returning 200, "
        "against the Kubernetes API test server (tests/helpers/kubeapi.py, in this process "
        "on core 1, LIST pages pre-encoded so the test server's own cost is small) holding "
        f"{BIG:,} Services, {BIG:,} EndpointSlices (3 endpoints each), {BIG:,} Pods and "
        f"{cluster.namespace_count:,} Namespaces; clusterdns lists with pagination (limit "
        "500). `pods insecure` (the standard Corefile) does not list Pods at all; `pods "
        "verified` does. The peer is the same binary against an empty cluster (interpreter, "
        "imports, listeners, the `loop` probe).\n\n"
        + table(
            [
                "cluster",
                "median s to ready",
                "rounds (s)",
                "minus empty-cluster start (s)",
                "RSS after ready (MiB)",
            ],
            rows,
        )
        + f"\n\n- goal < 5 s at this size: {verdict}\n"
        + "".join(f"- {n}\n" for n in notes)
        + startup_profile
    )


def profile_startup(ctx: Context, cluster: Cluster) -> str:
    """One more (unmeasured) start of the standard case under py-spy: where start-up goes."""
    raw = OUT / "profile-startup.txt"
    raw.unlink(missing_ok=True)
    api = api_server(ctx, cluster)
    cd = ClusterDNS(source=f"endpoint {api.url}", cores=SERVER_CORES)
    cd.workdir = OUT / "servers" / "api-startup-profile"
    cd.workdir.mkdir(parents=True, exist_ok=True)
    ctx.snapshot(cd)
    result: dict[str, str] = {}

    def attach() -> None:
        deadline = time.monotonic() + 30
        while cd.proc is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if cd.proc is None:
            return
        time.sleep(0.05)  # let the interpreter initialise before py-spy reads it
        cmd = [
            "py-spy", "record", "--pid", str(cd.proc.pid), "--duration", "120", "--rate", "200",
            "--nonblocking", "--threads", "--format", "raw", "-o", str(raw),
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
        result["err"] = done.stderr[-300:]

    thread = threading.Thread(target=attach)
    thread.start()
    print("  startup under py-spy", flush=True)
    try:
        cd.start(timeout=300)
        ready = cd.ready_after
    except (TimeoutError, RuntimeError) as exc:
        ready = float("nan")
        result["err"] = str(exc)
    finally:
        cd.stop()  # ends py-spy's recording too
    thread.join(60)
    if not raw.exists():
        return f"\n(py-spy on start-up produced nothing: {result.get('err', '')})\n"
    return (
        "\nWhere start-up goes: one more start of the standard case recorded with `py-spy "
        f"record --nonblocking --threads --rate 200` from spawn until stop (ready after {fmt(ready)} s "
        "under the profiler; collapsed stacks in bench/out/profile-startup.txt):\n\n"
        + profile_breakdown(raw, cd.workdir / "src-snapshot", top=25)
    )


def section_memory(ctx: Context) -> str:
    """5. RSS at 100k services/slices/pods vs CoreDNS's sizing formula."""
    if ctx.startup is None:
        section_startup(ctx)
    assert ctx.startup is not None
    _, rss = ctx.startup
    formula = (BIG + BIG) / 1000 + 54
    mb = 1.048576  # MiB → MB: the formula is in MB

    def row(label: str, mib: float) -> list[str]:
        return [label, fmt(mib, 0), fmt(mib * mb, 0), fmt(formula, 0), fmt(mib * mb / formula)]

    rows = [
        row(f"API, {label}", median(values))
        for label, values in rss.items()
        if not label.startswith("empty")
    ]
    empty = median(rss.get("empty cluster (1 service)", []))
    loaded = ctx.servers.get(BIG_KEY)
    if loaded is not None:
        # Every name hot: each Service's A, SRV, PTR and search-path miss and each pod's
        # A, asked twice (so the reply memo is as full as it gets), then RSS again.
        names = Cluster(BIG, pods=True).every_name()
        every = OUT / "fixtures" / "every-name.txt"
        every.write_text("".join(f"{name} {qtype}\n" for name, qtype in names))
        for _ in range(2):
            load.warm(loaded.port, every, out=OUT / "dnsperf" / "every.txt", seconds=120)
        rows.append(
            row(
                f"API, {BIG // 1000}k services + slices + pods, pods insecure, after every "
                f"name ({len(names):,}: Service A, SRV, PTR, a search-path miss, pod A) "
                "was asked twice",
                loaded.rss_kib() / 1024,
            )
        )
    manifests = ctx.servers.get(f"cd-{BIG}")
    if manifests is not None:
        rows.append(
            row(
                f"manifests folder, {BIG // 1000}k services + slices, no pods (the section 1 "
                "server, after its load runs)",
                manifests.rss_kib() / 1024,
            )
        )
    peers_rows = []
    plain = Cluster(BIG)
    for key, make in (
        (f"knot-{BIG}", lambda: ctx.knot(plain)),
        (f"dnsmasq-{BIG}", lambda: ctx.dnsmasq(plain)),
    ):
        try:
            server = ctx.server(key, make)
        except (TimeoutError, RuntimeError) as exc:
            peers_rows.append(f"{key} failed to start: {exc}")
            continue
        peers_rows.append(f"{server.label} {server.rss_kib() / 1024:.0f} MiB")
    return (
        "RSS (VmRSS, after /ready and 1 s idle) of one clusterdns process holding the "
        "section 6 cluster, against CoreDNS's published sizing formula "
        "MB ≈ (pods + services) / 1000 + 54 (coredns/deployment, Scaling_CoreDNS.md) = "
        f"{formula:.0f} MB for {BIG:,} pods + {BIG:,} services. Goal: ratio ≤ 1.0.\n\n"
        + table(["source", "RSS MiB", "RSS MB", "formula MB", "ratio (MB/MB)"], rows)
        + f"\n\n- the same binary with an empty cluster: {fmt(empty, 0)} MiB\n"
        + (
            f"- for scale, knot and dnsmasq serving the same {BIG:,} services' A/SRV/PTR "
            "names: " + ", ".join(peers_rows) + "\n"
            if peers_rows
            else ""
        )
    )


def _poll_until(
    port: int, name: str, want: Callable[[dns.message.Message], bool], deadline: float
) -> float | None:
    """Query ``name`` back to back until ``want(reply)``; the time it first held, or None."""
    query = dns.message.make_query(name, dns.rdatatype.A)
    wire = bytearray(query.to_wire())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        qid = 0
        while time.perf_counter() < deadline:
            qid = (qid + 1) & 0xFFFF
            wire[0:2] = qid.to_bytes(2, "big")
            try:
                sock.sendto(bytes(wire), ("127.0.0.1", port))
                while True:
                    data, _ = sock.recvfrom(4096)
                    if data[:2] == wire[0:2]:
                        break
            except OSError:
                continue
            now = time.perf_counter()
            if want(dns.message.from_wire(data)):
                return now
    return None


def section_propagation(ctx: Context) -> str:
    """4. Service create/delete through the API test server → the answer changes."""
    from bench.fixture import SERVICE_BASE, ip

    rounds = 20 if ctx.quick else 100
    rows = []
    for size in (1000, BIG):
        cluster = Cluster(size, pods=size == BIG)
        label = f"{size:,} services"
        print(f"  propagation at {size}", flush=True)
        try:
            if size == BIG:
                cd = ctx.servers.get(BIG_KEY) or api_clusterdns(ctx, cluster, key=BIG_KEY)
            else:
                cd = api_clusterdns(ctx, cluster, key=f"api-{size}")
            api = api_server(ctx, cluster)
            if True:
                create: list[float] = []
                delete: list[float] = []
                failures = 0
                for index in range(rounds):
                    name = f"prop-{index}"
                    fqdn = f"{name}.ns-0.svc.cluster.local"
                    address = ip(SERVICE_BASE + 900_000 + index)
                    obj = {
                        "kind": "Service", "apiVersion": "v1",
                        "metadata": {"name": name, "namespace": "ns-0"},
                        "spec": {"type": "ClusterIP", "clusterIP": address,
                                 "clusterIPs": [address],
                                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
                    }  # fmt: skip

                    def has_ip(msg: dns.message.Message, address: str = address) -> bool:
                        return any(
                            rr.address == address for rrset in msg.answer for rr in rrset
                            if rrset.rdtype == dns.rdatatype.A
                        )  # fmt: skip

                    for action, want, sink in (
                        ("create", has_ip, create),
                        ("delete", lambda m: m.rcode() == 3, delete),
                    ):
                        holder: dict[str, float | None] = {}
                        t0 = time.perf_counter()
                        server = api.server
                        fn = server.create if action == "create" else server.delete
                        api.call(fn, json.loads(json.dumps(obj)))
                        holder["t"] = _poll_until(cd.port, fqdn, want, t0 + 10.0)
                        if holder["t"] is None:
                            failures += 1
                        else:
                            sink.append((holder["t"] - t0) * 1000)
                rows.append(
                    [
                        label,
                        "create → A appears",
                        fmt(median(create), 1),
                        fmt(load.percentile(sorted(create), 0.99), 1),
                        fmt(max(create) if create else float("nan"), 1),
                        str(len(create)),
                    ]
                )
                rows.append(
                    [
                        label,
                        "delete → NXDOMAIN",
                        fmt(median(delete), 1),
                        fmt(load.percentile(sorted(delete), 0.99), 1),
                        fmt(max(delete) if delete else float("nan"), 1),
                        str(len(delete)),
                    ]
                )
                if failures:
                    rows.append([label, f"{failures} changes not seen within 10 s", "", "", "", ""])
        except (TimeoutError, RuntimeError) as exc:
            rows.append([label, f"clusterdns did not start: {exc}", "", "", "", ""])
        ctx.stop(f"api-{size}")
    return (
        "clusterdns (standard Corefile, `endpoint` = the API test server, which runs in "
        "this process on core 1; clusterdns on core 0) watches the cluster; each round "
        "creates a Service through the test server (which pushes the watch event at once), "
        "then queries its name back to back from this process until the A record appears, "
        "then deletes it and polls until NXDOMAIN. Time from the create/delete call to the "
        f"first changed answer; {rounds} rounds each. There is no peer here: knot and "
        "dnsmasq cannot watch the Kubernetes API; the cache plugin is in the Corefile, so "
        "this includes cache invalidation.\n\n"
        + table(["cluster", "change", "p50 ms", "p99 ms", "max ms", "rounds seen"], rows)
        + "\n"
    )


def _memo_hits(cd: ClusterDNS) -> float:
    """clusterdns_reply_memo_hits_total from the server's /metrics (nan if unreadable)."""
    return _metrics(cd, ("clusterdns_reply_memo_hits_total",))["clusterdns_reply_memo_hits_total"]


def _metrics(cd: ClusterDNS, names: tuple[str, ...]) -> dict[str, float]:
    """Each named series from /metrics, summed over its labels (nan if unreadable/absent)."""
    import urllib.request

    found = dict.fromkeys(names, float("nan"))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{cd.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return found
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in found:
            value = float(line.rsplit(" ", 1)[1])
            found[name] = value if found[name] != found[name] else found[name] + value
    return found


CHURN_METRICS = (
    "clusterdns_reply_memo_hits_total",
    "clusterdns_kubernetes_relists_total",
    "clusterdns_kubernetes_watch_restarts_total",
    "clusterdns_kubernetes_generation",
    "clusterdns_reply_memo_entries",
)


def _until_idle(pid: int, *, limit: float, window: float = 0.25) -> float:
    """Seconds until ``pid`` uses < 10% of a core over ``window`` (nan after ``limit``)."""
    started = time.monotonic()
    previous = cpu_seconds(pid)
    while time.monotonic() - started < limit:
        time.sleep(window)
        now = cpu_seconds(pid)
        if now - previous < 0.1 * window:
            return max(0.0, time.monotonic() - started - window)
        previous = now
    return float("nan")


def section_churn(ctx: Context) -> str:
    """1b. Cluster-record QPS while EndpointSlices change (the reply memo under churn)."""
    cluster = Cluster(BIG, pods=True)
    queries: Path = ctx.fixture(Cluster(BIG))["queries"]  # type: ignore[assignment]
    cd = ctx.servers.get(BIG_KEY) or api_clusterdns(ctx, cluster, key=BIG_KEY)
    api = api_server(ctx, cluster)
    ctx.warm(cd, queries)
    slices = [cluster.service_objects(i)[1] for i in range(0, BIG, max(BIG // 5000, 1))]
    flips = [0]  # across rounds: every update really changes its slice (ready ↔ not ready)
    rates = [0, 10, 100, 1000]

    def apply(objs: list[dict[str, Any]]) -> None:  # on the API server's loop
        for obj in objs:
            api.server.update(obj)

    def churn(rate: int, stop: threading.Event, done: list[int]) -> None:
        # Bounded: at most rate x (round length + 5 s) updates, each a readiness flip of one
        # endpoint (the Service's A record stays, its memo entry is dropped). Paced by the
        # clock: each tick (1/rate, at least 10 ms) applies the updates that are due in one
        # call to the API server's loop, so the cross-thread call does not cap the rate.
        started = time.monotonic()
        deadline = started + ctx.seconds + 5
        limit = int(rate * (ctx.seconds + 5))
        tick = max(1 / rate, 0.01)
        while not stop.is_set() and done[0] < limit and time.monotonic() < deadline:
            due = min(limit, int((time.monotonic() - started) * rate) + 1) - done[0]
            batch = []
            for _ in range(max(due, 0)):
                obj = json.loads(json.dumps(slices[flips[0] % len(slices)]))
                ready = flips[0] // len(slices) % 2 == 1
                obj["endpoints"][-1]["conditions"]["ready"] = ready
                batch.append(obj)
                flips[0] += 1
            if batch:
                api.call(apply, batch)
                done[0] += len(batch)
            stop.wait(tick)
        done.append(time.monotonic() - started)  # type: ignore[arg-type]

    result = Rounds()
    hit_share: dict[str, list[float]] = {}
    applied: dict[str, list[float]] = {}
    backlog: dict[str, list[float]] = {}
    events: dict[str, dict[str, list[float]]] = {}
    memo: dict[str, list[tuple[float, float, float]]] = {}
    _until_idle(cd.pid, limit=90.0)
    print("  qps under endpoint churn", flush=True)
    for index in range(ctx.rounds):
        for rate in rates:
            label = "no changes" if rate == 0 else f"{rate} EndpointSlice updates/s"
            stop = threading.Event()
            done = [0]
            # Every measurement starts from a filled memo: one unmeasured pass of the file
            # (the previous round's churn dropped part of it, or all of it; see entries).
            entries_before = _metrics(cd, CHURN_METRICS)[CHURN_METRICS[4]]
            load.warm(cd.port, queries, out=OUT / "dnsperf" / "warm.txt", seconds=60)
            worker = (
                threading.Thread(target=churn, args=(rate, stop, done), daemon=True)
                if rate
                else None
            )
            if worker is not None:
                worker.start()
            before_cpu, before = cpu_seconds(cd.pid), _metrics(cd, CHURN_METRICS)
            res = load.dnsperf(
                cd.port,
                queries,
                seconds=ctx.seconds,
                out=OUT / "dnsperf" / f"churn-{rate}-{index}.txt",
            )
            used = cpu_seconds(cd.pid) - before_cpu
            after = _metrics(cd, CHURN_METRICS)
            hits = after[CHURN_METRICS[0]] - before[CHURN_METRICS[0]]
            stop.set()
            if worker is not None:
                worker.join(10)
            # Watch events still queued when the round ends are applied after it: wait until
            # the server is idle (bounded), so the next round starts clean, and say how long.
            backlog.setdefault(label, []).append(_until_idle(cd.pid, limit=90.0))
            settled = _metrics(cd, CHURN_METRICS)
            for name in CHURN_METRICS[1:4]:  # relists, watch restarts, changes applied
                moved = settled[name] - before[name]
                events.setdefault(label, {}).setdefault(name, []).append(moved)
            memo.setdefault(label, []).append(
                (entries_before, before[CHURN_METRICS[4]], settled[CHURN_METRICS[4]])
            )
            result.add(label, res, used / res.completed * 1e6 if res.completed else float("nan"))
            hit_share.setdefault(label, []).append(hits / res.completed if res.completed else 0.0)
            applied.setdefault(label, []).append(
                done[0] / done[1] if len(done) > 1 and done[1] else 0.0
            )
            print(
                f"    round {index + 1} {label:<28} {res.qps:>10,.0f} qps  memo hits "
                f"{hit_share[label][-1]:.0%}  updates {done[0]} "
                f"({applied[label][-1]:,.0f}/s)  lost {res.lost}  busy "
                f"{backlog[label][-1]:.1f}s after  relists "
                f"{events[label][CHURN_METRICS[1]][-1]:.0f}  watch restarts "
                f"{events[label][CHURN_METRICS[2]][-1]:.0f}  generation "
                f"+{events[label][CHURN_METRICS[3]][-1]:.0f}  memo entries "
                + " → ".join(f"{v:,.0f}" for v in memo[label][-1]),
                flush=True,
            )
    profile = _churn_profile(ctx, cd, queries, churn)
    labels = list(result.by_label)
    rows = [
        [
            label,
            fmt(result.med(label, "qps"), 0),
            result.spread(label),
            fmt(median(result.cpu_us[label]), 1),
            f"{median(hit_share[label]):.0%}",
            fmt(median(applied[label]), 0),
            ", ".join(fmt(v, 1) for v in backlog[label]),
            ", ".join(f"{v:.0f}" for v in events[label][CHURN_METRICS[1]]),
            ", ".join(f"{v:.0f}" for v in events[label][CHURN_METRICS[2]]),
            "; ".join(" → ".join(f"{v / 1000:.0f}k" for v in m) for m in memo[label]),
            f"{sum(r.lost for r in result.by_label[label]):,}",
            fmt(result.ratio(label, labels[0]), 2),
        ]
        for label in labels
    ]
    command = result.by_label[labels[0]][0].command
    at_100 = result.ratio("100 EndpointSlice updates/s", labels[0])
    goal = (
        f"- **under 100 updates/s: {fmt(at_100)}× of no churn** (goal ≥ 0.9): "
        f"{'met' if at_100 >= 0.9 else 'missed'}; under 1,000 updates/s: "
        f"{fmt(result.ratio('1000 EndpointSlice updates/s', labels[0]))}×\n"
    )
    return (
        f"The section 6 cluster ({BIG:,} Services, EndpointSlices and Pods) served from the "
        "API test server to clusterdns (standard Corefile), section 1's query file. During "
        "the churn rounds a thread in this process (core 1, with dnsperf) flips the "
        f"readiness of one endpoint of a Service at the given rate, cycling over "
        f"{len(slices):,} Services; each update reaches clusterdns as a watch event. "
        "Rounds alternate between the rates. Memo hits = clusterdns_reply_memo_hits_total "
        "growth / queries answered. An update drops the memoised replies of its Service, "
        "the PTR replies of the IPs it owned before and after, and the untied ones "
        "(negative answers), not the whole memo.\n\n"
        + table(
            [
                "load",
                "median QPS",
                "range",
                "server CPU µs/query",
                "memo hits",
                "updates applied/s",
                "s busy after the round (per round)",
                "relists (per round)",
                "watch restarts (per round)",
                "memo entries: before refill → round start → after (per round)",
                "lost (all rounds)",
                "QPS vs no changes",
            ],
            rows,
        )
        + f"\n\n{goal}- command: `{command}`\n"
        "- updates applied/s: updates made ÷ the churn thread's running time (it stops with "
        "dnsperf). At 1,000/s the updates are applied in batches every 10 ms, each a watch "
        "event of its own to clusterdns.\n"
        "- s busy after the round: from the end of dnsperf and of the updates until "
        "clusterdns's CPU use falls below 10% over 250 ms (polled from /proc, at most 90 s): "
        "the watch events it had not applied yet. The next round starts after that.\n"
        "- relists / watch restarts: growth of clusterdns_kubernetes_relists_total and "
        "clusterdns_kubernetes_watch_restarts_total over the round and its idle wait. The "
        "API test server keeps 1,000 events of history (tests/helpers/kubeapi.py), so at "
        "1,000 updates/s a watch that resumes more than ~1 s behind gets 410 and relists.\n"
        "- every round starts with one unmeasured pass of the query file (-n 1), so each "
        "rate is measured from a filled memo; *memo entries* (clusterdns_reply_memo_entries) "
        "before that pass, at the start of the measurement, and once the server is idle "
        "after it show what the previous round's churn dropped.\n" + profile
    )


def _profile_under_load(
    server: Server,
    queries: Path,
    name: str,
    seconds: int,
    *,
    load_seconds: float,
    max_runs: int | None = None,
    lead: float = 0.5,
    top: int,
) -> tuple[float, str]:
    """py-spy on ``server`` for ``seconds`` while dnsperf sends it ``queries`` (started
    ``lead`` s before): dnsperf's QPS and the breakdown of the samples (with a note if
    py-spy failed). Collapsed stacks in bench/out/profile-<name>.txt."""
    raw = OUT / f"profile-{name}.txt"
    raw.unlink(missing_ok=True)
    results: dict[str, load.Result] = {}

    def drive() -> None:
        results["load"] = load.dnsperf(
            server.port, queries, seconds=load_seconds, max_runs=max_runs,
            out=OUT / "dnsperf" / f"profile-{name}.txt",
        )  # fmt: skip

    driver = threading.Thread(target=drive)
    driver.start()
    time.sleep(lead)
    note = _record_raw(server.pid, seconds, raw)
    driver.join(seconds + 90)
    driven = results.get("load")
    qps = driven.qps if driven is not None else float("nan")
    snapshot = server.workdir / "src-snapshot"
    breakdown = profile_breakdown(raw, snapshot, top=top) if raw.exists() else "no samples\n"
    return qps, breakdown + note


def _record_raw(pid: int, seconds: int, raw: Path) -> str:
    """py-spy's collapsed stacks of ``pid`` for ``seconds`` into ``raw``; a note if it
    failed (empty otherwise)."""
    cmd = [
        "py-spy", "record", "--pid", str(pid), "--duration", str(seconds),
        "--rate", "250", "--nonblocking", "--threads", "--format", "raw", "-o", str(raw),
    ]  # fmt: skip
    try:
        finished = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"py-spy failed: {exc}\n"
    if finished.returncode != 0:
        return f"py-spy failed: {finished.stderr.strip()[:200]}\n"
    return ""


def _churn_profile(
    ctx: Context,
    server: Server,
    queries: Path,
    churn: Callable[[int, threading.Event, list[int]], None],
) -> str:
    """py-spy on clusterdns during one more (unmeasured) round at 100 updates/s."""
    if shutil.which("py-spy") is None:
        return "\n(py-spy is not installed: no profile. `scripts/install-bench-deps`.)\n"
    seconds = int(min(ctx.seconds, 8))
    load.warm(server.port, queries, out=OUT / "dnsperf" / "warm.txt", seconds=60)
    stop, done = threading.Event(), [0]
    worker = threading.Thread(target=churn, args=(100, stop, done), daemon=True)
    worker.start()
    qps, breakdown = _profile_under_load(
        server, queries, "churn", seconds, load_seconds=seconds + 2, lead=1.0, top=25
    )
    stop.set()
    worker.join(10)
    _until_idle(server.pid, limit=90.0)
    return (
        "\nWhere clusterdns's time goes under churn: one more round at 100 updates/s "
        f"(~{qps:,.0f} qps under the profiler), `py-spy record --nonblocking --threads "
        f"--rate 250` for {seconds} s (collapsed stacks in bench/out/profile-churn.txt):\n\n"
        + breakdown
    )


def section_workers(ctx: Context) -> str:
    """7. --workers 1 vs 2 on this 2-core machine."""
    cluster = Cluster(1000)
    files = ctx.fixture(cluster)
    queries: Path = files["queries"]  # type: ignore[assignment]

    def make(workers: int, cores: str) -> Callable[[], Server]:
        def build() -> Server:
            s = ctx.standard(cluster)
            s.workers = workers  # type: ignore[attr-defined]
            s.cores = cores
            return s

        return build

    servers: list[tuple[str, Server]] = [
        ("--workers 1, core 0", ctx.server("w1-c0", make(1, "0"))),
        ("--workers 2, core 0", ctx.server("w2-c0", make(2, "0"))),
        ("--workers 1, cores 0-1", ctx.server("w1-c01", make(1, "0,1"))),
        ("--workers 2, cores 0-1", ctx.server("w2-c01", make(2, "0,1"))),
    ]
    for _, server in servers:
        ctx.warm(server, queries)
    rounds = run_alternating(
        servers,
        ctx.rounds,
        lambda s, out: load.dnsperf(s.port, queries, seconds=ctx.seconds, clients=8, out=out),
    )
    ctx.stop("w1-c0", "w2-c0", "w1-c01", "w2-c01")
    labels = [label for label, _ in servers]
    return (
        "1,000 services, standard Corefile, section 1 workload; dnsperf -c 8 (8 sockets, so "
        "SO_REUSEPORT can spread them over the workers) on core 1. Workers 2 = a supervisor "
        "plus two serving processes.\n\n"
        + table(
            [h.format(peer="--workers 1, core 0") for h in QPS_HEADER],
            qps_rows(rounds, labels, "--workers 1, core 0"),
        )
        + f"\n\n- **workers 2/1 on core 0 only: "
        f"{fmt(rounds.ratio('--workers 2, core 0', '--workers 1, core 0'))}**; "
        f"**workers 2/1 on both cores (sharing core 1 with dnsperf): "
        f"{fmt(rounds.ratio('--workers 2, cores 0-1', '--workers 1, cores 0-1'))}**\n"
        f"- command: `{rounds.by_label[labels[0]][0].command}`\n"
    )


def section_profile(ctx: Context) -> str:
    """8. Where the time goes: py-spy and perf stat on clusterdns under load."""
    cluster = Cluster(BIG)
    files = ctx.fixture(cluster)
    queries: Path = files["queries"]  # type: ignore[assignment]
    server = ctx.server(f"cd-{BIG}", lambda: ctx.standard(cluster))
    ctx.warm(server, queries)
    echo = ctx.server("python-echo", lambda: PythonEcho(cores=SERVER_CORES))
    print("  clusterdns vs the CPython echo floor", flush=True)
    floor = run_alternating(
        [("clusterdns", server), ("python echo", echo)],
        ctx.rounds,
        lambda s, out: load.dnsperf(s.port, queries, seconds=ctx.seconds, out=out),
    )
    ctx.stop("python-echo")
    floor_text = (
        "First, a floor for CPython: bench/echo.py is the blocking one-recvfrom-one-sendto "
        "loop in a thread that `--udp-mode thread` uses, answering every query by echoing it "
        "with QR set (no parsing, no lookup), pinned to core 0 like the servers. It bounds "
        "any design that makes two system calls per query from Python; recvmmsg/sendmmsg "
        "batching (`--udp-mode batch`) is not bound by it. "
        f"{ctx.rounds} rounds alternated with clusterdns, section 1 load:\n\n"
        + table(
            [h.format(peer="python echo") for h in QPS_HEADER],
            qps_rows(floor, ["clusterdns", "python echo"], "python echo"),
        )
        + f"\n\n- **clusterdns / CPython echo floor = "
        f"{fmt(floor.ratio('clusterdns', 'python echo'))}**"
        + (
            f"; the floor itself is {fmt(floor.med('python echo', 'qps') / ctx.knot_qps)}× "
            "knot's section 1 QPS at this size (different rounds, so only indicative)"
            if ctx.knot_qps == ctx.knot_qps
            else ""
        )
        + "\n\n"
    )
    seconds = 6 if ctx.quick else 10
    raw = OUT / "profile.txt"
    svg = OUT / "profile.svg"
    perf_out = OUT / "perf-stat.txt"
    results: dict[str, object] = {}

    def drive() -> None:
        results["load"] = load.dnsperf(
            server.port, queries, seconds=seconds + 2, out=OUT / "dnsperf" / "profile.txt"
        )

    notes: list[str] = []
    split: dict[str, float] = {}
    for kind in ("raw", "svg", "perf"):
        thread = threading.Thread(target=drive)
        thread.start()
        time.sleep(1.0)
        if kind == "perf":
            cmd = [
                "perf", "stat", "-e",
                "task-clock,context-switches,cpu-migrations,page-faults",
                "-p", str(server.pid), "--", "sleep", str(seconds - 1),
            ]  # fmt: skip
            user_before, kernel_before = _user_kernel(server.pid)
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
            user_after, kernel_after = _user_kernel(server.pid)
            split["user"] = user_after - user_before
            split["kernel"] = kernel_after - kernel_before
            perf_out.write_text(done.stdout + done.stderr)
        else:
            cmd = [
                "py-spy", "record", "--pid", str(server.pid), "--duration", str(seconds - 1),
                "--rate", "250", "--nonblocking", "--threads", "--format",
                "raw" if kind == "raw" else "flamegraph", "-o", str(raw if kind == "raw" else svg),
            ]  # fmt: skip
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
                if done.returncode != 0:
                    notes.append(f"py-spy {kind} failed: {done.stderr.strip()[:200]}")
            except (OSError, subprocess.TimeoutExpired) as exc:
                notes.append(f"py-spy {kind} failed: {exc}")
        thread.join(seconds + 70)
    driven = results.get("load")
    qps = driven.qps if isinstance(driven, load.Result) else float("nan")
    snapshot = server.workdir / "src-snapshot"
    breakdown = profile_breakdown(raw, snapshot) if raw.exists() else "py-spy produced nothing.\n"
    perf_text = perf_out.read_text() if perf_out.exists() else "perf stat produced nothing"
    perf_lines = [
        line.strip()
        for line in perf_text.splitlines()
        if any(k in line for k in ("task-clock", "context-switches", "migrations", "faults"))
    ]
    return floor_text + (
        f"clusterdns (default UDP mode `{ctx.udp_default}`, standard Corefile, {BIG:,} "
        "services) under the section 1 "
        f"dnsperf load (~{qps:,.0f} qps while sampled). `py-spy record --nonblocking "
        f"--threads --rate 250` for {seconds - 1} s; flame graph in bench/out/profile.svg, "
        "collapsed stacks in bench/out/profile.txt. Share of samples per thread and per "
        "frame (inclusive: the frame is anywhere on the stack; self: it is the leaf):\n\n"
        + breakdown
        + "\n`perf stat` (software counters only: this VM exposes no hardware counters) over "
        f"{seconds - 1} s of the same load:\n\n```\n"
        + "\n".join(perf_lines)
        + "\n```\n"
        + _split_text(split, qps, seconds - 1)
        + ("\n" + "\n".join(f"- {n}" for n in notes) + "\n" if notes else "")
    )


def _user_kernel(pid: int) -> tuple[float, float]:
    """(utime, stime) seconds of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


def _split_text(split: dict[str, float], qps: float, seconds: float) -> str:
    if not split or not qps or qps != qps:
        return ""
    queries = qps * seconds
    user = split["user"] / queries * 1e6
    kernel = split["kernel"] / queries * 1e6
    return (
        f"\nCPU per query in that window (/proc utime and stime ÷ ~{queries:,.0f} queries): "
        f"**{user:.1f} µs in the interpreter (user) and {kernel:.1f} µs in the kernel "
        "(system calls: receiving, and sending, which on loopback includes delivering to "
        "dnsperf's socket)**.\n"
    )


def profile_breakdown(raw: Path, snapshot: Path, top: int = 20) -> str:
    """Summarise py-spy's collapsed stacks: per thread, top self frames, key inclusive frames."""
    threads: dict[str, int] = {}
    self_counts: dict[str, int] = {}
    incl: dict[str, int] = {}
    lines: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count_text = line.rpartition(" ")
        try:
            count = int(count_text)
        except ValueError:
            continue
        frames = stack.split(";")
        total += count
        if frames[0].startswith("thread ("):  # recorded with --threads
            thread = frames.pop(0)
            thread = "udp receive thread" if "udp-" in thread else thread.rpartition(": ")[2]
        else:
            thread = "(all threads)"
        if not frames:  # a thread sampled with no Python frame
            total -= count
            continue
        threads[thread] = threads.get(thread, 0) + count
        leaf = _frame(frames[-1])
        lines[frames[-1]] = lines.get(frames[-1], 0) + count
        self_counts[leaf] = self_counts.get(leaf, 0) + count
        for name in {_frame(f) for f in frames}:
            incl[name] = incl.get(name, 0) + count
    if not total:
        return "py-spy recorded no samples.\n"

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f}%"

    out = ["| thread | share of samples |", "|---|---|"]
    out += [f"| {t} | {pct(n)} |" for t, n in sorted(threads.items(), key=lambda x: -x[1])[:6]]
    out += ["", "| frame (self) | share |", "|---|---|"]
    out += [
        f"| `{f}` | {pct(n)} |" for f, n in sorted(self_counts.items(), key=lambda x: -x[1])[:15]
    ]
    out += ["", "| source line (self) | share | code |", "|---|---|---|"]
    for where, n in sorted(lines.items(), key=lambda x: -x[1])[:10]:
        out.append(f"| `{where}` | {pct(n)} | `{_source_line(where, snapshot)}` |")
    out += ["", "| frame (inclusive) | share |", "|---|---|"]
    wanted = [
        f for f, n in sorted(incl.items(), key=lambda x: -x[1])
        if not f.startswith(("_bootstrap", "Thread.", "run (", "<module>", "_run_"))
    ][:top]  # fmt: skip
    out += [f"| `{f}` | {pct(incl[f])} |" for f in wanted]
    return "\n".join(out) + "\n"


def _source_line(frame: str, snapshot: Path) -> str:
    """The code of 'name (pkg/file.py:12)' when it is one of ours, from the server's snapshot."""
    where = frame.partition(" (")[2].rstrip(")")
    path, _, number = where.rpartition(":")
    full = snapshot / path
    if not path.startswith("clusterdns/") or not full.exists() or not number.isdigit():
        return ""
    text = full.read_text().splitlines()
    index = int(number) - 1
    return text[index].strip().replace("|", "\\|") if 0 <= index < len(text) else ""


def _frame(text: str) -> str:
    """'name (file.py:12)' → 'name (file.py)'."""
    name, _, where = text.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    where = where.split("site-packages/")[-1]
    return f"{name} ({where})" if where else name


SECTIONS: dict[str, tuple[str, Callable[[Context], str]]] = {
    "qps": ("1. Cluster-record QPS and latency (1k and 100k services)", section_qps),
    "churn": ("1b. Cluster-record QPS under endpoint churn", section_churn),
    "cold": ("1c. Cold server: the first seconds after ready (1k and 100k services)", section_cold),
    "unique": ("1d. Questions that never repeat (100k services)", section_unique),
    "forward": ("2. Forwarded names from cache vs dnsmasq", section_forward),
    "latency": ("3. Latency at a fixed 10k qps; TCP QPS", section_latency),
    "propagation": ("4. Propagation of Service create/delete", section_propagation),
    "startup": ("6. Start-up to ready at 100k services/slices/pods", section_startup),
    "memory": ("5. Memory at 100k services/slices/pods", section_memory),
    "workers": ("7. --workers 1 vs 2", section_workers),
    "profile": ("8. Where the time goes", section_profile),
    "etcd": ("9. The etcd plugin and clusterdns sync", section_etcd),
}
ORDER = [
    "qps", "cold", "unique", "latency", "profile", "forward", "workers", "startup",
    "propagation", "churn", "memory", "etcd",
]  # fmt: skip
SHOWN = [
    "qps", "churn", "cold", "unique", "forward", "latency", "propagation", "memory", "startup",
    "workers", "profile", "etcd",
]  # fmt: skip

# What each section runs, beyond Python and this repository: (program or module, installer).
DEPS = "scripts/install-deps"
BENCH_DEPS = "scripts/install-bench-deps"
NEEDS: dict[str, list[tuple[str, str]]] = {
    "qps": [("dnsperf", DEPS), ("knotd", DEPS), ("dnsmasq", DEPS), ("matplotlib", BENCH_DEPS)],
    "cold": [("dnsperf", DEPS), ("knotd", DEPS), ("matplotlib", BENCH_DEPS)],
    "unique": [
        ("dnsperf", DEPS), ("knotd", DEPS), ("matplotlib", BENCH_DEPS), ("py-spy", BENCH_DEPS),
    ],
    "churn": [("dnsperf", DEPS)],
    "forward": [("dnsperf", DEPS), ("knotd", DEPS), ("dnsmasq", DEPS)],
    "latency": [("dnsperf", DEPS), ("knotd", DEPS), ("dnsmasq", DEPS)],
    "profile": [("dnsperf", DEPS), ("py-spy", BENCH_DEPS), ("perf", BENCH_DEPS)],
    "workers": [("dnsperf", DEPS)],
    "startup": [("py-spy", BENCH_DEPS)],
    "memory": [("py-spy", BENCH_DEPS), ("knotd", DEPS), ("dnsmasq", DEPS)],
    "propagation": [],
    "etcd": [("dnsperf", DEPS), ("knotd", DEPS), ("etcd", DEPS)],
}  # fmt: skip


def missing_tools(wanted: list[str]) -> dict[tuple[str, str], list[str]]:
    """(tool, installer) → the wanted sections that need it, for tools that are not here."""
    import importlib.util

    missing: dict[tuple[str, str], list[str]] = {}
    for key in wanted:
        for tool, installer in [("taskset", DEPS), *NEEDS.get(key, [])]:
            if tool == "matplotlib":
                present = importlib.util.find_spec("matplotlib") is not None
            else:
                present = shutil.which(tool) is not None
            if not present:
                missing.setdefault((tool, installer), []).append(key)
    return missing


def render(store: dict[str, dict[str, str]], info: dict[str, str], analysis: str) -> str:
    head = [
        "# clusterdns benchmarks",
        "",
        "Written by `python bench/run.py` (do not edit by hand; the analysis comes from "
        "bench/ANALYSIS.md). Figures are ratios against a peer measured in the same run, "
        "servers alternated round by round, medians of ≥ 3 rounds; absolute numbers are for "
        "orientation only on this shared, noisy machine.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    head += [f"| {k} | {v} |" for k, v in info.items()]
    head += [
        "",
        "Pinning: every server under `taskset -c 0`, dnsperf under `taskset -c 1`, this "
        "script on core 1.",
        "",
    ]
    if analysis:
        head += [analysis.rstrip(), ""]
    body = []
    for key in SHOWN:
        title = SECTIONS[key][0]
        entry = store.get(key)
        body.append(f"## {title}\n")
        if entry is None:
            body.append("Not run yet.\n")
            continue
        body.append(
            f"_Run {entry['date']} with `{entry['command']}`"
            f"{' (quick mode: shorter runs, numbers less stable)' if entry.get('quick') else ''}"
            "._\n"
        )
        body.append(entry["markdown"].rstrip() + "\n")
    return "\n".join(head) + "\n" + "\n".join(body)


def seed_from_results(text: str) -> dict[str, dict[str, Any]]:
    """The sections of a rendered RESULTS.md as a results store.

    bench/out/ is not in git, so a fresh clone has no results.json; without this, the first
    ``--only`` run would render every other section as "Not run yet".
    """
    titles = {title: key for key, (title, _) in SECTIONS.items()}
    store: dict[str, dict[str, Any]] = {}
    chunks = ("\n" + text).split("\n## ")[1:]
    for chunk in chunks:
        title, _, body = chunk.partition("\n")
        key = titles.get(title.strip())
        if key is None:
            continue
        body = body.lstrip("\n")
        first, _, markdown = body.partition("\n")
        if not (first.startswith("_Run ") and " with `" in first):
            continue
        date = first[len("_Run ") :].split(" with `", 1)[0]
        command = first.split(" with `", 1)[1].split("`", 1)[0]
        store[key] = {
            "date": date,
            "command": command,
            "quick": "(quick mode" in first,
            "markdown": markdown.lstrip("\n"),
        }
    return store


def _save(
    store: dict[str, dict[str, str]], produced: dict[str, dict[str, str]]
) -> dict[str, dict[str, str]]:
    """Write ``produced`` into results.json as it is on disk now, and return the result.

    Another ``run.py --only ...`` may have finished sections since this run started (people
    run different sections side by side); re-reading keeps theirs instead of writing back
    the copy this run loaded at its start.
    """
    try:
        current = json.loads(STORE.read_text()) if STORE.exists() else store
    except ValueError:
        current = store
    merged = {**store, **current, **produced}
    tmp = STORE.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(merged, indent=1))
    tmp.replace(STORE)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, fewer rounds elsewhere")
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), metavar="NAME")
    parser.add_argument("--list", action="store_true", help="list section names")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite RESULTS.md from the stored results"
    )
    parser.add_argument(
        "--big", type=int, default=BIG, help="services in the large cluster (smoke tests only)"
    )
    args = parser.parse_args(argv)
    globals()["BIG"] = args.big
    if args.list:
        for key in ORDER:
            print(f"{key:12} {SECTIONS[key][0]}")
        return 0
    try:
        os.sched_setaffinity(0, {1})
    except OSError:
        pass
    OUT.mkdir(parents=True, exist_ok=True)
    store: dict[str, dict[str, str]] = json.loads(STORE.read_text()) if STORE.exists() else {}
    if not store and RESULTS.exists():
        store = seed_from_results(RESULTS.read_text())  # type: ignore[assignment]
        print(f"no {STORE}: took {len(store)} sections from {RESULTS}", flush=True)
    analysis_path = ROOT / "bench" / "ANALYSIS.md"
    analysis = analysis_path.read_text() if analysis_path.exists() else ""
    if args.render:
        info = dict(store.get("_machine") or machine())
        sections = [v for k, v in store.items() if k in SECTIONS]
        if sections and "date" not in info:
            info["date"] = max(v["date"] for v in sections)
            info["command"] = f"`{sections[0]['command']}`"
        RESULTS.write_text(render(store, info, analysis))
        print(f"wrote {RESULTS}", flush=True)
        return 0
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    if args.big != 100_000:
        command += f" --big {args.big}"
    if args.only:
        command += " --only " + " ".join(args.only)
    wanted = [k for k in ORDER if not args.only or k in args.only]
    missing = missing_tools(wanted)
    if missing:
        print("bench/run.py: missing tools, nothing was run:", file=sys.stderr)
        for (tool, installer), keys in missing.items():
            print(f"  {tool:<11} (sections {', '.join(keys)}): run {installer}", file=sys.stderr)
        print("  or leave those sections out with --only; see bench/README.md", file=sys.stderr)
        return 2
    ctx = Context(args.quick)
    info = machine()
    failed = []
    try:
        for key in wanted:
            title, fn = SECTIONS[key]
            print(f"== {title}", flush=True)
            started = time.monotonic()
            ctx.code_seen = set()
            try:
                markdown = fn(ctx)
            except Exception:
                failed.append(key)
                markdown = "**This section failed:**\n\n```\n" + traceback.format_exc() + "```\n"
                print(traceback.format_exc(), flush=True)
            store[key] = {
                "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                "command": command,
                "quick": args.quick,
                "markdown": markdown
                + f"\n_(section took {time.monotonic() - started:.0f} s"
                + (
                    "; clusterdns code measured: src/clusterdns tree "
                    + ", ".join(sorted(ctx.code_seen))
                    + ", snapshots in bench/out/servers/*/src-snapshot"
                    if ctx.code_seen
                    else ""
                )
                + ")_\n",
            }
            store = _save(store, {key: store[key]})
    finally:
        ctx.stop()
    info["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info["command"] = f"`{command}`"
    store = _save(store, {"_machine": info})  # type: ignore[dict-item]
    RESULTS.write_text(render(store, info, analysis))
    print(f"wrote {RESULTS}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main"]
