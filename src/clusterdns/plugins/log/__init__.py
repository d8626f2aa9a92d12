"""log: one line per query in CoreDNS's common log format, filtered by class."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import dns.rdataclass
import dns.rdatatype

from clusterdns.core.metadata import metadata_value
from clusterdns.core.metrics import rcode_label
from clusterdns.core.plugin import Plugin, SetupContext
from clusterdns.core.request import Request
from clusterdns.corefile import Directive

COMMON = '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}'
COMBINED = COMMON + ' "{>opcode}"'

EMPTY = "-"  # CoreDNS's replacer writes this for a value nobody set
log = logging.getLogger("clusterdns.log")
_PLACEHOLDER = re.compile(r"\{[^{}]+\}")
_CLASSES = ("all", "success", "denial", "error")
_FLAG_NAMES = (
    (0x8000, "qr"),
    (0x0400, "aa"),
    (0x0200, "tc"),
    (0x0100, "rd"),
    (0x0080, "ra"),
    (0x0020, "ad"),
    (0x0010, "cd"),
)


def _response_class(rcode: int, wire: bytes) -> str:
    if rcode == 3:
        return "denial"
    if rcode == 0:
        ancount = (wire[6] << 8) | wire[7]
        return "success" if ancount else "denial"
    return "error"


def _rflags(wire: bytes) -> str:
    flags = (wire[2] << 8) | wire[3]
    return ",".join(name for bit, name in _FLAG_NAMES if flags & bit)


Field = Callable[[Request, int, bytes, float], str]

_FIELDS: dict[str, Field] = {
    "remote": lambda r, c, w, d: r.client[0],
    "port": lambda r, c, w, d: str(r.client[1]),
    ">id": lambda r, c, w, d: str(r.query.id),
    "type": lambda r, c, w, d: dns.rdatatype.to_text(dns.rdatatype.RdataType.make(r.qtype)),
    "class": lambda r, c, w, d: dns.rdataclass.to_text(dns.rdataclass.RdataClass.make(r.qclass)),
    "name": lambda r, c, w, d: r.query.original_name,
    "proto": lambda r, c, w, d: r.transport,
    "size": lambda r, c, w, d: str(len(r.query.data)),
    ">do": lambda r, c, w, d: "true" if r.do else "false",
    ">bufsize": lambda r, c, w, d: str(r.query.edns.payload if r.query.edns else 512),
    "rcode": lambda r, c, w, d: rcode_label(c),
    ">rflags": lambda r, c, w, d: _rflags(w),
    "rsize": lambda r, c, w, d: str(len(w)),
    "duration": lambda r, c, w, d: f"{d:.9f}".rstrip("0").rstrip(".") + "s",
    ">opcode": lambda r, c, w, d: str(r.query.opcode),
    "server_ip": lambda r, c, w, d: "",
}


def _metadata_field(label: str) -> Field:
    def field(req: Request, rcode: int, wire: bytes, duration: float) -> str:
        value = metadata_value(req, label)
        return EMPTY if value is None else value

    return field


def compile_format(fmt: str, directive: Directive) -> Callable[[Request, int, bytes, float], str]:
    parts: list[str | Field] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(fmt):
        parts.append(fmt[pos : match.start()])
        key = match.group()[1:-1]
        if key.startswith("/"):
            # {/plugin/label}: metadata (core/metadata.py), "-" when no plugin set it.
            parts.append(_metadata_field(key[1:]))
            pos = match.end()
            continue
        if key not in _FIELDS:
            raise directive.error(f"unknown placeholder {{{key}}} in log format")
        parts.append(_FIELDS[key])
        pos = match.end()
    parts.append(fmt[pos:])

    def render(req: Request, rcode: int, wire: bytes, duration: float) -> str:
        return "".join(p if isinstance(p, str) else p(req, rcode, wire, duration) for p in parts)

    return render


class _Rule:
    __slots__ = ("classes", "names", "render")

    def __init__(
        self,
        names: tuple[str, ...],
        render: Callable[[Request, int, bytes, float], str],
        classes: frozenset[str],
    ) -> None:
        self.names = names
        self.render = render
        self.classes = classes

    def matches(self, name: str) -> bool:
        return any(z == "." or name == z or name.endswith("." + z) for z in self.names)


class Log(Plugin):
    in_chain = False
    observes = True

    def __init__(self, rules: list[_Rule], stream: TextIO | None = None) -> None:
        self.rules = rules
        self.stream = stream

    def observe(self, req: Request, rcode: int, wire: bytes, duration: float, plugin: str) -> None:
        name = req.name
        for rule in self.rules:
            if not rule.matches(name):
                continue
            if "all" not in rule.classes and _response_class(rcode, wire) not in rule.classes:
                return
            line = "[INFO] " + rule.render(req, rcode, wire, duration)
            out = self.stream if self.stream is not None else sys.stdout
            print(line, file=out)
            return


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    rules: list[_Rule] = []
    for directive in directives:
        args = directive.arg_texts()
        fmt = COMMON
        if args and ("{" in args[-1] or " " in args[-1]):
            fmt = args.pop()
            fmt = fmt.replace("{common}", COMMON).replace("{combined}", COMBINED)
        names = []
        for arg in args or ["."]:
            zone = arg.lower()
            names.append(zone if zone.endswith(".") else zone + ".")
        classes: set[str] = set()
        for item in directive.block_items():
            if item.name != "class":
                raise item.error(f"unknown property '{item.name}', expected class")
            for cls in item.expect_args(1):
                if cls not in _CLASSES:
                    raise item.error(
                        f"unknown class {cls!r}, expected one of {', '.join(_CLASSES)}"
                    )
                classes.add(cls)
        rules.append(
            _Rule(tuple(names), compile_format(fmt, directive), frozenset(classes or {"all"}))
        )
    return Log(rules)
