"""template against a real server: CoreDNS's README examples, the OpenShift on-premises and AKS
Corefiles, CNAME targets followed through the server, client-specific answers, metrics.

``forward . 8.8.8.8`` in the examples is pointed at a loopback responder that answers every
A question with 192.0.2.1 (and NODATA otherwise), so "the next plugin answered" is visible.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import dns.asyncquery
import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from clusterdns.core.fast import SLOW, FastReply
from clusterdns.wire import parse_query
from tests.helpers.dnsclient import query
from tests.helpers.kubeapi import namespace, service
from tests.helpers.responder import Responder
from tests.helpers.server import running_server

FORWARDED = "192.0.2.1"  # what the responder answers for any A question


@dataclass(frozen=True)
class Case:
    """One question and the reply expected, records as "owner ttl TYPE data" (sorted)."""

    qname: str
    qtype: str
    rcode: str
    answer: tuple[str, ...] = ()
    authority: tuple[str, ...] = ()
    additional: tuple[str, ...] = ()
    qclass: str = "IN"
    ede: int | None = None  # an Extended DNS Error code the reply must carry

    @property
    def label(self) -> str:
        return f"{self.qname} {self.qclass} {self.qtype} → {self.rcode}"


def fwd(name: str, ttl: int = 60) -> tuple[str, ...]:
    """The answer the responder (the next plugin, forward) gives for ``name`` A; ``ttl`` 30
    behind ``cache 30``, which caps the TTL of the first reply too, as CoreDNS's does."""
    return (f"{name} {ttl} A {FORWARDED}",)


def rrs(section: list[dns.rrset.RRset]) -> tuple[str, ...]:
    out = []
    for rrset in section:
        for rdata in rrset:
            kind = dns.rdatatype.to_text(rrset.rdtype)
            out.append(f"{rrset.name.to_text().lower()} {rrset.ttl} {kind} {rdata.to_text()}")
    return tuple(sorted(out))


def differences(case: Case, reply: dns.message.Message) -> list[str]:
    got_rcode = dns.rcode.to_text(reply.rcode())
    problems = []
    if got_rcode != case.rcode:
        problems.append(f"rcode {got_rcode}, want {case.rcode}")
    for section, want, got in (
        ("answer", case.answer, reply.answer),
        ("authority", case.authority, reply.authority),
        ("additional", case.additional, reply.additional),
    ):
        if rrs(got) != tuple(sorted(want)):
            problems.append(f"{section} {list(rrs(got))}, want {sorted(want)}")
    if case.ede is not None:
        codes = [o.code for o in reply.options if isinstance(o, dns.edns.EDEOption)]
        if codes != [case.ede]:
            problems.append(f"EDE {codes}, want [{case.ede}]")
    templated = case.answer and not any(FORWARDED in line for line in case.answer)
    if templated and not reply.flags & dns.flags.AA:
        problems.append("AA not set on a template answer")
    return problems


@dataclass(frozen=True)
class Scenario:
    name: str
    corefile: str
    cases: tuple[Case, ...]


