"""clusterdns: Kubernetes cluster DNS and service discovery, configured with a Corefile."""

__version__ = "0.1.0"
