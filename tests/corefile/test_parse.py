"""Corefile grammar: structure of good inputs, file:line of errors in bad ones."""

from __future__ import annotations

import hashlib
import textwrap
from typing import Any

import pytest

from clusterdns.corefile import CorefileError, Directive, Token, parse
from tests.corefile.shapes import corefile_shape

KUBERNETES_COREFILE = """\
.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30
    loop
    reload
    loadbalance
}
"""

MULTI_BLOCK_COREFILE = """\
coredns.io:5300 {
    file /etc/coredns/zones/coredns.io.db
}

example.io:53 {
    errors
    log
    file /etc/coredns/zones/example.io.db
}

example.net:53 {
    file /etc/coredns/zones/example.net.db
}

.:53 {
    errors
    log
    health
    rewrite name foo.example.com foo.default.svc.cluster.local
}
"""


def test_kubernetes_corefile() -> None:
    corefile = parse(KUBERNETES_COREFILE)
    assert corefile_shape(corefile) == [
        (
            ["dns://.:53"],
            [
                ("errors", []),
                ("health", [], [("lameduck", ["5s"])]),
                ("ready", []),
                (
                    "kubernetes",
                    ["cluster.local", "in-addr.arpa", "ip6.arpa"],
                    [
                        ("pods", ["insecure"]),
                        ("fallthrough", ["in-addr.arpa", "ip6.arpa"]),
                        ("ttl", ["30"]),
                    ],
                ),
                ("prometheus", [":9153"]),
                ("forward", [".", "/etc/resolv.conf"], [("max_concurrent", ["1000"])]),
                ("cache", ["30"]),
                ("loop", []),
                ("reload", []),
                ("loadbalance", []),
            ],
        )
    ]
    block = corefile.blocks[0]
    assert (block.file, block.line) == ("Corefile", 1)
    lines = {d.name: d.line for d in block.directives}
    assert lines == {
        "errors": 2,
        "health": 3,
        "ready": 6,
        "kubernetes": 7,
        "prometheus": 12,
        "forward": 13,
        "cache": 16,
        "loop": 17,
        "reload": 18,
        "loadbalance": 19,
    }
    assert [d.line for d in block.directives[3].block_items()] == [8, 9, 10]
    assert corefile.files == ()
    assert corefile.checksum == hashlib.sha512(KUBERNETES_COREFILE.encode()).hexdigest()


def test_multi_block_corefile() -> None:
    assert corefile_shape(parse(MULTI_BLOCK_COREFILE)) == [
        (["dns://coredns.io.:5300"], [("file", ["/etc/coredns/zones/coredns.io.db"])]),
        (
            ["dns://example.io.:53"],
            [("errors", []), ("log", []), ("file", ["/etc/coredns/zones/example.io.db"])],
        ),
        (["dns://example.net.:53"], [("file", ["/etc/coredns/zones/example.net.db"])]),
        (
            ["dns://.:53"],
            [
                ("errors", []),
                ("log", []),
                ("health", []),
                ("rewrite", ["name", "foo.example.com", "foo.default.svc.cluster.local"]),
            ],
        ),
    ]


