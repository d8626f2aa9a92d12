"""Process-wide services that outlive a configuration: HTTP listeners, metrics,
the lameduck setting, and a handle to the running configuration."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from clusterdns.core.explain import Explained, _nothing
from clusterdns.core.http import HttpEndpoints, RouteHandler
from clusterdns.core.metrics import Metrics
from clusterdns.core.workers import MergedCollector, WorkerGroup

if TYPE_CHECKING:
    from clusterdns.core.instance import Instance


@dataclass
class Process:
    http: HttpEndpoints = field(default_factory=lambda: HttpEndpoints())
    metrics: Metrics = field(default_factory=Metrics)
    hostname: str = field(default_factory=socket.gethostname)
    # Set by the server so plugins can reach it without importing it.
    current: Callable[[], Instance | None] = lambda: None
    request_reload: Callable[[], None] = lambda: None
    # The real port of a DNS listener configured as (host, port); port 0 means
    # "any free port" in tests. Raises KeyError for an unknown listener.
    bound_port: Callable[[str, int], int] = lambda host, port: port
    # Asks the running configuration's chain for (name, qtype) with every plugin saying
    # why (core/explain.py); None when no listener serves the name.
    explain: Callable[[str, int], Awaitable[Explained | None]] = _nothing
    # Set when running as one of --workers N (see core/workers.py).
    workers: WorkerGroup | None = None

    def not_ready(self) -> list[str] | None:
        """Plugins not ready yet (in every worker), or None while starting."""
        instance = self.current()
        if instance is None:
            return None
        mine = instance.not_ready()
        if self.workers is not None:
            return self.workers.not_ready(mine)
        return mine

    def metrics_registry(self) -> CollectorRegistry:
        """What /metrics exposes: this process's metrics, or all workers' summed."""
        if self.workers is None:
            return self.metrics.registry
        merged = CollectorRegistry(auto_describe=False)
        merged.register(MergedCollector(self.metrics.registry, self.workers))
        return merged


@dataclass
class InstanceServices:
    """What one configuration asks of the process, collected during setup."""

    routes: dict[tuple[str, int], dict[str, RouteHandler]] = field(default_factory=dict)
    lameduck: float = 0.0
    reload_interval: float | None = None
    reload_jitter: float = 0.0

    def add_route(self, host: str, port: int, path: str, handler: RouteHandler) -> None:
        self.routes.setdefault((host, port), {})[path] = handler
