"""The parsed ``kubernetes`` block: everything setup decided, nothing running yet."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.plugins.kubernetes.selector import LabelSelector

DEFAULT_TTL = 5
DEFAULT_STARTUP_TIMEOUT = 5.0
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"


class PodMode(enum.StrEnum):
    DISABLED = "disabled"
    INSECURE = "insecure"
    VERIFIED = "verified"


@dataclass
class KubernetesConfig:
    zones: tuple[str, ...]
    endpoint: str | None = None
    tls: tuple[str, str, str] | None = None
    kubeconfig: str | None = None
    kubeconfig_context: str | None = None
    manifests: str | None = None
    service_cidr: str = DEFAULT_SERVICE_CIDR
    namespaces: frozenset[str] = frozenset()
    labels: LabelSelector | None = None
    namespace_labels: LabelSelector | None = None
    pods: PodMode = PodMode.DISABLED
    endpoint_pod_names: bool = False
    ttl: int = DEFAULT_TTL
    noendpoints: bool = False
    fallthrough: Fallthrough = field(default_factory=Fallthrough)
    ignore_empty_service: bool = False
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    apiserver_qps: float | None = None
    apiserver_burst: int | None = None
    apiserver_max_inflight: int | None = None
    # KEP-1645 zones (clusterset.local): answered from ServiceImports, which we do not
    # watch, so no Service name exists in them (see the README).
    multicluster_zones: tuple[str, ...] = ()

    @property
    def forward_zones(self) -> tuple[str, ...]:
        from clusterdns.plugins.kubernetes.names import is_reverse

        return tuple(z for z in self.zones if not is_reverse(z))

    @property
    def primary_zone(self) -> str:
        """Where PTR records point: the first zone that is not a reverse zone."""
        forward = self.forward_zones
        return forward[0] if forward else self.zones[0]
