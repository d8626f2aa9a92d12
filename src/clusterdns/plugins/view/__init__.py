"""view: route a query to the server block whose expressions hold for it (split DNS)."""

from clusterdns.plugins.view.expression import Expression, ExpressionError
from clusterdns.plugins.view.handler import View
from clusterdns.plugins.view.setup import setup

__all__ = ["Expression", "ExpressionError", "View", "setup"]
