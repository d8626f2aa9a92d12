"""errors: log the errors plugins return, optionally consolidated by pattern."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from typing import Literal

import dns.rdatatype

from clusterdns.core.explain import Rule, Why
from clusterdns.core.plugin import Plugin, PluginError, SetupContext, only_once, parse_duration
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.corefile import Directive

log = logging.getLogger("clusterdns.errors")


class _Pattern:
    __slots__ = ("count", "level", "period", "regex", "started", "text")

    def __init__(self, period: float, text: str, regex: re.Pattern[str], level: int) -> None:
        self.period = period
        self.text = text
        self.regex = regex
        self.level = level
        self.count = 0
        self.started = 0.0


class Errors(Plugin):
    def __init__(self, patterns: list[_Pattern], stacktrace: bool) -> None:
        self.patterns = patterns
        self.stacktrace = stacktrace
        self._flusher: asyncio.Task[None] | None = None

    # Fast answers cannot fail, so there is nothing to log: the fast path goes past it.
    fast_transparent: Literal[True] = True

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        try:
            return await next_handler(req)
        except PluginError as err:
            self.report(req, err)
            if req.why is not None:
                req.why.append(Why(err.plugin, Rule.ERROR, str(err)))
            return Reply.error(err.rcode, plugin=err.plugin)

    def report(self, req: Request, err: PluginError) -> None:
        text = f"{err.rcode} {req.name} {dns.rdatatype.to_text(dns.rdatatype.RdataType.make(req.qtype))}: plugin/{err.plugin}: {err}"
        for pattern in self.patterns:
            if pattern.regex.search(text):
                if pattern.count == 0:
                    pattern.started = time.monotonic()
                pattern.count += 1
                return
        log.error("%s", text)

    async def start(self) -> None:
        if self.patterns:
            self._flusher = asyncio.ensure_future(self._flush_forever())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        self.flush()

    def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for pattern in self.patterns:
            if pattern.count and now - pattern.started >= pattern.period:
                log.log(
                    pattern.level,
                    "%d errors like '%s' occurred in last %gs",
                    pattern.count, pattern.text, pattern.period,
                )  # fmt: skip
                pattern.count = 0

    async def _flush_forever(self) -> None:
        shortest = min(pattern.period for pattern in self.patterns)
        while True:
            await asyncio.sleep(min(shortest, 1.0))
            self.flush()


_LEVELS = {
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    directive = only_once(directives)
    directive.expect_args(0, 0)
    patterns: list[_Pattern] = []
    stacktrace = False
    for item in directive.block_items():
        if item.name == "stacktrace":
            item.expect_args(0, 0)
            stacktrace = True
        elif item.name == "consolidate":
            args = item.expect_args(2, 4)
            period = parse_duration(item, args[0])
            try:
                regex = re.compile(args[1])
            except re.error as err:
                raise item.error(f"invalid regular expression {args[1]!r}: {err}") from None
            level = logging.ERROR
            if len(args) >= 3:
                if args[2] not in _LEVELS:
                    raise item.error(
                        f"unknown log level {args[2]!r}, expected warning, error, info or debug"
                    )
                level = _LEVELS[args[2]]
            patterns.append(_Pattern(period, args[1], regex, level))
        else:
            raise item.error(f"unknown property '{item.name}'")
    return Errors(patterns, stacktrace)
