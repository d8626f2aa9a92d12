"""``fallthrough [ZONES...]``, shared by every record-serving plugin."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.corefile import Directive


class Fallthrough:
    """Whether a plugin passes a query it has no answer for to the next plugin."""

    __slots__ = ("zones",)

    def __init__(self, zones: Sequence[str] | None = None) -> None:
        # None: fall through for nothing; empty tuple: for every name.
        self.zones: tuple[str, ...] | None = None if zones is None else tuple(zones)

    @classmethod
    def parse(cls, directive: Directive) -> Fallthrough:
        zones = []
        for arg in directive.arg_texts():
            zone = arg.lower()
            if not zone.endswith("."):
                zone += "."
            zones.append(zone)
        return cls(zones)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fallthrough) and other.zones == self.zones

    def __hash__(self) -> int:
        return hash(self.zones)

    @property
    def enabled(self) -> bool:
        return self.zones is not None

    def through(self, name: str) -> bool:
        """Should a query for ``name`` (lower-case, absolute) fall through?"""
        if self.zones is None:
            return False
        if not self.zones:
            return True
        return any(name == zone or name.endswith("." + zone) or zone == "." for zone in self.zones)