SCENARIOS = [
    Scenario(
        "README: everything NXDOMAIN",
        """
. {
    template ANY ANY {
      rcode NXDOMAIN
    }
}
""",
        (
            Case("example.org.", "A", "NXDOMAIN"),
            Case("anything.at.all.", "MX", "NXDOMAIN"),
            Case("version.bind.", "TXT", "NXDOMAIN", qclass="CH"),
        ),
    ),
    Scenario(
        "README: .invalid NXDOMAIN with SOA and EDE",
        """
. {
    forward . 8.8.8.8

    template ANY ANY invalid {
      rcode NXDOMAIN
      authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
      ederror 21 "Blocked according to RFC2606"
    }
}
""",
        (
            Case(
                "test.invalid.", "A", "NXDOMAIN",
                authority=("invalid. 60 SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60",),
                ede=21,
            ),
            Case(
                "invalid.", "SOA", "NXDOMAIN",
                authority=("invalid. 60 SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60",),
                ede=21,
            ),
            Case(
                "a.b.invalid.", "TXT", "NXDOMAIN", qclass="CH",
                authority=("invalid. 60 SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60",),
                ede=21,
            ),
            Case("example.org.", "A", "NOERROR", answer=fwd("example.org.")),
        ),
    ),
    Scenario(
        "README: search-domain completions by zone",
        """
. {
    forward . 8.8.8.8

    template IN ANY example.com.dc1.example.com {
      rcode NXDOMAIN
      authority "{{ .Zone }} 60 IN SOA ns.example.com hostmaster.example.com (1 60 60 60 60)"
    }
}
""",
        (
            Case(
                "something.example.com.dc1.example.com.", "A", "NXDOMAIN",
                authority=(
                    "example.com.dc1.example.com. 60 SOA ns.example.com. hostmaster.example.com. 1 60 60 60 60",
                ),
            ),
            Case("host.dc1.example.com.", "A", "NOERROR", answer=fwd("host.dc1.example.com.")),
        ),
    ),
    Scenario(
        "README: search-domain completions by regex",
        r"""
. {
    forward . 8.8.8.8

    template IN ANY example.com {
      match "example\.com\.(dc1\.example\.com\.)$"
      rcode NXDOMAIN
      authority "{{ index .Match 1 }} 60 IN SOA ns.{{ index .Match 1 }} hostmaster.{{ index .Match 1 }} (1 60 60 60 60)"
      fallthrough
    }
}
""",
        (
            Case(
                "something.example.com.dc1.example.com.", "AAAA", "NXDOMAIN",
                authority=(
                    "dc1.example.com. 60 SOA ns.dc1.example.com. hostmaster.dc1.example.com. 1 60 60 60 60",
                ),
            ),
            Case("www.example.com.", "A", "NOERROR", answer=fwd("www.example.com.")),
        ),
    ),
    Scenario(
        "README: A and PTR from the name",
        """
. {
    forward . 8.8.8.8

    # ip-a-b-c-d.example A a.b.c.d

    template IN A example {
      match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      fallthrough
    }

    # d.c.b.a.in-addr.arpa PTR ip-a-b-c-d.example

    template IN PTR in-addr.arpa {
      match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
      answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
    }
}
""",
        (
            Case("ip-10-0-0-1.example.", "A", "NOERROR", answer=("ip-10-0-0-1.example. 60 A 10.0.0.1",)),
            Case(
                "host.ip-192-168-7-9.example.", "A", "NOERROR",
                answer=("host.ip-192-168-7-9.example. 60 A 192.168.7.9",),
            ),
            Case("IP-10-0-0-2.Example.", "A", "NOERROR", answer=("ip-10-0-0-2.example. 60 A 10.0.0.2",)),
            Case("www.example.", "A", "NOERROR", answer=fwd("www.example.")),
            Case("ip-10-0-0-1.example.", "AAAA", "NOERROR"),
            Case(
                "1.0.0.10.in-addr.arpa.", "PTR", "NOERROR",
                answer=("1.0.0.10.in-addr.arpa. 60 PTR ip-10-0-0-1.example.",),
            ),
            Case("x.1.0.0.10.in-addr.arpa.", "PTR", "SERVFAIL"),
            Case("1.0.0.10.in-addr.arpa.", "A", "NOERROR", answer=fwd("1.0.0.10.in-addr.arpa.")),
        ),
    ),
    Scenario(
        "README: hexadecimal with parseInt",
        """
. {
    forward . 8.8.8.8

    template IN A example {
      match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$"
      answer "{{ .Name }} 60 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}"
      fallthrough
    }
}
""",
        (
            Case("ip0a5f0c09.example.", "A", "NOERROR", answer=("ip0a5f0c09.example. 60 A 10.95.12.9",)),
            Case("ip0affff00.example.", "A", "NOERROR", answer=("ip0affff00.example. 60 A 10.255.255.0",)),
            Case("ip0azz0c09.example.", "A", "NOERROR", answer=fwd("ip0azz0c09.example.")),
        ),
    ),
    Scenario(
        "README: several patterns, one answer",
        """
. {
    forward . 8.8.8.8

    template IN A example {
      match "^ip-(?P<a>10)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]dc[.]example[.]$"
      match "^(?P<a>[0-9]*)[.](?P<b>[0-9]*)[.](?P<c>[0-9]*)[.](?P<d>[0-9]*)[.]ext[.]example[.]$"
      answer "{{ .Name }} 60 IN A {{ .Group.a}}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      fallthrough
    }
}
""",
        (
            Case("ip-10-1-2-3.dc.example.", "A", "NOERROR", answer=("ip-10-1-2-3.dc.example. 60 A 10.1.2.3",)),
            Case("1.2.3.4.ext.example.", "A", "NOERROR", answer=("1.2.3.4.ext.example. 60 A 1.2.3.4",)),
            Case("ip-11-1-2-3.dc.example.", "A", "NOERROR", answer=fwd("ip-11-1-2-3.dc.example.")),
        ),
    ),
    Scenario(
        "README: A and MX with authority and additional records",
        """
. {
    forward . 8.8.8.8

    template IN A example {
      match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      authority  "example. 60 IN NS ns0.example."
      authority  "example. 60 IN NS ns1.example."
      additional "ns0.example. 60 IN A 203.0.113.8"
      additional "ns1.example. 60 IN A 198.51.100.8"
      fallthrough
    }
    template IN MX example {
      match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
      answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
      additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
      authority  "example. 60 IN NS ns0.example."
      authority  "example. 60 IN NS ns1.example."
      additional "ns0.example. 60 IN A 203.0.113.8"
      additional "ns1.example. 60 IN A 198.51.100.8"
      fallthrough
    }
}
""",
        (
            Case(
                "ip-10-95-12-8.example.", "A", "NOERROR",
                answer=("ip-10-95-12-8.example. 60 A 10.95.12.8",),
                authority=("example. 60 NS ns0.example.", "example. 60 NS ns1.example."),
                additional=("ns0.example. 60 A 203.0.113.8", "ns1.example. 60 A 198.51.100.8"),
            ),
            Case(
                "ip-10-95-12-8.example.", "MX", "NOERROR",
                answer=("ip-10-95-12-8.example. 60 MX 10 ip-10-95-12-8.example.",),
                authority=("example. 60 NS ns0.example.", "example. 60 NS ns1.example."),
                additional=(
                    "ip-10-95-12-8.example. 60 A 10.95.12.8",
                    "ns0.example. 60 A 203.0.113.8",
                    "ns1.example. 60 A 198.51.100.8",
                ),
            ),
            Case("ip-10-95-12-8.example.", "TXT", "NOERROR"),
        ),
    ),
    Scenario(
        "README: a fabricated CNAME, its target looked up",
        r"""
. {
  template IN ANY foogle.com {
    match "^foogle\.com\.$"
    answer "foogle.com 60 IN CNAME google.com"
  }
  forward . 8.8.8.8
}
""",
        (
            Case(
                "foogle.com.", "A", "NOERROR",
                answer=("foogle.com. 60 CNAME google.com.", f"google.com. 60 A {FORWARDED}"),
            ),
            Case("foogle.com.", "MX", "NOERROR", answer=("foogle.com. 60 CNAME google.com.",)),
            Case("www.foogle.com.", "A", "SERVFAIL"),
            Case("example.org.", "A", "NOERROR", answer=fwd("example.org.")),
        ),
    ),
    Scenario(
        "AAAA filtering",
        """
. {
    template IN AAAA . {
        rcode NOERROR
    }
    forward . 8.8.8.8
}
""",
        (
            Case("example.org.", "AAAA", "NOERROR"),
            Case("example.org.", "A", "NOERROR", answer=fwd("example.org.")),
        ),
    ),
    Scenario(
        "wildcard answers for a domain, case kept as CoreDNS does, defaults of a bare record",
        """
. {
    template IN A apps.example.org {
        match "^[^.]+[.]apps[.]example[.]org[.]$"
        answer "{{ .Name }} 60 IN A 192.0.2.10"
    }
    template IN TXT info.test {
        answer "{{ .Name }} TXT \\"zone={{ .Zone }} type={{ .Type }} class={{ .Class }}\\""
    }
    template ANY ANY any.test {
        answer "{{ .Name }} 30 IN TXT {{ .Type }}"
    }
    forward . 8.8.8.8
}
""",
        (
            Case("shop.apps.example.org.", "A", "NOERROR", answer=("shop.apps.example.org. 60 A 192.0.2.10",)),
            Case("a.b.apps.example.org.", "A", "SERVFAIL"),
            Case("shop.apps.example.org.", "AAAA", "NOERROR"),
            Case(
                "x.info.test.", "TXT", "NOERROR",
                answer=('x.info.test. 3600 TXT "zone=info.test. type=TXT class=IN"',),
            ),
            Case("q.any.test.", "MX", "NOERROR", answer=('q.any.test. 30 TXT "MX"',)),
            Case("q.any.test.", "ANY", "NOERROR", answer=('q.any.test. 30 TXT "ANY"',)),
        ),
    ),
    Scenario(
        # Shapes found in public Corefiles: a template per zone given on the directive (zone
        # "foo", zones "bar baz"), and a block of its own with no zone or regex at all.
        "user Corefiles: templates per zone and a localhost block",
        """
. {
  any
  forward . 8.8.8.8:53
  # Return a custom IP for foo.
  template IN A foo {
    answer "{{ .Name }} 60 IN A 127.0.0.1"
  }
  # Return a custom IP for bar and baz.
  template IN A bar baz {
    answer "{{ .Name }} 60 IN A 127.0.0.1"
  }
  errors
  log
}

localhost {
  template IN A  {
      answer "{{ .Name }} 0 IN A 127.0.0.1"
  }
}
""",
        (
            Case("foo.", "A", "NOERROR", answer=("foo. 60 A 127.0.0.1",)),
            Case("www.foo.", "A", "NOERROR", answer=("www.foo. 60 A 127.0.0.1",)),
            Case("x.y.baz.", "A", "NOERROR", answer=("x.y.baz. 60 A 127.0.0.1",)),
            Case("foo.", "AAAA", "NOERROR"),
            Case("food.", "A", "NOERROR", answer=fwd("food.")),
            Case("app.localhost.", "A", "NOERROR", answer=("app.localhost. 0 A 127.0.0.1",)),
            Case("localhost.", "AAAA", "SERVFAIL"),
        ),
    ),
    Scenario(
        # Written for these tests (no public original found): cloud-provider host names that
        # spell their address, as EC2's ip-10-0-1-23.ec2.internal, answered locally.
        "compute.internal style host names",
        """
. {
    template IN A ec2.internal compute.internal {
        match "^ip-(?P<a>[0-9]{1,3})-(?P<b>[0-9]{1,3})-(?P<c>[0-9]{1,3})-(?P<d>[0-9]{1,3})[.]"
        answer "{{ .Name }} 3600 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        additional "{{ .Zone }} 3600 IN TXT \\"{{ .Zone }}\\""
        fallthrough
    }
    template IN AAAA ec2.internal compute.internal {
        match "^ip-"
        fallthrough
    }
    forward . 8.8.8.8
}
""",
        (
            Case(
                "ip-10-0-1-23.ec2.internal.", "A", "NOERROR",
                answer=("ip-10-0-1-23.ec2.internal. 3600 A 10.0.1.23",),
                additional=('ec2.internal. 3600 TXT "ec2.internal."',),
            ),
            Case(
                "ip-172-31-5-6.us-west-2.compute.internal.", "A", "NOERROR",
                answer=("ip-172-31-5-6.us-west-2.compute.internal. 3600 A 172.31.5.6",),
                additional=('compute.internal. 3600 TXT "compute.internal."',),
            ),
            Case("ip-172-31-5-6.us-west-2.compute.internal.", "AAAA", "NOERROR"),
            Case("metadata.ec2.internal.", "A", "NOERROR", answer=fwd("metadata.ec2.internal.")),
        ),
    ),
    Scenario(
        # machine-config-operator's templates/common/on-prem/files/coredns-corefile.yaml as
        # rendered for an IPv4 cluster (health moved off its fixed port for the test).
        "OpenShift on-premises node Corefile",
        """
. {
    errors
    bufsize 512
    forward . 8.8.8.8 {
        policy sequential
    }
    cache 30
    reload
    template IN A ostest.test.metalkube.org {
        match .*.apps.ostest.test.metalkube.org
        answer "{{ .Name }} 60 in {{ .Type }} 192.168.111.4"
        fallthrough
    }
    template IN AAAA ostest.test.metalkube.org {
        match .*.apps.ostest.test.metalkube.org
        fallthrough
    }
    template IN A ostest.test.metalkube.org {
        match api.ostest.test.metalkube.org
        answer "{{ .Name }} 60 in {{ .Type }} 192.168.111.5"
        fallthrough
    }
    template IN AAAA ostest.test.metalkube.org {
        match api.ostest.test.metalkube.org
        fallthrough
    }
    template IN A ostest.test.metalkube.org {
        match api-int.ostest.test.metalkube.org
        answer "{{ .Name }} 60 in {{ .Type }} 192.168.111.5"
        fallthrough
    }
    template IN AAAA ostest.test.metalkube.org {
        match api-int.ostest.test.metalkube.org
        fallthrough
    }
}
""",
        (
            Case(
                "console-openshift-console.apps.ostest.test.metalkube.org.", "A", "NOERROR",
                answer=("console-openshift-console.apps.ostest.test.metalkube.org. 30 A 192.168.111.4",),
            ),
            Case("console-openshift-console.apps.ostest.test.metalkube.org.", "AAAA", "NOERROR"),
            Case("api.ostest.test.metalkube.org.", "A", "NOERROR", answer=("api.ostest.test.metalkube.org. 30 A 192.168.111.5",)),
            Case("api.ostest.test.metalkube.org.", "AAAA", "NOERROR"),
            Case("api-int.ostest.test.metalkube.org.", "A", "NOERROR", answer=("api-int.ostest.test.metalkube.org. 30 A 192.168.111.5",)),
            Case("master-0.ostest.test.metalkube.org.", "A", "NOERROR", answer=fwd("master-0.ostest.test.metalkube.org.", 30)),
            Case("quay.io.", "A", "NOERROR", answer=fwd("quay.io.", 30)),
        ),
    ),
    Scenario(
        # AKS's coredns ConfigMap (kube-system) with the API replaced by a manifests folder;
        # the import lines are left out.
        "AKS Corefile",
        r"""
.:53 {
    errors
    ready 127.0.0.1:0
    health {
      lameduck 5s
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      manifests MANIFESTS
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
      ttl 30
    }
    prometheus 127.0.0.1:0
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    template ANY ANY internal.cloudapp.net {
      match "^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$"
      rcode NXDOMAIN
      fallthrough
    }
    template ANY ANY reddog.microsoft.com {
      rcode NXDOMAIN
    }
}
""",
        (
            Case("a.b.c.d.internal.cloudapp.net.", "A", "NXDOMAIN"),
            Case("kube-dns.kube-system.svc.cluster.local.a.b.internal.cloudapp.net.", "AAAA", "NXDOMAIN"),
            Case("vm0.internal.cloudapp.net.", "A", "NOERROR", answer=fwd("vm0.internal.cloudapp.net.", 30)),
            Case("reddog.microsoft.com.", "SOA", "NXDOMAIN"),
            Case("kube-dns.kube-system.svc.cluster.local.reddog.microsoft.com.", "A", "NXDOMAIN"),
            Case(
                "kube-dns.kube-system.svc.cluster.local.", "A", "NOERROR",
                answer=("kube-dns.kube-system.svc.cluster.local. 30 A 10.0.0.10",),
            ),
            Case("microsoft.com.", "A", "NOERROR", answer=fwd("microsoft.com.", 30)),
        ),
    ),
]  # fmt: skip


