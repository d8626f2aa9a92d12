"""Corefile lexer: Caddyfile v1 words, quoted strings and comments, with line numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusterdns.corefile.errors import CorefileError


@dataclass(frozen=True, slots=True)
class RawToken:
    """A token before environment substitution, as the parser sees it.

    ``bol`` is true when the token starts a new line (the first token of a file or snippet
    body counts as a new line). ``chain`` is the stack of imports (files and snippets) that
    produced the token; the parser uses it to detect import cycles.
    """

    text: str
    file: str
    line: int
    quoted: bool
    bol: bool
    chain: tuple[str, ...] = ()

    def is_open(self) -> bool:
        return not self.quoted and self.text == "{"

    def is_close(self) -> bool:
        return not self.quoted and self.text == "}"

    def is_brace(self) -> bool:
        return not self.quoted and self.text in ("{", "}")


# Caddy v1 rules: '#' starts a comment anywhere outside quotes (even mid-word); a '"' opens a
# quoted string only at the start of a word; inside quotes only \" is an escape, any other
# backslash is kept as written.
_LEXEME = re.compile(
    r"""
      (?P<space>[^\S\n]+)
    | (?P<newline>\n)
    | (?P<comment>\#[^\n]*)
    | (?P<quoted>"(?:[^"\\]|\\.)*")
    | (?P<unterminated>")
    | (?P<word>[^\s\#]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _unescape(body: str) -> str:
    return _ESCAPE.sub(lambda m: m[1] if m[1] == '"' else m[0], body)


def tokenize(text: str, file: str, chain: tuple[str, ...] = ()) -> list[RawToken]:
    """Split ``text`` into tokens; raises CorefileError for an unterminated quoted string."""
    if text.startswith("\ufeff"):
        text = text[1:]
    tokens: list[RawToken] = []
    line = 1
    last_end_line = 0  # line on which the previous token ended; 0 = no token yet
    pos = 0
    while pos < len(text):
        m = _LEXEME.match(text, pos)
        assert m is not None  # the alternatives cover every character
        kind = m.lastgroup
        lexeme = m[0]
        pos = m.end()
        if kind == "newline":
            line += 1
        elif kind == "quoted" or kind == "word":
            tokens.append(
                RawToken(
                    text=_unescape(lexeme[1:-1]) if kind == "quoted" else lexeme,
                    file=file,
                    line=line,
                    quoted=kind == "quoted",
                    bol=line > last_end_line,
                    chain=chain,
                )
            )
            line += lexeme.count("\n")
            last_end_line = line
        elif kind == "unterminated":
            raise CorefileError(file, line, "unterminated quoted string: missing closing '\"'")
    return tokens


def last_line(text: str) -> int:
    """The number of the file's last line, where an 'unexpected end of file' is reported."""
    return max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
