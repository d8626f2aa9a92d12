"""Micro-benchmark: what one first-sight question costs on the fast path, by kind.

Loads the generated cluster (bench/fixture.py) into a ClusterModel as start-up does (see
table_build.py), then asks the kubernetes plugin's ``answer_fast`` questions it has never
seen, each parsed from its own bytes, as the UDP receive thread does after a reply-memo
miss: Service A in random letter case, SRV, PTR, search-path NXDOMAIN, random labels
under a namespace. Reports microseconds per question (in-process, one core, no sockets),
and, for scale, what the least Python that answers a Service's A question costs
(``floor_answer``: no checks, metrics, dispatch or memo).

    taskset -c 0 python bench/first_sight.py [--services 100000] [--questions 20000]
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import random
import socket
import struct
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

_HEADER = struct.Struct("!HHHHHH")
_TYPE_CLASS = struct.Struct("!HH")
_RR = struct.Struct("!HHIH")
_ZONE = b"\x07cluster\x05local\x00"
_OPT = b"\x00\x00\x29\x10\x00\x00\x00\x00\x00\x00\x00"


def floor_answer(data: bytes, services: dict[str, dict[str, tuple[str, ...]]]) -> bytes | None:
    """A reference, not a server: the least Python that answers a Service's A question
    from a dict (header, name walk, one zone, two lookups, the records, an OPT), with
    none of the checks, metrics, dispatch, memo or other question kinds a server needs.
    What it costs is the floor for any CPython implementation on this machine."""
    msg_id, flags, _, _, _, _ = _HEADER.unpack_from(data)
    pos = 12
    offsets = []
    length = data[12]
    while length:
        offsets.append(pos)
        pos += 1 + length
        length = data[pos]
    offsets.append(pos)
    lower = data[12 : pos + 1].lower()
    if len(offsets) < 5 or lower[offsets[-3] - 12 :] != _ZONE:
        return None
    namespace = lower[offsets[-5] - 11 : offsets[-4] - 12].decode()
    name = lower[offsets[-6] - 11 : offsets[-5] - 12].decode()
    ips = services.get(namespace, {}).get(name)
    if ips is None:
        return None
    body = b"".join([b"\xc0\x0c" + _RR.pack(1, 1, 30, 4) + socket.inet_aton(ip) for ip in ips])
    head = _HEADER.pack(msg_id, 0x8400 | (flags & 0x110), 1, len(ips), 0, 1)
    return head + data[12 : pos + 5] + body + _OPT


class _NoSource:
    async def run(self, model: ClusterModel) -> None:
        return None


def mixed_case(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c for c in name)


def questions(cluster: Cluster, kind: str, count: int, rng: random.Random) -> list[bytes]:
    out = []
    for n in range(count):
        i = rng.randrange(cluster.services)
        _, ns, cluster_ip = cluster.service(i)
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
    services: dict[str, dict[str, tuple[str, ...]]] = {}
    for i in range(args.services):
        name, ns, cluster_ip = cluster.service(i)
        services.setdefault(ns, {})[name] = (cluster_ip,)
    wires = questions(cluster, "A", args.questions, rng)
    started = time.perf_counter()
    for wire in wires:
        floor = floor_answer(wire, services)
    took = time.perf_counter() - started
    assert floor is not None
    print(f"  {'floor (A)':<16} {took / len(wires) * 1e6:6.1f} µs  (least Python for an A answer)")
    scratch.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
