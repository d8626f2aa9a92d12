"""metadata: gather what plugins know about a query, for log formats and view."""

from clusterdns.plugins.metadata.handler import Metadata
from clusterdns.plugins.metadata.setup import setup

__all__ = ["Metadata", "setup"]
