"""CoreDNS's metric names and labels, so existing dashboards and alerts work."""

from __future__ import annotations

import sys
import weakref
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterator
from threading import Lock, get_ident
from typing import Final, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from clusterdns import __version__
from clusterdns.core.fast import Sink
from clusterdns.core.memo import MemoStats

# Types CoreDNS labels by name; everything else is "other" (keeps cardinality bounded).
MONITORED_TYPES: Final = {
    1: "A", 28: "AAAA", 15: "MX", 6: "SOA", 5: "CNAME", 12: "PTR", 16: "TXT", 2: "NS",
    33: "SRV", 43: "DS", 48: "DNSKEY", 46: "RRSIG", 47: "NSEC", 50: "NSEC3", 65: "HTTPS",
    251: "IXFR", 252: "AXFR", 255: "ANY",
}  # fmt: skip
RCODES: Final = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS",
}  # fmt: skip
_DURATION_BUCKETS: Final = tuple(0.00025 * 2**i for i in range(16))
_SIZE_BUCKETS: Final = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16e3, 32e3, 48e3, 64e3)
# The size bucket of every size up to 4096 (all UDP traffic), read instead of a bisect.
_SMALL_SIZE_BUCKET: Final = bytes(bisect_left(_SIZE_BUCKETS, n) for n in range(4097))


def type_label(qtype: int) -> str:
    return MONITORED_TYPES.get(qtype, "other")


def rcode_label(rcode: int) -> str:
    return RCODES.get(rcode, str(rcode))


