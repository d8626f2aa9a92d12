"""template's handler: the first template whose zone, class, type and regex match answers.

As CoreDNS does: a name outside every template's zones, or a class or type no template
takes, goes to the next plugin; a name inside a template's zone that none of its regexes
match is SERVFAIL unless the template has ``fallthrough`` for it (then the next template
is tried, then the next plugin). ``rcode SERVFAIL`` leaves the reply to the server. A
CNAME answered to an A or AAAA question is followed through the server itself.

The fast path (core/fast.py) answers templates whose records depend only on the
question (name, class, type, the regex groups): such a reply is a function of the query
bytes, so the reply memo may keep it for good (the configuration never changes under
it). Behind a *cache* the chain answers instead, so the cache stores the reply and caps
its TTL as in CoreDNS; the cache's fast path then serves the repeats. Templates that read ``.Remote``, ``.Message``, ``.Question`` or ``.Meta``, CNAMEs to
follow, ``rcode SERVFAIL``, ``ederror`` and failures go down the chain, and their replies
are marked client-specific so the cache does not hand one client's answer to another.
Rules are immutable after setup, so receive threads read them without locks.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from clusterdns.core.fallthrough import Fallthrough
from clusterdns.core.fast import INFINITE, SLOW, FastReply, FastResult
from clusterdns.core.metadata import metadata_of
from clusterdns.core.plugin import Plugin, PluginError
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.template.goregex import GoRegex
from clusterdns.plugins.template.gotemplate import GoStruct, Template, TemplateExecError
from clusterdns.plugins.template.metrics import TemplateMetrics
from clusterdns.plugins.template.records import RecordError, parse_rr
from clusterdns.wire import Query, render_message
from clusterdns.wire.render import reply_limit

PLUGIN: Final = "template"
ANY: Final = 255
A: Final = int(dns.rdatatype.A)
AAAA: Final = int(dns.rdatatype.AAAA)
CNAME: Final = int(dns.rdatatype.CNAME)
# Data fields whose value is not a function of the question (name, class, type).
PER_QUERY_FIELDS: Final = frozenset({"Remote", "Message", "Question", "Meta", "*"})
# miekg/dns's class names (dnspython spells CH and HS the same, but not CS).
CLASS_NAMES: Final = {1: "IN", 2: "CS", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
SECTIONS: Final = ("answer", "additional", "authority")


def class_name(qclass: int) -> str:
    return CLASS_NAMES.get(qclass, "")


def type_name(qtype: int) -> str:
    """miekg's TypeToString: "" for a type it has no name for."""
    text = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(qtype))
    return "" if text.startswith("TYPE") else text


@dataclass(frozen=True)
class Rule:
    """One ``template`` directive."""

    zones: tuple[str, ...]
    qclass: int
    qtype: int
    regexes: tuple[GoRegex, ...]
    answer: tuple[Template, ...] = ()
    additional: tuple[Template, ...] = ()
    authority: tuple[Template, ...] = ()
    rcode: int = 0
    ederror: tuple[int, str] | None = None
    fallthrough: Fallthrough = field(default_factory=Fallthrough)

    @functools.cached_property
    def per_query(self) -> bool:
        """Does any record read something other than the question?"""
        return any(
            t.fields_used & PER_QUERY_FIELDS
            for t in (*self.answer, *self.additional, *self.authority)
        )


class Outcome(enum.Enum):
    NEXT = "next"  # no template takes it: the next plugin
    SERVFAIL = "servfail"  # in a template's zone, no regex matched, no fallthrough


@dataclass
class Match:
    rule: Rule
    zone: str
    regex: GoRegex
    matches: list[str]
    groups: dict[str, str]
    class_text: str
    type_text: str


def zone_of(name: str, zones: Sequence[str]) -> str | None:
    """The longest of ``zones`` that ``name`` is in (CoreDNS's plugin.Zones.Matches)."""
    best: str | None = None
    for zone in zones:
        if (zone == "." or name == zone or name.endswith("." + zone)) and (
            best is None or len(zone) > len(best)
        ):
            best = zone
    return best


