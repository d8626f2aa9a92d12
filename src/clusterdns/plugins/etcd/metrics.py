"""Metrics of the etcd plugin: how its watch on etcd is doing (CoreDNS's etcd plugin has none).

Read from the running plugins at scrape time, so losing etcd shows here (errors climb,
the last-change age grows) while the last known records keep being served.
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


class EtcdCollector(Collector):
    def __init__(self, process: Process) -> None:
        self.process = process

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        labels = ["server", "zone"]
        errors = CounterMetricFamily(
            "clusterdns_etcd_errors", "Failed etcd lists and watches (each retried).", labels=labels
        )
        relists = CounterMetricFamily(
            "clusterdns_etcd_relists", "Full lists after the first (compaction).", labels=labels
        )
        synced = GaugeMetricFamily(
            "clusterdns_etcd_synced", "1 once the first full list is done.", labels=labels
        )
        keys = GaugeMetricFamily("clusterdns_etcd_keys", "Keys under the path.", labels=labels)
        generation = GaugeMetricFamily(
            "clusterdns_etcd_generation", "Batches of changes applied since start.", labels=labels
        )
        last_change = GaugeMetricFamily(
            "clusterdns_etcd_last_change_age_seconds",
            "Seconds since a change from etcd was applied.",
            labels=labels,
        )
        instance = self.process.current()
        for block in instance.blocks if instance is not None else ():
            plugin = block.plugin("etcd")
            if plugin is None:
                continue
            key = [block.server_label, block.zones[0]]
            store = getattr(plugin, "store", None)
            errors.add_metric(key, float(getattr(store, "errors", 0)))
            relists.add_metric(key, float(getattr(store, "relists", 0)))
            synced.add_metric(key, 1.0 if plugin.ready() else 0.0)
            try:
                keys.add_metric(key, float(len(store)))  # type: ignore[arg-type]
            except TypeError:
                pass
            generation.add_metric(key, float(getattr(plugin, "generation", 0)))
            changed = getattr(plugin, "last_change", None)
            if changed is not None:
                last_change.add_metric(key, max(0.0, time.monotonic() - changed))
        yield from (errors, relists, synced, keys, generation, last_change)


def register(process: Process, registry: CollectorRegistry) -> None:
    """Once per registry: plugins come and go with reloads, the collector stays."""
    if registry not in _registered:
        _registered.add(registry)
        registry.register(EtcdCollector(process))