class Metrics:
    """The process's registry. Labelled children are created once and cached:
    ``.labels()`` per query costs ~4x an increment."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Registered first: the registry collects in registration order, so the reply
        # memo's hits reach every metric (ours and the plugins') before they are read.
        self.memo = MemoStats()
        r.register(_MemoFlusher(self.memo))
        # The per-query metrics are plain integers in a custom collector:
        # prometheus_client's labelled Counter/Histogram cost ~5 us per query
        # for the five of them, more than the whole fast path.
        self.dns = DnsStatsCollector()
        r.register(self.dns)
        self._by_thread: dict[int, DnsStats] = {}
        self._lock = Lock()
        # Memo hits, recorded at scrape time by MemoStats.flush (under its lock).
        self._memo_rows = DnsStats()
        self.dns.parts.append(self._memo_rows)
        # process_resident_memory_bytes, process_cpu_seconds_total...: CoreDNS exports
        # them (Go's process collector) and its dashboards chart them.
        ProcessCollector(registry=r)
        self.panics = Counter(
            "coredns_panics", "A metrics that counts the number of panics.", registry=r
        )
        self.build_info = Gauge(
            "coredns_build_info", "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
            ["version", "revision", "goversion"], registry=r,
        )  # fmt: skip
        self.build_info.labels(
            __version__, "", f"python{sys.version_info.major}.{sys.version_info.minor}"
        ).set(1)
        self.plugin_enabled = Gauge(
            "coredns_plugin_enabled", "A metric that indicates whether a plugin is enabled on per server and zone basis.",
            ["server", "zone", "view", "name"], registry=r,
        )  # fmt: skip
        self.reload_failed = Counter(
            "coredns_reload_failed", "Counter of the number of failed reload attempts.", registry=r
        )
        self.reload_version = Gauge(
            "coredns_reload_version_info", "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
            ["hash", "value"], registry=r,
        )  # fmt: skip
        self.health_duration = Histogram(
            "coredns_health_request_duration_seconds", "Histogram of the time (in seconds) each request took.",
            buckets=(0.00025, 0.0025, 0.05, 0.1, 0.2, 0.4, 0.8, 1, 1.5, 2, 3, 4, 5, 10), registry=r,
        )  # fmt: skip
        self.health_failures = Counter(
            "coredns_health_request_failures",
            "The number of times the health check failed.",
            registry=r,
        )

    def record(
        self,
        *,
        server: str,
        zone: str,
        proto: str,
        family: int,
        qtype: int,
        rcode: int,
        plugin: str,
        request_size: int,
        response_size: int,
        duration: float,
    ) -> None:
        # One DnsStats per thread (the UDP receive threads record too), so
        # increments never race; they are summed at scrape time.
        stats = self._by_thread.get(get_ident())
        if stats is None:
            stats = self._thread_stats()
        stats.record(
            (server, zone, proto, family, qtype, rcode, plugin),
            request_size,
            response_size,
            duration,
        )

    def record_key(
        self, key: RowKey, request_size: int, response_size: int, duration: float
    ) -> None:
        """record() with the label tuple already built (the fast path's observer)."""
        stats = self._by_thread.get(get_ident())
        if stats is None:
            stats = self._thread_stats()
        stats.record(key, request_size, response_size, duration)

    def memo_sink(self, key: RowKey, request_size: int, response_size: int) -> Sink:
        """What a reply memo calls with the hits of answers recorded under ``key``."""
        rows = self._memo_rows

        def sink(hits: int, seconds_each: float) -> None:
            rows.record_many(key, request_size, response_size, seconds_each, hits)

        return sink

    def thread_stats(self) -> DnsStats:
        """This thread's DnsStats (an observer on a hot path may keep it: it never changes
        for a thread)."""
        stats = self._by_thread.get(get_ident())
        return stats if stats is not None else self._thread_stats()

    def _thread_stats(self) -> DnsStats:
        with self._lock:
            stats = DnsStats()
            self._by_thread[get_ident()] = stats
            self.dns.parts.append(stats)
            return stats


class _Row:
    """Everything recorded for one full label combination."""

    __slots__ = (
        "count",
        "duration",
        "duration_sum",
        "request",
        "request_sum",
        "response",
        "response_sum",
    )

    def __init__(self) -> None:
        self.count = 0
        self.duration = [0] * (len(_DURATION_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.request = [0] * (len(_SIZE_BUCKETS) + 1)
        self.request_sum = 0
        self.response = [0] * (len(_SIZE_BUCKETS) + 1)
        self.response_sum = 0


RowKey = tuple[
    str, str, str, int, int, int, str
]  # server, zone, proto, family, qtype, rcode, plugin


class DnsStats:
    """coredns_dns_* request metrics of one thread, by full label combination."""

    def __init__(self) -> None:
        self.rows: dict[RowKey, _Row] = {}

    def record(self, key: RowKey, request_size: int, response_size: int, duration: float) -> None:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = _Row()
        row.count += 1
        row.duration[bisect_left(_DURATION_BUCKETS, duration)] += 1
        row.duration_sum += duration
        row.request[
            _SMALL_SIZE_BUCKET[request_size]
            if request_size <= 4096
            else bisect_left(_SIZE_BUCKETS, request_size)
        ] += 1
        row.request_sum += request_size
        row.response[
            _SMALL_SIZE_BUCKET[response_size]
            if response_size <= 4096
            else bisect_left(_SIZE_BUCKETS, response_size)
        ] += 1
        row.response_sum += response_size

    def record_many(
        self, key: RowKey, request_size: int, response_size: int, duration: float, count: int
    ) -> None:
        """``count`` identical queries (reply memo hits) at once."""
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = _Row()
        row.count += count
        row.duration[bisect_left(_DURATION_BUCKETS, duration)] += count
        row.duration_sum += duration * count
        row.request[bisect_left(_SIZE_BUCKETS, request_size)] += count
        row.request_sum += request_size * count
        row.response[bisect_left(_SIZE_BUCKETS, response_size)] += count
        row.response_sum += response_size * count

    def merge(self, rows: dict[RowKey, _Row]) -> None:
        """Add another worker's rows (for --workers)."""
        for key, other in rows.items():
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = _Row()
            row.count += other.count
            row.duration_sum += other.duration_sum
            row.request_sum += other.request_sum
            row.response_sum += other.response_sum
            for mine, theirs in (
                (row.duration, other.duration),
                (row.request, other.request),
                (row.response, other.response),
            ):
                for i, n in enumerate(theirs):
                    mine[i] += n


class DnsStatsCollector(Collector):
    """Sums the per-thread DnsStats into CoreDNS's metric families at scrape time."""

    def __init__(self) -> None:
        self.parts: list[DnsStats] = []

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def rows(self) -> dict[RowKey, _Row]:
        total = DnsStats()
        for part in list(self.parts):
            total.merge(dict(part.rows))
        return total.rows

    def collect(self) -> Iterator[Metric]:
        requests: dict[tuple[str, ...], int] = defaultdict(int)
        responses: dict[tuple[str, ...], int] = defaultdict(int)
        durations: dict[tuple[str, ...], _Hist] = {}
        request_sizes: dict[tuple[str, ...], _Hist] = {}
        response_sizes: dict[tuple[str, ...], _Hist] = {}
        for (server, zone, proto, fam, qtype, rcode, plugin), row in self.rows().items():
            tname = type_label(qtype)
            requests[(server, zone, "", proto, str(fam), tname)] += row.count
            responses[(server, zone, "", rcode_label(rcode), plugin)] += row.count
            _Hist.add(durations, (server, zone, "", tname), row.duration, row.duration_sum)
            _Hist.add(request_sizes, (server, zone, "", proto), row.request, row.request_sum)
            _Hist.add(response_sizes, (server, zone, "", proto), row.response, row.response_sum)
        family = CounterMetricFamily(
            "coredns_dns_requests", "Counter of DNS requests made per zone, protocol and family.",
            labels=["server", "zone", "view", "proto", "family", "type"],
        )  # fmt: skip
        for labels, value in requests.items():
            family.add_metric(list(labels), value)
        yield family
        family = CounterMetricFamily(
            "coredns_dns_responses", "Counter of response status codes.",
            labels=["server", "zone", "view", "rcode", "plugin"],
        )  # fmt: skip
        for labels, value in responses.items():
            family.add_metric(list(labels), value)
        yield family
        yield _Hist.family(
            "coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each request took.",
            ["server", "zone", "view", "type"], _DURATION_BUCKETS, durations,
        )  # fmt: skip
        yield _Hist.family(
            "coredns_dns_request_size_bytes", "Size of the EDNS0 UDP buffer in bytes (64K for TCP).",
            ["server", "zone", "view", "proto"], _SIZE_BUCKETS, request_sizes,
        )  # fmt: skip
        yield _Hist.family(
            "coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
            ["server", "zone", "view", "proto"], _SIZE_BUCKETS, response_sizes,
        )  # fmt: skip


class _MemoFlusher(Collector):
    """Flushes the reply memos' hits into the metrics before a scrape, and counts them."""

    def __init__(self, memo: MemoStats) -> None:
        self.memo = memo

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        self.memo.flush()
        hits, entries = self.memo.totals()
        # The memo's own figures: a low hit count under steady load means churn or a
        # working set larger than --reply-memo.
        family = CounterMetricFamily(
            "clusterdns_reply_memo_hits", "UDP queries answered from the reply memo."
        )
        family.add_metric([], hits)
        yield family
        gauge = GaugeMetricFamily("clusterdns_reply_memo_entries", "Replies held in reply memos.")
        gauge.add_metric([], entries)
        yield gauge


class _Hist:
    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.total = 0.0

    @staticmethod
    def add(
        into: dict[tuple[str, ...], _Hist], labels: tuple[str, ...], counts: list[int], total: float
    ) -> None:
        hist = into.get(labels)
        if hist is None:
            hist = into[labels] = _Hist(len(counts))
        for i, n in enumerate(counts):
            hist.counts[i] += n
        hist.total += total

    @staticmethod
    def family(
        name: str,
        doc: str,
        labels: list[str],
        bounds: tuple[float, ...],
        hists: dict[tuple[str, ...], _Hist],
    ) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=labels)
        for label_values, hist in hists.items():
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, n in zip(bounds, hist.counts, strict=False):
                cumulative += n
                buckets.append((_go_float(bound), cumulative))
            cumulative += hist.counts[-1]
            buckets.append(("+Inf", cumulative))
            family.add_metric(list(label_values), buckets, hist.total)
        return family


def _go_float(value: float) -> str:
    """Bucket bounds formatted as Prometheus' Go client does (0.00025, 1e+06, 100.0)."""
    text = repr(float(value))
    return text


_T = TypeVar("_T")
_PLUGIN_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, dict[object, object]] = (
    weakref.WeakKeyDictionary()
)


def once_per_registry(
    registry: CollectorRegistry, factory: Callable[[CollectorRegistry], _T]
) -> _T:
    """``factory(registry)`` the first time it is asked for, the same object after that.

    Plugins are set up again on every reload but the registry lives as long as the
    process: a plugin's metrics must be registered once, not once per configuration.
    """
    made = _PLUGIN_METRICS.setdefault(registry, {})
    if factory not in made:
        made[factory] = factory(registry)
    return made[factory]  # type: ignore[return-value]
