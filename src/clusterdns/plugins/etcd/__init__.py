"""etcd: serve SkyDNS records kept in etcd (CoreDNS's etcd plugin), from a watched copy."""

from __future__ import annotations

from clusterdns.plugins.etcd.config import EtcdConfig
from clusterdns.plugins.etcd.handler import Etcd
from clusterdns.plugins.etcd.setup import setup

__all__ = ["Etcd", "EtcdConfig", "setup"]
