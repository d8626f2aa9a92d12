"""SkyDNS records for one Service, in kube2sky's etcd layout (pure functions).

For ``--path /skydns --domain cluster.local`` a Service ``mysql-service`` in ``default``
lives under ``/skydns/local/cluster/svc/default/mysql-service/``:

* ClusterIP: one leaf per ClusterIP named by the hash of its value, and the legacy
  ``/skydns/local/cluster/default/mysql-service`` key of the oldest kube2sky (seed 000
  shows both);
* headless: one leaf per ready endpoint address (all of them with
  ``publishNotReadyAddresses``), named by its hash, and one named by the endpoint's
  hostname when it has one (``web-0.web.default.svc.cluster.local``);
* named ports: SRV data under ``.../_<proto>/_<port name>/<label>``, a value whose ``host``
  is the Service's (or the endpoint's) name and whose ``port`` is set;
* ExternalName: the Service's own key (``.../svc/default/search``, no leaf: a name has one
  CNAME, and CoreDNS answers a CNAME question from the exact key only) and the legacy key,
  whose ``host`` is the target.

Values are SkyDNS/CoreDNS ``msg.Service`` JSON, compact, in kube2sky's field order, so the
leaf name is what kube2sky wrote: the FNV-1a 32-bit hash of the value, in hex
(``2f1020d6`` for seed 000's ``{"host":"10.254.162.44",...}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from clusterdns.sources.records import Endpoint, Service, ServicePort

__all__ = [
    "PRIORITY",
    "WEIGHT",
    "domain_prefix",
    "fnv1a_32",
    "record_value",
    "service_keys",
    "service_records",
]

PRIORITY = 10
WEIGHT = 10


def fnv1a_32(data: bytes) -> str:
    """kube2sky's record label: FNV-1a 32-bit, lower-case hex without padding."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:x}"


def record_value(host: str, *, ttl: int, port: int = 0) -> str:
    """A SkyDNS record as kube2sky serialized it (``port`` only when set)."""
    record: dict[str, object] = {"host": host}
    if port:
        record["port"] = port
    record.update(priority=PRIORITY, weight=WEIGHT, ttl=ttl, targetstrip=0)
    return json.dumps(record, separators=(",", ":"))


def domain_prefix(path: str, domain: str) -> str:
    """``/skydns`` + ``cluster.local`` → ``/skydns/local/cluster/`` (reversed labels)."""
    labels = [label for label in domain.strip(".").lower().split(".") if label]
    return "/".join([path.rstrip("/"), *reversed(labels)]) + "/"


def service_keys(prefix: str, namespace: str, name: str) -> tuple[str, str]:
    """The key prefix of a Service's records (with a trailing slash) and its legacy key."""
    return f"{prefix}svc/{namespace}/{name}/", f"{prefix}{namespace}/{name}"


def _port_segment(port: ServicePort) -> str | None:
    if not port.name or not port.protocol:
        return None  # kube2sky made no SRV data for unnamed ports
    return f"_{port.protocol.lower()}/_{port.name}/"


def _srv(
    records: dict[str, str],
    base: str,
    ports: Iterable[ServicePort],
    label: str,
    target: str,
    ttl: int,
) -> None:
    for port in ports:
        segment = _port_segment(port)
        if segment is not None:
            records[f"{base}{segment}{label}"] = record_value(target, ttl=ttl, port=port.port)


def service_records(
    svc: Service, endpoints: Iterable[Endpoint], *, prefix: str, domain: str, ttl: int
) -> dict[str, str]:
    """Every key → value one Service owns under ``prefix`` (see the module docstring)."""
    base, legacy = service_keys(prefix, svc.namespace, svc.name)
    fqdn = f"{svc.name}.{svc.namespace}.svc.{domain.strip('.')}"
    records: dict[str, str] = {}
    if svc.external_name is not None and svc.type == "ExternalName":
        value = json.dumps({"host": svc.external_name.rstrip("."), "ttl": ttl},
                           separators=(",", ":"))  # fmt: skip
        records[base.rstrip("/")] = value
        records[legacy] = value
        return records
    if svc.cluster_ips and not svc.headless:
        for i, ip in enumerate(svc.cluster_ips):
            value = record_value(ip, ttl=ttl)
            label = fnv1a_32(value.encode())
            records[base + label] = value
            if i == 0:
                records[legacy] = value
                _srv(records, base, svc.ports, label, fqdn, ttl)
        return records
    # Headless: the endpoints themselves.
    for endpoint in endpoints:
        if not (endpoint.ready or svc.publish_not_ready):
            continue
        for ip in endpoint.addresses:
            value = record_value(ip, ttl=ttl)
            label = fnv1a_32(value.encode())
            records[base + label] = value
            if endpoint.hostname:
                records[base + endpoint.hostname] = value
                label = endpoint.hostname
            _srv(records, base, endpoint.ports, label, f"{label}.{fqdn}", ttl)
    return records
