"""Rewrite rules: what each one matches in the request and what it undoes in the reply."""

from __future__ import annotations

import enum
import ipaddress
import re
import struct
from dataclasses import dataclass, field

import dns.name
import dns.rdatatype
import dns.rrset

from clusterdns.plugins.rewrite.query import EdnsOption


class Mode(enum.Enum):
    STOP = "stop"
    CONTINUE = "continue"


class Match(enum.Enum):
    EXACT = "exact"
    PREFIX = "prefix"
    SUFFIX = "suffix"
    SUBSTRING = "substring"
    REGEX = "regex"


@dataclass
class RewriteState:
    """The question (and EDNS options) as rules rewrite it, plus what to undo later."""

    name: str
    qtype: int
    qclass: int
    options: list[EdnsOption] | None
    client: tuple[str, int]
    transport: str
    server_port: int
    had_opt: bool
    options_changed: bool = False
    response_rules: list[ResponseRule] = field(default_factory=list)


def substitute_groups(template: str, match: re.Match[str]) -> str:
    """CoreDNS's ``{N}`` references to regex groups."""
    out = template
    groups = [match.group(0), *match.groups()]
    for index, value in enumerate(groups):
        out = out.replace("{" + str(index) + "}", value or "")
    return out


def fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


# -- response rules ---------------------------------------------------------


class ResponseRule:
    """Edits one record of the reply: its owner name, its target, or its TTL."""

    def owner(self, name: str) -> str | None:
        """The new owner name, or None to leave it."""
        return None

    def target(self, name: str) -> str | None:
        return None

    def ttl(self, ttl: int) -> int | None:
        return None


@dataclass
class ExactNameBack(ResponseRule):
    """Owner names equal to the rewritten name go back to what the client asked."""

    rewritten: str
    original: str

    def owner(self, name: str) -> str | None:
        return self.original if name.lower() == self.rewritten else None


@dataclass
class PrefixBack(ResponseRule):
    prefix: str
    replacement: str

    def owner(self, name: str) -> str | None:
        lower = name.lower()
        if lower.startswith(self.prefix):
            return self.replacement + lower[len(self.prefix) :]
        return None


@dataclass
class SuffixBack(ResponseRule):
    suffix: str
    replacement: str

    def owner(self, name: str) -> str | None:
        lower = name.lower()
        if lower.endswith(self.suffix):
            return lower[: len(lower) - len(self.suffix)] + self.replacement
        return None


@dataclass
class SubstringBack(ResponseRule):
    substring: str
    replacement: str

    def owner(self, name: str) -> str | None:
        lower = name.lower()
        if self.substring in lower:
            return lower.replace(self.substring, self.replacement)
        return None


@dataclass
class RegexResponse(ResponseRule):
    """``answer name FROM TO`` (owner names) or ``answer value FROM TO`` (targets)."""

    pattern: re.Pattern[str]
    replacement: str
    value: bool

    def _apply(self, name: str) -> str | None:
        match = self.pattern.search(name)
        if match is None:
            return None
        return fqdn(substitute_groups(self.replacement, match))

    def owner(self, name: str) -> str | None:
        return None if self.value else self._apply(name)

    def target(self, name: str) -> str | None:
        return self._apply(name) if self.value else None


@dataclass
class TtlResponse(ResponseRule):
    minimum: int | None
    maximum: int | None

    def ttl(self, ttl: int) -> int | None:
        if self.minimum is not None and ttl < self.minimum:
            return self.minimum
        if self.maximum is not None and ttl > self.maximum:
            return self.maximum
        return None


# -- request rules ----------------------------------------------------------


class Rule:
    mode: Mode

    def apply(self, state: RewriteState) -> bool:
        """Rewrite ``state``; True when the rule matched (CoreDNS's RewriteDone)."""
        raise NotImplementedError


@dataclass
class AnswerOption:
    """One ``answer auto|name|value`` option of a name rule."""

    kind: str  # "auto", "name" or "value"
    pattern: re.Pattern[str] | None = None
    replacement: str = ""


@dataclass
class NameRule(Rule):
    mode: Mode
    match: Match
    source: str
    replacement: str
    answers: list[AnswerOption]
    pattern: re.Pattern[str] | None = None

    def rewrite(self, name: str) -> str | None:
        match self.match:
            case Match.EXACT:
                return self.replacement if name == self.source else None
            case Match.PREFIX:
                if name.startswith(self.source):
                    return self.replacement + name[len(self.source) :]
                return None
            case Match.SUFFIX:
                if name.endswith(self.source):
                    return name[: len(name) - len(self.source)] + self.replacement
                return None
            case Match.SUBSTRING:
                if self.source in name:
                    return name.replace(self.source, self.replacement)
                return None
            case Match.REGEX:
                assert self.pattern is not None
                found = self.pattern.search(name)
                if found is None:
                    return None
                return fqdn(substitute_groups(self.replacement, found))
        return None  # pragma: no cover

    def apply(self, state: RewriteState) -> bool:
        before = state.name
        after = self.rewrite(before)
        if after is None:
            return False
        state.name = after
        if self.match is Match.EXACT:
            # CoreDNS always maps the answer of an exact rewrite back.
            state.response_rules.append(ExactNameBack(after.lower(), before))
        for option in self.answers:
            state.response_rules.append(self._response_rule(option, before, after))
        return True

    def _response_rule(self, option: AnswerOption, before: str, after: str) -> ResponseRule:
        if option.kind != "auto":
            assert option.pattern is not None
            return RegexResponse(option.pattern, option.replacement, value=option.kind == "value")
        match self.match:
            case Match.PREFIX:
                return PrefixBack(self.replacement, self.source)
            case Match.SUFFIX:
                return SuffixBack(self.replacement, self.source)
            case Match.SUBSTRING:
                return SubstringBack(self.replacement, self.source)
            case _:
                # exact and regex: best effort, the rewritten name maps back to the asked one.
                return ExactNameBack(after.lower(), before)


