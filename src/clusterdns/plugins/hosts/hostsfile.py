"""Parse /etc/hosts text into name → addresses and address → names tables."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import dns.name
import dns.reversename


def in_zones(name: str, zones: Sequence[str]) -> bool:
    return any(zone == "." or name == zone or name.endswith("." + zone) for zone in zones)


def _normalise(name: str) -> str | None:
    """Lower-case absolute text, or None for something that is not a domain name."""
    try:
        return dns.name.from_text(name.lower()).to_text()
    except Exception:  # dnspython raises a family of errors for bad names
        return None


@dataclass
class HostsMap:
    """Addresses per name (v4 and v6 apart) and names per reverse name, in file order."""

    v4: dict[str, list[str]] = field(default_factory=dict)
    v6: dict[str, list[str]] = field(default_factory=dict)
    reverse: dict[str, list[str]] = field(default_factory=dict)

    def add(self, address: str, name: str, *, with_reverse: bool) -> None:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return
        # Like Go's To4(): an IPv4-mapped IPv6 address is an IPv4 address.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        table = self.v4 if ip.version == 4 else self.v6
        _append(table.setdefault(name, []), str(ip))
        if with_reverse:
            owner = dns.reversename.from_address(str(ip)).to_text().lower()
            _append(self.reverse.setdefault(owner, []), name)

    def merge(self, other: HostsMap) -> HostsMap:
        """``self`` followed by ``other`` (file entries, then inline ones)."""
        merged = HostsMap()
        for source in (self, other):
            for mine, theirs in (
                (merged.v4, source.v4),
                (merged.v6, source.v6),
                (merged.reverse, source.reverse),
            ):
                for key, values in theirs.items():
                    target = mine.setdefault(key, [])
                    for value in values:
                        _append(target, value)
        return merged

    @property
    def names(self) -> set[str]:
        return set(self.v4) | set(self.v6)


def _append(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)


def parse_hosts(lines: Iterable[str], zones: Sequence[str], *, with_reverse: bool) -> HostsMap:
    """hosts(5): ``ADDRESS NAME [ALIASES...]``, ``#`` comments; names outside ``zones`` are skipped."""
    hosts = HostsMap()
    for raw in lines:
        line = raw.split("#", 1)[0]
        fields = line.split()
        if len(fields) < 2:
            continue
        address = fields[0]
        for alias in fields[1:]:
            name = _normalise(alias)
            if name is None or not in_zones(name, zones):
                continue
            hosts.add(address, name, with_reverse=with_reverse)
    return hosts
