"""The parsed ``k8s_external`` directive."""

from __future__ import annotations

from dataclasses import dataclass, field

from clusterdns.core.fallthrough import Fallthrough

DEFAULT_TTL = 5
DEFAULT_APEX = "dns"


@dataclass(frozen=True)
class ExternalConfig:
    zones: tuple[str, ...]  # lower-case, absolute
    apex: str = DEFAULT_APEX  # the label holding the zone's nameserver names
    ttl: int = DEFAULT_TTL
    headless: bool = False
    fallthrough: Fallthrough = field(default_factory=Fallthrough)
