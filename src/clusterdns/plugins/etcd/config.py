"""The settings of one ``etcd`` directive, as setup parsed them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from clusterdns.core.fallthrough import Fallthrough

DEFAULT_PATH: Final = "/skydns"
DEFAULT_ENDPOINT: Final = "http://localhost:2379"


@dataclass(frozen=True)
class EtcdConfig:
    zones: tuple[str, ...]
    path: str = DEFAULT_PATH  # normalised: "/skydns", "" for the root of the keyspace
    endpoints: tuple[str, ...] = (DEFAULT_ENDPOINT,)
    credentials: tuple[str, str] | None = field(default=None, repr=False)  # never in a log
    # (cert, key, ca), each None when not given; None: plain http
    tls: tuple[str | None, str | None, str | None] | None = None
    min_lease_ttl: int = 30
    max_lease_ttl: int = 86400
    fallthrough: Fallthrough = field(default_factory=Fallthrough)

    @property
    def prefix(self) -> str:
        """What the store watches: every key below the path."""
        return self.path + "/"
