"""forward's Prometheus metrics, created once per registry (the registry outlives reloads)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

from clusterdns.core.metrics import once_per_registry

# CoreDNS's plugin.TimeBuckets: exponential from 0.25 ms.
_BUCKETS: Final = tuple(0.00025 * 2**i for i in range(16))


class ForwardMetrics:
    """CoreDNS >= 1.11 names (coredns_proxy_* with proxy_name="forward", and the two
    forward counters), plus the coredns_forward_* per-upstream series of older CoreDNS so
    dashboards built on either keep working."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.healthcheck_broken = Counter(
            "coredns_forward_healthcheck_broken", "Counter of the number of complete failures of the healthchecks.",
            registry=r,
        )  # fmt: skip
        self.max_concurrent_rejects = Counter(
            "coredns_forward_max_concurrent_rejects", "Counter of the number of queries rejected because the concurrent queries were at maximum.",
            registry=r,
        )  # fmt: skip
        self.proxy_duration = Histogram(
            "coredns_proxy_request_duration_seconds", "Histogram of the time each request took.",
            ["proxy_name", "to", "rcode"], buckets=_BUCKETS, registry=r,
        )  # fmt: skip
        self.proxy_healthcheck_failures = Counter(
            "coredns_proxy_healthcheck_failures", "Counter of the number of failed healthchecks.",
            ["proxy_name", "to"], registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "coredns_forward_requests", "Counter of requests made per upstream.",
            ["to"], registry=r,
        )  # fmt: skip
        self.responses = Counter(
            "coredns_forward_responses", "Counter of responses received per upstream.",
            ["to", "rcode"], registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "coredns_forward_request_duration_seconds", "Histogram of the time each request took.",
            ["to", "rcode"], buckets=_BUCKETS, registry=r,
        )  # fmt: skip
        self.healthcheck_failures = Counter(
            "coredns_forward_healthcheck_failures", "Counter of the number of failed healthchecks.",
            ["to"], registry=r,
        )  # fmt: skip


def metrics_for(registry: CollectorRegistry) -> ForwardMetrics:
    """The forward metrics of ``registry``, registering them on first use."""
    return once_per_registry(registry, ForwardMetrics)
