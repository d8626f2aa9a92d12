"""``clusterdns lookup``: resolve a name the way a pod's stub resolver does, and show the cost.

glibc's rules (resolv/res_query.c, res_nsearch): a name with a trailing dot is asked as it
is and nothing else; a name with at least ``ndots`` dots is asked as it is first, then with
each search domain; a name with fewer dots is asked with each search domain first, then as
it is. The search goes on after NXDOMAIN, NODATA (the name exists, not with that type)
and SERVFAIL, and stops at the first answer or any other outcome. Without ``-t`` both A
and AAAA are asked for each candidate, as getaddrinfo() does, and a candidate that
answers either ends the search. Queries go over UDP, and again over TCP when truncated.

Every query is printed with its rcode and time; then the answer, then what the search list
cost. ``--explain`` asks the server's ``introspect`` endpoint which plugin answered each
question and by which rule.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from clusterdns.tools.command import ToolError, add_command, command
from clusterdns.tools.records import get_json

EXAMPLE = """\
examples:
  clusterdns lookup mysql-service --server 127.0.0.1:1053
  clusterdns lookup queue.shared --namespace default --server 127.0.0.1:1053 --explain
  clusterdns lookup api.example.com --ndots 5 --server 127.0.0.1:1053
  clusterdns lookup _http._tcp.demoapp-svc -t SRV --resolv-conf pod-resolv.conf --json
"""
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_NDOTS = 5
DEFAULT_SERVER = "127.0.0.1:53"
DEFAULT_INTROSPECT = "127.0.0.1:8182"
# Outcomes after which the stub resolver goes on to the next candidate name.
NXDOMAIN = "NXDOMAIN"
NODATA = "NODATA"
SERVFAIL = "SERVFAIL"
GO_ON = (NXDOMAIN, NODATA, SERVFAIL)


@dataclass
class Sent:
    """One query the lookup sent and what came back."""

    name: str
    qtype: str
    outcome: str  # an rcode's text, NODATA for NOERROR without an answer, or "timeout"
    ms: float
    tcp: bool = False
    answer: list[str] = field(default_factory=list)
    explain: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.qtype,
            "outcome": self.outcome,
            "ms": round(self.ms, 3),
            "tcp": self.tcp,
            "answer": self.answer,
        }
        if self.explain is not None:
            out["explain"] = self.explain
        return out


@dataclass
class Resolver:
    """A stub resolver's settings: what /etc/resolv.conf says."""

    search: list[str]
    ndots: int
    server: tuple[str, int]
    timeout: float = 5.0


def candidates(name: str, search: list[str], ndots: int) -> list[str]:
    """The absolute names glibc asks for ``name``, in order."""
    if name.endswith("."):
        return [name]
    dots = name.count(".")
    as_is = name + "."
    searched = [f"{name}.{domain.strip('.')}." for domain in search if domain.strip(".")]
    if dots >= ndots:
        return [as_is] + [n for n in searched if n != as_is]
    return [n for n in searched if n != as_is] + [as_is]


def parse_resolv_conf(text: str) -> tuple[list[str], int | None, list[str]]:
    """(search domains, ndots or None, nameservers) of resolv.conf text; the last
    ``search``/``domain`` line wins, as in glibc."""
    search: list[str] = []
    ndots: int | None = None
    servers: list[str] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        word, *rest = line.split()
        if word == "search":
            search = rest
        elif word == "domain" and rest:
            search = rest[:1]
        elif word == "nameserver" and rest:
            servers.append(rest[0])
        elif word == "options":
            for option in rest:
                if option.startswith("ndots:"):
                    try:
                        ndots = min(int(option[6:]), 15)  # glibc caps it at 15
                    except ValueError:
                        pass
    return search, ndots, servers


