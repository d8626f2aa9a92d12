"""One loaded configuration: every server block set up, ready to be swapped in."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator

from clusterdns.core import registry
from clusterdns.core.block import Block, ZoneMux
from clusterdns.core.plugin import BlockSettings, Plugin, SetupContext
from clusterdns.core.process import InstanceServices, Process
from clusterdns.corefile import Corefile, CorefileError, Directive, ServerBlock

log = logging.getLogger("clusterdns.core")

DEFAULT_DNS_PORT = 53
WILDCARD = ""


class Instance:
    """Blocks plus the listener layout they need: (host, port) → ZoneMux."""

    def __init__(self, corefile: Corefile, blocks: list[Block], services: InstanceServices) -> None:
        self.corefile = corefile
        self.blocks = blocks
        self.services = services
        self.muxes: dict[tuple[str, int], ZoneMux] = {}

    def plugins(self) -> Iterator[Plugin]:
        for block in self.blocks:
            yield from block.plugins

    def not_ready(self) -> list[str]:
        """Names of plugins that report readiness and are not ready yet."""
        names: list[str] = []
        for plugin in self.plugins():
            if plugin.ready() is False and plugin.name not in names:
                names.append(plugin.name)
        return sorted(names)

    def adopt_from(self, old: Instance) -> None:
        """Let each plugin take over its predecessor's state (same block zones and port)."""
        previous = {(block.zones, block.port): block for block in old.blocks}
        for block in self.blocks:
            before = previous.get((block.zones, block.port))
            if before is None:
                continue
            for plugin in block.plugins:
                predecessor = before.plugin(plugin.name)
                if predecessor is not None and type(predecessor) is type(plugin):
                    plugin.adopt(predecessor)

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until no plugin reports not-ready, at most ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self.not_ready():
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def start(self) -> None:
        started: list[Plugin] = []
        try:
            for plugin in self.plugins():
                await plugin.start()
                started.append(plugin)
        except BaseException:
            for plugin in reversed(started):
                await plugin.stop()
            raise

    async def stop(self) -> None:
        for plugin in reversed(list(self.plugins())):
            try:
                await plugin.stop()
            except Exception:
                log.exception("core: stopping plugin %s failed", plugin.name)


def _server_label(host: str, port: int) -> str:
    if ":" in host:
        return f"dns://[{host}]:{port}"
    return f"dns://{host}:{port}"


def _setup_block(
    server_block: ServerBlock,
    zones: tuple[str, ...],
    port: int,
    *,
    process: Process,
    services: InstanceServices,
    config_path: str | None,
) -> Block:
    by_name: dict[str, list[Directive]] = defaultdict(list)
    for directive in server_block.directives:
        if registry.setup_function(directive.name) is None:
            raise CorefileError(
                directive.file, directive.line, registry.unknown_directive_message(directive.name)
            )
        by_name[directive.name].append(directive)
    settings = BlockSettings()
    ctx = SetupContext(
        block=server_block,
        zones=zones,
        port=port,
        server_label=_server_label("", port),
        settings=settings,
        process=process,
        services=services,
        config_path=config_path,
    )
    plugins: list[Plugin] = []
    for name in sorted(by_name, key=registry.order_of):
        setup = registry.setup_function(name)
        assert setup is not None
        try:
            plugin = setup(by_name[name], ctx)
        except CorefileError:
            raise
        except Exception as err:
            # A setup that fails other than by CorefileError has a bug; the user still gets
            # the line that triggered it, at start and on reload, rather than a traceback.
            first = by_name[name][0]
            log.exception("core: setting up %s at %s:%d failed", name, first.file, first.line)
            raise CorefileError(
                first.file, first.line, f"{name}: cannot be set up with these arguments: {err}"
            ) from err
        plugin.name = name
        plugins.append(plugin)
        ctx._plugins[name] = plugin
    if settings.bind_hosts and len(settings.bind_hosts) == 1:
        ctx.server_label = _server_label(settings.bind_hosts[0], port)
    block = Block(
        zones=zones,
        port=port,
        server_label=ctx.server_label,
        plugins=plugins,
        settings=settings,
        file=server_block.file,
        line=server_block.line,
    )
    if settings.metrics:
        for zone in zones:
            for plugin in plugins:
                process.metrics.plugin_enabled.labels(
                    block.server_label, zone, "", plugin.name
                ).set(1)
    return block


def build_instance(
    corefile: Corefile,
    *,
    process: Process,
    dns_port: int | None = None,
    config_path: str | None = None,
) -> Instance:
    """Set up every plugin of every block. Raises CorefileError naming file:line."""
    services = InstanceServices()
    blocks: list[Block] = []
    for server_block in corefile.blocks:
        by_port: dict[int, list[str]] = defaultdict(list)
        for address in server_block.addresses:
            if address.scheme != "dns":
                raise CorefileError(
                    address.key.file,
                    address.key.line,
                    f"{address.scheme}:// servers are not supported by clusterdns (only dns://)",
                )
            if dns_port is not None:
                port = dns_port
            else:
                port = address.port if address.port is not None else DEFAULT_DNS_PORT
            if address.zone not in by_port[port]:
                by_port[port].append(address.zone)
        for port, zones in by_port.items():
            blocks.append(
                _setup_block(
                    server_block,
                    tuple(zones),
                    port,
                    process=process,
                    services=services,
                    config_path=config_path,
                )
            )
    instance = Instance(corefile, blocks, services)
    owners: dict[tuple[str, int, str], Block] = {}
    for block in blocks:
        hosts = block.settings.bind_hosts or [WILDCARD]
        for host in hosts:
            mux = instance.muxes.setdefault((host, block.port), ZoneMux())
            for zone in block.zones:
                previous = owners.get((host, block.port, zone))
                # Blocks of one zone and port are told apart by their views (core/view.py).
                if (
                    previous is not None
                    and previous is not block
                    and not (previous.filters or block.filters)
                ):
                    raise CorefileError(
                        block.file,
                        block.line,
                        f"zone {zone} on port {block.port} is already served by the block at "
                        f"{previous.file}:{previous.line}",
                    )
                owners[(host, block.port, zone)] = block
                mux.add(zone, block)
    return instance
