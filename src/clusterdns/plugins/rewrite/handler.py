"""rewrite's handler: rewrite the question on the way in, restore it on the way out."""

from __future__ import annotations

import logging

import dns.message
import dns.name
import dns.rcode
import dns.rrset

from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Handler, Reply, Request
from clusterdns.plugins.rewrite.query import decode_options, rebuild_query
from clusterdns.plugins.rewrite.rules import (
    TARGET_FIELDS,
    Mode,
    ResponseRule,
    RewriteState,
    Rule,
    rename,
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
        dns.rrset.RRset(dns.name.from_text(query.original_name), query.qclass, query.qtype)
    ]
    if not rules:
        return
    message.answer = [_rewrite_rrset(rrset, rules) for rrset in message.answer]
    message.authority = [_rewrite_rrset(rrset, rules) for rrset in message.authority]
    message.additional = [_rewrite_rrset(rrset, rules) for rrset in message.additional]


def _rewrite_rrset(rrset: dns.rrset.RRset, rules: list[ResponseRule]) -> dns.rrset.RRset:
    owner = rrset.name.to_text()
    new_owner: str | None = None
    ttl: int | None = None
    for rule in rules:
        changed = rule.owner(new_owner or owner)
        if changed is not None:
            new_owner = changed
        new_ttl = rule.ttl(ttl if ttl is not None else rrset.ttl)
        if new_ttl is not None:
            ttl = new_ttl
    result = rrset
    if new_owner is not None and valid_name(new_owner) is not None:
        result = rename(rrset, new_owner)
    if ttl is not None:
        if result is rrset:
            result = rename(rrset, owner)
        result.update_ttl(ttl)
        result.ttl = ttl
    field = TARGET_FIELDS.get(rrset.rdtype)
    if field is not None:
        result = _rewrite_targets(result, field, rules, fresh=result is not rrset)
    return result


def _rewrite_targets(
    rrset: dns.rrset.RRset, field: str, rules: list[ResponseRule], *, fresh: bool
) -> dns.rrset.RRset:
    rdatas = []
    changed_any = False
    for rdata in rrset:
        target = getattr(rdata, field).to_text()
        new_target: str | None = None
        for rule in rules:
            changed = rule.target(new_target or target)
            if changed is not None:
                new_target = changed
        if new_target is not None and valid_name(new_target) is not None:
            rdata = rdata.replace(**{field: dns.name.from_text(new_target)})
            changed_any = True
        rdatas.append(rdata)
    if not changed_any:
        return rrset
    result = rrset if fresh else rename(rrset, rrset.name.to_text())
    result.clear()
    for rdata in rdatas:
        result.add(rdata)
    return result
