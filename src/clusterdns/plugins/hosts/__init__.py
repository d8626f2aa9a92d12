"""hosts: serve A, AAAA and PTR records from an /etc/hosts style file and inline entries."""

from __future__ import annotations

from clusterdns.plugins.hosts.handler import Hosts, HostsOptions
from clusterdns.plugins.hosts.setup import setup

__all__ = ["Hosts", "HostsOptions", "setup"]
