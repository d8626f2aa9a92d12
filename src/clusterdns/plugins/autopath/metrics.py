"""autopath's Prometheus metric (CoreDNS's name), created once per registry."""

from __future__ import annotations

import weakref

from prometheus_client import CollectorRegistry, Counter


class AutoPathMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.success = Counter(
            "coredns_autopath_success", "Counter of requests that did autopath.",
            ["server"], registry=registry,
        )  # fmt: skip


_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, AutoPathMetrics] = (
    weakref.WeakKeyDictionary()
)


def metrics_for(registry: CollectorRegistry) -> AutoPathMetrics:
    """The autopath metrics of ``registry``, registering them on first use."""
    metrics = _BY_REGISTRY.get(registry)
    if metrics is None:
        metrics = _BY_REGISTRY[registry] = AutoPathMetrics(registry)
    return metrics
