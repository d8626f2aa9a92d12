"""Pure conversions from Kubernetes API objects (:mod:`.kube.objects`) to slim records."""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Iterable, Mapping

from .kube import objects as api
from .records import Endpoint, Namespace, Pod, Service, ServiceImport, ServicePort

__all__ = [
    "MCS_SERVICE_NAME_LABEL",
    "MCS_SOURCE_CLUSTER_LABEL",
    "SERVICE_NAME_LABEL",
    "EndpointEntry",
    "canonical_ip",
    "expand",
    "pod_is_ready",
    "to_endpoints",
    "to_endpoints_entries",
    "to_import_slice_entries",
    "to_namespace",
    "to_pod",
    "to_service",
    "to_service_import",
    "to_slice_endpoints",
    "to_slice_entries",
]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# The labels an MCS implementation puts on the EndpointSlices it imports (KEP-1645).
MCS_SERVICE_NAME_LABEL = "multicluster.kubernetes.io/service-name"
MCS_SOURCE_CLUSTER_LABEL = "multicluster.kubernetes.io/source-cluster"
_intern = sys.intern

# An endpoint as stored: the bare IP for the common one (ready, one address, no hostname,
# no Pod name kept, its object's ports), which saves ~130 bytes an endpoint; else in full.
EndpointEntry = str | Endpoint

# Equal port lists are one tuple: most Services of a cluster share a handful of them.
_PORTS: dict[tuple[ServicePort, ...], tuple[ServicePort, ...]] = {}
_PORTS_LIMIT = 4096


def canonical_ip(text: str) -> str | None:
    """The canonical text form of an IP address (``0:0::1`` → ``::1``), None if invalid.

    ``text`` itself when it is canonical already, as API servers send them: no second copy.
    Not interned: nearly every address is unique, so a table of them costs more than it
    saves (it was 20 MiB at 400k endpoint addresses).
    """
    # inet_pton/inet_ntop round trip: the same canonical forms as ipaddress, ~20x faster
    # (it matters when listing 100k EndpointSlices). inet_pton accepts only plain forms.
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        canonical = socket.inet_ntop(family, socket.inet_pton(family, text))
    except (OSError, ValueError):
        try:
            canonical = str(ipaddress.ip_address(text.strip()))
        except ValueError:
            return None
    return text if canonical == text else canonical


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
    ports = _service_ports(spec.ports)
    return Service(
        namespace=_intern(obj.metadata.namespace),
        name=obj.metadata.name,  # unique: interning would only add a table entry
        type=_intern(spec.type or "ClusterIP"),
        cluster_ips=cluster_ips,
        headless=headless,
        external_name=external_name,
        ports=ports,
        publish_not_ready=spec.publish_not_ready_addresses,
        labels=_pairs(obj.metadata.labels),
        external=_external(obj),
    )


def _service_ports(specs: list[api.ServicePortSpec] | None) -> tuple[ServicePort, ...]:
    """A Service's (or ServiceImport's) ports, as the shared tuple of equal lists."""
    return _shared(
        tuple(
            ServicePort(name=_intern(p.name), port=p.port, protocol=_protocol(p.protocol))
            for p in specs or ()
        )
    )


def _external(obj: api.Service) -> tuple[str, ...]:
    """A Service's external addresses: spec.externalIPs, then its load balancer's ingress
    points (the IP, else the hostname); invalid IPs dropped, duplicates once."""
    spec_ips = obj.spec.external_ips
    ingress = obj.status.load_balancer.ingress
    if not spec_ips and not ingress:
        return ()  # nearly every Service: no work while listing 100k of them
    seen: dict[str, None] = {}
    for text in spec_ips or ():
        ip = canonical_ip(text)
        if ip is not None:
            seen[ip] = None
    for point in ingress or ():
        if point.ip:
            ip = canonical_ip(point.ip)
            if ip is not None:
                seen[ip] = None
        elif point.hostname:
            seen[_intern(point.hostname.lower().rstrip("."))] = None
    return tuple(seen)


def _shared(ports: tuple[ServicePort, ...]) -> tuple[ServicePort, ...]:
    if not ports:
        return ()
    found = _PORTS.get(ports)
    if found is not None:
        return found
    if len(_PORTS) < _PORTS_LIMIT:
        _PORTS[ports] = ports
    return ports


def _endpoint_ports(ports: list[api.EndpointPort] | None) -> tuple[ServicePort, ...]:
    return _shared(
        tuple(
            ServicePort(name=_intern(p.name or ""), port=p.port, protocol=_protocol(p.protocol))
            for p in ports or ()
            if p.port is not None
        )
    )


def _pod_name(ref: api.ObjectReference | None) -> str | None:
    return ref.name if ref is not None and ref.kind == "Pod" and ref.name else None


def _opt(value: str | None) -> str | None:
    # Not interned: hostnames, Pod and slice names are (nearly) unique.
    return value or None


