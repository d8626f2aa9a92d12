"""Parse ``rewrite`` directives into rules, in the order the Corefile lists them."""

from __future__ import annotations

import re
from collections.abc import Sequence

import dns.rdataclass
import dns.rdatatype

from clusterdns.corefile import CorefileError, Directive, Token
from clusterdns.plugins.rewrite.rules import (
    OPTION_NSID,
    OPTION_SUBNET,
    VARIABLES,
    Action,
    AnswerOption,
    ClassRule,
    Edns0Rule,
    Match,
    Mode,
    NameRule,
    Rule,
    TtlRule,
    TypeRule,
    fqdn,
    valid_name,
)

MAX_TTL = 2**31 - 1
_GROUP_REF = re.compile(r"\{(\d+)\}")


class _Args:
    """The words of one rule with the tokens they came from, for file:line errors."""

    def __init__(self, directive: Directive) -> None:
        self.directive = directive
        self.tokens: list[Token] = list(directive.args)
        if len(self.tokens) < 2 and directive.block is not None:
            # Block form: every line of the block continues the same rule (CoreDNS).
            for item in directive.block:
                self.tokens.append(Token(item.name, item.file, item.line))
                self.tokens.extend(item.args)
        elif directive.block is not None:
            raise directive.error("unexpected block after a complete rule")

    def error(self, message: str, index: int | None = None) -> CorefileError:
        token = None
        if index is not None and self.tokens:
            token = self.tokens[min(index, len(self.tokens) - 1)]
        return self.directive.error(message, token)

    def text(self, index: int) -> str:
        return self.tokens[index].text

    def __len__(self) -> int:
        return len(self.tokens)


def parse_rules(directives: Sequence[Directive]) -> list[Rule]:
    return [parse_rule(directive) for directive in directives]


def parse_rule(directive: Directive) -> Rule:
    args = _Args(directive)
    if not len(args):
        raise args.error("no rule type specified (expected name, type, class, ttl or edns0)")
    mode = Mode.STOP
    start = 0
    first = args.text(0).lower()
    if first in ("stop", "continue"):
        mode = Mode(first)
        start = 1
        if len(args) < 2:
            raise args.error("no rule type specified after the mode", 0)
    kind = args.text(start).lower()
    rest = list(range(start + 1, len(args)))
    match kind:
        case "name":
            return _name_rule(args, mode, rest)
        case "type" | "class":
            if len(rest) != 2:
                raise args.error(f"{kind} rules must have exactly two arguments", start)
            convert = dns.rdatatype.from_text if kind == "type" else dns.rdataclass.from_text
            values: list[int] = []
            for index in rest:
                try:
                    values.append(int(convert(args.text(index).upper())))
                except Exception:
                    raise args.error(f"invalid {kind} {args.text(index)!r}", index) from None
            if kind == "type":
                return TypeRule(mode, values[0], values[1])
            return ClassRule(mode, values[0], values[1])
        case "ttl":
            return _ttl_rule(args, mode, rest)
        case "edns0":
            return _edns0_rule(args, mode, rest)
        case "answer":
            raise args.error("response rewrites must begin with a name rule", start)
        case _:
            raise args.error(
                f"invalid rule type {args.text(start)!r} (expected name, type, class, ttl or edns0)",
                start,
            )


def _match_type(args: _Args, index: int) -> Match:
    text = args.text(index).lower()
    try:
        return Match(text)
    except ValueError:
        raise args.error(
            f"unknown match type {args.text(index)!r} (expected exact, prefix, suffix, substring or regex)",
            index,
        ) from None


def _compile(args: _Args, index: int, replacement: str | None) -> re.Pattern[str]:
    try:
        pattern = re.compile(args.text(index))
    except re.error as err:
        raise args.error(f"invalid regex {args.text(index)!r}: {err}", index) from None
    if replacement is not None:
        used = [int(n) for n in _GROUP_REF.findall(replacement)]
        if used and max(used) > pattern.groups:
            raise args.error(
                f"the replacement {replacement!r} uses more groups than {args.text(index)!r} has",
                index + 1,
            )
    return pattern


def _normalise(match: Match, text: str) -> str:
    text = text.lower()
    if match in (Match.EXACT, Match.SUFFIX):
        return fqdn(text)
    return text


def _name_rule(args: _Args, mode: Mode, rest: list[int]) -> NameRule:
    if len(rest) < 2:
        raise args.error("too few arguments for a name rule (expected [TYPE] FROM TO)")
    if len(rest) == 2:
        match, source_at, target_at, options_at = Match.EXACT, rest[0], rest[1], []
    else:
        match = _match_type(args, rest[0])
        source_at, target_at, options_at = rest[1], rest[2], rest[3:]
    source, target = args.text(source_at), args.text(target_at)
    pattern = None
    if match is Match.REGEX:
        pattern = _compile(args, source_at, target)
    else:
        source, target = _normalise(match, source), _normalise(match, target)
        if match is Match.EXACT and valid_name(target) is None:
            raise args.error(f"invalid name {args.text(target_at)!r}", target_at)
    answers = _answer_options(args, options_at)
    return NameRule(mode, match, source, target, answers, pattern)


