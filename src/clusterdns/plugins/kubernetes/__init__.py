"""kubernetes: serve the cluster's Services, endpoints and Pods by the Kubernetes DNS schema."""

from clusterdns.plugins.kubernetes.setup import setup

__all__ = ["setup"]
