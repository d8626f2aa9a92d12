"""local: answer localhost and the loopback reverse zones here, never upstream."""

from clusterdns.plugins.local.handler import Local, local_reply
from clusterdns.plugins.local.setup import setup

__all__ = ["Local", "local_reply", "setup"]
