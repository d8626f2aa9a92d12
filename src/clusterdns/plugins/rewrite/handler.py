"""rewrite's handler: rewrite the question on the way in, restore it on the way out."""

from __future__ import annotations

import logging

import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdata import Rdata

from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.rewrite.query import decode_options, rebuild_query
from clusterdns.plugins.rewrite.rules import (
    TARGET_FIELDS,
    Mode,
    ResponseRule,
    RewriteState,
    Rule,
    valid_name,
)
from clusterdns.wire import FormError, parse_query

log = logging.getLogger("clusterdns.plugins.rewrite")


class Rewrite(Plugin):
    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules

    async def serve(self, req: Request, next_handler: Handler) -> Reply:
        query = req.query
        edns = query.edns
        state = RewriteState(
            name=req.name,
            qtype=query.qtype,
            qclass=query.qclass,
            options=None if edns is None else decode_options(edns.options),
            client=req.client,
            transport=req.transport,
            server_port=req.block.port,
            had_opt=edns is not None,
        )
        matched = False
        for rule in self.rules:
            if rule.apply(state):
                matched = True
                if rule.mode is Mode.STOP:
                    break
        if not matched:
            return await next_handler(req)

        renamed = state.name != req.name
        question_changed = renamed or state.qtype != query.qtype or state.qclass != query.qclass
        inner = req
        if question_changed or state.options_changed:
            qname_wire = query.qname_wire
            if renamed:
                encoded = valid_name(state.name)
                if encoded is None:
                    log.warning("rewrite: invalid name after rewrite: %s", state.name)
                    return Reply.error(dns.rcode.SERVFAIL, plugin="rewrite")
                qname_wire = encoded
            data = rebuild_query(
                query,
                qname_wire=qname_wire,
                qtype=state.qtype,
                qclass=state.qclass,
                options=state.options if state.options_changed else None,
            )
            try:
                inner = req.replace(parse_query(data))
            except FormError as err:
                log.warning("rewrite: rewritten query rejected: %s", err)
                return Reply.error(dns.rcode.SERVFAIL, plugin="rewrite")

        reply = await next_handler(inner)
        if not reply.written:
            # The server writes error replies from the client's own question.
            return reply
        added_opt = state.options_changed and not state.had_opt
        if not (question_changed or state.response_rules or (added_opt and reply.wire)):
            # Templates and messages are rendered against the client's query, so the
            # question, ID and EDNS it sees are already its own.
            return reply
        message = reply.to_message()
        assert message is not None
        restore(message, req, state.response_rules)
        return Reply.of(message, plugin=reply.plugin)


def restore(message: dns.message.Message, req: Request, rules: list[ResponseRule]) -> None:
    """Put the client's question back and undo the rewrite in the records (our own copy)."""
    query = req.query
    message.question = [
        dns.rrset.RRset(
            dns.name.from_text(query.original_name),
            dns.rdataclass.RdataClass.make(query.qclass),
            dns.rdatatype.RdataType.make(query.qtype),
        )
    ]
    if not rules:
        return
    # Undo the last rewrite first: a chain of continue rules unwinds in reverse.
    rules = rules[::-1]
    message.answer = [_rewrite_rrset(rrset, rules) for rrset in message.answer]
    message.authority = [_rewrite_rrset(rrset, rules) for rrset in message.authority]
    message.additional = [_rewrite_rrset(rrset, rules) for rrset in message.additional]


def _rewrite_rrset(rrset: dns.rrset.RRset, rules: list[ResponseRule]) -> dns.rrset.RRset:
    owner = rrset.name.to_text()
    ttl = rrset.ttl
    for rule in rules:
        changed = rule.owner(owner)
        if changed is not None and valid_name(changed) is not None:
            owner = changed
        new_ttl = rule.ttl(ttl)
        if new_ttl is not None:
            ttl = new_ttl
    rdatas = list(rrset)
    field = TARGET_FIELDS.get(rrset.rdtype)
    if field is not None:
        rdatas = [_rewrite_target(rdata, field, rules) for rdata in rdatas]
    if owner == rrset.name.to_text() and ttl == rrset.ttl and rdatas == list(rrset):
        return rrset
    result = dns.rrset.RRset(dns.name.from_text(owner), rrset.rdclass, rrset.rdtype, rrset.covers)
    for rdata in rdatas:
        result.add(rdata)
    result.ttl = ttl
    return result


def _rewrite_target(rdata: Rdata, field: str, rules: list[ResponseRule]) -> Rdata:
    target = getattr(rdata, field).to_text()
    changed_any = False
    for rule in rules:
        changed = rule.target(target)
        if changed is not None and valid_name(changed) is not None:
            target, changed_any = changed, True
    if not changed_any:
        return rdata
    return rdata.replace(**{field: dns.name.from_text(target)})
