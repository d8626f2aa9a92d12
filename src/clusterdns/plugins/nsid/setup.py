"""Parse ``nsid [DATA]``."""

from __future__ import annotations

import socket
from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.corefile import Directive
from clusterdns.plugins.nsid.handler import Nsid


def default_data() -> str:
    """The host's name, as CoreDNS uses (``localhost`` when it has none)."""
    try:
        return socket.gethostname() or "localhost"
    except OSError:
        return "localhost"


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.no_block()
    args = directive.arg_texts()
    # Several words are one identifier, joined by single spaces.
    return Nsid(" ".join(args) if args else default_data())
