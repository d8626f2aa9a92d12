"""Go (RE2) patterns on Python's re: what Go's regexp matches and captures (FindStringSubmatch,
SubexpNames) for the patterns Corefiles use, and what Go refuses."""

from __future__ import annotations

import pytest

from clusterdns.plugins.template.goregex import GoRegexError, compile_go

IP = r"(^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$"


@pytest.mark.parametrize(
    ("pattern", "name", "matches", "named"),
    [
        (IP, "ip-10-0-0-1.example.", ["ip-10-0-0-1.example.", "", "10", "0", "0", "1"], {"a": "10", "d": "1"}),
        (IP, "x.ip-1-2-3-4.example.", [".ip-1-2-3-4.example.", ".", "1", "2", "3", "4"], {"c": "3"}),
        (IP, "ip-1-2-3-4.example.org.", None, {}),
        # Unanchored: found anywhere in the name, as Go's MatchString does.
        ("api.ostest.test.metalkube.org", "api.ostest.test.metalkube.org.", ["api.ostest.test.metalkube.org"], {}),
        ("api.ostest.test.metalkube.org", "myapi.ostest.test.metalkube.org.", ["api.ostest.test.metalkube.org"], {}),
        ("api.ostest.test.metalkube.org", "api-int.ostest.test.metalkube.org.", None, {}),
        (r"^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$", "a.b.c.d.internal.cloudapp.net.", ["a.b.c.d.internal.cloudapp.net."], {}),
        (r"^(?:[^.]+\.){4,}internal\.cloudapp\.net\.$", "a.b.c.internal.cloudapp.net.", None, {}),
        # Go's (?<name>) form, names Python would not take, an optional group that did not
        # take part ("" in Go), POSIX classes, \z, \Q...\E, the i flag.
        (r"^(?<host>[a-z]+)\.", "web.example.", ["web.", "web"], {"host": "web"}),
        (r"^(?P<1st>[a-z])(?P<x_2>[0-9])?", "a.", ["a", "a", ""], {"1st": "a", "x_2": ""}),
        (r"^[[:alpha:]]+-[[:digit:]]+[.]$", "abc-12.", ["abc-12."], {}),
        (r"^[[:alpha:]]+$", "[:a", None, {}),
        (r"example[.]\z", "www.example.", ["example."], {}),
        (r"\Q.*+\E", "a.*+b", [".*+"], {}),
        (r"(?i)^WWW", "www.example.", ["www"], {}),
        (r"^a(?i:B)c", "abc.", ["abc"], {}),
        # $ is the end of the text (Python's would match before a final newline).
        (r"^a$", "a\n", None, {}),
        (r"x{2,3}", "xxxx", ["xxx"], {}),
        (r"a{,2}", "a{,2}", ["a{,2}"], {}),
        (r"^\d+\w\s?$", "12_", ["12_"], {}),
    ],
)  # fmt: skip
def test_matches_as_go_does(
    pattern: str, name: str, matches: list[str] | None, named: dict[str, str]
) -> None:
    found = compile_go(pattern).submatch(name)
    if matches is None:
        assert found is None
        return
    assert found is not None
    got_matches, groups = found
    assert got_matches == matches
    # .Group holds every group by number as a string, and the named ones by name.
    for index, value in enumerate(matches):
        assert groups[str(index)] == value
    for key, value in named.items():
        assert groups[key] == value


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(a)\1", "no backreferences"),
        (r"(?=a)", "invalid or unsupported Perl syntax"),
        (r"(?<=a)b", "invalid or unsupported Perl syntax"),
        (r"(?>a)", "invalid or unsupported Perl syntax"),
        (r"a**", "invalid nested repetition operator"),
        (r"a++", "invalid nested repetition operator"),
        (r"a{2}{3}", "invalid nested repetition operator"),
        (r"a{1001}", "invalid repeat count"),
        (r"(?P<a-b>x)", "invalid named capture"),
        (r"[a", "missing closing ]"),
        (r"(a", "missing ), unterminated subpattern"),
        ("a\\", "trailing backslash"),
        (r"\pL", "Unicode classes"),
        (r"(?U)a+", "ungreedy"),
        (r"a(?i)b", "after the start of the pattern"),
        (r"[[:^alpha:]]", "negated POSIX class"),
        (r"\y", "invalid escape sequence"),
        ("a" * 10_001, "too long"),
    ],
)
def test_refused(pattern: str, message: str) -> None:
    with pytest.raises(GoRegexError) as caught:
        compile_go(pattern)
    assert message in str(caught.value)
