"""Micro-benchmark: what one first-sight question costs on the fast path, by kind.

Loads the generated cluster (bench/fixture.py) into a ClusterModel as start-up does (see
table_build.py), then asks the kubernetes plugin's ``answer_fast`` questions it has never
seen, each parsed from its own bytes, as the UDP receive thread does after a reply-memo
miss: Service A in random letter case, SRV, PTR, search-path NXDOMAIN, random labels
under a namespace. Reports microseconds per question (in-process, one core, no sockets).

    taskset -c 0 python bench/first_sight.py [--services 100000] [--questions 20000]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import dns.message  # noqa: E402

from bench.fixture import Cluster, reverse_name  # noqa: E402
from bench.table_build import load, rss_mib, write_pages  # noqa: E402
from clusterdns.core.fast import FastReply  # noqa: E402
from clusterdns.plugins.kubernetes.config import KubernetesConfig  # noqa: E402
from clusterdns.plugins.kubernetes.handler import Kubernetes  # noqa: E402
from clusterdns.sources.model import ClusterModel, Kind  # noqa: E402
from clusterdns.wire import parse_query  # noqa: E402


class _NoSource:
    async def run(self, model: ClusterModel) -> None:
        return None


def mixed_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def questions(cluster: Cluster, kind: str, count: int, rng: random.Random) -> list[bytes]:
    out = []
    for n in range(count):
        i = rng.randrange(cluster.services)
        name, ns, cluster_ip = cluster.service(i)
        if kind == "A":
            qname, qtype = mixed_case(cluster.fqdn(i), rng), "A"
        elif kind == "SRV":
            qname, qtype = mixed_case(f"_http._tcp.{cluster.fqdn(i)}", rng), "SRV"
        elif kind == "PTR":
            qname, qtype = reverse_name(cluster_ip), "PTR"
        elif kind == "search NXDOMAIN":
            qname, qtype = f"api{n}.example.com.{ns}.svc.cluster.local", "A"
        else:  # random labels under a namespace
            qname, qtype = f"x{rng.getrandbits(40):x}.{ns}.svc.cluster.local", "A"
        query = dns.message.make_query(qname, qtype, use_edns=0, payload=1232)
        query.id = n & 0xFFFF
        out.append(query.to_wire())
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100_000)
    parser.add_argument("--questions", type=int, default=20_000)
    args = parser.parse_args()
    cluster = Cluster(args.services)
    scratch = tempfile.NamedTemporaryFile(prefix="first-sight-", suffix=".pages")  # noqa: SIM115
    child = multiprocessing.Process(target=write_pages, args=(args.services, scratch.name))
    child.start()
    child.join()
    model = ClusterModel(kinds={Kind.NAMESPACES, Kind.SERVICES, Kind.ENDPOINTSLICES})
    plugin = Kubernetes(
        KubernetesConfig(zones=("cluster.local.", "in-addr.arpa.", "ip6.arpa.")),
        model,
        _NoSource(),
    )
    gc.disable()
    load(model, scratch.name, args.services, rss_mib())
    plugin.table.deferring = False
    plugin.table.rebuild()
    gc.collect()
    gc.freeze()
    gc.enable()
    rng = random.Random(7)
    print(f"{args.services:,} services; µs per first-sight question (parse + answer_fast):")
    for kind in ("A", "SRV", "PTR", "search NXDOMAIN", "random label"):
        wires = questions(cluster, kind, args.questions, rng)
        answer_fast = plugin.answer_fast
        started = time.perf_counter()
        for wire in wires:
            reply = answer_fast(parse_query(wire), 1232, 4096)
        took = time.perf_counter() - started
        assert isinstance(reply, FastReply)
        print(f"  {kind:<16} {took / len(wires) * 1e6:6.1f} µs")
    scratch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
