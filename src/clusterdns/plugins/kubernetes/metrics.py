"""Metrics of the kubernetes plugin: how its cluster watch is doing.

Read from the running plugins at scrape time, so losing the API shows here
(errors and restarts climb, the last-sync age grows) while the last known
records keep being served.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clusterdns.core.process import Process

_registered: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()


class KubernetesCollector(Collector):
    def __init__(self, process: Process) -> None:
        self.process = process

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        labels = ["server", "zone"]
        errors = CounterMetricFamily(
            "clusterdns_kubernetes_api_errors",
            "Errors talking to the Kubernetes API (or reading manifests).",
            labels=labels,
        )
        restarts = CounterMetricFamily(
            "clusterdns_kubernetes_watch_restarts",
            "Watches that ended and were resumed.",
            labels=labels,
        )
        relists = CounterMetricFamily(
            "clusterdns_kubernetes_relists",
            "Full lists after the first (410 Gone or resume impossible).",
            labels=labels,
        )
        synced = GaugeMetricFamily(
            "clusterdns_kubernetes_synced", "1 once the first full sync is done.", labels=labels
        )
        generation = GaugeMetricFamily(
            "clusterdns_kubernetes_generation",
            "Changes applied to the answers since start.",
            labels=labels,
        )
        last_change = GaugeMetricFamily(
            "clusterdns_kubernetes_last_change_age_seconds",
            "Seconds since the answers last changed.",
            labels=labels,
        )
        instance = self.process.current()
        for block in instance.blocks if instance is not None else ():
            plugin = block.plugin("kubernetes")
            if plugin is None:
                continue
            key = [block.server_label, block.zones[0]]
            source = getattr(plugin, "source", None)
            errors.add_metric(key, float(getattr(source, "errors", 0)))
            restarts.add_metric(key, float(getattr(source, "watch_restarts", 0)))
            relists.add_metric(key, float(getattr(source, "relists", 0)))
            synced.add_metric(key, 1.0 if plugin.ready() else 0.0)
            generation.add_metric(key, float(getattr(plugin, "generation", 0)))
            changed = getattr(plugin, "last_change", None)
            if changed is not None:
                last_change.add_metric(key, max(0.0, time.monotonic() - changed))
        yield from (errors, restarts, relists, synced, generation, last_change)


def register(process: Process, registry: CollectorRegistry) -> None:
    """Once per registry: plugins come and go with reloads, the collector stays."""

    if registry not in _registered:
        _registered.add(registry)
        registry.register(KubernetesCollector(process))
