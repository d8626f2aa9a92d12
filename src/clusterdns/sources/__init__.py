"""Cluster state for the DNS plugins: the model, and the sources that fill it.

Knows nothing of DNS messages. :class:`ClusterModel` holds slim, indexed records;
:class:`~clusterdns.sources.kube.source.KubeAPISource` mirrors a live API server into it and
:class:`~clusterdns.sources.manifests.ManifestsSource` a folder of manifests.
"""

from .model import (
    Change,
    ClusterModel,
    Endpoint,
    IpOwner,
    Kind,
    Namespace,
    Pod,
    Service,
    ServicePort,
)

__all__ = [
    "Change",
    "ClusterModel",
    "Endpoint",
    "IpOwner",
    "Kind",
    "Namespace",
    "Pod",
    "Service",
    "ServicePort",
]
