"""minimal: only the answer section in positive replies."""

from clusterdns.plugins.minimal.handler import Minimal, minimal
from clusterdns.plugins.minimal.setup import setup

__all__ = ["Minimal", "minimal", "setup"]
