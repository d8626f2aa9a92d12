"""forward: proxy queries to upstream resolvers over UDP, TCP or TLS, with health checks."""

from clusterdns.plugins.forward.handler import Forward, HealthCheck, Policy, Proxy, Stanza
from clusterdns.plugins.forward.setup import setup

__all__ = ["Forward", "HealthCheck", "Policy", "Proxy", "Stanza", "setup"]
