"""The Go text/template subset: what Go's text/template prints for the data CoreDNS's template
plugin passes (expected values follow Go's documented behaviour), its errors, and the
record parser (miekg/dns's NewRR rules)."""

from __future__ import annotations

from typing import Any

import pytest

from clusterdns.plugins.template.gotemplate import (
    GoStruct,
    Template,
    TemplateExecError,
    TemplateSyntaxError,
    parse_uint,
)
from clusterdns.plugins.template.records import RecordError, parse_rr

QUESTION = GoStruct(
    "*dns.Question", {"Name": "Ip-10-0-0-1.Example.", "Qtype": 1, "Qclass": 1}, ";q\tIN\t A"
)
DATA = GoStruct(
    "*template.templateData",
    {
        "Zone": "example.",
        "Name": "ip-10-0-0-1.example.",
        "Class": "IN",
        "Type": "A",
        "Match": ["ip-10-0-0-1.example.", "10", "0"],
        "Group": {"0": "ip-10-0-0-1.example.", "1": "10", "2": "0", "a": "10", "b": "0"},
        "Remote": "192.0.2.7",
        "Question": QUESTION,
        "Message": GoStruct("*dns.Msg", {"Id": 4321, "Question": [QUESTION]}, ";; msg"),
    },
    methods={"Meta": lambda name: {"kubernetes/client-namespace": "default"}.get(name, "")},
)