def prepare(text: str, upstream: int, folder: Path) -> str:
    """Point forward at the responder (a resolv.conf naming it for /etc/resolv.conf), the
    kubernetes plugin at a manifests folder, every listener at port 0, lameduck short."""
    resolv = folder / "resolv.conf"
    resolv.write_text(f"nameserver 127.0.0.1:{upstream}\n")
    manifests = folder / "manifests"
    manifests.mkdir(exist_ok=True)
    for obj in (
        namespace("kube-system"),
        service("kube-dns", "kube-system", cluster_ip="10.0.0.10", ports=(("dns", 53, "UDP"),)),
    ):
        (manifests / f"{obj['kind']}-{obj['metadata']['name']}.json").write_text(json.dumps(obj))
    text = re.sub(r"forward \. 8\.8\.8\.8(:53)?", f"forward . 127.0.0.1:{upstream}", text)
    text = text.replace("forward . /etc/resolv.conf", f"forward . {resolv}")
    text = text.replace("MANIFESTS", str(manifests))
    text = text.replace("lameduck 5s", "lameduck 10ms")  # shutting down takes the lameduck
    return text.replace(".:53 {", ". {")


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_scenario(scenario: Scenario, transport: str, tmp_path: Path) -> None:
    async with Responder() as upstream:
        text = prepare(scenario.corefile, upstream.port, tmp_path)
        async with running_server(text, tmp_path=tmp_path) as server:
            problems = []
            # Twice: the second question of each is answered from the reply memo when the
            # fast path took the first.
            for _ in range(2):
                for case in scenario.cases:
                    reply = await query(
                        server.port, case.qname, case.qtype, rdclass=case.qclass,
                        tcp=transport == "tcp", payload=1232, timeout=5,
                    )  # fmt: skip
                    problems += [f"{case.label}: {p}" for p in differences(case, reply)]
    assert not problems, "\n".join(problems)


