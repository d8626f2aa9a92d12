"""pprof: thread and task stacks, memory by allocation site and GC counts over HTTP."""

from clusterdns.plugins.pprof.handler import Pprof
from clusterdns.plugins.pprof.setup import setup

__all__ = ["Pprof", "setup"]
