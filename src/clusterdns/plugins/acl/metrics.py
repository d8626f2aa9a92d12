"""acl's Prometheus metrics (CoreDNS names), created once per registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from clusterdns.core.metrics import once_per_registry


class AclMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.blocked = Counter(
            "coredns_acl_blocked_requests", "Counter of DNS requests being blocked.",
            ["server", "zone", "view"], registry=r,
        )  # fmt: skip
        self.filtered = Counter(
            "coredns_acl_filtered_requests", "Counter of DNS requests being filtered.",
            ["server", "zone", "view"], registry=r,
        )  # fmt: skip
        self.allowed = Counter(
            "coredns_acl_allowed_requests", "Counter of DNS requests being allowed.",
            ["server", "view"], registry=r,
        )  # fmt: skip
        self.dropped = Counter(
            "coredns_acl_dropped_requests", "Counter of DNS requests being dropped.",
            ["server", "zone", "view"], registry=r,
        )  # fmt: skip


def metrics_for(registry: CollectorRegistry) -> AclMetrics:
    return once_per_registry(registry, AclMetrics)