def split_server(text: str, default_port: int = 53) -> tuple[str, int]:
    """``HOST[:PORT]``, ``[v6]:PORT`` or a bare IPv6 address."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, default_port


def ask(resolver: Resolver, name: str, qtype: str) -> Sent:
    """One query as a stub resolver sends it (RD, no EDNS), over TCP again if truncated."""
    query = dns.message.make_query(name, qtype)
    host, port = resolver.server
    started = time.perf_counter()
    tcp = False
    try:
        reply = dns.query.udp(query, host, port=port, timeout=resolver.timeout)
        if reply.flags & dns.flags.TC:
            tcp = True
            reply = dns.query.tcp(query, host, port=port, timeout=resolver.timeout)
    except dns.exception.Timeout:
        return Sent(name, qtype, "timeout", (time.perf_counter() - started) * 1000, tcp)
    except (OSError, dns.exception.DNSException) as err:
        raise ToolError(f"query to {host}:{port} failed: {err}") from None
    ms = (time.perf_counter() - started) * 1000
    rcode = reply.rcode()
    answer = [line for rrset in reply.answer for line in rrset.to_text().splitlines()]
    wanted = dns.rdatatype.from_text(qtype)
    has_type = any(rrset.rdtype == wanted for rrset in reply.answer)
    # NOERROR without the type asked is NODATA (a CNAME alone is no answer for a stub).
    no_data = rcode == dns.rcode.NOERROR and not has_type
    outcome = NODATA if no_data else dns.rcode.to_text(rcode)
    return Sent(name, qtype, outcome, ms, tcp, answer)


@dataclass
class Lookup:
    """The whole search: every query sent, and which candidate answered."""

    name: str
    types: list[str]
    resolver: Resolver
    tried: list[str]
    sent: list[Sent]
    answered_by: str | None  # the candidate name that answered, None if none did

    def wasted(self) -> list[Sent]:
        """Queries for candidates before the one that answered (all of them if none did)."""
        return [s for s in self.sent if s.name != self.answered_by]

    def cost(self) -> str:
        """What the search list cost, in one sentence."""
        wasted = self.wasted()
        name, ndots = self.name, self.resolver.ndots
        if self.answered_by is None:
            return f"`{name}` was not found: {_count(self.sent)} sent, none answered"
        if not wasted:
            return f"`{name}` cost no query before the real one"
        before = _count(wasted)
        dots = name.count(".")
        advice = f"write it as `{self.answered_by}`"
        if self.answered_by == name + "." and dots < ndots:
            advice += f" or lower ndots to {max(dots, 1)}"
        return f"`{name}` with ndots:{ndots} cost {before} before the real one; {advice}"

    def to_json(self) -> dict[str, Any]:
        host, port = self.resolver.server
        return {
            "name": self.name,
            "types": self.types,
            "server": f"{host}:{port}",
            "ndots": self.resolver.ndots,
            "search": self.resolver.search,
            "tried": self.tried,
            "queries": [s.to_json() for s in self.sent],
            "answered_by": self.answered_by,
            "answer": [line for s in self.sent if s.name == self.answered_by for line in s.answer],
            "wasted": len(self.wasted()) if self.answered_by else len(self.sent),
            "cost": self.cost(),
        }


def _count(sent: list[Sent]) -> str:
    """``6 NXDOMAIN queries (3 A, 3 AAAA)``, ``2 NXDOMAIN and 1 NODATA queries``."""
    by_outcome: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for s in sent:
        by_outcome[s.outcome] = by_outcome.get(s.outcome, 0) + 1
        by_type[s.qtype] = by_type.get(s.qtype, 0) + 1
    parts = [f"{n} {outcome}" for outcome, n in by_outcome.items()]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    noun = "query" if len(sent) == 1 else "queries"
    text = f"{text} {noun}"
    if len(by_type) > 1:
        text += " (" + ", ".join(f"{n} {t}" for t, n in by_type.items()) + ")"
    return text


def resolve(name: str, types: list[str], resolver: Resolver) -> Lookup:
    """Search as glibc does; every candidate gets each of ``types`` asked."""
    tried = candidates(name, resolver.search, resolver.ndots)
    sent: list[Sent] = []
    answered_by: str | None = None
    for candidate in tried:
        results = [ask(resolver, candidate, qtype) for qtype in types]
        sent += results
        if any(r.outcome == "NOERROR" for r in results):
            answered_by = candidate
            break
        if not all(r.outcome in GO_ON for r in results):
            break  # REFUSED, a timeout...: glibc gives up on the whole search
    return Lookup(name, types, resolver, tried, sent, answered_by)


def explain_all(lookup: Lookup, introspect: str) -> None:
    """Ask the server's introspect endpoint about every question sent."""
    for s in lookup.sent:
        query = urllib.parse.urlencode({"name": s.name, "type": s.qtype})
        s.explain = get_json(f"http://{introspect}/explain?{query}")


def _explain_text(data: dict[str, Any]) -> str:
    steps = []
    for step in data.get("why", []):
        text = f"{step['plugin']}: {step['rule']}" if step.get("plugin") else step["rule"]
        if "ttl_left" in step:
            text += f" ({step['ttl_left']}s left)"
        if step.get("detail"):
            text += f" - {step['detail']}"
        steps.append(text)
    memo = data.get("memo", {})
    if memo.get("copies"):
        copies = "1 copy" if memo["copies"] == 1 else f"{memo['copies']} copies"
        steps.append(f"memoised ({copies}, {memo.get('kept', '')})")
    return "; ".join(steps)


