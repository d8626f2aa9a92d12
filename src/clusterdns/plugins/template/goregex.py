"""Go (RE2) regular expressions, as ``template``'s ``match`` takes them, in Python's ``re``.

Most RE2 syntax means the same in Python. The differences are translated:
``(?<name>...)`` to ``(?P<name>...)``; group names Python would refuse (RE2 allows any
word characters) renamed, the Go names kept for ``.Group``; ``\\z`` to ``\\Z``;
``\\Q...\\E`` quoted; POSIX classes (``[[:alpha:]]``) expanded; ``$`` to "end of text"
(RE2 without ``(?m)`` does not match before a final newline). ``\\d``, ``\\w``, ``\\s``
and ``\\b`` are ASCII-only as in RE2.

What RE2 does not accept (backreferences, lookaround, possessive or nested
repetition, atomic groups, conditionals) is refused, as CoreDNS refuses it, and so
is RE2 syntax that Python lacks (``\\pL``, ``(?U)``, flags after the start): the
error says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PATTERN = 10_000

POSIX_CLASSES = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_GO_NAME = re.compile(r"[A-Za-z0-9_]+")


class GoRegexError(ValueError):
    """A pattern RE2 refuses, or RE2 syntax clusterdns cannot translate."""


@dataclass(frozen=True)
class GoRegex:
    """A compiled pattern and the Go names of its groups (index → name, "" if unnamed)."""

    source: str
    compiled: re.Pattern[str]
    group_names: tuple[str, ...]  # index 0 is the whole match

    def submatch(self, text: str) -> tuple[list[str], dict[str, str]] | None:
        """Go's FindStringSubmatch and the ``.Group`` map CoreDNS builds from it."""
        found = self.compiled.search(text)
        if found is None:
            return None
        matches = [found.group(0)] + [g if g is not None else "" for g in found.groups()]
        groups = {str(i): m for i, m in enumerate(matches)}
        for i, m in enumerate(matches):
            if self.group_names[i]:
                groups[self.group_names[i]] = m
        return matches, groups


def compile_go(pattern: str) -> GoRegex:
    if len(pattern) > MAX_PATTERN:
        raise GoRegexError(f"regex pattern too long: {len(pattern)} > {MAX_PATTERN}")
    translated, names = _translate(pattern)
    try:
        compiled = re.compile(translated, re.ASCII)
    except re.error as err:
        raise GoRegexError(str(err)) from None
    return GoRegex(pattern, compiled, ("", *names))


def _translate(pattern: str) -> tuple[str, list[str]]:
    out: list[str] = []
    names: list[str] = []
    i = 0
    n = len(pattern)
    at_start = True  # only flags here may be global in Python
    multiline = re.match(r"\(\?[imsU]*m[imsU]*\)", pattern) is not None
    previous_quantifier = False
    while i < n:
        ch = pattern[i]
        quantifier = False
        if ch == "\\":
            piece, i = _escape(pattern, i, in_class=False)
            out.append(piece)
        elif ch == "[":
            piece, i = _char_class(pattern, i)
            out.append(piece)
        elif ch == "(":
            if pattern.startswith("(?", i):
                piece, i, name = _group_start(pattern, i, at_start)
                out.append(piece)
                if name is not None:
                    names.append(name)
                if piece == "":
                    continue
            else:
                names.append("")
                out.append("(")
                i += 1
        elif ch in "*+?":
            if previous_quantifier and ch != "?":
                raise GoRegexError(
                    f"invalid nested repetition operator: `{pattern[i - 1 : i + 1]}`"
                )
            if previous_quantifier and ch == "?" and out and out[-1].endswith("?"):
                raise GoRegexError(
                    f"invalid nested repetition operator: `{pattern[i - 1 : i + 1]}`"
                )
            out.append(ch)
            i += 1
            quantifier = ch != "?" or not previous_quantifier
        elif ch == "{":
            found = re.match(r"\{(\d+)(,(\d*))?\}", pattern[i:])
            if found:
                if previous_quantifier:
                    raise GoRegexError(f"invalid nested repetition operator: `{found.group(0)}`")
                for number in (found.group(1), found.group(3)):
                    if number and int(number) > 1000:
                        raise GoRegexError(f"invalid repeat count: `{found.group(0)}`")
                out.append(found.group(0))
                i += len(found.group(0))
                quantifier = True
            else:
                out.append("\\{")
                i += 1
        elif ch == "$" and not multiline:
            out.append("(?!(?s:.))")  # end of text, not "before a final newline"
            i += 1
        else:
            out.append(ch)
            i += 1
        previous_quantifier = quantifier
        at_start = False
    return "".join(out), names


