"""The subset of Go's text/template that Corefile templates use, in Python.

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trim markers and
``{{/* comments */}}``; pipelines (``a | b``) of commands whose operands are fields
(``.Name``, ``.Group.a``, ``$.Zone``, ``(index .Message.Question 0).Name``), variables
(``$x := ...``, ``$x = ...``, ``$``), string, raw-string, character, number, bool and
nil literals and parenthesised pipelines; ``if``/``else if``/``else``/``end``,
``with`` and ``range``; the functions CoreDNS adds (``parseInt``) and Go's builtins
``index``, ``len``, ``slice``, ``print``, ``printf``, ``println``, ``not``, ``and``,
``or``, ``eq``, ``ne``, ``lt``, ``le``, ``gt``, ``ge``, ``html``, ``urlquery``.

Not supported (an error at setup that says so): ``define``, ``template``, ``block``,
``break``, ``continue``, and the builtins ``call`` and ``js``.

Values follow Go's: a map's missing key prints ``<no value>`` (``index`` gives ""),
``index`` out of range and a failing ``parseInt`` stop the template with an error.
Structs (the DNS message and question) are :class:`GoStruct`.
"""

from __future__ import annotations

import html
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KEYWORDS = frozenset(
    {"if", "else", "end", "with", "range", "define", "template", "block", "break", "continue"}
)
UNSUPPORTED_KEYWORDS = frozenset({"define", "template", "block", "break", "continue"})


class TemplateSyntaxError(Exception):
    """The template does not parse (or uses a construct outside the subset)."""


class TemplateExecError(Exception):
    """The template failed while running (Go: "error calling index: ...")."""