def _answer_options(args: _Args, indexes: list[int]) -> list[AnswerOption]:
    """``answer (auto | name FROM TO | value FROM TO)``, repeatable, later ``answer`` optional."""
    options: list[AnswerOption] = []
    pos = 0
    while pos < len(indexes):
        index = indexes[pos]
        word = args.text(index).lower()
        if word == "answer":
            pos += 1
            if pos >= len(indexes):
                raise args.error("'answer' needs auto, name FROM TO or value FROM TO", index)
            index = indexes[pos]
            word = args.text(index).lower()
        elif not options:
            raise args.error(f"unexpected {args.text(index)!r}: options start with 'answer'", index)
        if word == "auto":
            options.append(AnswerOption("auto"))
            pos += 1
            continue
        if word not in ("name", "value"):
            raise args.error(
                f"unknown answer option {args.text(index)!r} (expected auto, name or value)", index
            )
        if pos + 2 >= len(indexes):
            raise args.error(f"'answer {word}' needs FROM and TO", index)
        replacement = args.text(indexes[pos + 2])
        pattern = _compile(args, indexes[pos + 1], replacement)
        options.append(AnswerOption(word, pattern, replacement))
        pos += 3
    return options


def _parse_ttl(args: _Args, index: int) -> tuple[int | None, int | None]:
    text = args.text(index)

    def number(part: str) -> int:
        if not part.isdigit() or int(part) > MAX_TTL:
            raise args.error(f"invalid TTL {text!r} (expected SECONDS or MIN-MAX)", index)
        return int(part)

    if "-" not in text:
        value = number(text)
        return value, value
    low_text, _, high_text = text.partition("-")
    if not low_text and not high_text:
        raise args.error(f"invalid TTL range {text!r}", index)
    low = number(low_text) if low_text else None
    high = number(high_text) if high_text else None
    if low is not None and high is not None and low > high:
        raise args.error(f"invalid TTL range {text!r}: minimum above maximum", index)
    return low, high


def _ttl_rule(args: _Args, mode: Mode, rest: list[int]) -> TtlRule:
    if len(rest) == 2:
        match, name_at, ttl_at = Match.EXACT, rest[0], rest[1]
    elif len(rest) == 3:
        match, name_at, ttl_at = _match_type(args, rest[0]), rest[1], rest[2]
    else:
        raise args.error("a ttl rule takes [TYPE] NAME TTL|MIN-MAX")
    low, high = _parse_ttl(args, ttl_at)
    pattern = _compile(args, name_at, None) if match is Match.REGEX else None
    source = args.text(name_at) if match is Match.REGEX else _normalise(match, args.text(name_at))
    return TtlRule(mode, match, source, low, high, pattern)


def _edns0_rule(args: _Args, mode: Mode, rest: list[int]) -> Edns0Rule:
    if len(rest) < 2:
        raise args.error("an edns0 rule takes local|nsid|subnet set|append|replace ...")
    option = args.text(rest[0]).lower()
    try:
        action = Action(args.text(rest[1]).lower())
    except ValueError:
        raise args.error(
            f"unknown edns0 action {args.text(rest[1])!r} (expected set, append or replace)",
            rest[1],
        ) from None
    values = rest[2:]
    match option:
        case "local":
            if len(values) != 2:
                raise args.error("edns0 local takes CODE DATA", rest[0])
            code_text, data_text = args.text(values[0]), args.text(values[1])
            try:
                code = int(code_text, 0)
            except ValueError:
                code = -1
            if not 0 <= code <= 0xFFFF:
                raise args.error(f"invalid edns0 local code {code_text!r}", values[0])
            if data_text.startswith("{") and data_text.endswith("}"):
                if data_text not in VARIABLES:
                    raise args.error(
                        f"unsupported variable {data_text!r} (supported: {', '.join(VARIABLES)})",
                        values[1],
                    )
                return Edns0Rule(mode, action, code, variable=data_text)
            if data_text.lower().startswith("0x"):
                try:
                    data = bytes.fromhex(data_text[2:])
                except ValueError:
                    raise args.error(f"invalid hex data {data_text!r}", values[1]) from None
            else:
                data = data_text.encode()
            return Edns0Rule(mode, action, code, data=data)
        case "nsid":
            if values:
                raise args.error("edns0 nsid takes no data", values[0])
            return Edns0Rule(mode, action, OPTION_NSID)
        case "subnet":
            if len(values) != 2:
                raise args.error("edns0 subnet takes V4BITS V6BITS", rest[0])
            bits: list[int] = []
            for index, limit in zip(values, (32, 128), strict=True):
                text = args.text(index)
                if not text.isdigit() or int(text) > limit:
                    raise args.error(f"invalid prefix length {text!r} (0..{limit})", index)
                bits.append(int(text))
            return Edns0Rule(mode, action, OPTION_SUBNET, v4_bits=bits[0], v6_bits=bits[1])
        case _:
            raise args.error(
                f"unsupported edns0 option {args.text(rest[0])!r} (expected local, nsid or subnet)",
                rest[0],
            )