def _escape(pattern: str, i: int, *, in_class: bool) -> tuple[str, int]:
    if i + 1 >= len(pattern):
        raise GoRegexError("trailing backslash at end of expression")
    ch = pattern[i + 1]
    if ch == "Q" and not in_class:
        end = pattern.find("\\E", i + 2)
        literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
        return re.escape(literal), len(pattern) if end < 0 else end + 2
    if ch == "z":
        return "\\Z", i + 2
    if ch in "pP":
        raise GoRegexError(
            f"Unicode classes (\\{ch}...) are not supported by clusterdns (Python's re lacks them)"
        )
    if ch == "C":
        raise GoRegexError("\\C (any byte) is not supported by clusterdns")
    if ch.isdigit() and ch != "0":
        raise GoRegexError(f"invalid escape sequence: `\\{ch}` (RE2 has no backreferences)")
    if ch in "AbBdDsSwWfnrtv0x" or not ch.isalnum():
        if ch == "x" and pattern.startswith("{", i + 2):
            end = pattern.find("}", i + 3)
            if end < 0:
                raise GoRegexError("invalid escape sequence: `\\x{`")
            return f"\\U{int(pattern[i + 3 : end], 16):08x}", end + 1
        return pattern[i : i + 2], i + 2
    raise GoRegexError(f"invalid escape sequence: `\\{ch}`")


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    out = ["["]
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        out.append("^")
        j += 1
    first = True
    while j < len(pattern):
        ch = pattern[j]
        if ch == "]" and not first:
            out.append("]")
            return "".join(out), j + 1
        first = False
        if ch == "[" and pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            name = pattern[j + 2 : end] if end >= 0 else ""
            negated = name.startswith("^")
            if end >= 0 and name.lstrip("^") in POSIX_CLASSES:
                if negated:
                    raise GoRegexError(f"negated POSIX class [:{name}:] is not supported")
                out.append(POSIX_CLASSES[name])
                j = end + 2
                continue
            out.append("\\[")
            j += 1
        elif ch == "\\":
            piece, j = _escape(pattern, j, in_class=True)
            out.append(piece)
        elif ch == "]":
            out.append("\\]")
            j += 1
        elif ch == "[":
            out.append("\\[")
            j += 1
        elif ch in "&~|-" and pattern.startswith(ch * 2, j):
            # Python warns about (and may one day change) doubled set operators.
            out.append("\\" + ch + "\\" + ch)
            j += 2
        else:
            out.append(ch)
            j += 1
    raise GoRegexError(f"missing closing ]: `{pattern[i:]}`")


def _group_start(pattern: str, i: int, at_start: bool) -> tuple[str, int, str | None]:
    """A ``(?...`` construct: the Python text, where parsing resumes, the group's name
    (None when the construct is not a capture group)."""
    rest = pattern[i + 2 :]
    named = re.match(r"P?<([^>]*)>", rest)
    if named and not rest.startswith(("<=", "<!")):
        name = named.group(1)
        if not _GO_NAME.fullmatch(name):
            raise GoRegexError(f"invalid named capture: `(?{named.group(0)}`")
        # Python wants identifiers; the Go name is kept aside.
        return f"(?P<_g{_count_groups(pattern, i)}>", i + 2 + len(named.group(0)), name
    if rest.startswith(":"):
        return "(?:", i + 3, None
    flags = re.match(r"([imsU]*)(-([imsU]*))?([:)])", rest)
    if flags:
        on, off, end = flags.group(1), flags.group(3) or "", flags.group(4)
        if "U" in on + off:
            raise GoRegexError("the (?U) flag (ungreedy) is not supported by clusterdns")
        if end == ":":
            scoped = on + ("-" + off if off else "")
            return f"(?{scoped}:", i + 2 + len(flags.group(0)), None
        if off:
            raise GoRegexError(f"clearing flags (`(?{flags.group(0)}`) is not supported")
        if not at_start:
            raise GoRegexError(
                f"flags (`(?{flags.group(0)}`) after the start of the pattern are not supported"
            )
        return f"(?{on})", i + 2 + len(flags.group(0)), None
    raise GoRegexError(f"invalid or unsupported Perl syntax: `(?{rest[:1]}`")


def _count_groups(pattern: str, end: int) -> int:
    """How many capture groups open before ``end``, plus one: this group's index."""
    count = 0
    i = 0
    in_class = False
    while i < end:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
            if pattern.startswith("[]", i) or pattern.startswith("[^]", i):
                i += 2
        elif ch == "(" and (
            not pattern.startswith("(?", i) or re.match(r"\(\?P?<\w+>", pattern[i:])
        ):
            count += 1
        i += 1
    return count + 1