COREFILE_PER_CLIENT = """
. {
    cache 30
    template IN A remote.test {
        answer "{{ .Name }} 60 IN A {{ .Remote }}"
    }
    template IN TXT id.test {
        answer "{{ .Name }} 60 IN TXT \\"{{ .Message.Id }} {{ (index .Message.Question 0).Name }} {{ .Question.Qtype }}\\""
    }
    template IN A fixed.test {
        answer "{{ .Name }} 60 IN A 192.0.2.44"
    }
}
"""


async def test_answers_that_depend_on_the_query_are_never_replayed() -> None:
    """``.Remote`` is the client's address for each client; ``.Message.Id`` the ID of each
    query: neither the reply memo nor the cache may hand a stored one out."""
    async with running_server(COREFILE_PER_CLIENT) as server:
        for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.2"):
            message = dns.message.make_query("who.remote.test.", "A")
            reply = await dns.asyncquery.udp(
                message, "127.0.0.1", port=server.port, source=source, timeout=2
            )
            assert rrs(reply.answer) == (f"who.remote.test. 60 A {source}",)
        seen = set()
        for _ in range(3):
            message = dns.message.make_query("Q.id.test.", "TXT")
            reply = await dns.asyncquery.udp(message, "127.0.0.1", port=server.port, timeout=2)
            assert rrs(reply.answer) == (f'q.id.test. 60 TXT "{message.id} Q.id.test. 16"',)
            seen.add(message.id)
        assert len(seen) > 1