def expand(entry: EndpointEntry, ports: tuple[ServicePort, ...]) -> Endpoint:
    """The full Endpoint a stored entry stands for."""
    if isinstance(entry, str):
        return Endpoint((entry,), True, None, None, ports)
    return entry


def _entry(
    addresses: tuple[str, ...],
    ready: bool,
    hostname: str | None,
    pod_name: str | None,
    ports: tuple[ServicePort, ...],
) -> EndpointEntry:
    if ready and hostname is None and pod_name is None and len(addresses) == 1:
        return addresses[0]
    return Endpoint(addresses, ready, hostname, pod_name, ports)


def to_slice_entries(
    obj: api.EndpointSlice, *, pod_names: bool = True
) -> tuple[str | None, tuple[ServicePort, ...], tuple[EndpointEntry, ...]]:
    """An EndpointSlice as stored: its Service (the service-name label), ports and entries.

    ``conditions.ready`` unset means ready, as the API documents. FQDN slices carry no
    addresses DNS can serve and convert to no endpoints. Without ``pod_names`` the Pod
    names are dropped (only ``endpoint_pod_names`` reads them).
    """
    service = _opt((obj.metadata.labels or {}).get(SERVICE_NAME_LABEL))
    if obj.address_type not in ("IPv4", "IPv6"):
        return (service, (), ())
    ports = _endpoint_ports(obj.ports)
    entries: list[EndpointEntry] = []
    for ep in obj.endpoints or ():
        raw = ep.addresses
        if len(raw) == 1:  # nearly always (the API allows 1 to 100)
            ip = canonical_ip(raw[0])
            if ip is None:
                continue
            addresses: tuple[str, ...] = (ip,)
        else:
            addresses = _ips(raw)
            if not addresses:
                continue
        entries.append(
            _entry(
                addresses,
                ep.conditions.ready is not False,
                ep.hostname or None,
                _pod_name(ep.target_ref) if pod_names else None,
                ports,
            )
        )
    return (service, ports, tuple(entries))


def to_import_slice_entries(
    obj: api.EndpointSlice, *, pod_names: bool = True
) -> tuple[str | None, str, tuple[ServicePort, ...], tuple[EndpointEntry, ...]]:
    """An imported EndpointSlice (MCS): its ServiceImport's name and source cluster (the
    ``multicluster.kubernetes.io`` labels; "" for a slice that names no cluster), ports and
    entries."""
    _, ports, entries = to_slice_entries(obj, pod_names=pod_names)
    labels = obj.metadata.labels or {}
    cluster = labels.get(MCS_SOURCE_CLUSTER_LABEL) or ""
    return (_opt(labels.get(MCS_SERVICE_NAME_LABEL)), _intern(cluster), ports, entries)


def to_service_import(obj: api.ServiceImport) -> ServiceImport:
    spec = obj.spec
    headless = spec.type == "Headless"
    return ServiceImport(
        namespace=_intern(obj.metadata.namespace),
        name=obj.metadata.name,
        headless=headless,
        ips=() if headless else _ips(spec.ips or ()),
        ports=_service_ports(spec.ports),
    )


def to_slice_endpoints(obj: api.EndpointSlice) -> tuple[str | None, tuple[Endpoint, ...]]:
    """The Service an EndpointSlice belongs to and its endpoints, in full."""
    service, ports, entries = to_slice_entries(obj)
    return (service, tuple(expand(e, ports) for e in entries))


def to_endpoints_entries(
    obj: api.Endpoints, *, pod_names: bool = True
) -> tuple[tuple[ServicePort, ...], tuple[EndpointEntry, ...]]:
    """A legacy v1 Endpoints object as stored: the first subset's ports and the entries
    (``addresses`` are ready, ``notReadyAddresses`` not; other subsets' ports in full)."""
    entries: list[EndpointEntry] = []
    first: tuple[ServicePort, ...] | None = None
    for subset in obj.subsets or ():
        ports = _endpoint_ports(subset.ports)
        if first is None:
            first = ports
        for ready, addresses in ((True, subset.addresses), (False, subset.not_ready_addresses)):
            for address in addresses or ():
                ip = canonical_ip(address.ip)
                if ip is None:
                    continue
                hostname = _opt(address.hostname)
                pod_name = _pod_name(address.target_ref) if pod_names else None
                if ports is first:
                    entries.append(_entry((ip,), ready, hostname, pod_name, ports))
                else:
                    entries.append(Endpoint((ip,), ready, hostname, pod_name, ports))
    return (first or (), tuple(entries))


def to_endpoints(obj: api.Endpoints) -> tuple[Endpoint, ...]:
    """Endpoints of a legacy v1 Endpoints object: ``addresses`` are ready, ``notReadyAddresses`` not."""
    ports, entries = to_endpoints_entries(obj)
    return tuple(expand(e, ports) for e in entries)


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
        name=obj.metadata.name,
        ips=ips,
        ready=pod_is_ready(status),
    )


def to_namespace(obj: api.Namespace) -> Namespace:
    return Namespace(name=_intern(obj.metadata.name), labels=_pairs(obj.metadata.labels))
