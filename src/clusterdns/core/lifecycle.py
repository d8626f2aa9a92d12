"""Start, reload and stop: signals, the reload poller, lameduck."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal

from clusterdns.core.instance import Instance, build_instance
from clusterdns.core.process import Process
from clusterdns.core.server import DnsServer, ListenError, ServerOptions
from clusterdns.core.workers import WorkerGroup
from clusterdns.corefile import Corefile, CorefileError, load, parse

log = logging.getLogger("clusterdns.core")
# The garbage collector stays off during start-up at most this long (an API server
# that never answers must not leave it off for good).
GC_PAUSE_LIMIT = 60.0


class App:
    """The running program: one DnsServer, its configuration source, and its signals."""

    def __init__(
        self,
        *,
        config_path: str | None,
        default_text: str | None = None,
        dns_port: int | None = None,
        options: ServerOptions | None = None,
        process: Process | None = None,
    ) -> None:
        self.config_path = config_path
        self.default_text = default_text
        self.dns_port = dns_port
        self.process = process or Process()
        if self.process.workers is None:
            self.process.workers = WorkerGroup.from_environment()
        if self.process.workers is not None:
            self.process.http.reuse_port = True
        self.server = DnsServer(self.process, options)
        self.process.request_reload = self.request_reload
        self._stopping = asyncio.Event()
        self._reload_now = asyncio.Event()
        self._failed_checksum: str | None = None
        self._poller: asyncio.Task[None] | None = None
        self._freezer: asyncio.Task[None] | None = None

    @property
    def instance(self) -> Instance | None:
        return self.server.instance

    def read_corefile(self) -> Corefile:
        if self.config_path is not None:
            return load(self.config_path)
        assert self.default_text is not None
        return parse(self.default_text, filename="<default Corefile>")

    def _build(self, corefile: Corefile) -> Instance:
        return build_instance(
            corefile, process=self.process, dns_port=self.dns_port, config_path=self.config_path
        )

    async def start(self) -> None:
        """Load and serve the configuration; raises CorefileError or OSError."""
        corefile = self.read_corefile()
        # The initial sync allocates millions of long-lived objects; the cyclic GC would
        # walk them again and again (40% of a 100k-service start-up, measured in
        # bench/). Off until ready (at most GC_PAUSE_LIMIT), then collect and freeze.
        gc.disable()
        await self.server.swap(self._build(corefile))
        self._record_version(corefile)
        self._freezer = asyncio.ensure_future(self._freeze_when_ready())
        self._poller = asyncio.ensure_future(self._poll_reload())
        workers = self.process.workers
        if workers is not None:
            workers.start(
                lambda: workers.publish(self.process.metrics.registry, self.process_not_ready())
            )

    def process_not_ready(self) -> list[str] | None:
        instance = self.server.instance
        return None if instance is None else instance.not_ready()

    async def reload(self) -> bool:
        """Re-read the Corefile and swap it in; on any error keep the old one serving."""
        try:
            corefile = self.read_corefile()
        except (CorefileError, OSError) as err:
            return self._reload_failed(None, err)
        current = self.server.instance
        if current is not None and corefile.checksum == current.corefile.checksum:
            return False
        if corefile.checksum == self._failed_checksum:
            return False
        try:
            instance = self._build(corefile)
            await self.server.swap(instance)
        except (CorefileError, OSError) as err:
            return self._reload_failed(corefile.checksum, err)
        except Exception as err:
            # A bug in some plugin's setup or start: the running configuration stays, and
            # so does the reload poller (an exception here used to end it for good).
            log.exception("reload: setting up the new configuration failed")
            return self._reload_failed(corefile.checksum, err)
        self._failed_checksum = None
        self._record_version(corefile)
        self._freezer = asyncio.ensure_future(self._freeze_when_ready())
        log.info("reload: running configuration sha512 %s", corefile.checksum[:16])
        return True

    async def _freeze_when_ready(self) -> None:
        """Once the first full sync is in, move everything built so far out of the
        cyclic GC's sight: with 100k services a full collection walks millions of
        objects and shows up as a multi-millisecond latency tail."""
        instance = self.server.instance
        deadline = asyncio.get_running_loop().time() + GC_PAUSE_LIMIT
        try:
            while instance is not None and instance.not_ready():
                if asyncio.get_running_loop().time() > deadline:
                    break
                await asyncio.sleep(0.05)
            gc.collect()
            gc.freeze()
        finally:
            gc.enable()
        log.debug("core: %d objects frozen out of the garbage collector", gc.get_freeze_count())

    def _reload_failed(self, checksum: str | None, err: Exception) -> bool:
        if checksum is None or checksum != self._failed_checksum:
            log.error("reload: keeping the running configuration: %s", err)
            self.process.metrics.reload_failed.inc()
        self._failed_checksum = checksum
        return False

    def _record_version(self, corefile: Corefile) -> None:
        gauge = self.process.metrics.reload_version
        gauge.clear()
        gauge.labels("sha512", corefile.checksum).set(1)

    def request_reload(self) -> None:
        self._reload_now.set()

    async def _poll_reload(self) -> None:
        while True:
            instance = self.server.instance
            interval = instance.services.reload_interval if instance else None
            timeout: float | None = None
            if interval is not None and self.config_path is not None:
                jitter = instance.services.reload_jitter if instance else 0.0
                timeout = interval + random.uniform(-jitter, jitter)
            try:
                await asyncio.wait_for(self._reload_now.wait(), timeout)
            except TimeoutError:
                pass
            self._reload_now.clear()
            if self.config_path is not None:
                try:
                    await self.reload()
                except Exception:
                    log.exception("reload: failed; will try again")

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def shutdown(self) -> None:
        """Lameduck (keep answering, /health stays 200), then close everything."""
        instance = self.server.instance
        lameduck = instance.services.lameduck if instance else 0.0
        if lameduck > 0:
            log.info("health: going into lameduck mode for %gs", lameduck)
            await asyncio.sleep(lameduck)
        if self._poller is not None:
            self._poller.cancel()
        if self._freezer is not None:
            self._freezer.cancel()
        if self.process.workers is not None:
            self.process.workers.stop()
        await self.server.stop()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        for sig in (signal.SIGHUP, signal.SIGUSR1):
            loop.add_signal_handler(sig, self.request_reload)

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the process exit code."""
        self.install_signal_handlers()
        try:
            await self.start()
        except CorefileError as err:
            log.error("%s", err)
            return 1
        except ListenError as err:
            log.error("core: cannot listen on %s", err)
            return 1
        except OSError as err:
            log.error("core: cannot listen: %s", err)
            return 1
        log.info("core: clusterdns %s serving, pid %d", _version(), os.getpid())
        await self.wait_stopped()
        await self.shutdown()
        return 0


def _version() -> str:
    from clusterdns import __version__

    return __version__
