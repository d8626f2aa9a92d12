"""introspect: an HTTP endpoint (loopback by default) showing the records the server
answers, its cache entries, and per question which plugin answered and why."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence

from clusterdns.core.http import split_http_address
from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.corefile import Directive
from clusterdns.plugins.introspect.handler import Introspect

__all__ = ["DEFAULT_ADDRESS", "Introspect", "setup"]

log = logging.getLogger("clusterdns.plugins.introspect")

DEFAULT_ADDRESS = "127.0.0.1:8182"
DEFAULT_PORT = 8182
PATHS = ("/", "/records", "/cache", "/explain")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.no_block()
    args = directive.expect_args(0, 1)
    try:
        host, port = split_http_address(
            args[0] if args else DEFAULT_ADDRESS, default_port=DEFAULT_PORT
        )
    except ValueError as err:
        raise directive.error(str(err)) from None
    if not host:
        # ":8182" would mean every interface; the records and cache are not for everyone.
        raise directive.error(
            f"needs an explicit host (e.g. 127.0.0.1:{port}): it shows the "
            "cluster's names and the cache, so it never binds every interface by default"
        )
    if not _loopback(host):
        log.warning(
            "introspect: %s:%d: listening on %s, not loopback: anyone who reaches it sees "
            "the cluster's names and the cache",
            directive.file, directive.line, host,
        )  # fmt: skip
    plugin = Introspect(ctx.process)
    for path, handler in zip(
        PATHS, (plugin.index, plugin.records, plugin.cache, plugin.explain), strict=True
    ):
        ctx.services.add_route(host, port, path, handler)
    return plugin
