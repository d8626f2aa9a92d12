"""metadata: gathers the labels of the block's metadata providers (core/metadata.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clusterdns.core.metadata import MetadataProvider, Values
from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Request
from clusterdns.wire import text_to_wire


class Metadata(Plugin):
    """Out of the query path: labels are gathered when a plugin first reads one."""

    name = "metadata"
    in_chain = False

    def __init__(self, zones: tuple[str, ...]) -> None:
        self.zones = zones
        self._wire_zones = frozenset(text_to_wire(zone) for zone in zones)

    def covers(self, req: Request) -> bool:
        query = req.query
        lower = query.qname_lower
        return any(lower[offset:] in self._wire_zones for offset in query.label_offsets)

    def collect(self, req: Request) -> Values:
        if not self.covers(req):
            return {}
        values: dict[str, Callable[[], str]] = {}
        for plugin in providers(req.block.plugins):
            values.update(plugin.metadata(req))
        return values


def providers(plugins: Sequence[Plugin]) -> list[MetadataProvider]:
    return [p for p in plugins if isinstance(p, MetadataProvider)]
