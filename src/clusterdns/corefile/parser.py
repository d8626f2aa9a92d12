"""Corefile parser: server blocks, directives with nested blocks, imports, snippets and {$ENV}.

The grammar is CoreDNS's (Caddyfile v1): a server block is a line of keys followed by a
``{ }`` block; each line inside is a directive, whose trailing ``{`` opens a nested block.
``import`` splices the tokens of a snippet or of files in place, as Caddy does, so imported
tokens keep the file and line they were written at.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace

from clusterdns.corefile.address import parse_server_key
from clusterdns.corefile.errors import CorefileError
from clusterdns.corefile.lexer import RawToken, last_line, tokenize
from clusterdns.corefile.model import Corefile, Directive, ServerBlock, Token

log = logging.getLogger(__name__)

# Each import is counted, so an import that multiplies (a imports b twice, b imports c twice…)
# fails instead of exhausting memory. Cycles are caught exactly, before this limit.
MAX_IMPORTS = 1000
# Nested blocks recurse; bound the depth so hostile input raises CorefileError, not RecursionError.
MAX_DEPTH = 32

_ENV = re.compile(r"\{\$([^{}]+)\}|\{env\.([^{}]+)\}|\{%([^{}%]+)%\}")
_SNIPPET = re.compile(r"\((.+)\)", re.DOTALL)
_GLOB_CHARS = frozenset("*?[")


def parse(
    text: str,
    *,
    filename: str = "Corefile",
    env: Mapping[str, str] | None = None,
    base_dir: str | None = None,
) -> Corefile:
    """Parse Corefile ``text``; relative imports resolve against ``base_dir``.

    ``base_dir`` defaults to the directory of ``filename``. ``Corefile.files`` lists only
    imported files here, since the text itself was not read from disk.
    """
    if base_dir is not None:
        base = os.path.abspath(base_dir)
        identity = os.path.realpath(os.path.join(base, filename))
    else:
        base = os.path.dirname(os.path.abspath(filename))
        identity = os.path.realpath(filename)
    parser = _Parser(os.environ if env is None else env)
    return parser.run(text, text.encode("utf-8", "surrogatepass"), filename, base, identity, None)


def load(path: str, *, env: Mapping[str, str] | None = None) -> Corefile:
    """Read and parse the Corefile at ``path``; relative imports resolve against its directory."""
    data = _read_bytes(path, path, 0)
    text = _decode(data, path)
    abspath = os.path.abspath(path)
    parser = _Parser(os.environ if env is None else env)
    return parser.run(text, data, path, os.path.dirname(abspath), os.path.realpath(path), abspath)


def _read_bytes(path: str, error_file: str, error_line: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CorefileError(error_file, error_line, f"cannot read {path}: {reason}") from None


def _decode(data: bytes, file: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorefileError(file, line, "file is not valid UTF-8") from None


class _Parser:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._pending: list[RawToken] = []  # tokens still to parse, in reverse order
        self._snippets: dict[str, tuple[RawToken, ...]] = {}
        self._imports = 0
        self._dirs: dict[str, str] = {}  # token file -> directory its relative imports use
        self._files: list[str] = []
        self._read: set[str] = set()  # real paths already read (each file is hashed once)
        self._hash = hashlib.sha512()
        self._eof_file = ""
        self._eof_line = 0

    # --- entry point ---------------------------------------------------------------------

    def run(
        self,
        text: str,
        data: bytes,
        file: str,
        base: str,
        identity: str,
        disk_path: str | None,
    ) -> Corefile:
        if disk_path is not None:
            self._files.append(disk_path)
        self._read.add(identity)
        self._hash.update(data)
        self._dirs[file] = base
        self._eof_file, self._eof_line = file, last_line(text)
        self._push(tokenize(text, file, ("file:" + identity,)))
        blocks = self._server_blocks()
        return Corefile(
            blocks=tuple(blocks), files=tuple(self._files), checksum=self._hash.hexdigest()
        )

    # --- token stream --------------------------------------------------------------------

    def _push(self, tokens: Iterable[RawToken]) -> None:
        self._pending.extend(reversed(list(tokens)))

    def _pop(self) -> RawToken | None:
        return self._pending.pop() if self._pending else None

    def _peek(self) -> RawToken | None:
        return self._pending[-1] if self._pending else None

    def _subst(self, text: str) -> str:
        """Replace {$VAR}, {env.VAR} and {%VAR%} in one pass; unset variables become ''."""
        if "{" not in text:
            return text
        return _ENV.sub(lambda m: self._env.get(m[1] or m[2] or m[3], ""), text)

    def _token(self, raw: RawToken) -> Token:
        return Token(self._subst(raw.text), raw.file, raw.line, raw.quoted)

    @staticmethod
    def _err(tok: RawToken | Token, message: str) -> CorefileError:
        return CorefileError(tok.file, tok.line, message)

    def _eof_error(self, opener: RawToken) -> CorefileError:
        where = f" of {opener.file}" if opener.file != self._eof_file else ""
        return CorefileError(
            self._eof_file,
            self._eof_line,
            f"unexpected end of file, expected '}}' to close block opened at line {opener.line}{where}",
        )

    def _expect_line_end(self) -> None:
        nxt = self._peek()
        if nxt is not None and not nxt.bol and not nxt.is_close():
            raise self._err(nxt, f"unexpected {nxt.text!r} after '}}': expected a new line")

    # --- top level: server blocks and snippets -------------------------------------------

    def _server_blocks(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        seen_block = False
        while (tok := self._pop()) is not None:
            if tok.is_close():
                raise self._err(tok, "unexpected '}': no block is open")
            if tok.is_open():
                raise self._err(tok, "unexpected '{': expected server keys (zones) before '{'")
            if tok.text == "import" and not tok.quoted:
                self._import(tok)
                continue
            keys = self._keys(tok)
            snippet = _snippet_name(keys)
            opener = self._peek()
            if opener is not None and opener.is_open():
                self._pop()
                if snippet is not None:
                    self._define_snippet(snippet, keys[0], opener)
                else:
                    directives = self._directives(opener, 1)
                    blocks.append(_server_block(keys, directives))
            elif snippet is not None:
                raise self._err(keys[0], f"snippet {keys[0].text} must be followed by '{{'")
            elif seen_block:
                raise self._err(
                    tok,
                    f"directive {tok.text!r} outside a server block "
                    "(or a server key missing its '{')",
                )
            else:
                # Caddy allows a single server block without braces; it runs to end of file.
                directives = self._directives(None, 1)
                _check_braceless(keys, directives)
                blocks.append(_server_block(keys, directives))
            seen_block = True
        return blocks

    def _keys(self, first: RawToken) -> list[Token]:
        """Keys on this line, split on commas; a trailing comma continues onto the next line."""
        keys: list[Token] = []
        tok = first
        while True:
            text = self._subst(tok.text)
            keys.extend(
                Token(piece, tok.file, tok.line, tok.quoted) for piece in text.split(",") if piece
            )
            expecting = text.endswith(",")
            nxt = self._peek()
            if nxt is None or nxt.is_open():
                if expecting:
                    where = nxt if nxt is not None else tok
                    raise self._err(where, "expected another server key after ','")
                break
            if nxt.is_close():
                raise self._err(nxt, "unexpected '}' after server keys: no block is open")
            if nxt.bol and not expecting:
                break
            tok = nxt
            self._pop()
        if not keys:
            raise self._err(first, "empty server key")
        return keys

    def _define_snippet(self, name: str, key: Token, opener: RawToken) -> None:
        if name in self._snippets:
            raise self._err(key, f"snippet {name!r} is already defined")
        body: list[RawToken] = []
        depth = 1
        while True:
            tok = self._pop()
            if tok is None:
                raise self._eof_error(opener)
            if tok.is_open():
                depth += 1
            elif tok.is_close():
                depth -= 1
                if depth == 0:
                    self._expect_line_end()
                    break
            body.append(tok)
        self._snippets[name] = tuple(body)

    # --- blocks and directives -----------------------------------------------------------

    def _directives(self, opener: RawToken | None, depth: int) -> list[Directive]:
        """Directives up to the '}' matching ``opener`` (or to end of file when there is none)."""
        directives: list[Directive] = []
        while True:
            tok = self._pop()
            if tok is None:
                if opener is None:
                    return directives
                raise self._eof_error(opener)
            if tok.is_close():
                if opener is None:
                    raise self._err(tok, "unexpected '}': no block is open")
                self._expect_line_end()
                return directives
            if tok.is_open():
                raise self._err(tok, "unexpected '{': expected a directive name before '{'")
            if tok.text == "import" and not tok.quoted:
                self._import(tok)
                continue
            directives.append(self._directive(tok, depth))

    def _directive(self, name: RawToken, depth: int) -> Directive:
        args: list[Token] = []
        block: tuple[Directive, ...] | None = None
        # Arguments run to the end of the line; a '{' opens the block, a '}' on the same line
        # closes the enclosing block (the one-line form "health { lameduck 5s }").
        while (nxt := self._peek()) is not None and not nxt.bol and not nxt.is_close():
            self._pop()
            if nxt.is_open():
                if depth >= MAX_DEPTH:
                    raise self._err(nxt, f"blocks nested more than {MAX_DEPTH} deep")
                block = tuple(self._directives(nxt, depth + 1))
                break
            args.append(self._token(nxt))
        return Directive(
            name=self._subst(name.text),
            args=tuple(args),
            block=block,
            file=name.file,
            line=name.line,
        )

    # --- import --------------------------------------------------------------------------

    def _import(self, tok: RawToken) -> None:
        args: list[RawToken] = []
        while (nxt := self._peek()) is not None and not nxt.bol and not nxt.is_brace():
            args.append(nxt)
            self._pop()
        if nxt is not None and not nxt.bol and nxt.is_open():
            raise self._err(nxt, "import takes no '{' block")
        if len(args) != 1:
            raise self._err(
                tok,
                "import takes exactly one argument (a file, glob pattern or snippet name), "
                f"got {len(args)}",
            )
        pattern = self._subst(args[0].text)
        if not pattern:
            raise self._err(args[0], "import needs a file, glob pattern or snippet name")
        self._imports += 1
        if self._imports > MAX_IMPORTS:
            raise self._err(tok, f"too many imports (more than {MAX_IMPORTS})")

        if pattern in self._snippets:
            link = "snippet:" + pattern
            self._check_cycle(tok, link)
            chain = (*tok.chain, link)
            body = self._snippets[pattern]
            self._push(replace(t, chain=chain, bol=t.bol or i == 0) for i, t in enumerate(body))
            return

        base = self._dirs.get(tok.file) or os.path.dirname(tok.file)
        full = os.path.join(base, pattern)
        if _GLOB_CHARS.intersection(pattern):
            matches = sorted(p for p in glob.glob(full) if not os.path.isdir(p))
            if not matches:
                log.warning(
                    "corefile: import %s matched no files (%s:%d)", pattern, tok.file, tok.line
                )
        elif not os.path.exists(full):
            if "/" in pattern or os.sep in pattern:
                raise self._err(tok, f"import {pattern!r}: no such file: {full}")
            raise self._err(
                tok,
                f"import {pattern!r}: unknown snippet (snippets must be defined before they "
                f"are imported) and no such file: {full}",
            )
        elif os.path.isdir(full):
            raise self._err(tok, f"import {pattern!r}: {full} is a directory")
        else:
            matches = [full]

        tokens: list[RawToken] = []
        for path in matches:
            identity = os.path.realpath(path)
            link = "file:" + identity
            self._check_cycle(tok, link)
            abspath = os.path.abspath(path)
            text = self._read_import(abspath, identity, tok)
            imported = tokenize(text, abspath, (*tok.chain, link))
            _check_balanced(imported, abspath, last_line(text))
            tokens.extend(imported)
        self._push(tokens)

    def _check_cycle(self, tok: RawToken, link: str) -> None:
        if link in tok.chain:
            path = [entry.partition(":")[2] for entry in (*tok.chain, link)]
            path = path[path.index(link.partition(":")[2]) :]
            raise self._err(tok, "import cycle: " + " -> ".join(path))

    def _read_import(self, abspath: str, identity: str, tok: RawToken) -> str:
        data = _read_bytes(abspath, tok.file, tok.line)
        if identity not in self._read:
            self._read.add(identity)
            self._files.append(abspath)
            self._hash.update(data)
        return _decode(data, abspath)


def _check_balanced(tokens: list[RawToken], file: str, eof_line: int) -> None:
    """An imported file must close every block it opens, and close none it did not open.

    Caddy would splice unbalanced tokens in and report the damage far away; requiring balance
    puts the error in the imported file, where the mistake is.
    """
    open_blocks: list[RawToken] = []
    for tok in tokens:
        if tok.is_open():
            open_blocks.append(tok)
        elif tok.is_close():
            if not open_blocks:
                raise CorefileError(
                    file, tok.line, "unexpected '}': no block is open in this imported file"
                )
            open_blocks.pop()
    if open_blocks:
        raise CorefileError(
            file,
            eof_line,
            "unexpected end of file, expected '}' to close block opened at line "
            f"{open_blocks[-1].line}",
        )


def _snippet_name(keys: list[Token]) -> str | None:
    if len(keys) != 1:
        return None
    m = _SNIPPET.fullmatch(keys[0].text)
    return m[1] if m is not None else None


def _server_block(keys: list[Token], directives: list[Directive]) -> ServerBlock:
    addresses = [address for key in keys for address in parse_server_key(key)]
    return ServerBlock(
        keys=tuple(keys),
        addresses=tuple(addresses),
        directives=tuple(directives),
        file=keys[0].file,
        line=keys[0].line,
    )


def _check_braceless(keys: list[Token], directives: list[Directive]) -> None:
    """Reject the braceless form when it is really directives written before a server block.

    Directive names never contain '.', ':' or '/', so a "directive" with a block whose name
    does is a server block, and the "keys" line above it was a stray directive.
    """
    for directive in directives:
        if directive.block is not None and any(c in directive.name for c in ".:/"):
            raise CorefileError(
                keys[0].file,
                keys[0].line,
                f"directive {keys[0].text!r} outside a server block "
                f"(server block {directive.name!r} starts at line {directive.line})",
            )
