"""Micro-benchmark: what start-up spends loading the cluster and building the kubernetes
plugin's answer table, and the memory that stays.

Encodes the generated cluster (bench/fixture.py) as the API test server's LIST pages (500
items, JSON, with the metadata the server adds), then loads them the way the API source
does: each page decoded with the reflector's decoder and converted into a
``ClusterModel.listing`` as it comes (namespaces, then services, then endpoint slices, one
listing each), with the kubernetes plugin's AnswerTable subscribed and built once all are
in. In-process, one core, no HTTP and no DNS traffic.

The cyclic GC is off while loading, as ``clusterdns serve`` has it until the first sync
(``--gc`` turns it on). RSS is reported as growth over the process before the pages were
encoded; the pages are dropped as they are read, so the growth after loading is what the
model and the table keep (plus what pymalloc holds on to from the peak).

    taskset -c 0 python bench/table_build.py [--services 2000] [--gc]
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import struct
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fixture import Cluster  # noqa: E402

from clusterdns.plugins.kubernetes.answers import AnswerTable  # noqa: E402
from clusterdns.plugins.kubernetes.config import KubernetesConfig  # noqa: E402
from clusterdns.sources.kube.reflector import resource_for  # noqa: E402
from clusterdns.sources.model import ClusterModel, Kind  # noqa: E402

KINDS = {
    "Namespace": Kind.NAMESPACES,
    "Service": Kind.SERVICES,
    "EndpointSlice": Kind.ENDPOINTSLICES,
}
PAGE = 500


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def encode_pages(cluster: Cluster) -> dict[Kind, list[bytes]]:
    """LIST pages per kind, shaped like the API test server's (bench/apiserver.py)."""
    rows: dict[Kind, list[bytes]] = {kind: [] for kind in KINDS.values()}
    for version, obj in enumerate(cluster.api_objects(), start=1):
        meta = obj["metadata"]
        meta.update(uid=f"uid-{version}", creationTimestamp="2026-01-01T00:00:00Z")
        meta["resourceVersion"] = str(version)
        rows[KINDS[obj["kind"]]].append(json.dumps(obj, separators=(",", ":")).encode())
    pages: dict[Kind, list[bytes]] = {}
    for kind, encoded in rows.items():
        pages[kind] = []
        for start in range(0, len(encoded), PAGE):
            more = start + PAGE < len(encoded)
            meta: dict[str, Any] = {"resourceVersion": "1"}
            if more:
                meta["continue"] = f"page-{start + PAGE}"
            head = json.dumps({"kind": "List", "apiVersion": "v1", "metadata": meta})[:-1]
            pages[kind].append(
                head.encode() + b',"items":[' + b",".join(encoded[start : start + PAGE]) + b"]}"
            )
    return pages


def write_pages(services: int, path: str) -> None:
    """In a child process, so the objects built to encode them leave no trace here."""
    pages = encode_pages(Cluster(services))
    with open(path, "wb") as out:
        for kind in KINDS.values():
            for page in pages[kind]:
                out.write(struct.pack("!BI", list(KINDS.values()).index(kind), len(page)) + page)


def read_pages(path: str) -> Iterator[tuple[Kind, bytes]]:
    kinds = list(KINDS.values())
    with open(path, "rb") as src:
        while head := src.read(5):
            index, size = struct.unpack("!BI", head)
            yield kinds[index], src.read(size)


def load(model: ClusterModel, path: str, services: int, base: float) -> float:
    """List every kind from the pages at ``path`` into ``model``; returns the seconds."""
    total = 0.0
    pages = read_pages(path)
    page = next(pages, None)
    for kind in (Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES):
        decoder = resource_for(kind).list_decoder
        started = time.perf_counter()
        listing = model.listing(kind)
        while page is not None and page[0] is kind:
            listing.add(decoder.decode(page[1]).items or ())
            page = next(pages, None)
        listing.commit()
        took = time.perf_counter() - started
        total += took
        print(
            f"  list {kind.value:<15} {took:7.3f} s = {took / services * 1e6:5.1f} "
            f"µs/service (read + decode + convert + apply); RSS +{rss_mib() - base:.0f} MiB"
        )
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=2000)
    parser.add_argument("--gc", action="store_true", help="keep the cyclic GC on while loading")
    parser.add_argument(
        "--relist", action="store_true", help="then list everything again (a 410 Gone relist)"
    )
    args = parser.parse_args()
    cluster = Cluster(args.services)
    scratch = tempfile.NamedTemporaryFile(prefix="table-build-", suffix=".pages")  # noqa: SIM115 (closed at the end)
    child = multiprocessing.Process(target=write_pages, args=(args.services, scratch.name))
    child.start()
    child.join()
    base = rss_mib()
    print(
        f"{args.services:,} services, {cluster.namespace_count} namespaces; "
        f"{Path(scratch.name).stat().st_size / 2**20:.0f} MiB of LIST pages read one at a "
        f"time; RSS {base:.0f} MiB before loading"
    )
    model = ClusterModel(kinds={Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES})
    table = AnswerTable(
        KubernetesConfig(zones=("cluster.local.", "in-addr.arpa.", "ip6.arpa.")),
        model,
        own_addresses=("127.0.0.1",),
    )
    model.subscribe(lambda change: None if table.deferring else table.apply(change))
    if not args.gc:
        gc.disable()
    print(f"cyclic gc {'enabled' if args.gc else 'disabled'} while loading")
    total = load(model, scratch.name, args.services, base)
    # As the plugin does once the initial lists are in (Kubernetes._build_deferred).
    started = time.perf_counter()
    table.deferring = False
    table.rebuild()
    took = time.perf_counter() - started
    total += took
    print(f"  table build     {took:7.3f} s; RSS +{rss_mib() - base:.0f} MiB")
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    print(
        f"  gc.collect()    {time.perf_counter() - started:7.3f} s (start-up's freeze once ready)"
    )
    print(f"total {total:.3f} s; RSS growth {rss_mib() - base:.0f} MiB for the model and table")
    if args.relist:
        generation = model.generation
        print("relist (nothing changed; the stored records are kept, not copied):")
        load(model, scratch.name, args.services, base)
        print(f"  generation moved by {model.generation - generation}")
    scratch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
