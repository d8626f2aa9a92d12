"""The generated cluster every server in a benchmark serves, in each server's own format.

``svc-i`` lives in namespace ``ns-(i % namespaces)``; it has ClusterIP 10.96.0.0 + 10 + i,
one named port ``http`` 80/TCP, and one EndpointSlice with 3 ready endpoints
(10.128.0.0 + 3i + k). Optionally one Pod per service (IP 10.192.0.0 + i). The same names are
written as Kubernetes manifests (one JSON List file), a knot zone pair (cluster.local and
10.in-addr.arpa) and a dnsmasq hosts file plus SRV lines, so all three serve identical data.
"""

from __future__ import annotations

import ipaddress
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Obj = dict[str, Any]

SERVICE_BASE = int(ipaddress.IPv4Address("10.96.0.10"))
ENDPOINT_BASE = int(ipaddress.IPv4Address("10.128.0.0"))
POD_BASE = int(ipaddress.IPv4Address("10.192.0.0"))
ZONE = "cluster.local"
SOA_TTL = 5
TTL = 30


def ip(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def reverse_name(address: str) -> str:
    return ".".join(reversed(address.split("."))) + ".in-addr.arpa"


@dataclass(frozen=True)
class Cluster:
    services: int
    namespaces: int = 0  # 0: one namespace per 100 services
    pods: bool = False

    @property
    def namespace_count(self) -> int:
        return self.namespaces or max(1, self.services // 100)

    @property
    def tag(self) -> str:
        return f"s{self.services}-n{self.namespace_count}{'-pods' if self.pods else ''}"

    # --- the names ---------------------------------------------------------------------------

    def service(self, i: int) -> tuple[str, str, str]:
        """(name, namespace, ClusterIP) of service i."""
        return f"svc-{i}", f"ns-{i % self.namespace_count}", ip(SERVICE_BASE + i)

    def fqdn(self, i: int) -> str:
        name, ns, _ = self.service(i)
        return f"{name}.{ns}.svc.{ZONE}"

    def endpoint_ips(self, i: int) -> list[str]:
        return [ip(ENDPOINT_BASE + 3 * i + k) for k in range(3)]

    # --- API objects -------------------------------------------------------------------------

    def api_objects(self) -> Iterator[Obj]:
        """Namespaces, then per service: Service, EndpointSlice (and Pod); plain dicts."""
        for j in range(self.namespace_count):
            yield {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": f"ns-{j}"}}
        for i in range(self.services):
            yield from self.service_objects(i)

    def service_objects(self, i: int) -> list[Obj]:
        name, ns, cluster_ip = self.service(i)
        port = [{"name": "http", "port": 80, "protocol": "TCP"}]
        objs: list[Obj] = [
            {
                "kind": "Service",
                "apiVersion": "v1",
                "metadata": {"name": name, "namespace": ns},
                "spec": {
                    "type": "ClusterIP",
                    "clusterIP": cluster_ip,
                    "clusterIPs": [cluster_ip],
                    "ports": port,
                },
            },
            {
                "kind": "EndpointSlice",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": {
                    "name": f"{name}-a",
                    "namespace": ns,
                    "labels": {"kubernetes.io/service-name": name},
                },
                "addressType": "IPv4",
                "endpoints": [
                    {"addresses": [a], "conditions": {"ready": True}} for a in self.endpoint_ips(i)
                ],
                "ports": port,
            },
        ]
        if self.pods:
            pod_ip = ip(POD_BASE + i)
            objs.append(
                {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {"name": f"{name}-pod", "namespace": ns, "labels": {"app": name}},
                    "spec": {"containers": [{"name": "main", "image": "busybox"}]},
                    "status": {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True"}],
                        "podIP": pod_ip,
                        "podIPs": [{"ip": pod_ip}],
                    },
                }
            )
        return objs

    def write_manifests(self, folder: Path) -> Path:
        """One ``kind: List`` JSON file holding the whole cluster (the fastest to load)."""
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.json"):
            old.unlink()
        path = folder / "cluster.json"
        with path.open("w") as out:
            json.dump({"kind": "List", "apiVersion": "v1", "items": list(self.api_objects())}, out)
        return folder

    # --- knot ------------------------------------------------------------------------------

    def write_knot_zones(self, folder: Path) -> dict[str, Path]:
        """cluster.local and 10.in-addr.arpa zone files with the records clusterdns serves."""
        folder.mkdir(parents=True, exist_ok=True)
        fwd = folder / "cluster.local.zone"
        rev = folder / "10.in-addr.arpa.zone"
        soa = "ns.dns.{z}. hostmaster.{z}. 1 7200 1800 86400 " + str(SOA_TTL)
        with fwd.open("w") as out:
            out.write(f"$ORIGIN {ZONE}.\n$TTL {TTL}\n")
            out.write(f"@ {SOA_TTL} IN SOA {soa.format(z=ZONE)}\n@ IN NS ns.dns\n")
            out.write("ns.dns IN A 127.0.0.1\n")
            for i in range(self.services):
                name, ns, cluster_ip = self.service(i)
                rel = f"{name}.{ns}.svc"
                out.write(f"{rel} IN A {cluster_ip}\n")
                out.write(f"_http._tcp.{rel} IN SRV 0 100 80 {rel}\n")
        with rev.open("w") as out:
            out.write(f"$ORIGIN 10.in-addr.arpa.\n$TTL {TTL}\n")
            out.write(f"@ {SOA_TTL} IN SOA {soa.format(z='10.in-addr.arpa')}\n")
            out.write(f"@ IN NS ns.dns.{ZONE}.\n")
            for i in range(self.services):
                _, _, cluster_ip = self.service(i)
                out.write(f"{reverse_name(cluster_ip)}. IN PTR {self.fqdn(i)}.\n")
        return {ZONE: fwd, "10.in-addr.arpa": rev}

    # --- dnsmasq ---------------------------------------------------------------------------

    def write_dnsmasq(self, folder: Path) -> tuple[Path, Path]:
        """(hosts file for A and PTR, conf file of srv-host lines)."""
        folder.mkdir(parents=True, exist_ok=True)
        hosts = folder / "cluster.hosts"
        srv = folder / "cluster-srv.conf"
        with hosts.open("w") as h, srv.open("w") as s:
            for i in range(self.services):
                _, _, cluster_ip = self.service(i)
                fqdn = self.fqdn(i)
                h.write(f"{cluster_ip} {fqdn}\n")
                s.write(f"srv-host=_http._tcp.{fqdn},{fqdn},80,0,100\n")
        return hosts, srv

    # --- queries ---------------------------------------------------------------------------

    def query_mix(self, count: int, *, seed: int = 1) -> list[tuple[str, str]]:
        """The issue's workload: 70% A hits, 10% SRV, 10% PTR, 10% search-path NXDOMAIN."""
        rng = random.Random(seed)
        out: list[tuple[str, str]] = []
        for _ in range(count):
            i = rng.randrange(self.services)
            roll = rng.random()
            fqdn = self.fqdn(i)
            if roll < 0.7:
                out.append((fqdn, "A"))
            elif roll < 0.8:
                out.append((f"_http._tcp.{fqdn}", "SRV"))
            elif roll < 0.9:
                out.append((reverse_name(self.service(i)[2]), "PTR"))
            else:
                out.append((f"{fqdn}.default.svc.{ZONE}", "A"))
        return out

    def every_name(self) -> list[tuple[str, str]]:
        """Every question the mix can ask of this cluster, once: each Service's A, SRV, PTR
        and search-path miss, and each pod's A (``a-b-c-d.<ns>.pod``) when it has pods."""
        out: list[tuple[str, str]] = []
        for i in range(self.services):
            fqdn = self.fqdn(i)
            out += [
                (fqdn, "A"),
                (f"_http._tcp.{fqdn}", "SRV"),
                (reverse_name(self.service(i)[2]), "PTR"),
                (f"{fqdn}.default.svc.{ZONE}", "A"),
            ]
            if self.pods:
                dashed = ip(POD_BASE + i).replace(".", "-")
                out.append((f"{dashed}.{self.service(i)[1]}.pod.{ZONE}", "A"))
        return out

    def write_queries(self, path: Path, count: int = 100_000, *, seed: int = 1) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as out:
            for name, qtype in self.query_mix(count, seed=seed):
                out.write(f"{name} {qtype}\n")
        return path


def write_a_queries(path: Path, names: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{n} A\n" for n in names))
    return path