class _NoValue:
    """Go's invalid reflect.Value: a map's missing key; prints ``<no value>``."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


class GoStruct:
    """A Go struct: named fields, methods callable with arguments, and its String()."""

    def __init__(
        self,
        type_name: str,
        fields: Mapping[str, Any],
        text: str | None = None,
        methods: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        self.type_name = type_name
        self.fields = dict(fields)
        self.text = text
        self.methods = dict(methods or {})

    def __repr__(self) -> str:
        return f"GoStruct({self.type_name})"


# -- lexing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tok:
    kind: str  # field, var, ident, string, number, char, bool, nil, ( ) | := = , dot eof
    value: Any
    pos: int


def _is_space(ch: str) -> bool:
    return ch in " \t\r\n"


def _split(text: str) -> list[tuple[str, str | tuple[str, int]]]:
    """Text and action pieces: ("text", str) or ("action", (inside, offset))."""
    pieces: list[tuple[str, str | tuple[str, int]]] = []
    pos = 0
    trim_next = False
    while True:
        start = text.find("{{", pos)
        chunk = text[pos:] if start < 0 else text[pos:start]
        if trim_next:
            chunk = chunk.lstrip(" \t\r\n")
        if start < 0:
            if chunk:
                pieces.append(("text", chunk))
            return pieces
        inner = start + 2
        if text.startswith("-", inner) and inner + 1 < len(text) and _is_space(text[inner + 1]):
            chunk = chunk.rstrip(" \t\r\n")
            inner += 2
        if chunk:
            pieces.append(("text", chunk))
        end = _find_close(text, inner)
        if end < 0:
            raise TemplateSyntaxError(f"unclosed action at column {start + 1}")
        body_end = end
        trim_next = False
        if end >= 2 and text[end - 1] == "-" and _is_space(text[end - 2]):
            body_end = end - 2
            trim_next = True
        body = text[inner:body_end]
        stripped = body.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateSyntaxError(f"unclosed comment at column {start + 1}")
        else:
            pieces.append(("action", (body, inner)))
        pos = end + 2


def _find_close(text: str, pos: int) -> int:
    """The index of the ``}}`` ending the action that starts at ``pos`` (quotes skipped)."""
    i = pos
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            i += 1
            while i < len(text) and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
            if i >= len(text):
                raise TemplateSyntaxError(f"unterminated quoted string at column {pos + 1}")
        elif ch == "`":
            close = text.find("`", i + 1)
            if close < 0:
                return -1
            i = close
        elif text.startswith("}}", i):
            return i
        i += 1
    return -1


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a"}
_ESCAPES.update({"b": "\b", "f": "\f", "v": "\v"})


def _unquote(body: str, pos: int) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= len(body):
            break
        esc = body[i]
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
            i += 1
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i + 1 : i + 1 + width]
            try:
                out.append(chr(int(digits, 16)))
            except ValueError:
                raise TemplateSyntaxError(f"bad escape in string at column {pos + 1}") from None
            i += 1 + width
        elif esc in "01234567":
            out.append(chr(int(body[i : i + 3], 8)))
            i += 3
        else:
            raise TemplateSyntaxError(f"unknown escape \\{esc} in string at column {pos + 1}")
    return "".join(out)


def _lex(body: str, offset: int) -> list[Tok]:
    toks: list[Tok] = []
    i = 0
    n = len(body)
    while i < n:
        ch = body[i]
        pos = offset + i
        if _is_space(ch):
            i += 1
        elif ch in "()|,":
            toks.append(Tok(ch, ch, pos))
            i += 1
        elif body.startswith(":=", i):
            toks.append(Tok(":=", ":=", pos))
            i += 2
        elif ch == "=":
            toks.append(Tok("=", "=", pos))
            i += 1
        elif ch == '"':
            j = i + 1
            while j < n and body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            if j >= n:
                raise TemplateSyntaxError(f"unterminated quoted string at column {pos + 1}")
            toks.append(Tok("string", _unquote(body[i + 1 : j], pos), pos))
            i = j + 1
        elif ch == "`":
            j = body.find("`", i + 1)
            if j < 0:
                raise TemplateSyntaxError(f"unterminated raw string at column {pos + 1}")
            toks.append(Tok("string", body[i + 1 : j], pos))
            i = j + 1
        elif ch == "'":
            j = i + 1
            while j < n and body[j] != "'":
                j += 2 if body[j] == "\\" else 1
            text = _unquote(body[i + 1 : j], pos)
            if j >= n or len(text) != 1:
                raise TemplateSyntaxError(f"bad character constant at column {pos + 1}")
            toks.append(Tok("number", ord(text), pos))
            i = j + 1
        elif ch == "." and (i + 1 >= n or not (body[i + 1].isalpha() or body[i + 1] == "_")):
            if i + 1 < n and body[i + 1].isdigit():
                j = _number_end(body, i)
                toks.append(Tok("number", _number(body[i:j], pos), pos))
                i = j
            else:
                toks.append(Tok("dot", ".", pos))
                i += 1
        elif ch == "." or ch == "$":
            j = i + 1
            while j < n and (body[j].isalnum() or body[j] == "_"):
                j += 1
            name = body[i + 1 : j]
            if ch == "$":
                toks.append(Tok("var", "$" + name, pos))
            else:
                toks.append(Tok("field", name, pos))
            i = j
        elif ch.isdigit() or (ch in "+-" and i + 1 < n and body[i + 1].isdigit()):
            j = _number_end(body, i)
            toks.append(Tok("number", _number(body[i:j], pos), pos))
            i = j
        elif ch.isalpha() or ch == "_":
            j = i
            while j < n and (body[j].isalnum() or body[j] == "_"):
                j += 1
            word = body[i:j]
            if word in ("true", "false"):
                toks.append(Tok("bool", word == "true", pos))
            elif word == "nil":
                toks.append(Tok("nil", None, pos))
            else:
                toks.append(Tok("ident", word, pos))
            i = j
        else:
            raise TemplateSyntaxError(f"unexpected {ch!r} in action at column {pos + 1}")
    toks.append(Tok("eof", None, offset + n))
    return toks


def _number_end(body: str, i: int) -> int:
    j = i + 1
    while j < len(body) and (body[j].isalnum() or body[j] in "._+-"):
        if body[j] in "+-" and body[j - 1] not in "eEpP":
            break
        j += 1
    return j


def _number(text: str, pos: int) -> int | float:
    clean = text.replace("_", "")
    try:
        return int(clean, 0)
    except ValueError:
        pass
    try:
        return float(clean)
    except ValueError:
        raise TemplateSyntaxError(f"bad number syntax {text!r} at column {pos + 1}") from None


# -- the tree ---------------------------------------------------------------------------------


@dataclass
class Operand:
    """One argument of a command: kind is field, var, dot, literal, ident or pipe."""

    kind: str
    value: Any
    chain: tuple[str, ...] = ()
    pos: int = 0


@dataclass
class Command:
    args: list[Operand]
    pos: int


@dataclass
class Pipeline:
    commands: list[Command]
    decl: list[str] = field(default_factory=list)
    assign: bool = False  # "=" rather than ":="
    pos: int = 0


@dataclass
class Node:
    kind: str  # text, action, if, with, range
    text: str = ""
    pipe: Pipeline | None = None
    body: list[Node] = field(default_factory=list)
    otherwise: list[Node] = field(default_factory=list)


class _Parser:
    def __init__(self, text: str, functions: Mapping[str, Callable[..., Any]]) -> None:
        self.functions = functions
        self.pieces = _split(text)
        self.index = 0
        self.fields_used: set[str] = set()
        # The rest of an {{else ...}} action, read by the if/with/range it closes.
        self.pending_else: list[Tok] = []

    def parse(self) -> list[Node]:
        nodes, end = self._list()
        if end is not None:
            raise TemplateSyntaxError(f"unexpected {{{{{end}}}}}")
        return nodes

    def _list(self) -> tuple[list[Node], str | None]:
        """Nodes up to an ``end`` or ``else`` (returned as the second item) or the end."""
        nodes: list[Node] = []
        while self.index < len(self.pieces):
            kind, content = self.pieces[self.index]
            self.index += 1
            if kind == "text":
                assert isinstance(content, str)
                nodes.append(Node("text", text=content))
                continue
            assert isinstance(content, tuple)
            body, offset = content
            toks = _lex(body, offset)
            first = toks[0]
            if first.kind == "ident" and first.value in KEYWORDS:
                word = first.value
                if word in UNSUPPORTED_KEYWORDS:
                    raise TemplateSyntaxError(
                        f"{{{{{word}}}}} is not supported by clusterdns's template engine "
                        f"(column {first.pos + 1})"
                    )
                if word == "end":
                    self._expect_eof(toks, 1)
                    return nodes, "end"
                if word == "else":
                    self.pending_else = toks[1:]
                    return nodes, "else"
                nodes.append(self._control(word, toks[1:], first.pos))
                continue
            pipe = self._pipeline(toks, 0, ("eof",))[0]
            nodes.append(Node("action", pipe=pipe))
        return nodes, None

    def _control(self, word: str, toks: list[Tok], pos: int) -> Node:
        if toks[0].kind == "eof":
            raise TemplateSyntaxError(f"missing value for {word} at column {pos + 1}")
        pipe = self._pipeline(toks, 0, ("eof",), allow_two=word == "range")[0]
        node = Node(word, pipe=pipe)
        node.body, end = self._list()
        if end is None:
            raise TemplateSyntaxError(f"unexpected EOF: {{{{{word}}}}} without {{{{end}}}}")
        if end == "else":
            rest = self.pending_else
            if rest and rest[0].kind == "ident" and rest[0].value in ("if", "with"):
                # {{else if x}} is {{else}}{{if x}}...{{end}} sharing this {{end}}.
                node.otherwise = [self._control(rest[0].value, rest[1:], rest[0].pos)]
                return node
            self._expect_eof(rest, 0)
            node.otherwise, end = self._list()
            if end != "end":
                raise TemplateSyntaxError(f"expected {{{{end}}}} after {{{{else}}}} in {word}")
        return node

    @staticmethod
    def _expect_eof(toks: list[Tok], index: int) -> None:
        if toks[index].kind != "eof":
            raise TemplateSyntaxError(f"unexpected {toks[index].value!r} in action")

    def _pipeline(
        self, toks: list[Tok], i: int, stop: tuple[str, ...], *, allow_two: bool = False
    ) -> tuple[Pipeline, int]:
        pipe = Pipeline([], pos=toks[i].pos)
        # Declarations: $x := ..., $x = ..., $i, $e := ... (range).
        if toks[i].kind == "var":
            if toks[i + 1].kind in (":=", "="):
                pipe.decl = [toks[i].value]
                pipe.assign = toks[i + 1].kind == "="
                i += 2
            elif (
                allow_two
                and toks[i + 1].kind == ","
                and toks[i + 2].kind == "var"
                and toks[i + 3].kind == ":="
            ):
                pipe.decl = [toks[i].value, toks[i + 2].value]
                i += 4
        while True:
            command, i = self._command(toks, i, stop)
            pipe.commands.append(command)
            if toks[i].kind == "|":
                i += 1
                continue
            if toks[i].kind in stop:
                return pipe, i
            raise TemplateSyntaxError(f"unexpected {toks[i].value!r} at column {toks[i].pos + 1}")

    def _command(self, toks: list[Tok], i: int, stop: tuple[str, ...]) -> tuple[Command, int]:
        command = Command([], toks[i].pos)
        while toks[i].kind not in stop and toks[i].kind != "|":
            operand, i = self._operand(toks, i)
            command.args.append(operand)
        if not command.args:
            raise TemplateSyntaxError(f"missing value for command at column {toks[i].pos + 1}")
        return command, i

    def _operand(self, toks: list[Tok], i: int) -> tuple[Operand, int]:
        tok = toks[i]
        i += 1
        if tok.kind == "field":
            self.fields_used.add(tok.value)
            operand = Operand("dot", None, pos=tok.pos)
            chain = [tok.value]
        elif tok.kind == "var":
            operand = Operand("var", tok.value, pos=tok.pos)
            chain = []
        elif tok.kind == "dot":
            operand = Operand("dot", None, pos=tok.pos)
            chain = []
        elif tok.kind in ("string", "number", "bool", "nil"):
            return Operand("literal", tok.value, pos=tok.pos), i
        elif tok.kind == "ident":
            if tok.value in KEYWORDS:
                raise TemplateSyntaxError(f"unexpected {tok.value!r} at column {tok.pos + 1}")
            if tok.value not in self.functions:
                raise TemplateSyntaxError(
                    f'function "{tok.value}" not defined'
                    + (
                        " (not supported by clusterdns's template engine)"
                        if tok.value in ("call", "js")
                        else ""
                    )
                )
            return Operand("ident", tok.value, pos=tok.pos), i
        elif tok.kind == "(":
            pipe, i = self._pipeline(toks, i, (")",))
            i += 1
            operand = Operand("pipe", pipe, pos=tok.pos)
            chain = []
        else:
            raise TemplateSyntaxError(f"unexpected {tok.value!r} at column {tok.pos + 1}")
        # Field chains: .A.B, $x.A, (pipe).A (no space before each dot).
        while toks[i].kind == "field" and toks[i].pos == _chain_end(toks[i - 1]):
            chain.append(toks[i].value)
            if tok.kind == "var" and tok.value == "$" and len(chain) == 1:
                self.fields_used.add(toks[i].value)
            i += 1
        operand.chain = tuple(chain)
        if not chain and (tok.kind == "dot" or tok.value == "$"):
            self.fields_used.add("*")  # the whole data (or whatever dot is): anything
        return operand, i


def _chain_end(tok: Tok) -> int:
    """Where a token that may carry a field chain ends (fields chain without spaces)."""
    if tok.kind == "field":
        return tok.pos + 1 + len(tok.value)
    if tok.kind == "var":
        return tok.pos + len(tok.value)
    if tok.kind == ")":
        return tok.pos + 1
    return -1


# -- running ----------------------------------------------------------------------------------


def _truth(value: Any) -> bool:
    if value is NO_VALUE or value is None:
        return False
    if isinstance(value, GoStruct):
        return True
    return bool(value)


def go_format(value: Any) -> str:
    """fmt's %v of a value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if value is None:
        return "<nil>"
    if value is NO_VALUE:
        return "<no value>"
    if isinstance(value, GoStruct):
        if value.text is not None:
            return value.text
        return "{" + " ".join(go_format(v) for v in value.fields.values()) + "}"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, Sequence):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    return str(value)


