"""Pure conversions from Kubernetes API objects (:mod:`.kube.objects`) to slim records."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterable, Mapping
from functools import lru_cache

from .kube import objects as api
from .records import Endpoint, Namespace, Pod, Service, ServicePort

__all__ = [
    "SERVICE_NAME_LABEL",
    "canonical_ip",
    "pod_is_ready",
    "to_endpoints",
    "to_namespace",
    "to_pod",
    "to_service",
    "to_slice_endpoints",
]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
_intern = sys.intern


@lru_cache(maxsize=65536)
def canonical_ip(text: str) -> str | None:
    """The canonical text form of an IP address (``0:0::1`` → ``::1``), None if invalid."""
    text = text.strip()
    # inet_pton/inet_ntop round trip: the same canonical forms as ipaddress, ~20x faster
    # (it matters when listing 100k EndpointSlices). inet_pton accepts only plain forms.
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return _intern(socket.inet_ntop(family, socket.inet_pton(family, text)))
    except (OSError, ValueError):
        pass
    try:
        return _intern(str(ipaddress.ip_address(text)))
    except ValueError:
        return None


def _ips(texts: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for text in texts:
        ip = canonical_ip(text)
        if ip is not None:
            seen[ip] = None
    return tuple(seen)


def _pairs(mapping: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    if not mapping:
        return ()
    return tuple(sorted((_intern(k), _intern(str(v))) for k, v in mapping.items()))


def _protocol(value: str | None) -> str:
    return _intern(value.upper()) if value else "TCP"


def to_service(obj: api.Service) -> Service:
    spec = obj.spec
    external_name: str | None = None
    headless = False
    cluster_ips: tuple[str, ...] = ()
    if spec.type == "ExternalName":
        external_name = _intern(spec.external_name.rstrip(".")) if spec.external_name else None
    else:
        raw = spec.cluster_ips or ([spec.cluster_ip] if spec.cluster_ip else [])
        if raw and raw[0] == "None":
            headless = True
        else:
            cluster_ips = _ips(raw)
    ports = tuple(
        ServicePort(name=_intern(p.name), port=p.port, protocol=_protocol(p.protocol))
        for p in spec.ports or ()
    )
    return Service(
        namespace=_intern(obj.metadata.namespace),
        name=_intern(obj.metadata.name),
        type=_intern(spec.type or "ClusterIP"),
        cluster_ips=cluster_ips,
        headless=headless,
        external_name=external_name,
        ports=ports,
        publish_not_ready=spec.publish_not_ready_addresses,
        labels=_pairs(obj.metadata.labels),
        selector=_pairs(spec.selector) or None,
    )


def _endpoint_ports(ports: list[api.EndpointPort] | None) -> tuple[ServicePort, ...]:
    return tuple(
        ServicePort(name=_intern(p.name or ""), port=p.port, protocol=_protocol(p.protocol))
        for p in ports or ()
        if p.port is not None
    )


def _pod_name(ref: api.ObjectReference | None) -> str | None:
    return _intern(ref.name) if ref is not None and ref.kind == "Pod" and ref.name else None


def _opt(value: str | None) -> str | None:
    return _intern(value) if value else None


def to_slice_endpoints(obj: api.EndpointSlice) -> tuple[str | None, tuple[Endpoint, ...]]:
    """The Service an EndpointSlice belongs to (its service-name label) and its endpoints.

    ``conditions.ready`` unset means ready, as the API documents. FQDN slices carry no
    addresses DNS can serve and convert to no endpoints.
    """
    service = (obj.metadata.labels or {}).get(SERVICE_NAME_LABEL)
    if obj.address_type not in ("IPv4", "IPv6"):
        return (_opt(service), ())
    ports = _endpoint_ports(obj.ports)
    endpoints = []
    for ep in obj.endpoints or ():
        addresses = _ips(ep.addresses)
        if not addresses:
            continue
        endpoints.append(
            Endpoint(
                addresses=addresses,
                ready=ep.conditions.ready is not False,
                hostname=_opt(ep.hostname),
                node_name=_opt(ep.node_name),
                pod_name=_pod_name(ep.target_ref),
                ports=ports,
            )
        )
    return (_opt(service), tuple(endpoints))


def to_endpoints(obj: api.Endpoints) -> tuple[Endpoint, ...]:
    """Endpoints of a legacy v1 Endpoints object: ``addresses`` are ready, ``notReadyAddresses`` not."""
    endpoints: list[Endpoint] = []
    for subset in obj.subsets or ():
        ports = _endpoint_ports(subset.ports)
        for ready, addresses in ((True, subset.addresses), (False, subset.not_ready_addresses)):
            for address in addresses or ():
                ip = canonical_ip(address.ip)
                if ip is None:
                    continue
                endpoints.append(
                    Endpoint(
                        addresses=(ip,),
                        ready=ready,
                        hostname=_opt(address.hostname),
                        node_name=_opt(address.node_name),
                        pod_name=_pod_name(address.target_ref),
                        ports=ports,
                    )
                )
    return tuple(endpoints)


def pod_is_ready(status: api.PodStatus) -> bool:
    """Ready condition True; without any conditions, phase Running counts as ready."""
    if status.conditions:
        return any(c.type == "Ready" and c.status == "True" for c in status.conditions)
    return status.phase == "Running"


def to_pod(obj: api.Pod) -> Pod:
    status = obj.status
    # A finished Pod's IP is free for reuse by another Pod: it no longer owns it.
    if status.phase in ("Succeeded", "Failed"):
        ips: tuple[str, ...] = ()
    else:
        ips = _ips([p.ip for p in status.pod_ips] if status.pod_ips else [status.pod_ip or ""])
    return Pod(
        namespace=_intern(obj.metadata.namespace),
        name=_intern(obj.metadata.name),
        ips=ips,
        ready=pod_is_ready(status),
    )


def to_namespace(obj: api.Namespace) -> Namespace:
    return Namespace(name=_intern(obj.metadata.name), labels=_pairs(obj.metadata.labels))
