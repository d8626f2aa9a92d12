"""view: the server block takes a query only when every expression holds for it.

A BlockFilter (core/view.py): the zone mux asks it with a Request built for its block,
before any plugin runs. It also provides the ``view/name`` metadata label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dns.rdataclass
import dns.rdatatype

from clusterdns.core.metadata import Values, metadata_value
from clusterdns.core.plugin import Plugin
from clusterdns.core.request import Request
from clusterdns.plugins.view.expression import Expression

MIN_SIZE = 512


def query_env(req: Request) -> Callable[[str], Any]:
    """The values the expression functions read, computed when asked."""
    query = req.query

    def value(name: str) -> Any:
        if name.startswith("metadata:"):
            found = metadata_value(req, name[len("metadata:") :])
            return "" if found is None else found
        match name:
            case "type":
                return dns.rdatatype.to_text(dns.rdatatype.RdataType.make(query.qtype))
            case "name":
                return query.name
            case "class":
                return dns.rdataclass.to_text(dns.rdataclass.RdataClass.make(query.qclass))
            case "client_ip":
                return req.client[0]
            case "port":
                return str(req.client[1])
            case "proto":
                return req.transport
            case "size":
                return len(query.data)
            case "id":
                return query.id
            case "opcode":
                return query.opcode
            case "do":
                return req.do
            case "bufsize":
                edns = query.edns
                return MIN_SIZE if edns is None else max(edns.payload, MIN_SIZE)
            case "server_ip" | "server_port":
                return ""  # the receiving socket's address is not kept with a query
        raise KeyError(name)

    return value


class View(Plugin):
    name = "view"
    in_chain = False

    def __init__(self, view_name: str, expressions: list[Expression]) -> None:
        self.view_name = view_name
        self.expressions = expressions

    def admits(self, req: Request) -> bool:
        env = query_env(req)
        return all(expression.evaluate(env) for expression in self.expressions)

    def metadata(self, req: Request) -> Values:
        name = self.view_name
        return {"view/name": lambda: name}
