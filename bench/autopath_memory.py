"""Memory of what autopath @kubernetes needs to know about Pods, at 100k Pods.

Compares the ClusterModel with the full Pod records (``pods verified``: Kind.PODS) against the
slim Pod IP → namespace index (Kind.POD_IPS, autopath's default), and both together (``pods
verified`` plus autopath: one watch feeds both). Each mode runs in a fresh subprocess: the Pods
are decoded from API JSON with the reflector's msgspec decoder, loaded with replace_all, the
decoded objects dropped, and what stays is measured (tracemalloc, and RSS from /proc).

    python bench/autopath_memory.py [--pods 100000] [--namespaces 2000]

Measured 2026-11 (CPython 3.11.7, x86_64, this machine), 100000 Pods in 2000 namespaces:

    mode                                       bytes/pod  kept MiB  RSS growth MiB
    pods verified (PODS)                             614      58.6           249.1
    autopath slim index (POD_IPS)                    119      11.3            16.0
    pods verified + autopath (PODS + POD_IPS)        732      69.8           264.8

RSS growth is the process after one full list with the decoded objects dropped: the long-lived
Pod records pin the pymalloc arenas the decode used, the slim index lets them go.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import subprocess
import sys
import tracemalloc
from typing import Any

MODES = {
    "pods verified (PODS)": ["pods"],
    "autopath slim index (POD_IPS)": ["pod_ips"],
    "pods verified + autopath (PODS + POD_IPS)": ["pods", "pod_ips"],
}


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pod_list_json(pods: int, namespaces: int) -> bytes:
    items: list[dict[str, Any]] = []
    for i in range(pods):
        ip = f"10.{64 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"
        items.append(
            {
                "metadata": {
                    "name": f"web-{i // 3:x}f8c6b5-{i:05x}",
                    "namespace": f"team-{i % namespaces}",
                    "labels": {"app": "web", "pod-template-hash": f"{i // 3:x}f8c6b5"},
                    "resourceVersion": str(1000 + i),
                    "uid": f"00000000-0000-4000-8000-{i:012x}",
                },
                "spec": {
                    "nodeName": f"node-{i % 500}",
                    "containers": [
                        {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}
                    ],
                },
                "status": {
                    "phase": "Running",
                    "podIP": ip,
                    "podIPs": [{"ip": ip}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
    return json.dumps({"metadata": {"resourceVersion": "1"}, "items": items}).encode()


def measure(kinds: list[str], pods: int, namespaces: int, *, traced: bool) -> dict[str, float]:
    """Load the Pods once into a model of ``kinds``; what stays (traced) or the RSS growth."""
    from clusterdns.sources.kube.reflector import resource_for
    from clusterdns.sources.model import ClusterModel, Kind

    body = pod_list_json(pods, namespaces)
    decoder = resource_for(Kind.PODS).list_decoder
    gc.collect()
    if traced:
        tracemalloc.start()
        base = tracemalloc.take_snapshot()
    base_rss = rss_kib()
    wanted = {Kind(k) for k in kinds}
    model = ClusterModel(kinds=wanted)
    listing = decoder.decode(body)
    kind = Kind.PODS if Kind.PODS in wanted else Kind.POD_IPS
    model.replace_all(kind, listing.items or [])
    del listing
    gc.collect()
    assert model.pod_namespace("10.64.0.5") == "team-5"
    if not traced:
        # RSS keeps what the decode used (pymalloc arenas are rarely returned): this is the
        # process growth after one full list, not what the model alone holds.
        return {"rss_delta_mib": (rss_kib() - base_rss) / 1024}
    after = tracemalloc.take_snapshot()
    kept = sum(stat.size_diff for stat in after.compare_to(base, "filename"))
    return {"bytes_per_pod": kept / pods, "total_mib": kept / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--namespaces", type=int, default=2000)
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure(args.child, args.pods, args.namespaces, traced=args.traced)))
        return
    print(f"# {' '.join(sys.argv)}")
    print(f"# {platform.python_implementation()} {platform.python_version()}, {platform.machine()}")
    print(f"# {args.pods} pods in {args.namespaces} namespaces")
    print(f"{'mode':<45} {'bytes/pod':>10} {'kept MiB':>9} {'RSS Δ MiB':>10}")
    for label, kinds in MODES.items():
        figures: dict[str, float] = {}
        for traced in (True, False):
            out = subprocess.run(
                [sys.executable, __file__, "--pods", str(args.pods),
                 "--namespaces", str(args.namespaces), *(["--traced"] if traced else []),
                 "--child", *kinds],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            figures.update(json.loads(out))
        print(
            f"{label:<45} {figures['bytes_per_pod']:>10.0f} {figures['total_mib']:>9.1f} "
            f"{figures['rss_delta_mib']:>10.1f}"
        )


if __name__ == "__main__":
    main()
