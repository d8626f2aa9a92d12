"""timeouts: TCP read and idle timeouts and a query cap per connection."""

from clusterdns.plugins.timeouts.setup import Timeouts, setup

__all__ = ["Timeouts", "setup"]
