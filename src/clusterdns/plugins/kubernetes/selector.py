"""Kubernetes label selectors as the ``labels`` and ``namespace_labels`` options take them.

Both syntaxes of ``kubectl -l``: equality (``a=b``, ``a==b``, ``a!=b``), set-based
(``a in (x,y)``, ``a notin (x)``), and existence (``a``, ``!a``); terms are ANDed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Operator = Literal["=", "!=", "in", "notin", "exists", "!exists"]

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET_TERM = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_EQ_TERM = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")


class SelectorError(ValueError):
    pass


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        if self.operator == "exists":
            return self.key in labels
        if self.operator == "!exists":
            return self.key not in labels
        value = labels.get(self.key)
        if self.operator in ("=", "in"):
            return value is not None and value in self.values
        # "!=" and "notin" also match objects without the label, as Kubernetes does.
        return value is None or value not in self.values


@dataclass(frozen=True)
class LabelSelector:
    text: str
    requirements: tuple[Requirement, ...]

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        return cls(text, tuple(_parse_term(term) for term in _split_terms(text)))

    def matches(self, labels: Iterable[tuple[str, str]] | dict[str, str]) -> bool:
        as_dict = labels if isinstance(labels, dict) else dict(labels)
        return all(req.matches(as_dict) for req in self.requirements)


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside ``( )``."""
    terms: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced ')' in selector {text!r}")
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    if depth != 0:
        raise SelectorError(f"unbalanced '(' in selector {text!r}")
    terms.append(current.strip())
    if any(not term for term in terms):
        raise SelectorError(f"empty term in selector {text!r}")
    return terms


def _parse_term(term: str) -> Requirement:
    m = _SET_TERM.match(term)
    if m is not None:
        values = frozenset(v.strip() for v in m[3].split(",") if v.strip())
        if not values:
            raise SelectorError(f"{term!r}: a set needs at least one value")
        for value in values:
            if not re.fullmatch(_VALUE, value):
                raise SelectorError(f"{term!r}: invalid value {value!r}")
        op: Operator = "in" if m[2] == "in" else "notin"
        return Requirement(m[1], op, values)
    m = _EQ_TERM.match(term)
    if m is not None:
        return Requirement(m[1], "!=" if m[2] == "!=" else "=", frozenset((m[3],)))
    m = _EXISTS.match(term)
    if m is not None:
        return Requirement(m[2], "!exists" if m[1] else "exists", frozenset())
    raise SelectorError(f"invalid selector term {term!r}")