@dataclass
class TypeRule(Rule):
    mode: Mode
    source: int
    target: int

    def apply(self, state: RewriteState) -> bool:
        if state.qtype != self.source:
            return False
        state.qtype = self.target
        return True


@dataclass
class ClassRule(Rule):
    mode: Mode
    source: int
    target: int

    def apply(self, state: RewriteState) -> bool:
        if state.qclass != self.source:
            return False
        state.qclass = self.target
        return True


@dataclass
class TtlRule(Rule):
    mode: Mode
    match: Match
    source: str
    minimum: int | None
    maximum: int | None
    pattern: re.Pattern[str] | None = None

    def matches(self, name: str) -> bool:
        match self.match:
            case Match.EXACT:
                return name == self.source
            case Match.PREFIX:
                return name.startswith(self.source)
            case Match.SUFFIX:
                return name.endswith(self.source)
            case Match.SUBSTRING:
                return self.source in name
            case Match.REGEX:
                assert self.pattern is not None
                return self.pattern.search(name) is not None
        return False  # pragma: no cover

    def apply(self, state: RewriteState) -> bool:
        if not self.matches(state.name):
            return False
        state.response_rules.append(TtlResponse(self.minimum, self.maximum))
        return True


class Action(enum.Enum):
    SET = "set"
    APPEND = "append"
    REPLACE = "replace"


OPTION_NSID = 3
OPTION_SUBNET = 8

VARIABLES = (
    "{qname}",
    "{qtype}",
    "{client_ip}",
    "{client_port}",
    "{protocol}",
    "{server_port}",
)


@dataclass
class Edns0Rule(Rule):
    """``edns0 local|nsid|subnet``: a match is an option with the same code."""

    mode: Mode
    action: Action
    code: int
    data: bytes = b""
    variable: str | None = None
    v4_bits: int = 0
    v6_bits: int = 0

    def value(self, state: RewriteState) -> bytes:
        if self.code == OPTION_SUBNET:
            return _subnet(state.client[0], self.v4_bits, self.v6_bits)
        match self.variable:
            case None:
                return self.data
            case "{qname}":
                return state.name.encode()
            case "{qtype}":
                return struct.pack("!H", state.qtype)
            case "{client_ip}":
                return ipaddress.ip_address(state.client[0].split("%")[0]).packed
            case "{client_port}":
                return struct.pack("!H", state.client[1])
            case "{protocol}":
                return state.transport.encode()
            case "{server_port}":
                return struct.pack("!H", state.server_port)
        return b""  # pragma: no cover

    def apply(self, state: RewriteState) -> bool:
        options = state.options if state.options is not None else []
        index = next((i for i, (code, _) in enumerate(options) if code == self.code), None)
        if index is None and self.action is Action.REPLACE:
            return False
        if index is not None and self.action is Action.APPEND:
            return False
        option = (self.code, self.value(state))
        if index is None:
            options.append(option)
        else:
            options[index] = option
        state.options = options
        state.options_changed = True
        return True


def _subnet(client_ip: str, v4_bits: int, v6_bits: int) -> bytes:
    """An RFC 7871 client-subnet option body for the client's address."""
    address = ipaddress.ip_address(client_ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    family, bits = (1, v4_bits) if address.version == 4 else (2, v6_bits)
    network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
    prefix = network.network_address.packed[: (bits + 7) // 8]
    return struct.pack("!HBB", family, bits, 0) + prefix


def valid_name(name: str) -> bytes | None:
    """The wire form of a rewritten name, or None if it is not a legal domain name."""
    try:
        wire = dns.name.from_text(name).to_wire()
    except Exception:  # dnspython raises a family of errors for bad names
        return None
    return wire


# Record types whose rdata holds the name ``answer value`` rewrites, and its field.
TARGET_FIELDS = {
    dns.rdatatype.CNAME: "target",
    dns.rdatatype.DNAME: "target",
    dns.rdatatype.NS: "target",
    dns.rdatatype.SRV: "target",
    dns.rdatatype.MX: "exchange",
    dns.rdatatype.NAPTR: "replacement",
    dns.rdatatype.SOA: "mname",
}
