"""Slim, frozen cluster records: what DNS needs from Services, endpoints, Pods and Namespaces.

Instances are immutable msgspec Structs without GC tracking; namespaces, names, port names
and IP addresses are interned, so equal strings across thousands of records share memory and
compare by identity first. IP addresses are canonical (``ipaddress`` text form).
"""

from __future__ import annotations

import msgspec

__all__ = ["Endpoint", "IpOwner", "Namespace", "Pod", "Service", "ServicePort"]


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
    selector: tuple[tuple[str, str], ...] | None  # sorted; None when the Service has none


class Endpoint(msgspec.Struct, frozen=True, gc=False):
    addresses: tuple[str, ...]
    ready: bool
    hostname: str | None
    node_name: str | None
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
