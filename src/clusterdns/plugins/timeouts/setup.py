"""Parse ``timeouts { read D; write D; idle D; maxtcpqueries N }`` into the block's settings."""

from __future__ import annotations

from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext, parse_duration, parse_int
from clusterdns.corefile import Directive
from clusterdns.corefile.model import Token

MIN_TIMEOUT = 1.0
MAX_TIMEOUT = 24 * 3600.0


class Timeouts(Plugin):
    """Configuration only: the TCP listener reads the block's settings."""

    name = "timeouts"
    in_chain = False


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    timeouts = ctx.settings.tcp
    for directive in directives:
        directive.expect_args(0, 0)
        given = 0
        for item in directive.block_items():
            here = Token(item.name, item.file, item.line)
            if item.block is not None:
                raise directive.error(f"unexpected block after {item.name!r}", here)
            if len(item.args) != 1:
                raise directive.error(f"{item.name} takes exactly one value", here)
            value = item.args[0].text
            given += 1
            if item.name == "maxtcpqueries":
                maximum = parse_int(item, value, what="maxtcpqueries", minimum=-1)
                if maximum == 0:
                    raise directive.error(
                        "maxtcpqueries needs to be -1 (unlimited) or a positive integer",
                        item.args[0],
                    )
                timeouts.max_queries = maximum if maximum > 0 else 0
                continue
            if item.name not in ("read", "write", "idle"):
                raise directive.error(f"unknown option: '{item.name}'", here)
            seconds = parse_duration(item, value)
            if not MIN_TIMEOUT <= seconds <= MAX_TIMEOUT:
                raise directive.error(
                    f"timeout {value!r} needs to be between 1 second and 24 hours", item.args[0]
                )
            setattr(timeouts, item.name, seconds)
        if given == 0:
            raise directive.error("timeouts block with no timeouts specified")
    return Timeouts()
