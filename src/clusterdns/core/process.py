"""Process-wide services that outlive a configuration: HTTP listeners, metrics,
the lameduck setting, and a handle to the running configuration."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clusterdns.core.http import HttpEndpoints, RouteHandler
from clusterdns.core.metrics import Metrics

if TYPE_CHECKING:
    from clusterdns.core.instance import Instance


@dataclass
class Process:
    http: HttpEndpoints = field(default_factory=HttpEndpoints)
    metrics: Metrics = field(default_factory=Metrics)
    hostname: str = field(default_factory=socket.gethostname)
    # Set by the server so plugins can reach it without importing it.
    current: Callable[[], Instance | None] = lambda: None
    request_reload: Callable[[], None] = lambda: None


@dataclass
class InstanceServices:
    """What one configuration asks of the process, collected during setup."""

    routes: dict[tuple[str, int], dict[str, RouteHandler]] = field(default_factory=dict)
    lameduck: float = 0.0
    reload_interval: float | None = None
    reload_jitter: float = 0.0

    def add_route(self, host: str, port: int, path: str, handler: RouteHandler) -> None:
        self.routes.setdefault((host, port), {})[path] = handler
