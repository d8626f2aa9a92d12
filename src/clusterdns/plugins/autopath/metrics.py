"""autopath's Prometheus metric (CoreDNS's name), created once per registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from clusterdns.core.metrics import once_per_registry


class AutoPathMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.success = Counter(
            "coredns_autopath_success", "Counter of requests that did autopath.",
            ["server"], registry=registry,
        )  # fmt: skip


def metrics_for(registry: CollectorRegistry) -> AutoPathMetrics:
    """The autopath metrics of ``registry``, registering them on first use."""
    return once_per_registry(registry, AutoPathMetrics)
