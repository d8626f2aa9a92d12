"""Micro-benchmark: what start-up spends building the kubernetes plugin's answers, per service.

Loads the generated cluster (bench/fixture.py) into a ClusterModel the way a source does
(namespaces, then services, then endpoint slices, one ``replace_all`` each) with the
kubernetes plugin's AnswerTable subscribed, and reports the time of each step and how many
answers were encoded with dnspython. In-process, one core, no DNS traffic.

    python bench/table_build.py [--services 2000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fixture import Cluster  # noqa: E402

from clusterdns.plugins.kubernetes import answers  # noqa: E402
from clusterdns.plugins.kubernetes.answers import AnswerTable  # noqa: E402
from clusterdns.plugins.kubernetes.config import KubernetesConfig  # noqa: E402
from clusterdns.sources.kube import objects as api  # noqa: E402
from clusterdns.sources.model import ClusterModel, Kind  # noqa: E402

TYPES = {
    "Namespace": (Kind.NAMESPACES, api.Namespace),
    "Service": (Kind.SERVICES, api.Service),
    "EndpointSlice": (Kind.ENDPOINTSLICES, api.EndpointSlice),
}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument(
        "--no-gc", action="store_true", help="gc.disable() while loading (what start-up could do)"
    )
    args = parser.parse_args()
    cluster = Cluster(args.services)
    by_kind: dict[Kind, list[object]] = {kind: [] for kind, _ in TYPES.values()}
    for obj in cluster.api_objects():
        kind, struct = TYPES[obj["kind"]]
        by_kind[kind].append(api.from_builtins(obj, struct))
    model = ClusterModel(kinds={Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES})
    table = AnswerTable(
        KubernetesConfig(zones=("cluster.local.", "in-addr.arpa.", "ip6.arpa.")),
        model,
        own_addresses=("127.0.0.1",),
    )
    model.subscribe(lambda change: None if table.deferring else table.apply(change))
    if args.no_gc:
        gc.disable()
    print(f"cyclic gc {'disabled' if args.no_gc else 'enabled'} while loading")
    calls = {"encode": 0, "encode_s": 0.0}
    original = answers.encode

    def counting(*a: object, **k: object) -> object:
        started = time.perf_counter()
        try:
            return original(*a, **k)  # type: ignore[arg-type]
        finally:
            calls["encode"] += 1
            calls["encode_s"] += time.perf_counter() - started

    answers.encode = counting  # type: ignore[assignment]
    print(
        f"{args.services:,} services, {cluster.namespace_count} namespaces; "
        f"RSS with the decoded objects: {rss_mib():.0f} MiB"
    )
    for kind in (Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES):
        before = dict(calls)
        started = time.perf_counter()
        model.replace_all(kind, by_kind[kind])
        took = time.perf_counter() - started
        encodes = calls["encode"] - before["encode"]
        enc_s = calls["encode_s"] - before["encode_s"]
        print(
            f"  replace_all({kind.name:<15}) {took:7.3f} s = {took / args.services * 1e6:7.0f} "
            f"µs/service; {encodes:,} dnspython encodes taking {enc_s:.3f} s "
            f"({enc_s / max(1, encodes) * 1e6:.0f} µs each); RSS {rss_mib():.0f} MiB"
        )
    # As the plugin does once the initial lists are in (Kubernetes._build_deferred).
    started = time.perf_counter()
    if getattr(table, "deferring", False):
        table.deferring = False
        table.rebuild()
    took = time.perf_counter() - started
    print(
        f"  table build after sync     {took:7.3f} s = {took / args.services * 1e6:7.0f} "
        f"µs/service; RSS {rss_mib():.0f} MiB"
    )
    print(f"  templates stored: {len(table.templates):,}, names: {len(table.names):,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
