"""template: answers built from the question by Go-style templates (CoreDNS's template)."""

from __future__ import annotations

from clusterdns.plugins.template.handler import Rule, Templates
from clusterdns.plugins.template.setup import setup

__all__ = ["Rule", "Templates", "setup"]
