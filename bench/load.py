"""Load generation: dnsperf (pinned with taskset) and a parser for its summary and -v lines.

dnsperf 2.10 has no latency histogram option, but ``-v`` prints one line per query ending
with that query's latency in seconds (measured: -v does not lower its rate here), so every
run is verbose and percentiles come from the per-query latencies.
"""

from __future__ import annotations

import re
import shlex
import statistics
import subprocess
from array import array
from dataclasses import dataclass, field
from pathlib import Path

LOAD_CORES = "1"


@dataclass
class Result:
    command: str
    sent: int = 0
    completed: int = 0
    lost: int = 0
    qps: float = 0.0
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    rcodes: dict[str, int] = field(default_factory=dict)
    latencies: int = 0
    # With ``samples=True``: every per-query latency (seconds), sorted.
    samples: array[float] | None = None
    # With ``stats_interval``: dnsperf -S lines, (wall-clock time.time() at the end of the
    # interval, answers per second over the interval).
    intervals: list[tuple[float, float]] = field(default_factory=list)

    @property
    def loss(self) -> float:
        return self.lost / self.sent if self.sent else 0.0


def percentile(sorted_values: array[float] | list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


_NUM = r"([0-9.]+)"
_INTERVAL = re.compile(r"^(\d+\.\d+): ([0-9.]+)$")


def parse(text_path: Path, command: str, *, samples: bool = False) -> Result:
    result = Result(command=command)
    lat = array("d")
    append = lat.append
    summary: list[str] = []
    with text_path.open("r", errors="replace") as lines:
        for line in lines:
            if line.startswith("> "):
                try:
                    append(float(line.rsplit(" ", 1)[1]))
                except (ValueError, IndexError):
                    pass
            elif line.startswith("  "):
                summary.append(line)
            elif line[:1].isdigit():
                match = _INTERVAL.match(line.strip())
                if match:
                    result.intervals.append((float(match.group(1)), float(match.group(2))))
    text = "".join(summary)

    def grab(pattern: str) -> float:
        match = re.search(pattern, text)
        return float(match.group(1)) if match else 0.0

    result.sent = int(grab(r"Queries sent:\s+" + _NUM))
    result.completed = int(grab(r"Queries completed:\s+" + _NUM))
    result.lost = int(grab(r"Queries lost:\s+" + _NUM))
    result.qps = grab(r"Queries per second:\s+" + _NUM)
    result.mean_ms = grab(r"Average Latency \(s\):\s+" + _NUM) * 1000
    match = re.search(r"Response codes:\s+(.*)", text)
    if match:
        for code, count in re.findall(r"([A-Z]+) (\d+)", match.group(1)):
            result.rcodes[code] = int(count)
    if lat:
        ordered = sorted(lat)
        result.latencies = len(ordered)
        result.mean_ms = statistics.fmean(ordered) * 1000
        result.p50_ms = percentile(ordered, 0.50) * 1000
        result.p99_ms = percentile(ordered, 0.99) * 1000
        result.p999_ms = percentile(ordered, 0.999) * 1000
        if samples:
            result.samples = array("d", ordered)
    return result


def dnsperf(
    port: int,
    queries: Path,
    *,
    seconds: float,
    outstanding: int = 100,
    max_qps: int | None = None,
    tcp: bool = False,
    clients: int = 1,
    max_runs: int | None = None,
    verbose: bool = True,
    out: Path,
    cores: str | None = LOAD_CORES,
    stats_interval: float | None = None,
    samples: bool = False,
) -> Result:
    """One bounded dnsperf run (time limit ``seconds``, timeout per query 2 s).

    ``stats_interval`` adds dnsperf -S (answers per second every that many seconds, with a
    wall-clock timestamp: Result.intervals); ``samples`` keeps every latency (Result.samples).
    """
    cmd = [
        "dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
        "-l", f"{seconds:g}", "-q", str(outstanding), "-t", "2", "-c", str(clients),
    ]  # fmt: skip
    if max_qps:
        cmd += ["-Q", str(max_qps)]
    if tcp:
        cmd += ["-m", "tcp"]
    if max_runs:
        cmd += ["-n", str(max_runs)]
    if stats_interval:
        cmd += ["-S", f"{stats_interval:g}"]
    if verbose:
        cmd.append("-v")
    if cores:
        cmd = ["taskset", "-c", cores, *cmd]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as sink:
        subprocess.run(
            cmd, stdout=sink, stderr=subprocess.STDOUT, check=False, timeout=seconds + 60
        )
    shown = " ".join(shlex.quote(c) for c in cmd).replace(str(queries), queries.name)
    result = parse(out, shown, samples=samples)
    out.unlink(missing_ok=True)
    return result


def warm(port: int, queries: Path, *, out: Path, seconds: float = 10.0) -> Result:
    """One pass over the query file (bounded in time), unmeasured: fills every memo/cache."""
    return dnsperf(port, queries, seconds=seconds, max_runs=1, verbose=False, out=out)