GOOD = [
    pytest.param("", [], id="empty file → no blocks"),
    pytest.param("# only a comment\n\n   \n", [], id="comments and blank lines → no blocks"),
    pytest.param(". {\n}\n", [(["dns://.:None"], [])], id="root zone, empty block"),
    pytest.param(
        "example.org:1053 example.net {\n  whoami\n}",
        [(["dns://example.org.:1053", "dns://example.net.:None"], [("whoami", [])])],
        id="two keys separated by space",
    ),
    pytest.param(
        "example.org, example.net {\n}",
        [(["dns://example.org.:None", "dns://example.net.:None"], [])],
        id="keys separated by comma and space",
    ),
    pytest.param(
        "a.org,b.org:53 {\n}",
        [(["dns://a.org.:None", "dns://b.org.:53"], [])],
        id="keys separated by comma only",
    ),
    pytest.param(
        "a.org,\n  b.org {\n}",
        [(["dns://a.org.:None", "dns://b.org.:None"], [])],
        id="trailing comma continues keys on next line",
    ),
    pytest.param(
        "example.org\n{\n  log\n}",
        [(["dns://example.org.:None"], [("log", [])])],
        id="opening brace on the line after the key",
    ),
    pytest.param(
        "dns://.:53 tls://example.org:853 {\n}",
        [(["dns://.:53", "tls://example.org.:853"], [])],
        id="schemes",
    ),
    pytest.param(
        "EXAMPLE.Org. {\n}", [(["dns://example.org.:None"], [])], id="zone lower-cased, FQDN kept"
    ),
    pytest.param(
        ". {\n  log # trailing comment\n  # full-line comment\n  errors\n}",
        [(["dns://.:None"], [("log", []), ("errors", [])])],
        id="comments",
    ),
    pytest.param(
        '. {\n  answer "{{ .Name }} 60 IN A 1.2.3.4" "a # not a comment"\n}',
        [(["dns://.:None"], [("answer", ["{{ .Name }} 60 IN A 1.2.3.4", "a # not a comment"])])],
        id="quoted strings keep spaces, braces and '#'",
    ),
    pytest.param(
        '. {\n  x "say \\"hi\\"" "c:\\\\dir" \'single\'\n}',
        [(["dns://.:None"], [("x", ['say "hi"', "c:\\\\dir", "'single'"])])],
        id='only \\" is an escape inside quotes',
    ),
    pytest.param(
        '. {\n  x "" y\n}',
        [(["dns://.:None"], [("x", ["", "y"])])],
        id="empty quoted argument",
    ),
    pytest.param(
        '. {\n  x "{" "}"\n}',
        [(["dns://.:None"], [("x", ["{", "}"])])],
        id="quoted braces are arguments",
    ),
    pytest.param(
        ". {\n  x {\n  }\n}",
        [(["dns://.:None"], [("x", [], [])])],
        id="empty nested block",
    ),
    pytest.param(
        ". {\n  a 1 {\n    b 2 {\n      c 3\n    }\n    d\n  }\n}",
        [(["dns://.:None"], [("a", ["1"], [("b", ["2"], [("c", ["3"])]), ("d", [])])])],
        id="blocks nest recursively",
    ),
    pytest.param(
        ". { whoami }",
        [(["dns://.:None"], [("whoami", [])])],
        id="one-line server block",
    ),
    pytest.param(
        ". {\n  forward . 1.1.1.1 { max_fails 3 }\n}",
        [(["dns://.:None"], [("forward", [".", "1.1.1.1"], [("max_fails", ["3"])])])],
        id="one-line directive block",
    ),
    pytest.param(
        ".:53\nerrors\nforward . 1.1.1.1\n",
        [(["dns://.:53"], [("errors", []), ("forward", [".", "1.1.1.1"])])],
        id="single server block without braces",
    ),
    pytest.param(
        ".:53\n", [(["dns://.:53"], [])], id="a lone key is a server block with no directives"
    ),
    pytest.param(
        ". {\r\n  log\r\n}\r\n",
        [(["dns://.:None"], [("log", [])])],
        id="CRLF line endings",
    ),
    pytest.param(
        ". {\n}\nexample.org {\n}\n",
        [(["dns://.:None"], []), (["dns://example.org.:None"], [])],
        id="two blocks",
    ),
    pytest.param(
        ". {\n  Forward . 1.1.1.1\n  not-a-plugin\n}",
        [(["dns://.:None"], [("Forward", [".", "1.1.1.1"]), ("not-a-plugin", [])])],
        id="directive names are not validated or case-folded",
    ),
]


@pytest.mark.parametrize(("text", "expected"), GOOD)
def test_good(text: str, expected: list[Any]) -> None:
    assert corefile_shape(parse(text)) == expected


BAD = [
    pytest.param(
        ". {\n  errors\n",
        2,
        "unexpected end of file, expected '}' to close block opened at line 1",
        id="unclosed server block",
    ),
    pytest.param(
        ". {\n  health {\n    lameduck 5s\n}\n\n",
        5,
        "expected '}' to close block opened at line 1",
        id="unclosed nested block reports the outer one still open",
    ),
    pytest.param(
        ". {\n  health {\n    lameduck 5s\n",
        3,
        "close block opened at line 2",
        id="unclosed nested block",
    ),
    pytest.param(". {\n}\n}\n", 3, "unexpected '}'", id="unexpected closing brace"),
    pytest.param("}\n", 1, "unexpected '}'", id="closing brace first"),
    pytest.param("\n\n{\n}\n", 3, "expected server keys", id="opening brace with no key"),
    pytest.param(
        ". {\n  {\n  }\n}\n", 2, "expected a directive name", id="block with no directive"
    ),
    pytest.param(". {\n} log\n", 2, "unexpected 'log' after '}'", id="text after closing brace"),
    pytest.param(
        ". {\n}\nerrors\n",
        3,
        "directive 'errors' outside a server block",
        id="directive after block",
    ),
    pytest.param(
        "\nerrors\n.:53 {\n  log\n}\n",
        2,
        "directive 'errors' outside a server block",
        id="directive before block",
    ),
    pytest.param("a.org,\n{\n}\n", 2, "expected another server key after ','", id="dangling comma"),
    pytest.param("a.org,", 1, "expected another server key after ','", id="comma at end of file"),
    pytest.param(
        '. {\n  x "unterminated\n}\n', 2, "unterminated quoted string", id="unterminated quote"
    ),
    pytest.param(".:abc {\n}\n", 1, "invalid port 'abc'", id="non-numeric port"),
    pytest.param("\n.:70000 {\n}\n", 2, "port 70000 out of range", id="port out of range"),
    pytest.param("foo://. {\n}\n", 1, "unknown scheme 'foo://'", id="unknown scheme"),
    pytest.param(". {}\n", 1, "must be separated by spaces", id="braces glued to a word"),
    pytest.param(
        ". {\n}\n(snip)\n", 3, "snippet (snip) must be followed by '{'", id="snippet without block"
    ),
    pytest.param(
        "(a) {\n}\n(a) {\n}\n", 3, "snippet 'a' is already defined", id="snippet defined twice"
    ),
    pytest.param(
        ". {\n  import\n}\n", 2, "import takes exactly one argument", id="import with no argument"
    ),
    pytest.param(
        ". {\n  import a b\n}\n", 2, "import takes exactly one argument", id="import with two"
    ),
    pytest.param(
        ". {\n  import missing-snippet\n}\n",
        2,
        "unknown snippet",
        id="unknown snippet",
    ),
    pytest.param(
        ". {\n  import sub/none.conf\n}\n", 2, "no such file", id="missing file without glob"
    ),
    pytest.param(
        ". {\n  import s\n}\n(s) {\n  log\n}\n",
        2,
        "unknown snippet",
        id="snippet used before it is defined",
    ),
    pytest.param(
        "(s) {\n  log\n  import s\n}\n. {\n  import s\n}\n",
        3,
        "import cycle: s -> s",
        id="snippet imports itself",
    ),
    pytest.param(
        "(a) {\n  import b\n}\n(b) {\n  import a\n}\n. {\n  import a\n}\n",
        5,
        "import cycle: a -> b -> a",
        id="snippets import each other",
    ),
    pytest.param(
        ". {\n" + "x {\n" * 40 + "}\n" * 41, 33, "nested more than 32 deep", id="nesting bound"
    ),
]


