"""A small, safe reader of the expr-lang expressions CoreDNS's *view* plugin documents.

No ``eval``: the text is tokenised and parsed by recursive descent into a tree of Python
closures over a fixed set of functions (:data:`QUERY_FUNCTIONS`, ``incidr``,
``metadata``), compiled once at setup.
Supported: string ('...' or "..." with backslash escapes), integer, ``true``/``false``/
``nil`` and ``[...]`` array literals; calls of the query functions; ``==`` ``!=`` ``<``
``<=`` ``>`` ``>=``; ``in`` and ``not in``; ``matches`` (a regular expression),
``contains``, ``startsWith``, ``endsWith``; ``!``/``not``, ``&&``/``and``, ``||``/``or``;
parentheses. Anything else is a setup error naming what was not understood.

Evaluation errors (a type mismatch, ``incidr`` of something that is not an address) make
the expression false, as CoreDNS treats any error.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

# What a function of the query sees: name → value getter, evaluated lazily.
Env = Callable[[str], Any]
Node = Callable[[Env], Any]


class ExpressionError(Exception):
    """The expression cannot be read; the message says where."""


class EvaluationError(Exception):
    """The expression failed for this query (it then counts as false)."""


# Functions taking no arguments: values of the query (resolved by the Env).
QUERY_FUNCTIONS: Final = frozenset(
    {
        "bufsize", "class", "client_ip", "do", "id", "name", "opcode", "port", "proto",
        "server_ip", "server_port", "size", "type",
    }
)  # fmt: skip


def incidr(ip: Any, cidr: Any) -> bool:
    if not isinstance(ip, str) or not isinstance(cidr, str):
        raise EvaluationError("incidr takes two strings")
    try:
        address = ipaddress.ip_address(ip.strip("[]").split("%", 1)[0])
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as err:
        raise EvaluationError(str(err)) from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version == network.version and address in network


@dataclass(frozen=True)
class Token:
    kind: str  # "str", "int", "name", "op", "end"
    value: Any
    at: int


_OPERATORS: Final = ("&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "(", ")", "[", "]", ",")
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INT: Final = re.compile(r"[0-9]+")
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if char in "'\"":
            quote, start = char, pos
            pos += 1
            out: list[str] = []
            while True:
                if pos >= len(text):
                    raise ExpressionError(f"unterminated string starting at offset {start}")
                char = text[pos]
                if char == quote:
                    pos += 1
                    break
                if char == "\\" and pos + 1 < len(text):
                    following = text[pos + 1]
                    # Unknown escapes keep the backslash (a regular expression's \d).
                    out.append(_ESCAPES.get(following, "\\" + following))
                    pos += 2
                    continue
                out.append(char)
                pos += 1
            tokens.append(Token("str", "".join(out), start))
            continue
        number = _INT.match(text, pos)
        if number:
            tokens.append(Token("int", int(number.group()), pos))
            pos = number.end()
            continue
        name = _NAME.match(text, pos)
        if name:
            tokens.append(Token("name", name.group(), pos))
            pos = name.end()
            continue
        for operator in _OPERATORS:
            if text.startswith(operator, pos):
                tokens.append(Token("op", operator, pos))
                pos += len(operator)
                break
        else:
            raise ExpressionError(f"unexpected {char!r} at offset {pos}")
    tokens.append(Token("end", None, len(text)))
    return tokens


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    return bool(left == right)


def _ordered(op: str) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        numbers = isinstance(left, int) and isinstance(right, int)
        strings = isinstance(left, str) and isinstance(right, str)
        if not (numbers or strings) or isinstance(left, bool) or isinstance(right, bool):
            raise EvaluationError(f"cannot compare {left!r} {op} {right!r}")
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        return bool(left >= right)

    return compare


def _strings(name: str, test: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def apply(left: Any, right: Any) -> bool:
        if not isinstance(left, str) or not isinstance(right, str):
            raise EvaluationError(f"{name} takes strings")
        return test(left, right)

    return apply


def _member(left: Any, right: Any) -> bool:
    if not isinstance(right, list):
        raise EvaluationError("'in' needs an array on its right")
    return any(_equal(left, item) for item in right)


_BINARY: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": _equal,
    "!=": lambda left, right: not _equal(left, right),
    "<": _ordered("<"),
    "<=": _ordered("<="),
    ">": _ordered(">"),
    ">=": _ordered(">="),
    "in": _member,
    "contains": _strings("contains", lambda a, b: b in a),
    "startsWith": _strings("startsWith", str.startswith),
    "endsWith": _strings("endsWith", str.endswith),
}


_COMPARISONS: Final = frozenset({"==", "!=", "<", "<=", ">", ">="})
_WORD_OPERATORS: Final = frozenset({"in", "matches", "contains", "startsWith", "endsWith"})


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise EvaluationError(f"{value!r} is not a boolean")
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def fail(self, message: str) -> ExpressionError:
        token = self.token
        where = "the end" if token.kind == "end" else f"{token.value!r} at offset {token.at}"
        return ExpressionError(f"{message} (at {where})")

    def accept(self, kind: str, *values: str) -> Token | None:
        token = self.token
        if token.kind == kind and (not values or token.value in values):
            self.pos += 1
            return token
        return None

    def expect(self, kind: str, value: str) -> None:
        if self.accept(kind, value) is None:
            raise self.fail(f"expected {value!r}")

    def parse(self) -> Node:
        node = self.disjunction()
        if self.token.kind != "end":
            raise self.fail("unexpected input")
        return node

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.accept("op", "||") or self.accept("name", "or"):
            left, right = node, self.conjunction()
            node = _or(left, right)
        return node

    def conjunction(self) -> Node:
        node = self.comparison()
        while self.accept("op", "&&") or self.accept("name", "and"):
            left, right = node, self.comparison()
            node = _and(left, right)
        return node

    def comparison(self) -> Node:
        left = self.unary()
        token = self.token
        negate = False
        if (
            token.kind == "name"
            and token.value == "not"
            and self.tokens[self.pos + 1].value == "in"
        ):
            self.pos += 1
            negate = True
            token = self.token
        symbol = token.kind == "op" and token.value in _COMPARISONS
        word = token.kind == "name" and token.value in _WORD_OPERATORS
        if not (symbol or word):
            return left
        operator = str(token.value)
        self.pos += 1
        right = self.unary()
        if operator == "matches":
            return _matches(left, right)
        test = _BINARY[operator]
        if negate:
            return lambda env: not test(left(env), right(env))
        return lambda env: test(left(env), right(env))

    def unary(self) -> Node:
        if self.accept("op", "!") or self.accept("name", "not"):
            operand = self.unary()
            return lambda env: not _truth(operand(env))
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if token.kind in ("str", "int"):
            self.pos += 1
            value = token.value
            return lambda env: value
        if self.accept("op", "("):
            node = self.disjunction()
            self.expect("op", ")")
            return node
        if self.accept("op", "["):
            items: list[Node] = []
            if not self.accept("op", "]"):
                items.append(self.disjunction())
                while self.accept("op", ","):
                    items.append(self.disjunction())
                self.expect("op", "]")
            return lambda env: [item(env) for item in items]
        if token.kind == "name":
            self.pos += 1
            name = str(token.value)
            if name in ("true", "false"):
                truth = name == "true"
                return lambda env: truth
            if name == "nil":
                return lambda env: None
            if not self.accept("op", "("):
                raise ExpressionError(f"unknown name {name!r} at offset {token.at}")
            args: list[Node] = []
            if not self.accept("op", ")"):
                args.append(self.disjunction())
                while self.accept("op", ","):
                    args.append(self.disjunction())
                self.expect("op", ")")
            return _call(name, args, token.at)
        raise self.fail("expected a value")


def _or(left: Node, right: Node) -> Node:
    return lambda env: _truth(left(env)) or _truth(right(env))


def _and(left: Node, right: Node) -> Node:
    return lambda env: _truth(left(env)) and _truth(right(env))


def _matches(left: Node, right: Node) -> Node:
    patterns: dict[str, re.Pattern[str]] = {}

    def test(env: Env) -> bool:
        value, pattern = left(env), right(env)
        if not isinstance(value, str) or not isinstance(pattern, str):
            raise EvaluationError("matches takes strings")
        compiled = patterns.get(pattern)
        if compiled is None:
            try:
                compiled = re.compile(pattern)
            except re.error as err:
                raise EvaluationError(f"bad regular expression: {err}") from None
            if len(patterns) < 64:
                patterns[pattern] = compiled
        return compiled.search(value) is not None

    return test


def _call(name: str, args: Sequence[Node], at: int) -> Node:
    if name in QUERY_FUNCTIONS:
        if args:
            raise ExpressionError(f"{name}() takes no arguments (offset {at})")
        return lambda env: env(name)
    if name == "incidr":
        if len(args) != 2:
            raise ExpressionError(f"incidr() takes 2 arguments (offset {at})")
        ip, cidr = args
        return lambda env: incidr(ip(env), cidr(env))
    if name == "metadata":
        if len(args) != 1:
            raise ExpressionError(f"metadata() takes 1 argument (offset {at})")
        (label,) = args
        return lambda env: env("metadata:" + str(label(env)))
    raise ExpressionError(f"unknown function {name!r} at offset {at}")


class Expression:
    """A compiled expression: ``evaluate(env)`` is True only for a boolean true."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._node = _Parser(text).parse()

    def evaluate(self, env: Env) -> bool:
        try:
            return self._node(env) is True
        except (EvaluationError, TypeError, ValueError):
            return False