def _type_name(value: Any) -> str:
    if isinstance(value, GoStruct):
        return value.type_name
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, Mapping):
        return "map[string]string"
    if isinstance(value, Sequence):
        return "[]string"
    return type(value).__name__


class Template:
    """A parsed template; ``execute(data)`` renders it or raises TemplateExecError."""

    def __init__(
        self, name: str, text: str, functions: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        self.name = name
        self.text = text
        self.functions = {**BUILTINS, **(functions or {})}
        parser = _Parser(text, self.functions)
        self.nodes = parser.parse()
        # Top-level fields of the data the template reads (.Name, $.Remote, ...; "*" for
        # a bare dot): what its output may depend on (a superset: fields read inside
        # with/range count too).
        self.fields_used: frozenset[str] = frozenset(parser.fields_used)

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._walk(self.nodes, data, {"$": data}, out)
        return "".join(out)

    def _walk(self, nodes: list[Node], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
                continue
            assert node.pipe is not None
            if node.kind == "action":
                value = self._pipe(node.pipe, dot, scope)
                if not node.pipe.decl:
                    out.append(go_format(value))
            elif node.kind in ("if", "with"):
                inner = dict(scope)
                value = self._pipe(node.pipe, dot, inner)
                if _truth(value):
                    self._walk(node.body, value if node.kind == "with" else dot, inner, out)
                else:
                    self._walk(node.otherwise, dot, inner, out)
            elif node.kind == "range":
                self._range(node, dot, scope, out)

    def _range(self, node: Node, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
        assert node.pipe is not None
        pipe = Pipeline(node.pipe.commands, pos=node.pipe.pos)
        value = self._pipe(pipe, dot, scope)
        if isinstance(value, int) and not isinstance(value, bool):
            items: list[tuple[Any, Any]] = [(i, i) for i in range(value)]
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, Sequence) and not isinstance(value, str):
            items = list(enumerate(value))
        elif value is None or value is NO_VALUE:
            items = []
        else:
            raise TemplateExecError(f"range can't iterate over {go_format(value)}")
        if not items:
            self._walk(node.otherwise, dot, dict(scope), out)
        for key, item in items:
            inner = dict(scope)
            if len(node.pipe.decl) == 1:
                inner[node.pipe.decl[0]] = item
            elif len(node.pipe.decl) == 2:
                inner[node.pipe.decl[0]] = key
                inner[node.pipe.decl[1]] = item
            self._walk(node.body, item, inner, out)

    def _pipe(self, pipe: Pipeline, dot: Any, scope: dict[str, Any]) -> Any:
        value: Any = NO_VALUE
        final: tuple[Any, ...] = ()
        for command in pipe.commands:
            value = self._command(command, dot, scope, final)
            final = (value,)
        for name in pipe.decl:
            if pipe.assign and name not in scope:
                raise TemplateExecError(f"undefined variable: {name}")
            scope[name] = value
        return value

    def _command(
        self, command: Command, dot: Any, scope: dict[str, Any], final: tuple[Any, ...]
    ) -> Any:
        head = command.args[0]
        rest = command.args[1:]
        if head.kind == "ident":
            function = self.functions[head.value]
            if head.value in ("and", "or"):
                return self._and_or(head.value, rest, dot, scope, final)
            args = [self._operand(arg, dot, scope) for arg in rest] + list(final)
            try:
                return function(*args)
            except TemplateExecError as err:
                raise TemplateExecError(f"error calling {head.value}: {err}") from None
            except (TypeError, ValueError, IndexError, KeyError) as err:
                raise TemplateExecError(f"error calling {head.value}: {err}") from None
        if rest or final:
            # A method that takes arguments (.Meta "name"), else an error as in Go.
            args = [self._operand(arg, dot, scope) for arg in rest] + list(final)
            return self._operand(head, dot, scope, args)
        return self._operand(head, dot, scope)

    def _and_or(
        self,
        which: str,
        rest: list[Operand],
        dot: Any,
        scope: dict[str, Any],
        final: tuple[Any, ...],
    ) -> Any:
        if not rest and not final:
            raise TemplateExecError(f"wrong number of args for {which}: want at least 1 got 0")
        value: Any = None
        for arg in rest:
            value = self._operand(arg, dot, scope)
            if _truth(value) == (which == "or"):
                return value
        if final:
            value = final[-1]
        return value

    def _operand(
        self, operand: Operand, dot: Any, scope: dict[str, Any], args: list[Any] | None = None
    ) -> Any:
        if operand.kind == "literal":
            if args:
                raise TemplateExecError(f"can't give argument to non-function {operand.value!r}")
            return operand.value
        if operand.kind == "ident":
            return self.functions[operand.value]()
        if operand.kind == "var":
            if operand.value not in scope:
                raise TemplateExecError(f"undefined variable: {operand.value}")
            value = scope[operand.value]
        elif operand.kind == "pipe":
            value = self._pipe(operand.value, dot, dict(scope))
        else:
            value = dot
        chain = operand.chain
        for index, name in enumerate(chain):
            last = index == len(chain) - 1
            value = _field(value, name, args if last else None)
        if args and not chain:
            raise TemplateExecError("can't give argument to non-function")
        return value


def _field(value: Any, name: str, args: list[Any] | None) -> Any:
    if isinstance(value, GoStruct):
        if name in value.methods:
            return value.methods[name](*(args or []))
        if args:
            raise TemplateExecError(f"{name} has arguments but cannot be invoked as function")
        if name in value.fields:
            return value.fields[name]
        raise TemplateExecError(f"can't evaluate field {name} in type {value.type_name}")
    if args:
        raise TemplateExecError(f"{name} is not a method but has arguments")
    if isinstance(value, Mapping):
        return value.get(name, NO_VALUE)
    if value is None or value is NO_VALUE:
        raise TemplateExecError(f"nil pointer evaluating {name}")
    raise TemplateExecError(f"can't evaluate field {name} in type {_type_name(value)}")


# -- functions --------------------------------------------------------------------------------


def _index(item: Any, *indexes: Any) -> Any:
    for key in indexes:
        if isinstance(item, Mapping):
            if not isinstance(key, str):
                raise TemplateExecError(f"value has type {_type_name(key)}; should be string")
            item = item.get(key, "")
        elif isinstance(item, Sequence):
            if not isinstance(key, int) or isinstance(key, bool):
                raise TemplateExecError(f"cannot index slice/array with type {_type_name(key)}")
            if key < 0 or key >= len(item):
                raise TemplateExecError(f"index out of range: {key}")
            item = item[key]
        elif item is None or item is NO_VALUE:
            raise TemplateExecError("index of untyped nil")
        else:
            raise TemplateExecError(f"can't index item of type {_type_name(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if not isinstance(item, Sequence):
        raise TemplateExecError(f"can't slice item of type {_type_name(item)}")
    bounds = [int(i) for i in indexes]
    if len(bounds) > 2:
        raise TemplateExecError("too many slice indexes")
    start = bounds[0] if bounds else 0
    stop = bounds[1] if len(bounds) > 1 else len(item)
    if not 0 <= start <= stop <= len(item):
        raise TemplateExecError(f"index out of range: {stop}")
    return item[start:stop]


def _len(item: Any) -> int:
    if isinstance(item, GoStruct) or item is None or item is NO_VALUE or isinstance(item, int):
        raise TemplateExecError(f"len of type {_type_name(item)}")
    return len(item)


def parse_uint(text: Any, base: Any, bits: Any) -> int:
    """strconv.ParseUint, as CoreDNS exposes it to templates as ``parseInt``."""
    if not isinstance(text, str):
        raise TemplateExecError(f"wrong type for value; expected string; got {_type_name(text)}")
    if not isinstance(base, int) or not isinstance(bits, int):
        raise TemplateExecError("wrong type for value; expected int")
    syntax = f'strconv.ParseUint: parsing "{text}": invalid syntax'
    if bits == 0:
        bits = 64
    if not 0 < bits <= 64:
        raise TemplateExecError(f'strconv.ParseUint: parsing "{text}": invalid bit size {bits}')
    digits = text.replace("_", "") if base == 0 else text
    if not digits or digits[0] in "+-" or digits != digits.strip():
        raise TemplateExecError(syntax)
    if base == 0:
        base = 10
        lower = digits.lower()
        for prefix, prefix_base in (("0x", 16), ("0b", 2), ("0o", 8)):
            if lower.startswith(prefix):
                digits, base = digits[2:], prefix_base
                break
        else:
            if len(digits) > 1 and digits[0] == "0":
                digits, base = digits[1:], 8
    elif not 2 <= base <= 36:
        raise TemplateExecError(f'strconv.ParseUint: parsing "{text}": invalid base {base}')
    try:
        value = int(digits, base)
    except ValueError:
        raise TemplateExecError(syntax) from None
    if value >= 1 << bits:
        raise TemplateExecError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def _basic(value: Any) -> Any:
    if isinstance(value, (str, int, float)) or value is None:
        return value
    raise TemplateExecError(f"invalid type for comparison: {_type_name(value)}")


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise TemplateExecError("missing argument for comparison")
    left = _basic(first)
    for other in others:
        right = _basic(other)
        if isinstance(left, str) != isinstance(right, str):
            raise TemplateExecError("incompatible types for comparison")
        if left == right:
            return True
    return False


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        a, b = _basic(left), _basic(right)
        if isinstance(a, str) != isinstance(b, str) or a is None or b is None:
            raise TemplateExecError("incompatible types for comparison")
        return op(a, b)

    return compare


def _sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_format(arg))
    return "".join(out)


def _sprintf(form: Any, *args: Any) -> str:
    if not isinstance(form, str):
        raise TemplateExecError("printf format must be a string")
    out: list[str] = []
    i = 0
    arg_index = 0
    while i < len(form):
        ch = form[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        j = i + 1
        while j < len(form) and form[j] in "+-# 0123456789.":
            j += 1
        if j >= len(form):
            out.append("%!(NOVERB)")
            break
        flags, verb = form[i + 1 : j], form[j]
        i = j + 1
        if verb == "%":
            out.append("%")
            continue
        if arg_index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[arg_index]
        arg_index += 1
        out.append(_format_one(flags, verb, arg))
    return "".join(out)


def _format_one(flags: str, verb: str, arg: Any) -> str:
    if verb in "vs":
        return f"%{flags}s" % go_format(arg)
    if verb == "q" and isinstance(arg, str):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if verb == "b" and isinstance(arg, int):
        return format(arg, "b")
    if verb in "dxXo" and isinstance(arg, int):
        return f"%{flags}{verb}" % arg
    if verb in "xX" and isinstance(arg, str):
        text = arg.encode().hex()
        return text.upper() if verb == "X" else text
    if verb in "feEgG" and isinstance(arg, (int, float)):
        return f"%{flags}{verb}" % arg
    if verb == "t" and isinstance(arg, bool):
        return go_format(arg)
    return f"%!{verb}({_type_name(arg)}={go_format(arg)})"


BUILTINS: dict[str, Callable[..., Any]] = {
    "index": _index,
    "slice": _slice,
    "len": _len,
    "not": lambda value: not _truth(value),
    "and": lambda *args: args[-1],
    "or": lambda *args: args[-1],
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered(lambda a, b: a < b),
    "le": _ordered(lambda a, b: a <= b),
    "gt": _ordered(lambda a, b: a > b),
    "ge": _ordered(lambda a, b: a >= b),
    "print": _sprint,
    "printf": _sprintf,
    "println": lambda *args: " ".join(go_format(a) for a in args) + "\n",
    "html": lambda *args: html.escape(_sprint(*args)),
    "urlquery": lambda *args: urllib.parse.quote_plus(_sprint(*args)),
}
