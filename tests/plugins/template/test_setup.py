"""template's directive parsing: what CoreDNS accepts is read into rules, the rest fails at
start-up with the Corefile's file:line."""

from __future__ import annotations

import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.template import Templates


def templates(body: str, zones: str = ".") -> Templates:
    text = f"{zones} {{\n{body}\n}}\n"
    instance = build_instance(parse(text, filename="Corefile"), process=Process(), dns_port=0)
    for plugin in instance.plugins():
        if isinstance(plugin, Templates):
            return plugin
    raise AssertionError("no template plugin")


def test_rules_in_written_order_with_defaults() -> None:
    plugin = templates(
        """
    template IN A example.org {
        answer "{{ .Name }} 60 IN A 10.0.0.1"
    }
    template ANY ANY {
        match ^a[.] ^b[.]
        match ^c[.]
        rcode NXDOMAIN
        fallthrough in-addr.arpa
        upstream
    }
    template CH TXT Example.NET. other.test {
        rcode REFUSED
        ederror 15 "blocked"
    }
""",
        zones="example.org example.net other.test",
    )
    first, second, third = plugin.rules
    assert (first.qclass, first.qtype, first.zones) == (1, 1, ("example.org.",))
    assert [r.source for r in first.regexes] == [".*"]  # no match: everything
    assert first.rcode == 0 and first.fallthrough.zones is None
    assert (second.qclass, second.qtype) == (255, 255)
    # No zones: the server block's.
    assert second.zones == ("example.org.", "example.net.", "other.test.")
    assert [r.source for r in second.regexes] == ["^a[.]", "^b[.]", "^c[.]"]
    assert second.rcode == 3 and second.fallthrough.zones == ("in-addr.arpa.",)
    assert (third.qclass, third.qtype, third.zones) == (3, 16, ("example.net.", "other.test."))
    assert third.rcode == 5 and third.ederror == (15, "blocked")
    assert plugin.zones == ("example.org.", "example.net.", "other.test.")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        pytest.param("template", 2, "expected CLASS TYPE", id="no arguments"),
        pytest.param("template IN", 2, "expected CLASS TYPE", id="no type"),
        pytest.param("template in A", 2, "invalid query class 'in'", id="class is upper case only"),
        pytest.param("template XX A", 2, "invalid query class 'XX'", id="unknown class"),
        pytest.param("template IN aaaa", 2, "invalid query type 'aaaa'", id="type upper case only"),
        pytest.param("template IN BOGUS", 2, "invalid query type 'BOGUS'", id="unknown type"),
        # A port on a zone is ignored, as CoreDNS's OriginsFromArgsOrServerBlock does; only
        # arguments none of which is a zone are an error.
        pytest.param("template IN A a..b", 2, "no valid zone", id="no valid zone"),
        pytest.param(
            "template IN A {\n  match\n}", 3, "match: expected at least one regex", id="empty match"
        ),
        pytest.param(
            "template IN A {\n  match ok\n  match (a\n}", 4, "could not parse regex '(a'",
            id="bad regex on its line",
        ),
        pytest.param(
            "template IN A {\n  match (a)\\1\n}", 3, "RE2 has no backreferences",
            id="backreference (RE2 refuses it)",
        ),
        pytest.param(
            "template IN A {\n  match \\pL\n}", 3, "Unicode classes", id="RE2 syntax Python lacks"
        ),
        pytest.param(
            "template IN A {\n  match " + "a" * 10_001 + "\n}", 3, "regex pattern too long",
            id="pattern over 10000 characters",
        ),
        pytest.param(
            'template IN A {\n  answer "{{ .Name }"\n}', 3, "could not compile template",
            id="unclosed action",
        ),
        pytest.param(
            'template IN A {\n  answer "{{ define \\"x\\" }}{{ end }}"\n}', 3,
            "{{define}} is not supported", id="define outside the subset",
        ),
        pytest.param(
            'template IN A {\n  additional "{{ lower .Name }}"\n}', 3,
            'function "lower" not defined', id="unknown function",
        ),
        pytest.param(
            'template IN A {\n  authority "{{ if .Name }}x"\n}', 3, "without {{end}}",
            id="if without end",
        ),
        pytest.param("template IN A {\n  answer\n}", 3, "expected at least one record", id="empty answer"),
        pytest.param("template IN A {\n  rcode\n}", 3, "expected one response code", id="no rcode"),
        pytest.param("template IN A {\n  rcode nxdomain\n}", 3, "unknown rcode 'nxdomain'", id="rcode is upper case"),
        pytest.param("template IN A {\n  rcode NOPE\n}", 3, "unknown rcode 'NOPE'", id="unknown rcode"),
        pytest.param("template IN A {\n  ederror\n}", 3, "ederror: expected", id="ederror without code"),
        pytest.param("template IN A {\n  ederror x\n}", 3, "extended DNS error code 'x'", id="ederror not a number"),
        pytest.param("template IN A {\n  ederror 70000\n}", 3, "extended DNS error code", id="ederror over 16 bits"),
        pytest.param(
            "template IN A {\n  var ip group('ip')\n}", 3, "'var' is not supported by clusterdns",
            id="var (expr language)",
        ),
        pytest.param(
            "template IN A {\n  expr \"incidr(ip, '10.0.0.0/8')\"\n}", 3,
            "'expr' is not supported by clusterdns", id="expr (expr language)",
        ),
        pytest.param("template IN A {\n  answers x\n}", 3, "unknown property 'answers'", id="unknown property"),
        pytest.param(
            "template IN A {\n  match x {\n  }\n}", 3, "unexpected block", id="block under a property"
        ),
    ],
)  # fmt: skip
def test_setup_errors_name_the_line(body: str, line: int, message: str) -> None:
    with pytest.raises(CorefileError) as caught:
        templates(body)
    assert caught.value.file == "Corefile"
    assert caught.value.line == line, str(caught.value)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"Corefile:{line}: template")
