"""k8s_external: a Service's external IPs and load balancer ingress under an outside zone."""

from __future__ import annotations

from clusterdns.plugins.k8s_external.handler import K8sExternal
from clusterdns.plugins.k8s_external.setup import setup

__all__ = ["K8sExternal", "setup"]
