"""Server blocks that share a zone and port, told apart by a filter (CoreDNS's Viewer).

A block with a :class:`BlockFilter` plugin (``view``) only takes the queries its filter
admits; blocks of the same zone are tried in Corefile order, and when none admits a query
the zone mux goes on to the next shorter zone (core/block.py ZoneMux.route). Which block
answers then depends on who asks, so nothing routed through such a zone is memoised.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from clusterdns.core.request import Request


@runtime_checkable
class BlockFilter(Protocol):
    """Decides whether a query belongs to the server block the plugin is in (view)."""

    view_name: str

    def admits(self, req: Request) -> bool:
        """``req`` is built for the candidate block (its metadata is that block's)."""
        ...