@pytest.mark.parametrize("cache", [False, True], ids=["alone", "behind cache"])
async def test_fast_path_takes_question_only_templates(cache: bool) -> None:
    """Alone, a template that reads only the question answers on the fast path; one that
    reads ``.Remote`` goes to the chain; other names are not its business. Behind a cache
    the chain answers (the cache stores and caps it, then serves repeats fast)."""
    text = COREFILE_PER_CLIENT if cache else COREFILE_PER_CLIENT.replace("cache 30", "")
    async with running_server(text) as server:
        plugin = server.plugin("template")

        def fast(name: str) -> object:
            wire = dns.message.make_query(name, "A").to_wire()
            return plugin.answer_fast(parse_query(wire), 512, 1232)  # type: ignore[attr-defined]

        fixed = fast("x.fixed.test.")
        if cache:
            assert fixed is SLOW
        else:
            assert isinstance(fixed, FastReply)
            assert rrs(dns.message.from_wire(fixed.wire).answer) == (
                "x.fixed.test. 60 A 192.0.2.44",
            )
        assert fast("x.remote.test.") is SLOW
        assert fast("example.org.") is None


async def test_cname_target_through_another_block_and_plugin(tmp_path: Path) -> None:
    """The target of a templated CNAME is asked of the whole server: here a *hosts* entry in
    another server block; a target nobody knows leaves the CNAME alone."""
    corefile = """
alias.test {
    template IN ANY alias.test {
        match "^www[.]alias[.]test[.]$"
        answer "{{ .Name }} 120 IN CNAME real.hosts.test."
        fallthrough
    }
    template IN ANY alias.test {
        match "^dangling[.]alias[.]test[.]$"
        answer "{{ .Name }} 120 IN CNAME nowhere.hosts.test."
    }
}
hosts.test {
    hosts {
        192.0.2.80 real.hosts.test
        2001:db8::80 real.hosts.test
    }
}
"""
    async with running_server(corefile, tmp_path=tmp_path) as server:
        reply = await query(server.port, "www.alias.test", "A")
        assert rrs(reply.answer) == (
            "real.hosts.test. 3600 A 192.0.2.80",
            "www.alias.test. 120 CNAME real.hosts.test.",
        )
        reply = await query(server.port, "www.alias.test", "AAAA")
        assert rrs(reply.answer) == (
            "real.hosts.test. 3600 AAAA 2001:db8::80",
            "www.alias.test. 120 CNAME real.hosts.test.",
        )
        reply = await query(server.port, "dangling.alias.test", "A")
        assert reply.rcode() == dns.rcode.NOERROR
        assert rrs(reply.answer) == ("dangling.alias.test. 120 CNAME nowhere.hosts.test.",)