def decide(rules: Sequence[Rule], name: str, qclass: int, qtype: int) -> Match | Outcome:
    for rule in rules:
        zone = zone_of(name, rule.zones)
        if zone is None:
            continue
        if rule.qclass != ANY and qclass != ANY and qclass != rule.qclass:
            continue
        if rule.qtype != ANY and qtype != ANY and qtype != rule.qtype:
            continue
        for regex in rule.regexes:
            found = regex.submatch(name)
            if found is None:
                continue
            class_text = class_name(qclass if qclass != ANY else rule.qclass)
            type_text = type_name(qtype if qtype != ANY else rule.qtype)
            return Match(rule, zone, regex, found[0], found[1], class_text, type_text)
        if not rule.fallthrough.through(name):
            return Outcome.SERVFAIL
    return Outcome.NEXT


class RenderError(Exception):
    def __init__(self, section: str, template: Template, message: str, *, rr: bool) -> None:
        super().__init__(message)
        self.section = section
        self.template = template
        self.rr = rr


def template_data(
    match: Match,
    name: str,
    *,
    remote: str = "",
    message: GoStruct | None = None,
    question: GoStruct | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> GoStruct:
    def meta(key: Any) -> str:
        value = (metadata or {}).get(str(key), "")
        return str(value() if callable(value) else value)

    return GoStruct(
        "*template.templateData",
        {
            "Zone": match.zone,
            "Name": name,
            "Regex": match.regex.source,
            "Match": match.matches,
            "Group": match.groups,
            "Class": match.class_text,
            "Type": match.type_text,
            "Message": message,
            "Question": question,
            "Remote": remote,
            "Var": {},
        },
        methods={"Meta": meta},
    )


def render_sections(
    rule: Rule, data: GoStruct
) -> tuple[list[dns.rrset.RRset], list[dns.rrset.RRset], list[dns.rrset.RRset]]:
    """The answer, additional and authority records, or RenderError."""
    out: list[list[dns.rrset.RRset]] = []
    for section, templates in zip(
        SECTIONS, (rule.answer, rule.additional, rule.authority), strict=True
    ):
        records = []
        for template in templates:
            try:
                text = template.execute(data)
            except TemplateExecError as err:
                raise RenderError(section, template, str(err), rr=False) from None
            try:
                records.append(parse_rr(text))
            except RecordError as err:
                raise RenderError(section, template, str(err), rr=True) from None
        out.append(records)
    return out[0], out[1], out[2]


def question_struct(query: Query) -> GoStruct:
    name = query.original_name
    qclass, qtype = class_name(query.qclass), type_name(query.qtype)
    text = f";{name}\t{qclass or f'CLASS{query.qclass}'}\t {qtype or f'TYPE{query.qtype}'}"
    return GoStruct(
        "*dns.Question", {"Name": name, "Qtype": query.qtype, "Qclass": query.qclass}, text
    )


def message_struct(query: Query, question: GoStruct) -> GoStruct:
    flags = query.flags
    names = [("qr", 0x8000), ("aa", 0x0400), ("tc", 0x0200), ("rd", 0x0100), ("ra", 0x0080)]
    names += [("ad", 0x0020), ("cd", 0x0010)]
    shown = " ".join(text for text, bit in names if flags & bit)
    opcode = dns.opcode.to_text(dns.opcode.Opcode.make(query.opcode))
    rcode = dns.rcode.to_text(dns.rcode.Rcode.make(flags & 0xF))
    text = (
        f";; opcode: {opcode}, status: {rcode}, id: {query.id}\n"
        f";; flags: {shown}; QUERY: 1, ANSWER: 0, AUTHORITY: 0, ADDITIONAL: {query.arcount}\n\n"
        f";; QUESTION SECTION:\n{question.text}\n"
    )
    fields = {
        "Id": query.id,
        "Response": bool(flags & 0x8000),
        "Opcode": query.opcode,
        "Authoritative": bool(flags & 0x0400),
        "Truncated": bool(flags & 0x0200),
        "RecursionDesired": bool(flags & 0x0100),
        "RecursionAvailable": bool(flags & 0x0080),
        "Zero": bool(flags & 0x0040),
        "AuthenticatedData": bool(flags & 0x0020),
        "CheckingDisabled": bool(flags & 0x0010),
        "Rcode": flags & 0xF,
        "Question": [question],
        "Answer": [],
        "Ns": [],
        "Extra": [],
    }
    return GoStruct("*dns.Msg", fields, text)


def build_reply(
    query: Query,
    rule: Rule,
    answer: list[dns.rrset.RRset],
    additional: list[dns.rrset.RRset],
    authority: list[dns.rrset.RRset],
    *,
    limit: int,
    payload: int,
    truncated: bool = False,
) -> bytes:
    message = dns.message.Message(id=query.id)
    message.flags = dns.flags.QR | dns.flags.AA | (query.flags & 0x7800)
    if truncated:
        message.flags |= dns.flags.TC
    message.set_rcode(dns.rcode.Rcode.make(rule.rcode))
    owner = dns.name.from_text(query.original_name)
    message.question = [
        dns.rrset.RRset(
            owner,
            dns.rdataclass.RdataClass.make(query.qclass),
            dns.rdatatype.RdataType.make(query.qtype),
        )
    ]
    message.answer = answer
    message.authority = authority
    message.additional = additional
    if rule.ederror is not None:
        wire = _with_ede(message, query, rule.ederror, limit=limit, payload=payload)
        if wire is not None:
            return wire
    return render_message(message, query, limit=limit, payload=payload)


def _with_ede(
    message: dns.message.Message, query: Query, ede: tuple[int, str], *, limit: int, payload: int
) -> bytes | None:
    """The reply with an Extended DNS Error option (RFC 8914), as CoreDNS adds one whether
    or not the query had EDNS; None when it does not fit (the reply goes without it)."""
    code, text = ede
    message.flags |= query.flags & (dns.flags.RD | dns.flags.CD)
    do = query.edns is not None and query.edns.do
    options: list[dns.edns.Option] = [dns.edns.EDEOption(dns.edns.EDECode.make(code), text or None)]
    message.use_edns(0, dns.flags.DO if do else 0, payload=payload, options=options)
    message.set_rcode(dns.rcode.Rcode.make(message.rcode()))
    try:
        return message.to_wire(max_size=limit)
    except dns.exception.TooBig:
        return None


class Templates(Plugin):
    name = PLUGIN

    def __init__(
        self,
        rules: Sequence[Rule],
        metrics: TemplateMetrics,
        *,
        server_label: str,
        sibling: Callable[[str], Plugin | None] | None = None,
    ) -> None:
        self.rules = tuple(rules)
        self.metrics = metrics
        self.server_label = server_label
        # Another plugin of the block by name (known once every plugin is set up).
        self._sibling = sibling
        self._behind_cache: bool | None = None
        self.zones = tuple(dict.fromkeys(z for rule in rules for z in rule.zones))
        self._children: dict[tuple[str, str, str], Any] = {}

    # -- metrics ----------------------------------------------------------------------------

    def _matches_child(self, match: Match) -> Any:
        key = (match.zone, match.class_text, match.type_text)
        child = self._children.get(key)
        if child is None:
            child = self.metrics.matches.labels(
                self.server_label, match.zone, "", match.class_text, match.type_text
            )
            self._children[key] = child
        return child

    def _count_failure(self, match: Match, err: RenderError) -> None:
        counter = self.metrics.rr_failures if err.rr else self.metrics.template_failures
        counter.labels(
            self.server_label, match.zone, "", match.class_text, match.type_text,
            err.section, err.template.text,
        ).inc()  # fmt: skip

    # -- the fast path ----------------------------------------------------------------------

    def answer_fast(self, query: Query, limit: int, payload: int) -> FastResult:
        name = query.name
        if zone_of(name, self.zones) is None:
            return None
        decision = decide(self.rules, name, query.qclass, query.qtype)
        if decision is Outcome.NEXT:
            return None
        if not isinstance(decision, Match) or self._cached():
            return SLOW
        rule = decision.rule
        if rule.per_query or rule.rcode == dns.rcode.SERVFAIL or rule.ederror is not None:
            return SLOW
        try:
            answer, additional, authority = render_sections(rule, template_data(decision, name))
        except RenderError:
            return SLOW  # the chain answers it again, counts and logs the failure
        if query.qtype in (A, AAAA) and any(rr.rdtype == CNAME for rr in answer):
            return SLOW  # the target is looked up through the server
        wire = build_reply(query, rule, answer, additional, authority, limit=limit, payload=payload)
        child = self._matches_child(decision)
        child.inc()

        def count(hits: int, _seconds_each: float) -> None:
            child.inc(hits)

        sink: tuple[Any, Callable[[int, float], None]] = ((PLUGIN, id(child)), count)
        return FastReply(wire, until=INFINITE, depends=frozenset(), sinks=(sink,))

    def _cached(self) -> bool:
        """Is there a *cache* in front? Then the chain answers, so that the cache keeps the
        reply and caps its TTL as CoreDNS's does; the cache's own fast path serves repeats."""
        if self._behind_cache is None:
            self._behind_cache = self._sibling is not None and self._sibling("cache") is not None
        return self._behind_cache

    # -- the chain --------------------------------------------------------------------------

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        query = req.query
        name = req.name
        if zone_of(name, self.zones) is None:
            return await next_handler(req)
        decision = decide(self.rules, name, query.qclass, query.qtype)
        if decision is Outcome.NEXT:
            return await next_handler(req)
        if not isinstance(decision, Match):
            return Reply.error(dns.rcode.SERVFAIL, plugin=PLUGIN)
        rule = decision.rule
        self._matches_child(decision).inc()
        if rule.rcode == dns.rcode.SERVFAIL:
            return Reply.error(dns.rcode.SERVFAIL, plugin=PLUGIN)
        if rule.per_query:
            req.meta["client_specific"] = True
            question = question_struct(query)
            data = template_data(
                decision,
                name,
                remote=req.client[0],
                message=message_struct(query, question),
                question=question,
                metadata=metadata_of(req),
            )
        else:
            data = template_data(decision, name)
        try:
            answer, additional, authority = render_sections(rule, data)
        except RenderError as err:
            self._count_failure(decision, err)
            # As CoreDNS returns it: SERVFAIL, and the errors plugin (if any) logs it.
            raise PluginError(PLUGIN, f"{err.section} {err.template.text!r}: {err}") from None
        truncated = False
        if query.qtype in (A, AAAA):
            answer, truncated = await self._follow_cnames(req, answer)
        limit = reply_limit(
            query, tcp=req.transport == "tcp", max_udp=req.block.settings.max_udp_size
        )
        wire = build_reply(
            query, rule, answer, additional, authority,
            limit=limit, payload=req.block.settings.max_udp_size, truncated=truncated,
        )  # fmt: skip
        return Reply.of_wire(wire, plugin=PLUGIN)

    @staticmethod
    async def _follow_cnames(
        req: Request, answer: list[dns.rrset.RRset]
    ) -> tuple[list[dns.rrset.RRset], bool]:
        """Each CNAME followed by what the server answers for its target (CoreDNS's
        upstream lookup), the TC bit of the last lookup kept."""
        out: list[dns.rrset.RRset] = []
        truncated = False
        for rrset in answer:
            out.append(rrset)
            if rrset.rdtype != CNAME:
                continue
            target = rrset[0].target.to_text()
            reply = await req.lookup(target, req.qtype)
            message = reply.to_message() if reply is not None else None
            if message is None:
                continue
            truncated = bool(message.flags & dns.flags.TC)
            out.extend(message.answer)
        return out, truncated
