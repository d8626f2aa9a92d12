"""Parse ``template CLASS TYPE [ZONE...] { ... }`` directives (each one a rule, in order)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final

import dns.rcode
import dns.rdatatype

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.core.plugin import Plugin, SetupContext, parse_zones
from clusterdns.corefile import CorefileError, Directive
from clusterdns.plugins.template.goregex import GoRegex, GoRegexError, compile_go
from clusterdns.plugins.template.gotemplate import Template, TemplateSyntaxError, parse_uint
from clusterdns.plugins.template.handler import CLASS_NAMES, Rule, Templates
from clusterdns.plugins.template.metrics import metrics_for

CLASSES: Final = {text: number for number, text in CLASS_NAMES.items()}
# miekg/dns's StringToRcode: upper case only.
RCODES: Final = {
    "NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4, "REFUSED": 5,
    "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9, "NOTZONE": 10, "BADSIG": 16,
    "BADVERS": 16, "BADKEY": 17, "BADTIME": 18, "BADMODE": 19, "BADNAME": 20, "BADALG": 21,
    "BADTRUNC": 22, "BADCOOKIE": 23,
}  # fmt: skip
FUNCTIONS: Final = {"parseInt": parse_uint}
MATCH_ALL: Final = ".*"


def _fail(item: Directive, message: str) -> CorefileError:
    return CorefileError(item.file, item.line, f"template: {message}")


def _type(directive: Directive, text: str) -> int:
    try:
        rdtype = dns.rdatatype.from_text(text)
    except dns.rdatatype.UnknownRdatatype:
        rdtype = None
    # miekg/dns knows types by their upper-case names only (no TYPE123).
    if rdtype is None or text != text.upper() or text.startswith("TYPE"):
        raise directive.error(f"invalid query type {text!r}", directive.args[1])
    return int(rdtype)


def compile_template(item: Directive, section: str, text: str) -> Template:
    try:
        return Template(section, text, FUNCTIONS)
    except TemplateSyntaxError as err:
        raise _fail(item, f"could not compile template {text!r}: {err}") from None


def parse_rule(directive: Directive, server_zones: Sequence[str]) -> Rule:
    if len(directive.args) < 2:
        raise directive.error("expected CLASS TYPE [ZONE...]")
    class_text, type_text = directive.args[0].text, directive.args[1].text
    if class_text not in CLASSES:
        raise directive.error(f"invalid query class {class_text!r}", directive.args[0])
    qclass = CLASSES[class_text]
    qtype = _type(directive, type_text)
    zones = parse_zones(dataclasses.replace(directive, args=directive.args[2:]), server_zones)
    regexes: list[GoRegex] = []
    sections: dict[str, list[Template]] = {"answer": [], "additional": [], "authority": []}
    rcode = 0
    ederror: tuple[int, str] | None = None
    fallthrough = Fallthrough()
    for item in directive.block_items():
        if item.block is not None:
            raise _fail(item, f"{item.name}: unexpected block")
        args = item.arg_texts()
        match item.name:
            case "match":
                if not args:
                    raise _fail(item, "match: expected at least one regex")
                for regex in args:
                    try:
                        regexes.append(compile_go(regex))
                    except GoRegexError as err:
                        raise _fail(item, f"could not parse regex {regex!r}: {err}") from None
            case "answer" | "additional" | "authority":
                if not args:
                    raise _fail(item, f"{item.name}: expected at least one record")
                for text in args:
                    sections[item.name].append(compile_template(item, item.name, text))
            case "rcode":
                if len(args) != 1:
                    raise _fail(item, "rcode: expected one response code")
                if args[0] not in RCODES:
                    raise _fail(item, f"unknown rcode {args[0]!r}")
                rcode = RCODES[args[0]]
            case "ederror":
                if len(args) not in (1, 2):
                    raise _fail(item, "ederror: expected EXTENDED_ERROR_CODE [EXTRA_REASON]")
                if not args[0].isdigit() or int(args[0]) > 65535:
                    raise _fail(item, f"error parsing extended DNS error code {args[0]!r}")
                ederror = (int(args[0]), args[1] if len(args) == 2 else "")
            case "fallthrough":
                fallthrough = Fallthrough.parse(item)
            case "upstream":
                pass  # CoreDNS ignores it: CNAME targets are always looked up
            case "var" | "expr":
                raise _fail(
                    item,
                    f"{item.name!r} is not supported by clusterdns (it needs CoreDNS's "
                    "expr-lang expressions); use match with named groups instead",
                )
            case _:
                raise _fail(item, f"unknown property {item.name!r}")
    if not regexes:
        regexes.append(compile_go(MATCH_ALL))
    return Rule(
        zones=zones,
        qclass=qclass,
        qtype=qtype,
        regexes=tuple(regexes),
        answer=tuple(sections["answer"]),
        additional=tuple(sections["additional"]),
        authority=tuple(sections["authority"]),
        rcode=rcode,
        ederror=ederror,
        fallthrough=fallthrough,
    )


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    rules = [parse_rule(directive, ctx.zones) for directive in directives]
    metrics = metrics_for(ctx.process.metrics.registry)
    return Templates(rules, metrics, server_label=ctx.server_label, sibling=ctx.plugin)
