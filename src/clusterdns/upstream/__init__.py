"""Outbound DNS for `forward`: random IDs and source ports, strict reply matching, and
reuse of TCP/TLS connections. Pure asyncio; nothing here imports other clusterdns packages."""

from .address import UpstreamAddress, parse_resolv_conf
from .errors import UpstreamBadReply, UpstreamConnectError, UpstreamError, UpstreamTimeout
from .message import is_nodata
from .upstream import Upstream, probe, probe_query

__all__ = [
    "Upstream",
    "UpstreamAddress",
    "UpstreamBadReply",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamTimeout",
    "is_nodata",
    "parse_resolv_conf",
    "probe",
    "probe_query",
]
