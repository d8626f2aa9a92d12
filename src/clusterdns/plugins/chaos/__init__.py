"""chaos: version.bind, authors.bind and hostname.bind TXT answers in class CH."""

from __future__ import annotations

from collections.abc import Sequence

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns import __version__
from clusterdns.core.fast import SLOW, SlowType
from clusterdns.core.plugin import Plugin, SetupContext, only_once
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import Directive
from clusterdns.wire import Query

VERSION_NAMES = ("version.bind.", "version.server.")
AUTHOR_NAMES = ("authors.bind.",)
HOSTNAME_NAMES = ("hostname.bind.", "id.server.")


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Chaos(Plugin):
    def __init__(self, version: str, authors: list[str], hostname: str) -> None:
        self.answers: dict[str, list[str]] = {}
        for name in VERSION_NAMES:
            self.answers[name] = [version]
        for name in AUTHOR_NAMES:
            self.answers[name] = authors
        for name in HOSTNAME_NAMES:
            self.answers[name] = [hostname]

    def answer_fast(self, query: Query, limit: int, payload: int) -> SlowType | None:
        return SLOW if query.qclass == dns.rdataclass.CH else None

    def passes_express(self, lower: bytes, qtype: int, flags: int, do: bool) -> bool:
        return True  # express questions are class IN (core/fast.py ExpressPassable)

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        if req.qclass != dns.rdataclass.CH or req.qtype != dns.rdatatype.TXT:
            return await next_handler(req)
        texts = self.answers.get(req.name)
        if texts is None:
            return await next_handler(req)
        response = req.make_response()
        owner = dns.name.from_text(req.query.original_name)
        response.answer = [
            dns.rrset.from_text_list(
                owner, 0, dns.rdataclass.CH, dns.rdatatype.TXT, [_quote(t) for t in texts]
            )
        ]
        return Reply.of(response, plugin="chaos")


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.no_block()
    args = directive.arg_texts()
    version = args[0] if args else f"clusterdns-{__version__}"
    authors = args[1:] or ["clusterdns developers"]
    return Chaos(version, authors, ctx.process.hostname)
