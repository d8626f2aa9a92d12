"""cache's Prometheus metrics (CoreDNS names), created once per registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from clusterdns.core.metrics import once_per_registry


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.entries = Gauge(
            "coredns_cache_entries", "The number of elements in the cache.",
            ["server", "type", "zones", "view"], registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "coredns_cache_requests", "The count of cache requests.",
            ["server", "zones", "view"], registry=r,
        )  # fmt: skip
        self.hits = Counter(
            "coredns_cache_hits", "The count of cache hits.",
            ["server", "type", "zones", "view"], registry=r,
        )  # fmt: skip
        self.misses = Counter(
            "coredns_cache_misses", "The count of cache misses. Deprecated, derive misses from cache hits/requests counters.",
            ["server", "zones", "view"], registry=r,
        )  # fmt: skip
        self.prefetch = Counter(
            "coredns_cache_prefetch", "The number of times the cache has prefetched a cached item.",
            ["server", "zones", "view"], registry=r,
        )  # fmt: skip
        self.drops = Counter(
            "coredns_cache_drops", "The number responses that are not cached, because the reply is malformed.",
            ["server", "zones", "view"], registry=r,
        )  # fmt: skip
        self.served_stale = Counter(
            "coredns_cache_served_stale", "The number of requests served from stale cache entries.",
            ["server", "zones", "view"], registry=r,
        )  # fmt: skip
        self.evictions = Counter(
            "coredns_cache_evictions", "The count of cache evictions.",
            ["server", "type", "zones", "view"], registry=r,
        )  # fmt: skip


def metrics_for(registry: CollectorRegistry) -> CacheMetrics:
    return once_per_registry(registry, CacheMetrics)


class Children:
    """The labelled children of one (server, zones) pair, made once: .labels() per query is slow."""

    __slots__ = (
        "drops",
        "entries_denial",
        "entries_success",
        "evictions_denial",
        "evictions_success",
        "hits_denial",
        "hits_success",
        "misses",
        "prefetch",
        "requests",
        "served_stale",
    )

    def __init__(self, metrics: CacheMetrics, server: str, zones: str) -> None:
        self.requests = metrics.requests.labels(server, zones, "")
        self.misses = metrics.misses.labels(server, zones, "")
        self.prefetch = metrics.prefetch.labels(server, zones, "")
        self.drops = metrics.drops.labels(server, zones, "")
        self.served_stale = metrics.served_stale.labels(server, zones, "")
        self.hits_success = metrics.hits.labels(server, "success", zones, "")
        self.hits_denial = metrics.hits.labels(server, "denial", zones, "")
        self.entries_success = metrics.entries.labels(server, "success", zones, "")
        self.entries_denial = metrics.entries.labels(server, "denial", zones, "")
        self.evictions_success = metrics.evictions.labels(server, "success", zones, "")
        self.evictions_denial = metrics.evictions.labels(server, "denial", zones, "")
