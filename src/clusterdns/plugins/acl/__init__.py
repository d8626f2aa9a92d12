"""acl: allow, block, filter or drop queries by source network and query type."""

from clusterdns.plugins.acl.handler import Acl, Action, Policy, Rule
from clusterdns.plugins.acl.setup import setup

__all__ = ["Acl", "Action", "Policy", "Rule", "setup"]