def render(text: str, data: Any = DATA) -> str:
    return Template("answer", text, {"parseInt": parse_uint}).execute(data)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("{{ .Name }} 60 IN A 10.0.0.1", "ip-10-0-0-1.example. 60 IN A 10.0.0.1"),
        ("{{.Name}}|{{ .Zone }}|{{ .Class }}|{{ .Type }}", "ip-10-0-0-1.example.|example.|IN|A"),
        ("{{ index .Match 1 }}.{{ index .Match 2 }}", "10.0"),
        ("{{ .Group.a }}.{{ .Group.b }}", "10.0"),
        ('{{ index .Group "a" }}-{{ index .Group "1" }}', "10-10"),
        # A map's missing key: <no value> through a field, the zero value through index.
        ('{{ .Group.nope }}|{{ index .Group "nope" }}|', "<no value>||"),
        ("{{ .Match }}", "[ip-10-0-0-1.example. 10 0]"),
        ("{{ .Group }}", "map[0:ip-10-0-0-1.example. 1:10 2:0 a:10 b:0]"),
        ('{{ parseInt "ff" 16 8 }}.{{ parseInt .Group.a 10 8 }}', "255.10"),
        ('{{ parseInt "0x1f" 0 64 }} {{ parseInt "017" 0 64 }} {{ parseInt "0b11" 0 8 }}', "31 15 3"),
        ("{{ .Remote }}", "192.0.2.7"),
        ("{{ .Question.Name }} {{ .Question.Qtype }}", "Ip-10-0-0-1.Example. 1"),
        ("{{ (index .Message.Question 0).Name }} {{ .Message.Id }}", "Ip-10-0-0-1.Example. 4321"),
        ("{{ .Question }}", ";q\tIN\t A"),
        ('{{ .Meta "kubernetes/client-namespace" }}|{{ .Meta "other" }}|', "default||"),
        # Trim markers eat the spaces (and newlines) next to them.
        ("a  {{- .Type -}}  \n b", "aAb"),
        ("{{- .Type }} x", "A x"),
        ("{{/* a comment */}}x{{- /* trimmed */ -}} y", "xy"),
        ("{{ 3 }} {{ -2 }} {{ 0x1F }} {{ 'a' }} {{ 1.5 }} {{ true }} {{ nil }}", "3 -2 31 97 1.5 true <nil>"),
        ('{{ "q\\"uote\\t" }}{{ `raw\\n` }}', 'q"uote\traw\\n'),
        ('{{ if eq .Type "A" }}v4{{ else if eq .Type "AAAA" }}v6{{ else }}no{{ end }}', "v4"),
        ('{{ if eq .Type "MX" "A" }}one of{{ end }}', "one of"),
        ("{{ if .Group.nope }}yes{{ else }}no{{ end }}", "no"),
        ("{{ with .Group.a }}<{{ . }}>{{ end }}{{ with .Group.nope }}x{{ else }}none{{ end }}", "<10>none"),
        ("{{ range .Match }}[{{ . }}]{{ end }}", "[ip-10-0-0-1.example.][10][0]"),
        ("{{ range $i, $m := .Match }}{{ $i }}={{ $m }} {{ end }}", "0=ip-10-0-0-1.example. 1=10 2=0 "),
        ("{{ range .Group.nope }}x{{ else }}empty{{ end }}", "empty"),
        ("{{ $x := .Type }}{{ $x = printf \"%s!\" $x }}{{ $x }}", "A!"),
        ("{{ range .Match }}{{ $.Type }}{{ end }}", "AAA"),
        ('{{ .Name | printf "%s|%s" "first" }}', "first|ip-10-0-0-1.example."),
        ('{{ printf "%03d %x %X %5s|%-3s|%q %v %%" 7 255 255 "ab" "c" "q" .Match }}', '007 ff FF    ab|c  |"q" [ip-10-0-0-1.example. 10 0] %'),
        ('{{ print 1 2 "a" 3 "b" }}', "1 2a3b"),
        ("{{ println .Type .Zone }}", "A example.\n"),
        ("{{ len .Match }} {{ len .Name }} {{ len .Group }}", "3 20 5"),
        ("{{ slice .Name 0 2 }} {{ slice .Match 1 }}", "ip [10 0]"),
        ("{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 \"x\" 1 }} {{ not 0 }}", "0 2  x true"),
        ('{{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1 2 }} {{ ne .Type "A" }}', "true true true false false"),
        ('{{ html "<a&b>" }} {{ urlquery "a b&c" }}', "&lt;a&amp;b&gt; a+b%26c"),
        ("{{ (index .Match 1) }}{{ (.Group).a }}", "1010"),
    ],
)  # fmt: skip
def test_renders_as_go_does(text: str, want: str) -> None:
    assert render(text) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ index .Match 3 }}", "error calling index: index out of range: 3"),
        ('{{ parseInt "gg" 16 8 }}', 'strconv.ParseUint: parsing "gg": invalid syntax'),
        ('{{ parseInt "100" 16 8 }}', 'strconv.ParseUint: parsing "100": value out of range'),
        ('{{ parseInt "-1" 10 8 }}', "invalid syntax"),
        ("{{ parseInt 5 10 8 }}", "expected string"),
        ("{{ .Name.Foo }}", "can't evaluate field Foo in type string"),
        ("{{ .Nope }}", "can't evaluate field Nope in type *template.templateData"),
        ("{{ $undefined }}", "undefined variable: $undefined"),
        ("{{ eq .Type 1 }}", "incompatible types for comparison"),
        ("{{ range .Type }}x{{ end }}", "range can't iterate over A"),
        ("{{ index .Group 1 }}", "should be string"),
    ],
)
def test_failures_while_running(text: str, message: str) -> None:
    with pytest.raises(TemplateExecError) as caught:
        render(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ .Name", "unclosed action"),
        ("{{ .Name }", "unclosed action"),
        ("{{ if .Name }}x", "{{if}} without {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ else }}", "unexpected {{else}}"),
        ('{{ define "x" }}y{{ end }}', "{{define}} is not supported"),
        ('{{ template "x" }}', "{{template}} is not supported"),
        ('{{ block "x" . }}y{{ end }}', "{{block}} is not supported"),
        ("{{ range .Match }}{{ break }}{{ end }}", "{{break}} is not supported"),
        ("{{ call .Meta }}", 'function "call" not defined (not supported'),
        ("{{ lower .Name }}", 'function "lower" not defined'),
        ('{{ "unterminated }}', "unterminated quoted string"),
        ("{{ .Name ^ }}", "unexpected '^'"),
        ("{{ }}", "missing value for command"),
        ("{{ if }}x{{ end }}", "missing value for if"),
        ("{{/* open }}", "unclosed comment"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        Template("answer", text, {"parseInt": parse_uint})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("text", "per_query"),
    [
        ("{{ .Name }} 60 IN A {{ .Group.a }}", False),
        ("{{ .Zone }} {{ index .Match 1 }} {{ .Type }} {{ .Class }}", False),
        ("{{ .Name }} 60 IN A {{ .Remote }}", True),
        ("{{ .Message.Id }}", True),
        ("{{ with .Question }}{{ .Name }}{{ end }}", True),
        ('{{ .Meta "x" }}', True),
        ("{{ $.Remote }}", True),
        ("{{ . }}", True),
    ],
)
def test_fields_used_tell_what_an_answer_depends_on(text: str, per_query: bool) -> None:
    used = Template("answer", text, {"parseInt": parse_uint}).fields_used
    assert bool(used & {"Remote", "Message", "Question", "Meta", "*"}) == per_query


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("a.example. 60 IN A 10.0.0.1", "a.example. 60 IN A 10.0.0.1"),
        ("a.example. IN 60 A 10.0.0.1", "a.example. 60 IN A 10.0.0.1"),
        # Relative names are taken from the root; TTL 3600 and class IN by default.
        ("foogle.com 60 IN CNAME google.com", "foogle.com. 60 IN CNAME google.com."),
        ("ns0.example. IN A 203.0.113.8", "ns0.example. 3600 IN A 203.0.113.8"),
        ("x.example. 60 MX 10 mail", "x.example. 60 IN MX 10 mail."),
        ("x.example. 60 in a 10.0.0.2", "x.example. 60 IN A 10.0.0.2"),
        ("x.example. 1h IN A 10.0.0.3", "x.example. 3600 IN A 10.0.0.3"),
        (
            "invalid. 60 CH SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)",
            "invalid. 60 CH SOA ns.invalid. hostmaster.invalid. 1 60 60 60 60",
        ),
        ('t.example. 60 IN TXT "a b" c', 't.example. 60 IN TXT "a b" "c"'),
    ],
)
def test_records_read_as_miekg_reads_them(text: str, want: str) -> None:
    assert parse_rr(text).to_text() == want


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "test.example.",
        "test.example. 60 IN",
        "test.example. 60 IN A",
        "test.example. 60 IN A 10.0.0.256",
        "test.example. 60 IN A 10.0.0.1 extra",
        "test.example. 60 IN BOGUS x",
        "test.example. 60 IN A <no value>",
    ],
)
def test_records_that_are_not_records(text: str) -> None:
    with pytest.raises(RecordError):
        parse_rr(text)
