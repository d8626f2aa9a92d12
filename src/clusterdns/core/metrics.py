"""CoreDNS's metric names and labels, so existing dashboards and alerts work."""

from __future__ import annotations

import sys
from typing import Final, NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from clusterdns import __version__

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
        self.requests = Counter(
            "coredns_dns_requests", "Counter of DNS requests made per zone, protocol and family.",
            ["server", "zone", "view", "proto", "family", "type"], registry=r,
        )  # fmt: skip
        self.responses = Counter(
            "coredns_dns_responses", "Counter of response status codes.",
            ["server", "zone", "view", "rcode", "plugin"], registry=r,
        )  # fmt: skip
        self.duration = Histogram(
            "coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each request took.",
            ["server", "zone", "view", "type"], buckets=_DURATION_BUCKETS, registry=r,
        )  # fmt: skip
        self.request_size = Histogram(
            "coredns_dns_request_size_bytes", "Size of the EDNS0 UDP buffer in bytes (64K for TCP).",
            ["server", "zone", "view", "proto"], buckets=_SIZE_BUCKETS, registry=r,
        )  # fmt: skip
        self.response_size = Histogram(
            "coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
            ["server", "zone", "view", "proto"], buckets=_SIZE_BUCKETS, registry=r,
        )  # fmt: skip
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
        self._children: dict[tuple[object, ...], _Children] = {}

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
        key = (server, zone, proto, family, qtype, rcode, plugin)
        children = self._children.get(key)
        if children is None:
            tname = type_label(qtype)
            children = _Children(
                self.requests.labels(server, zone, "", proto, str(family), tname),
                self.responses.labels(server, zone, "", rcode_label(rcode), plugin),
                self.duration.labels(server, zone, "", tname),
                self.request_size.labels(server, zone, "", proto),
                self.response_size.labels(server, zone, "", proto),
            )
            self._children[key] = children
        children.requests.inc()
        children.responses.inc()
        children.duration.observe(duration)
        children.request_size.observe(request_size)
        children.response_size.observe(response_size)


class _Children(NamedTuple):
    requests: Counter
    responses: Counter
    duration: Histogram
    request_size: Histogram
    response_size: Histogram
