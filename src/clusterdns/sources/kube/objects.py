"""Kubernetes API object shapes: just the fields cluster DNS reads, decoded with msgspec.

A field left out is skipped by the decoder without building an object for it, which is
most of a LIST page's bytes (managedFields, annotations, status, node names...).

These Structs are also the input type of :class:`clusterdns.sources.model.ClusterModel`:
the API source decodes watch/list JSON straight into them, and the manifests source turns
YAML/JSON documents into them with :func:`from_builtins`, so both sources share one
conversion to slim records (:mod:`clusterdns.sources.convert`).
Unknown fields are ignored, so newer API servers decode fine.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec
from msgspec import field

__all__ = [
    "ContainerPort",
    "EndpointAddress",
    "EndpointConditions",
    "EndpointPort",
    "EndpointSlice",
    "EndpointSubset",
    "Endpoints",
    "ListMeta",
    "LoadBalancerIngress",
    "LoadBalancerStatus",
    "Namespace",
    "ObjectList",
    "ObjectMeta",
    "ObjectReference",
    "Pod",
    "Service",
    "ServiceImport",
    "ServiceImportSpec",
    "ServiceStatus",
    "Status",
    "WatchEvent",
]

T = TypeVar("T")


class _Obj(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False, rename="camel"):
    """Base: camelCase on the wire, defaults omitted when encoding."""


class ObjectMeta(_Obj):
    name: str = ""
    namespace: str = ""
    labels: dict[str, str] | None = None
    resource_version: str = ""
    deletion_timestamp: str | None = None


class ObjectReference(_Obj):
    kind: str = ""
    name: str = ""


# --- Service (v1) -------------------------------------------------------------------------


class ServicePortSpec(_Obj):
    name: str = ""
    port: int = 0
    protocol: str = "TCP"
    target_port: int | str | None = None
    node_port: int = 0  # read by the toolbox (vservers), not by DNS


class ClientIPConfig(_Obj):
    timeout_seconds: int | None = None


class SessionAffinityConfig(_Obj):
    client_ip: ClientIPConfig | None = field(default=None, name="clientIP")


class ServiceSpec(_Obj):
    type: str = "ClusterIP"
    cluster_ip: str = field(default="", name="clusterIP")
    cluster_ips: list[str] | None = field(default=None, name="clusterIPs")
    external_name: str | None = None
    ports: list[ServicePortSpec] | None = None
    selector: dict[str, str] | None = None
    publish_not_ready_addresses: bool = False
    ip_families: list[str] | None = None
    ip_family_policy: str | None = None
    # k8s_external answers them; the toolbox (vservers) reads them and the affinity.
    external_ips: list[str] | None = field(default=None, name="externalIPs")
    session_affinity: str = "None"
    session_affinity_config: SessionAffinityConfig | None = None


class LoadBalancerIngress(_Obj):
    ip: str = ""
    hostname: str = ""


class LoadBalancerStatus(_Obj):
    ingress: list[LoadBalancerIngress] | None = None


class ServiceStatus(_Obj):
    load_balancer: LoadBalancerStatus = field(default_factory=LoadBalancerStatus)


class Service(_Obj):
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: ServiceSpec = field(default_factory=ServiceSpec)
    status: ServiceStatus = field(default_factory=ServiceStatus)


# --- EndpointSlice (discovery.k8s.io/v1) --------------------------------------------------


class EndpointConditions(_Obj):
    ready: bool | None = None


class SliceEndpoint(_Obj):
    addresses: list[str] = field(default_factory=list)
    conditions: EndpointConditions = field(default_factory=EndpointConditions)
    hostname: str | None = None
    target_ref: ObjectReference | None = None


class EndpointPort(_Obj):
    """A port of an EndpointSlice or of a v1 Endpoints subset (same shape)."""

    name: str | None = None
    port: int | None = None
    protocol: str | None = None


class EndpointSlice(_Obj):
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    address_type: str = "IPv4"
    endpoints: list[SliceEndpoint] | None = None
    ports: list[EndpointPort] | None = None


# --- Endpoints (v1, legacy) ---------------------------------------------------------------


class EndpointAddress(_Obj):
    ip: str = ""
    hostname: str | None = None
    target_ref: ObjectReference | None = None


class EndpointSubset(_Obj):
    addresses: list[EndpointAddress] | None = None
    not_ready_addresses: list[EndpointAddress] | None = None
    ports: list[EndpointPort] | None = None


class Endpoints(_Obj):
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    subsets: list[EndpointSubset] | None = None


# --- Pod (v1) -----------------------------------------------------------------------------


class ContainerPort(_Obj):
    name: str = ""
    container_port: int = 0
    protocol: str = "TCP"


class Container(_Obj):
    name: str = ""
    ports: list[ContainerPort] | None = None


class PodDNSConfigOption(_Obj):
    name: str = ""
    value: str | None = None


class PodDNSConfig(_Obj):
    nameservers: list[str] | None = None
    searches: list[str] | None = None
    options: list[PodDNSConfigOption] | None = None


class PodSpec(_Obj):
    hostname: str | None = None
    subdomain: str | None = None
    node_name: str | None = None
    host_network: bool = False
    containers: list[Container] | None = None
    # Read by the toolbox (env, resolv-conf), not by DNS.
    enable_service_links: bool | None = None
    dns_policy: str | None = None
    dns_config: PodDNSConfig | None = None


class PodIP(_Obj):
    ip: str = ""


class PodCondition(_Obj):
    type: str = ""
    status: str = ""


class PodStatus(_Obj):
    phase: str | None = None
    pod_ip: str | None = field(default=None, name="podIP")
    pod_ips: list[PodIP] | None = field(default=None, name="podIPs")
    conditions: list[PodCondition] | None = None


class Pod(_Obj):
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: PodSpec = field(default_factory=PodSpec)
    status: PodStatus = field(default_factory=PodStatus)


# --- Namespace (v1) -----------------------------------------------------------------------


class Namespace(_Obj):
    metadata: ObjectMeta = field(default_factory=ObjectMeta)


# --- ServiceImport (multicluster.x-k8s.io/v1alpha1, KEP-1645) -----------------------------


class ServiceImportSpec(_Obj):
    type: str = "ClusterSetIP"  # or "Headless"
    ips: list[str] | None = None
    ports: list[ServicePortSpec] | None = None


class ServiceImport(_Obj):
    metadata: ObjectMeta = field(default_factory=ObjectMeta)
    spec: ServiceImportSpec = field(default_factory=ServiceImportSpec)


# --- Lists, watch events, errors ----------------------------------------------------------


class ListMeta(_Obj):
    resource_version: str = ""
    continue_: str = field(default="", name="continue")


class ObjectList(_Obj, Generic[T]):
    metadata: ListMeta = field(default_factory=ListMeta)
    items: list[T] | None = None


class WatchEvent(_Obj):
    """One line of a watch stream; ``object`` is decoded later, per kind (or as a Status)."""

    type: str = ""
    object: msgspec.Raw = msgspec.Raw(b"{}")


class Status(_Obj):
    kind: str = ""
    status: str = ""
    code: int = 0
    reason: str = ""
    message: str = ""


def from_builtins(data: Any, target: type[T]) -> T:
    """Convert a parsed manifest document (dicts/lists from YAML or JSON) to an API Struct.

    Lax on scalars (``port: "53"`` works) but raises :class:`msgspec.ValidationError` on a
    wrong shape, with the JSON path of the bad field in the message.
    """
    return msgspec.convert(data, type=target, strict=False)
