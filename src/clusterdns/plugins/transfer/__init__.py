"""transfer: outgoing zone transfers (AXFR, IXFR answered as AXFR) of other plugins' zones."""

from __future__ import annotations

from clusterdns.plugins.transfer.handler import Transfer
from clusterdns.plugins.transfer.setup import setup

__all__ = ["Transfer", "setup"]
