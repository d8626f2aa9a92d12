"""Exceptions raised by the upstream layer: one family so `forward` can catch them in one place."""

from __future__ import annotations


class UpstreamError(Exception):
    """Base class: the upstream did not produce a usable reply."""


class UpstreamTimeout(UpstreamError):
    """No acceptable reply arrived before the deadline."""


class UpstreamConnectError(UpstreamError):
    """The upstream could not be reached: refused, unreachable, TLS handshake failed, reset."""


class UpstreamBadReply(UpstreamError):
    """The upstream answered on a connection we trust (TCP/TLS), but the reply is malformed or
    is not an answer to our question."""
