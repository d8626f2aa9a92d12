"""RSS through a full relist: the API server restarts with a new resourceVersion history.

    python bench/relist.py [--services 100000] [--no-pods] [--pods-mode insecure|verified]
                           [--settle 5] [--rounds 1]

Starts the bulk API test server (bench/apiserver.py) holding N Services with their
EndpointSlices (and Pods, as bench/run.py's memory section does), starts ``clusterdns serve``
on it with the standard Corefile, waits for /ready, then samples VmRSS every 50 ms while it
forces a relist: every watch is cut and the history forgotten, so every reflector's next
watch gets 410 Gone and lists everything again. Prints steady RSS (before), the peak during
the relist and the RSS after, with the peak/steady ratio (the goal: under 1.2).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.apiserver import ApiServerThread  # noqa: E402
from bench.fixture import Cluster  # noqa: E402
from bench.peers import OUT, ClusterDNS, rss_kib  # noqa: E402

SAMPLE = 0.05  # seconds between RSS samples


class Sampler:
    """VmRSS of one process every 50 ms in a thread, as (monotonic time, KiB)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_kib(self.pid)))
            self._stop.wait(SAMPLE)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> list[int]:
        return [kib for (t, kib) in self.samples if start <= t <= end]


def force_relist(api: ApiServerThread) -> dict[str, int]:
    """Forget the history past the current version and cut every watch: all relist.

    Returns the LIST requests seen so far per path (the relist is done when every path
    listed before has been listed again and every watch is open again).
    """

    def restart() -> dict[str, int]:
        server = api.server
        server._next_rv()  # the restarted server's versions start past every one handed out
        server.compact()
        server._sorted.clear()
        server.drop_watches()
        return {path: n for path, n in server.list_requests.items() if n}

    result: dict[str, int] = api.call(restart)
    return result


def relisted(api: ApiServerThread, lists_before: dict[str, int], watches: int) -> bool:
    def check() -> bool:
        server = api.server
        again = all(server.list_requests[path] > n for path, n in lists_before.items())
        return again and server.open_watches >= watches

    done: bool = api.call(check)
    return done


def mib(kib: float) -> float:
    return kib / 1024


def run(
    services: int, pods: bool, settle: float, rounds: int, pods_mode: str = "insecure"
) -> list[dict[str, float]]:
    cluster = Cluster(services, pods=pods)
    results: list[dict[str, float]] = []
    with ApiServerThread() as api:
        started = time.perf_counter()
        count = api.call(api.server.load, cluster.api_objects(), timeout=900)
        print(f"api server: {count:,} objects in {time.perf_counter() - started:.1f}s", flush=True)
        cd = ClusterDNS(source=f"endpoint {api.url}", cores=None, pods_mode=pods_mode)
        cd.workdir = OUT / "servers" / f"relist-{cluster.tag}-{pods_mode}"
        cd.start(timeout=1800)
        try:
            print(f"clusterdns ready after {cd.ready_after:.1f}s (pid {cd.pid})", flush=True)
            time.sleep(settle)  # let the start-up garbage go
            watches: int = api.call(lambda: api.server.open_watches)
            with Sampler(cd.pid) as sampler:
                for round_ in range(rounds):
                    t0 = time.monotonic()
                    time.sleep(settle)
                    t1 = time.monotonic()
                    lists_before = force_relist(api)
                    deadline = t1 + 600
                    while not relisted(api, lists_before, watches):
                        if time.monotonic() > deadline:
                            raise TimeoutError("the relist did not finish in 600 s")
                        time.sleep(0.05)
                    t2 = time.monotonic()
                    time.sleep(settle)
                    t3 = time.monotonic()
                    steady = sorted(sampler.between(t0, t1))
                    during = sampler.between(t1, t3)
                    after = sampler.between(t3 - 1.0, t3)
                    row = {
                        "steady_mib": mib(steady[len(steady) // 2]),
                        "peak_mib": mib(max(during)),
                        "after_mib": mib(after[-1]),
                        "relist_s": t2 - t1,
                    }
                    row["ratio"] = row["peak_mib"] / row["steady_mib"]
                    results.append(row)
                    print(
                        f"round {round_ + 1}: steady {row['steady_mib']:.0f} MiB, relist peak "
                        f"{row['peak_mib']:.0f} MiB ({row['ratio']:.2f}x), after "
                        f"{row['after_mib']:.0f} MiB; relist took {row['relist_s']:.1f}s",
                        flush=True,
                    )
        finally:
            cd.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--no-pods", action="store_true", help="Services and slices only")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before/after")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--pods-mode", choices=("insecure", "verified"), default="insecure",
        help="the Corefile's pods mode (verified lists and watches the Pods too)",
    )  # fmt: skip
    args = parser.parse_args()
    run(args.services, not args.no_pods, args.settle, args.rounds, args.pods_mode)


if __name__ == "__main__":
    main()