@pytest.mark.parametrize(("text", "line", "fragment"), BAD)
def test_bad(text: str, line: int, fragment: str, tmp_path: Any) -> None:
    with pytest.raises(CorefileError) as info:
        parse(text, base_dir=str(tmp_path))
    err = info.value
    assert (err.file, err.line) == ("Corefile", line), str(err)
    assert fragment in err.message
    assert str(err) == f"Corefile:{line}: {err.message}"


def test_error_names_the_given_filename() -> None:
    with pytest.raises(CorefileError, match=r"^/etc/coredns/Corefile:3: unexpected '}'"):
        parse(". {\n}\n}\n", filename="/etc/coredns/Corefile")


def test_quoted_token_spanning_lines_keeps_start_line() -> None:
    corefile = parse('. {\n  x "a\nb\nc" y\n  z\n}\n')
    x, z = corefile.blocks[0].directives
    assert x.arg_texts() == ["a\nb\nc", "y"]
    assert [(a.line, a.quoted) for a in x.args] == [(2, True), (4, False)]
    assert (z.name, z.line) == ("z", 5)


def test_tokens_carry_file_line_and_quoted() -> None:
    corefile = parse('. {\n  forward . "1.1.1.1"\n}\n', filename="cf")
    forward = corefile.blocks[0].directives[0]
    assert forward.args == (Token(".", "cf", 2), Token("1.1.1.1", "cf", 2, quoted=True))
    assert corefile.blocks[0].keys == (Token(".", "cf", 1),)


# --- Directive helpers -------------------------------------------------------------------


def _directive(text: str) -> Directive:
    return parse(f". {{\n{text}\n}}\n").blocks[0].directives[0]


@pytest.mark.parametrize(
    ("text", "minimum", "maximum", "line", "message"),
    [
        pytest.param("cache", 1, 1, 2, "cache: expected 1 argument, got 0", id="exact, too few"),
        pytest.param("cache 1 2", 1, None, 0, "", id="open-ended maximum accepts many"),
        pytest.param(
            "cache", 2, None, 2, "cache: expected at least 2 arguments, got 0", id="at least"
        ),
        pytest.param(
            "cache 1 2 3", 1, 2, 2, "cache: expected 1..2 arguments, got 3", id="range, too many"
        ),
        pytest.param(
            'cache "1\n" 2 3',
            0,
            1,
            3,
            "cache: expected 0..1 arguments, got 3",
            id="too many points at the first surplus argument",
        ),
    ],
)
def test_expect_args(text: str, minimum: int, maximum: int | None, line: int, message: str) -> None:
    directive = _directive(text)
    if not message:
        assert directive.expect_args(minimum, maximum) == directive.arg_texts()
        return
    with pytest.raises(CorefileError) as info:
        directive.expect_args(minimum, maximum)
    assert (info.value.line, info.value.message) == (line, message)


def test_block_helpers() -> None:
    plain = _directive("errors")
    assert plain.block_items() == ()
    plain.no_block()
    with_block = _directive("health {\n  lameduck 5s\n}")
    assert [d.name for d in with_block.block_items()] == ["lameduck"]
    with pytest.raises(CorefileError, match=r"^Corefile:2: health: unexpected block"):
        with_block.no_block()
    lameduck = with_block.block_items()[0]
    err = lameduck.error("bad duration", lameduck.args[0])
    assert str(err) == "Corefile:3: lameduck: bad duration"


def test_dedented_real_world_example_matches() -> None:
    # Indentation is insignificant: the same Corefile flush-left parses the same.
    flush = "\n".join(line.strip() for line in KUBERNETES_COREFILE.splitlines())
    assert corefile_shape(parse(flush)) == corefile_shape(parse(KUBERNETES_COREFILE))
    assert textwrap.dedent(KUBERNETES_COREFILE) == KUBERNETES_COREFILE
