"""template's Prometheus metrics, under CoreDNS's names and labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from clusterdns.core.metrics import once_per_registry


class TemplateMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.matches = Counter(
            "coredns_template_matches", "Counter of template regex matches.",
            ["server", "zone", "view", "class", "type"], registry=r,
        )  # fmt: skip
        self.template_failures = Counter(
            "coredns_template_template_failures", "Counter of go template failures.",
            ["server", "zone", "view", "class", "type", "section", "template"], registry=r,
        )  # fmt: skip
        self.rr_failures = Counter(
            "coredns_template_rr_failures", "Counter of mis-templated RRs.",
            ["server", "zone", "view", "class", "type", "section", "template"], registry=r,
        )  # fmt: skip


def metrics_for(registry: CollectorRegistry) -> TemplateMetrics:
    return once_per_registry(registry, TemplateMetrics)
