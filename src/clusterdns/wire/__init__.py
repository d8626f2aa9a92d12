"""DNS wire format: fast query decoding, reply rendering with truncation, error replies.

Pure and synchronous. dnspython lives behind this package; nothing above it
needs to know how a message is encoded.
"""

from clusterdns.wire.errors import DropQuery, FormError, WireError
from clusterdns.wire.names import name_to_text, text_to_wire
from clusterdns.wire.query import Edns, Query, parse_query, skip_name
from clusterdns.wire.render import (
    AnswerTemplate,
    error_reply,
    render_message,
    render_template,
)

__all__ = [
    "AnswerTemplate",
    "DropQuery",
    "Edns",
    "FormError",
    "Query",
    "WireError",
    "error_reply",
    "name_to_text",
    "parse_query",
    "render_message",
    "render_template",
    "skip_name",
    "text_to_wire",
]
