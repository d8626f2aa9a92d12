"""The kubernetes plugin's metadata labels (CoreDNS's kubernetes Metadata provider).

For every query: ``kubernetes/client-namespace`` and ``kubernetes/client-pod-name`` of the
Pod whose IP sent it (with ``pods verified`` only, the one mode that knows Pods by IP).
For a question in one of the plugin's zones, the parts of the name as the Kubernetes DNS
schema reads them: ``kubernetes/kind`` (svc or pod), ``kubernetes/namespace``,
``kubernetes/service``, ``kubernetes/endpoint``, ``kubernetes/port-name`` and
``kubernetes/protocol`` (an SRV question's ``_port._proto`` labels, underscores stripped),
or ``kubernetes/parse-error`` for a name the schema cannot read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

from clusterdns.core.metadata import Values
from clusterdns.plugins.kubernetes.config import KubernetesConfig, PodMode
from clusterdns.sources.convert import canonical_ip
from clusterdns.sources.model import ClusterModel
from clusterdns.wire.names import in_zone

INVALID: Final = "invalid query name"


class NameParts(NamedTuple):
    kind: str = ""
    namespace: str = ""
    service: str = ""
    endpoint: str = ""
    port: str = ""
    protocol: str = ""


def _strip_underscore(label: str) -> str:
    return label[1:] if label.startswith("_") else label


def parse_name(name: str, zone: str) -> NameParts | None:
    """The schema's reading of ``name`` (lower-case, absolute) in ``zone``; None when it
    cannot be read (CoreDNS's parseRequest without multicluster or zonal names)."""
    base = name[: -len(zone)] if zone != "." else name
    base = base.rstrip(".")
    if base in ("", "svc", "pod"):
        return NameParts()
    labels = base.split(".")
    kind = labels.pop()
    if kind not in ("svc", "pod"):
        return None
    parts = {"kind": kind}
    for field in ("namespace", "service"):
        if not labels:
            return NameParts(**parts)
        parts[field] = labels.pop()
    if len(labels) == 1:
        parts["endpoint"] = labels[0]
    elif len(labels) == 2:
        parts["port"] = _strip_underscore(labels[0])
        parts["protocol"] = _strip_underscore(labels[1])
    elif labels:
        return None
    return NameParts(**parts)


def _constant(value: str) -> Callable[[], str]:
    return lambda: value


def kubernetes_metadata(
    config: KubernetesConfig, model: ClusterModel, name: str, client_ip: str
) -> Values:
    """The labels for a question ``name`` (lower-case, absolute) from ``client_ip``."""
    values: dict[str, Callable[[], str]] = {}
    if config.pods is PodMode.VERIFIED:
        canonical = canonical_ip(client_ip.split("%", 1)[0])
        pods = model.pods_by_ip(canonical) if canonical is not None else ()
        if pods:
            pod = pods[0]
            values["kubernetes/client-namespace"] = _constant(pod.namespace)
            values["kubernetes/client-pod-name"] = _constant(pod.name)
    zones = [zone for zone in config.zones if in_zone(name, zone)]
    if not zones:
        return values
    zone = max(zones, key=len)
    parts = parse_name(name, zone)
    if parts is None:
        values["kubernetes/parse-error"] = _constant(INVALID)
        return values
    values["kubernetes/port-name"] = _constant(parts.port)
    values["kubernetes/protocol"] = _constant(parts.protocol)
    values["kubernetes/endpoint"] = _constant(parts.endpoint)
    values["kubernetes/service"] = _constant(parts.service)
    values["kubernetes/namespace"] = _constant(parts.namespace)
    values["kubernetes/kind"] = _constant(parts.kind)
    return values
