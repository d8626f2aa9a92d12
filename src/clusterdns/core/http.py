"""HTTP endpoints shared by health, ready and prometheus.

Listeners are keyed by address and survive a reload when the address stays
the same; the routes behind them are swapped with the configuration.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("clusterdns.http")

RouteHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def split_http_address(text: str, *, default_port: int) -> tuple[str, int]:
    """':8080' → ('', 8080); 'localhost:9153'; '[::1]:8181'; '127.0.0.1' → default port."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    elif ":" in text:
        host, port = text, ""
    else:
        host, port = text, ""
    if port and not port.isdigit():
        raise ValueError(f"invalid port in address {text!r}")
    number = int(port) if port else default_port
    if not 0 <= number <= 65535:
        raise ValueError(f"port out of range in address {text!r}")
    return host, number


class HttpEndpoints:
    """Routes by (host, port, path); one aiohttp low-level server per address."""

    def __init__(self, *, reuse_port: bool = False) -> None:
        self.reuse_port = reuse_port
        self._routes: dict[tuple[str, int], dict[str, RouteHandler]] = {}
        self._servers: dict[tuple[str, int], asyncio.AbstractServer] = {}
        self._bound: dict[tuple[str, int], int] = {}

    def bound_port(self, host: str, port: int) -> int:
        """The real port of an address configured with port 0 (tests use that)."""
        return self._bound[(host, port)]

    async def apply(self, routes: dict[tuple[str, int], dict[str, RouteHandler]]) -> None:
        """Make exactly ``routes`` served: bind new addresses first, then drop old ones.

        Raises OSError (and changes nothing) if a new address cannot be bound.
        """
        started: list[tuple[str, int]] = []
        try:
            for address in routes:
                if address not in self._servers:
                    await self._listen(address)
                    started.append(address)
        except OSError:
            for address in started:
                await self._close(address)
            raise
        self._routes = routes
        for address in list(self._servers):
            if address not in routes:
                await self._close(address)

    async def _listen(self, address: tuple[str, int]) -> None:
        host, port = address

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            handler = self._routes.get(address, {}).get(request.path)
            if handler is None:
                return web.Response(status=404, text="404 page not found\n")
            return await handler(request)

        server = await asyncio.get_running_loop().create_server(
            web.Server(handle),
            host or None,
            port,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        self._servers[address] = server
        sockets = server.sockets
        self._bound[address] = sockets[0].getsockname()[1] if sockets else port
        log.info("http: listening on %s:%d", host or "*", self._bound[address])

    async def _close(self, address: tuple[str, int]) -> None:
        server = self._servers.pop(address, None)
        self._bound.pop(address, None)
        if server is not None:
            server.close()
            await server.wait_closed()

    async def close(self) -> None:
        for address in list(self._servers):
            await self._close(address)
