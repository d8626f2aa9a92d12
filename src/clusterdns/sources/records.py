"""Slim, frozen cluster records: what DNS needs from Services, endpoints, Pods and Namespaces.

Instances are immutable msgspec Structs without GC tracking; namespaces, names, port names
and IP addresses are interned, so equal strings across thousands of records share memory and
compare by identity first, and equal port lists are one shared tuple. IP addresses are
canonical (``ipaddress`` text form). Fields DNS never reads (selectors, node names) are not
kept: at 100k Services every field costs megabytes.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "Endpoint", "IpOwner", "Namespace", "Pod", "Service", "ServiceImport", "ServicePort",
]  # fmt: skip


class ServicePort(msgspec.Struct, frozen=True, gc=False):
    name: str
    port: int
    protocol: str  # "TCP", "UDP" or "SCTP"


class Service(msgspec.Struct, frozen=True, gc=False):
    namespace: str
    name: str
    type: str  # "ClusterIP", "NodePort", "LoadBalancer" or "ExternalName"
    cluster_ips: tuple[str, ...]  # primary first; () when headless or ExternalName
    headless: bool
    external_name: str | None
    ports: tuple[ServicePort, ...]
    publish_not_ready: bool
    labels: tuple[tuple[str, str], ...]  # sorted
    # spec.externalIPs, then each status.loadBalancer.ingress's ip (else its hostname), as
    # CoreDNS's object.Service keeps them for k8s_external: IPs canonical, hostnames
    # lower-case without the trailing dot; () for nearly every Service (no memory).
    external: tuple[str, ...] = ()


class ServiceImport(msgspec.Struct, frozen=True, gc=False):
    """A Multi-Cluster Services ServiceImport (KEP-1645): a Service exported by clusters of
    the clusterset, named under the ``multicluster`` zone."""

    namespace: str
    name: str
    headless: bool  # spec.type "Headless"; else "ClusterSetIP"
    ips: tuple[str, ...]  # the clusterset IPs (none when headless)
    ports: tuple[ServicePort, ...]


class Endpoint(msgspec.Struct, frozen=True, gc=False):
    addresses: tuple[str, ...]
    ready: bool
    hostname: str | None
    pod_name: str | None  # set when targetRef.kind == "Pod"
    ports: tuple[ServicePort, ...]


class Pod(msgspec.Struct, frozen=True, gc=False):
    namespace: str
    name: str
    ips: tuple[str, ...]
    ready: bool


class Namespace(msgspec.Struct, frozen=True, gc=False):
    name: str
    labels: tuple[tuple[str, str], ...]  # sorted


class IpOwner(msgspec.Struct, frozen=True, gc=False):
    """Who answers the PTR query for an IP.

    ``hostname`` is None for a ClusterIP, and for an endpoint address without a hostname
    (the DNS plugin then derives the label from the IP, like CoreDNS does).
    """

    namespace: str
    service: str
    hostname: str | None