FAILING = """
. {
    prometheus 127.0.0.1:0
    template IN TXT broken.test {
        match "^(?P<one>[a-z]+)[.]broken[.]test[.]$"
        answer "{{ .Name }} 60 IN TXT \\"{{ index .Match 2 }}\\""
    }
    template IN A notrr.test {
        answer "{{ .Name }}"
    }
    template IN A badint.test {
        answer "{{ .Name }} 60 IN A 10.0.0.{{ parseInt \\"gg\\" 16 8 }}"
    }
    template IN A servfail.test {
        rcode SERVFAIL
        answer "{{ .Name }} 60 IN A 10.0.0.1"
    }
    template IN A ok.test {
        answer "{{ .Name }} 60 IN A 10.0.0.1"
    }
}
"""


@pytest.mark.parametrize(
    ("qname", "qtype", "rcode"),
    [
        pytest.param("x.broken.test.", "TXT", "SERVFAIL", id="index out of range → SERVFAIL"),
        pytest.param("x.notrr.test.", "A", "SERVFAIL", id="not a record → SERVFAIL"),
        pytest.param("x.badint.test.", "A", "SERVFAIL", id="parseInt of gg → SERVFAIL"),
        pytest.param(
            "x.servfail.test.", "A", "SERVFAIL", id="rcode SERVFAIL → SERVFAIL, no records"
        ),
        pytest.param("x.ok.test.", "A", "NOERROR", id="ok"),
    ],
)
async def test_failures_are_servfail(qname: str, qtype: str, rcode: str) -> None:
    async with running_server(FAILING) as server:
        reply = await query(server.port, qname, qtype)
        assert dns.rcode.to_text(reply.rcode()) == rcode
        if rcode == "SERVFAIL":
            assert not reply.answer


