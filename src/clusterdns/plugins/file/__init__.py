"""file: serve zones from RFC 1035 master files, authoritatively."""

from __future__ import annotations

from clusterdns.plugins.file.handler import File
from clusterdns.plugins.file.setup import setup

__all__ = ["File", "setup"]
