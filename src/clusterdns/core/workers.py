"""--workers N: N server processes on one port (SO_REUSEPORT), like N replicas.

Each worker is a complete server with its own copy of the cluster state fed
by its own watch, so a worker that dies costs nothing but its share of the
socket: the kernel hands its queries to the others until the supervisor has
started a replacement. Workers publish a snapshot of their metrics and
readiness to a shared folder twice a second; whichever worker answers a
scrape or a readiness probe merges them, so /metrics adds up across workers
and /ready is 200 only when every worker is ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger("clusterdns.workers")

ENV_DIR = "CLUSTERDNS_WORKER_DIR"
ENV_INDEX = "CLUSTERDNS_WORKER_INDEX"
PUBLISH_INTERVAL = 0.5
# Gauges that describe the build or configuration: identical in every worker.
_NOT_SUMMED = ("coredns_build_info", "coredns_plugin_enabled", "coredns_reload_version_info")


@dataclass
class Snapshot:
    index: int
    pid: int
    written: float
    not_ready: list[str] | None  # None: still starting
    metrics: list[Metric]


class WorkerGroup:
    """This worker's view of its siblings, through the shared folder."""

    def __init__(self, directory: str, index: int) -> None:
        self.directory = directory
        self.index = index
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_environment(cls) -> WorkerGroup | None:
        directory = os.environ.get(ENV_DIR)
        if not directory:
            return None
        return cls(directory, int(os.environ.get(ENV_INDEX, "0")))

    def _path(self, index: int) -> str:
        return os.path.join(self.directory, f"worker-{index}.pickle")

    def publish(self, registry: CollectorRegistry, not_ready: list[str] | None) -> None:
        snapshot = Snapshot(
            self.index, os.getpid(), time.time(), not_ready, list(registry.collect())
        )
        tmp = self._path(self.index) + ".tmp"
        with open(tmp, "wb") as out:
            pickle.dump(snapshot, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self._path(self.index))

    def siblings(self) -> list[Snapshot]:
        found: list[Snapshot] = []
        for name in sorted(os.listdir(self.directory)):
            if not name.endswith(".pickle") or name == f"worker-{self.index}.pickle":
                continue
            try:
                with open(os.path.join(self.directory, name), "rb") as data:
                    snapshot: Snapshot = pickle.load(data)
            except (OSError, EOFError, pickle.UnpicklingError):
                continue
            found.append(snapshot)
        return found

    def not_ready(self, mine: list[str]) -> list[str]:
        """Plugins not ready in any worker (a worker still starting counts as 'starting')."""
        names = set(mine)
        for snapshot in self.siblings():
            if snapshot.not_ready is None:
                names.add(f"worker-{snapshot.index}")
            else:
                names.update(snapshot.not_ready)
        return sorted(names)

    def start(self, publish: Callable[[], None]) -> None:
        async def loop() -> None:
            while True:
                try:
                    publish()
                except Exception:
                    log.exception("workers: publishing the snapshot failed")
                await asyncio.sleep(PUBLISH_INTERVAL)

        self._task = asyncio.ensure_future(loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        try:
            os.unlink(self._path(self.index))
        except OSError:
            pass


class MergedCollector(Collector):
    """This worker's live metrics plus every sibling's last snapshot, summed."""

    def __init__(self, registry: CollectorRegistry, group: WorkerGroup) -> None:
        self.registry = registry
        self.group = group

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        sources = [list(self.registry.collect())] + [s.metrics for s in self.group.siblings()]
        for metrics in sources:
            for family in metrics:
                if family.name not in families:
                    families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                    values[family.name] = {}
                merged = values[family.name]
                for sample in family.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if family.name in _NOT_SUMMED:
                        merged[key] = max(merged.get(key, 0.0), sample.value)
                    else:
                        merged[key] = merged.get(key, 0.0) + sample.value
        for name, family in families.items():
            for (sample_name, labels), value in values[name].items():
                family.add_sample(sample_name, dict(labels), value)
            yield family


def die_with_parent() -> None:
    """In a worker: get SIGTERM (and so lameduck, then exit) if the supervisor dies,
    even by SIGKILL, instead of serving on as an orphan."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        log.warning("workers: cannot ask to be stopped with the supervisor")
    if os.getppid() == 1:  # the supervisor died before we asked
        os.kill(os.getpid(), signal.SIGTERM)


def supervise(argv: list[str], workers: int) -> int:
    """Run ``workers`` copies of ``clusterdns serve`` and keep them running.

    SIGTERM/SIGINT are passed on (each worker does its own lameduck) and the
    supervisor exits with 0 once all have; SIGHUP/SIGUSR1 are passed on too.
    A worker that dies unexpectedly is restarted after a short pause.
    """
    directory = tempfile.mkdtemp(prefix="clusterdns-workers-")
    children: dict[int, subprocess.Popen[bytes]] = {}
    stopping = False

    def spawn(index: int) -> None:
        env = dict(os.environ, **{ENV_DIR: directory, ENV_INDEX: str(index)})
        children[index] = subprocess.Popen([sys.executable, "-m", "clusterdns.cli", *argv], env=env)

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(sig, forward)
    started_at = time.monotonic()
    for index in range(workers):
        spawn(index)
    log.info("workers: started %d workers sharing the DNS port", workers)
    exit_codes: dict[int, int] = {}
    try:
        while True:
            for index, child in list(children.items()):
                code = child.poll()
                if code is None:
                    continue
                if stopping:
                    exit_codes[index] = code
                    del children[index]
                elif code == 1 and time.monotonic() < started_at + 5:
                    # A configuration error at start: every worker will hit it.
                    forward(signal.SIGTERM, None)
                    exit_codes[index] = code
                    del children[index]
                else:
                    log.error("workers: worker %d exited with %s, restarting it", index, code)
                    time.sleep(0.5)
                    spawn(index)
            if not children:
                break
            time.sleep(0.1)
    finally:
        for child in children.values():
            child.kill()
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    return max(exit_codes.values(), default=0)
