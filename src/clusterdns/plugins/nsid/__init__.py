"""nsid: add this server's identifier (RFC 5001) to replies that ask for it."""

from clusterdns.plugins.nsid.handler import Nsid
from clusterdns.plugins.nsid.setup import default_data, setup

__all__ = ["Nsid", "default_data", "setup"]
