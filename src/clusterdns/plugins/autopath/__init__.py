"""autopath: answer a search-path query with the first name of the client's search path that exists."""

from clusterdns.plugins.autopath.handler import AutoPath
from clusterdns.plugins.autopath.setup import setup

__all__ = ["AutoPath", "setup"]
