"""header: set or clear the AA, RA and RD flags of queries and replies."""

from clusterdns.plugins.header.handler import Header, QueryHeader, masks
from clusterdns.plugins.header.setup import setup

__all__ = ["Header", "QueryHeader", "masks", "setup"]
