"""Query metadata (CoreDNS's metadata package): labels like ``kubernetes/namespace`` that
plugins provide about a query, read by others (log formats, view expressions).

A block whose ``metadata`` plugin is a :class:`MetadataCollector` gathers the labels of
its :class:`MetadataProvider` plugins for the questions in the collector's zones. The
gathering is lazy: the first :func:`metadata_value` of a Request collects (one function
per label, called only when that label is read) and keeps the result in ``req.meta``, so a
query nobody asks about costs nothing, and a fast answer that an observer logs gets the
same labels as a chain answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Protocol, runtime_checkable

from clusterdns.core.request import Request

META_KEY: Final = "metadata"
# label → a function returning its value ("" means no value, as in CoreDNS).
Values = Mapping[str, Callable[[], str]]


@runtime_checkable
class MetadataProvider(Protocol):
    """A plugin that knows something about a query (kubernetes: the client's Pod)."""

    def metadata(self, req: Request) -> Values:
        """The labels this plugin sets for ``req``; quick, it may run for every query."""
        ...


@runtime_checkable
class MetadataCollector(Protocol):
    """The ``metadata`` plugin: gathers the providers' labels for the questions it covers."""

    def collect(self, req: Request) -> Values: ...


_NOTHING: Final[Values] = {}


def metadata_of(req: Request) -> Values:
    """Every label of ``req`` (empty when its block has no ``metadata`` plugin)."""
    values: Values | None = req.meta.get(META_KEY)
    if values is not None:
        return values
    values = _NOTHING
    for plugin in req.block.plugins:
        if isinstance(plugin, MetadataCollector):
            values = plugin.collect(req)
            break
    req.meta[META_KEY] = values
    return values


def metadata_value(req: Request, label: str) -> str | None:
    """The value of ``label`` for ``req``, None when no plugin set it."""
    value = metadata_of(req).get(label)
    return None if value is None else value()
