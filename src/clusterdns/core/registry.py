"""The one plugin order, as CoreDNS's plugin.cfg fixes it, and plugin lookup.

The order a query meets the plugins is this list, never the order of lines
in a Corefile.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Final

from clusterdns.core.plugin import SetupFunction

# CoreDNS's plugin.cfg order, as of CoreDNS 1.14.7 (the directive names, so
# "prometheus" rather than its package name "metrics"). Names we implement have a
# module in clusterdns.plugins; the rest are recognised so the error can say so.
COREDNS_ORDER: Final = (
    "root", "metadata", "geoip", "cancel", "proxyproto", "quic", "grpc_server", "https",
    "https3", "timeouts", "multisocket", "reload", "nsid", "bufsize", "bind", "debug",
    # Ours, not CoreDNS's: an HTTP endpoint only, placed by the debug plugin it is close to.
    "introspect",
    "trace", "ready", "health", "pprof", "shed", "prometheus", "errors", "log", "dnstap",
    "local", "dns64", "any", "chaos", "loadbalance", "tsig", "rewrite", "autopath", "acl",
    "cache", "header", "dnssec", "tls", "minimal", "template", "transfer", "hosts",
    "route53", "azure", "clouddns", "k8s_external", "kubernetes", "file", "auto",
    "secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami", "on", "sign",
    "view", "nomad",
)  # fmt: skip
# Plugins of ours in that list that CoreDNS does not have.
OWN_PLUGINS: Final = frozenset({"introspect"})


@cache
def setup_function(name: str) -> SetupFunction | None:
    """The setup function of plugin ``name``, or None if we do not implement it."""
    if name not in COREDNS_ORDER:
        return None
    try:
        module = importlib.import_module(f"clusterdns.plugins.{name}")
    except ModuleNotFoundError as err:
        if err.name and err.name.startswith(f"clusterdns.plugins.{name}"):
            return None
        raise
    setup: SetupFunction | None = getattr(module, "setup", None)
    return setup


def order_of(name: str) -> int:
    return COREDNS_ORDER.index(name)


def implemented() -> list[str]:
    """Plugins compiled in, in execution order."""
    return [name for name in COREDNS_ORDER if setup_function(name) is not None]


# Plugins CoreDNS removed, and what replaces them.
REMOVED: Final = {
    "proxy": "removed from CoreDNS in 1.7.0: use 'forward' (e.g. 'forward . 8.8.8.8')",
}


def unknown_directive_message(name: str) -> str:
    if name in REMOVED:
        return f"unknown directive '{name}': {REMOVED[name]}"
    if name in COREDNS_ORDER:
        return f"unknown directive '{name}': a CoreDNS plugin that clusterdns does not implement"
    return f"unknown directive '{name}'"
