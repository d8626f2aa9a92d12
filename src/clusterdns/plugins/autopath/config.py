"""The parsed ``autopath`` directive."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AutoPathConfig:
    zones: tuple[str, ...]
    # A fixed search list from a resolv.conf (without the "" sentinel), or None with a plugin.
    search: tuple[str, ...] | None = None
    plugin: str | None = None
    # @kubernetes: the namespace from `pods verified` alone, as CoreDNS (see README).
    coredns_compatible: bool = False
    host_search: tuple[str, ...] = ()