def print_text(lookup: Lookup) -> None:
    host, port = lookup.resolver.server
    search = " ".join(lookup.resolver.search) or "(none)"
    print(f"server {host}:{port}  search {search}  ndots:{lookup.resolver.ndots}")
    width = max(len(s.name) for s in lookup.sent) if lookup.sent else 0
    for s in lookup.sent:
        via = " tcp" if s.tcp else ""
        count = f"{len(s.answer)} answer{'s' if len(s.answer) != 1 else ''}" if s.answer else ""
        line = f"  {s.qtype:<5} {s.name:<{width}}  {s.outcome:<8} {s.ms:7.2f} ms{via}  {count}"
        print(line.rstrip())
        if s.explain is not None:
            print(f"        why: {_explain_text(s.explain)}")
    print()
    if lookup.answered_by is not None:
        for s in lookup.sent:
            if s.name == lookup.answered_by:
                for line in s.answer:
                    print(line)
        print()
    print(lookup.cost())


def default_search(namespace: str, cluster_domain: str) -> list[str]:
    """The search list kubelet writes for a ClusterFirst pod in ``namespace``."""
    domain = cluster_domain.strip(".")
    return [f"{namespace}.svc.{domain}", f"svc.{domain}", domain]


def add_parser(sub: Any) -> None:
    parser = add_command(
        sub, "lookup",
        help="resolve a name as a pod's stub resolver does, and show what the search cost",
        description=__doc__ or "", example=EXAMPLE, run=run,
    )  # fmt: skip
    parser.add_argument("name", help="the name as a program in the pod would write it")
    parser.add_argument(
        "-t", "--type", dest="qtype", metavar="TYPE",
        help="the record type (default: A and AAAA, as getaddrinfo asks)",
    )  # fmt: skip
    parser.add_argument(
        "--namespace", default="default",
        help="the pod's namespace, for the default search list (default: default)",
    )  # fmt: skip
    parser.add_argument(
        "--cluster-domain", default=DEFAULT_CLUSTER_DOMAIN,
        help=f"for the default search list (default: {DEFAULT_CLUSTER_DOMAIN})",
    )  # fmt: skip
    parser.add_argument(
        "--search", nargs="*", metavar="DOMAIN",
        help="the search list (default: <ns>.svc.<domain> svc.<domain> <domain>)",
    )  # fmt: skip
    parser.add_argument("--ndots", type=int, help=f"options ndots (default {DEFAULT_NDOTS})")
    parser.add_argument(
        "--resolv-conf", metavar="FILE",
        help="take search, ndots and the first nameserver from this resolv.conf",
    )  # fmt: skip
    parser.add_argument(
        "--server", metavar="HOST:PORT",
        help=f"the DNS server (default: the resolv.conf's nameserver, else {DEFAULT_SERVER})",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per query")
    parser.add_argument(
        "--explain", action="store_true",
        help="ask the server's introspect endpoint which rule answered each question",
    )  # fmt: skip
    parser.add_argument(
        "--introspect", metavar="HTTP_ADDR", default=DEFAULT_INTROSPECT,
        help=f"the server's introspect endpoint (default {DEFAULT_INTROSPECT})",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def build_resolver(args: argparse.Namespace) -> Resolver:
    search = default_search(args.namespace, args.cluster_domain)
    ndots = DEFAULT_NDOTS
    server = DEFAULT_SERVER
    if args.resolv_conf:
        try:
            text = open(args.resolv_conf, encoding="utf-8").read()  # noqa: SIM115
        except OSError as err:
            raise ToolError(f"{args.resolv_conf}: {err}") from None
        file_search, file_ndots, servers = parse_resolv_conf(text)
        search = file_search
        ndots = 1 if file_ndots is None else file_ndots  # glibc's default is 1
        if servers:
            server = servers[0]
    if args.search is not None:
        search = args.search
    if args.ndots is not None:
        ndots = args.ndots
    if args.server:
        server = args.server
    try:
        address = split_server(server)
    except ValueError:
        raise ToolError(f"bad server address {server!r} (expected HOST:PORT)") from None
    return Resolver(search=search, ndots=ndots, server=address, timeout=args.timeout)


@command("lookup")
def run(args: argparse.Namespace) -> int:
    resolver = build_resolver(args)
    types = [args.qtype.upper()] if args.qtype else ["A", "AAAA"]
    for qtype in types:
        try:
            dns.rdatatype.from_text(qtype)
        except dns.rdatatype.UnknownRdatatype:
            raise ToolError(f"unknown record type {qtype!r}") from None
    try:
        dns.name.from_text(args.name)
    except dns.exception.DNSException as err:
        raise ToolError(f"not a domain name: {args.name!r} ({err})") from None
    lookup = resolve(args.name, types, resolver)
    if args.explain:
        explain_all(lookup, args.introspect)
    if args.json:
        print(json.dumps(lookup.to_json(), indent=2))
    else:
        print_text(lookup)
    return 0 if lookup.answered_by is not None else 2
