"""Corefile lexer and parser (CoreDNS / Caddyfile v1 grammar) with errors that name file:line."""

from clusterdns.corefile.address import SCHEMES, parse_server_key
from clusterdns.corefile.errors import CorefileError
from clusterdns.corefile.model import (
    Corefile,
    Directive,
    ServerAddress,
    ServerBlock,
    Token,
)
from clusterdns.corefile.parser import load, parse

__all__ = [
    "SCHEMES",
    "Corefile",
    "CorefileError",
    "Directive",
    "ServerAddress",
    "ServerBlock",
    "Token",
    "load",
    "parse",
    "parse_server_key",
]