async def test_failures_reach_the_errors_plugin(caplog: pytest.LogCaptureFixture) -> None:
    async with running_server(FAILING.replace("prometheus 127.0.0.1:0", "errors")) as server:
        reply = await query(server.port, "x.broken.test", "TXT")
    assert reply.rcode() == dns.rcode.SERVFAIL
    logged = [r.getMessage() for r in caplog.records if "plugin/template" in r.getMessage()]
    assert len(logged) == 1, caplog.records
    assert "x.broken.test." in logged[0] and "index out of range: 2" in logged[0]


async def test_metrics_under_coredns_names() -> None:
    from prometheus_client import generate_latest

    async with running_server(FAILING) as server:
        for _ in range(3):
            await query(server.port, "x.ok.test", "A")
        await query(server.port, "x.broken.test", "TXT")
        await query(server.port, "x.notrr.test", "A")
        text = generate_latest(server.app.process.metrics_registry()).decode()
    lines = [line for line in text.splitlines() if line.startswith("coredns_template_")]

    def value(prefix: str, *parts: str) -> float:
        found = [ln for ln in lines if ln.startswith(prefix) and all(p in ln for p in parts)]
        assert len(found) == 1, (prefix, parts, lines)
        return float(found[0].rsplit(" ", 1)[1])

    assert value("coredns_template_matches_total{", 'zone="ok.test."', 'type="A"') == 3
    assert (
        value("coredns_template_template_failures_total{", 'section="answer"', "index .Match 2")
        == 1
    )
    assert value("coredns_template_rr_failures_total{", 'zone="notrr.test."') == 1
