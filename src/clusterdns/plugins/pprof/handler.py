"""pprof: what a Python operator needs in place of Go's profiler, over HTTP.

- ``/debug/pprof/``: an index of the endpoints below.
- ``/debug/pprof/goroutine`` (and ``/debug/pprof/threads``): the stack of every thread
  (``sys._current_frames``), then of every asyncio task of the event loop.
- ``/debug/pprof/heap`` (and ``/debug/pprof/allocs``): live memory by allocation site,
  from ``tracemalloc``, which runs from the moment the plugin starts (``?n=`` sites,
  default 50; ``?group=traceback`` groups by the whole recorded traceback).
- ``/debug/pprof/gc``: the garbage collector's counts, thresholds and per-generation
  statistics (``gc.get_stats``).

Handlers run on the event loop; each is a snapshot taken in one go.
"""

from __future__ import annotations

import asyncio
import gc
import io
import sys
import threading
import traceback
import tracemalloc
from typing import Final

from aiohttp import web

from clusterdns.core.plugin import Plugin

DEFAULT_SITES: Final = 50
PREFIX: Final = "/debug/pprof"
ENDPOINTS: Final = (
    ("goroutine", "stacks of all threads and asyncio tasks"),
    ("heap", "live memory by allocation site (tracemalloc)"),
    ("gc", "garbage collector counts, thresholds and per-generation statistics"),
)
_users = 0  # running pprof plugins: tracemalloc stops when the last one does


def start_tracing(frames: int) -> None:
    global _users
    _users += 1
    if not tracemalloc.is_tracing():
        tracemalloc.start(frames)


def stop_tracing() -> None:
    global _users
    _users = max(_users - 1, 0)
    if _users == 0 and tracemalloc.is_tracing():
        tracemalloc.stop()


def thread_stacks() -> str:
    out = io.StringIO()
    frames = sys._current_frames()
    threads = {thread.ident: thread for thread in threading.enumerate()}
    out.write(f"threads: {len(frames)}\n\n")
    for ident, frame in sorted(frames.items()):
        thread = threads.get(ident)
        name = thread.name if thread is not None else "?"
        daemon = " daemon" if thread is not None and thread.daemon else ""
        out.write(f"thread {ident} [{name}{daemon}]:\n")
        out.write("".join(traceback.format_stack(frame)))
        out.write("\n")
    return out.getvalue()


def task_stacks() -> str:
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:
        return "asyncio tasks: no running event loop\n"
    out = io.StringIO()
    out.write(f"asyncio tasks: {len(tasks)}\n\n")
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"task {task.get_name()} [{task.get_coro()!r}]:\n")
        for frame in task.get_stack():
            out.write("".join(traceback.format_stack(frame, limit=1)))
        out.write("\n")
    return out.getvalue()


def heap_sites(limit: int, group: str) -> str:
    if not tracemalloc.is_tracing():
        return "tracemalloc is not tracing\n"
    snapshot = tracemalloc.take_snapshot()
    snapshot = snapshot.filter_traces(
        (tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>"))
    )
    stats = snapshot.statistics("traceback" if group == "traceback" else "lineno")
    current, peak = tracemalloc.get_traced_memory()
    out = io.StringIO()
    out.write(f"traced: {current} bytes now, {peak} bytes at peak\n")
    out.write(f"tracemalloc overhead: {tracemalloc.get_tracemalloc_memory()} bytes\n")
    out.write(f"top {min(limit, len(stats))} of {len(stats)} allocation sites:\n\n")
    for stat in stats[:limit]:
        out.write(f"{stat.size} bytes in {stat.count} blocks\n")
        for line in stat.traceback.format():
            out.write(f"  {line}\n")
    return out.getvalue()


def gc_report() -> str:
    out = io.StringIO()
    out.write(f"enabled: {gc.isenabled()}\n")
    out.write(f"count: {gc.get_count()}\n")
    out.write(f"threshold: {gc.get_threshold()}\n")
    out.write(f"frozen: {gc.get_freeze_count()}\n")
    out.write(f"garbage: {len(gc.garbage)}\n")
    for generation, stats in enumerate(gc.get_stats()):
        fields = " ".join(f"{key}={value}" for key, value in sorted(stats.items()))
        out.write(f"generation {generation}: {fields}\n")
    return out.getvalue()


def index() -> str:
    lines = [f"{PREFIX}/", "", "Python runtime profiles (Go's pprof does not exist here):", ""]
    for name, what in ENDPOINTS:
        lines.append(f"{PREFIX}/{name}: {what}")
    return "\n".join(lines) + "\n"


def _text(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/plain")


class Pprof(Plugin):
    name = "pprof"
    in_chain = False

    def __init__(self, *, frames: int = 1) -> None:
        self.frames = frames
        self._started = False

    async def start(self) -> None:
        if not self._started:
            start_tracing(self.frames)
            self._started = True

    async def stop(self) -> None:
        if self._started:
            stop_tracing()
            self._started = False

    async def handle_index(self, request: web.BaseRequest) -> web.StreamResponse:
        return _text(index())

    async def handle_stacks(self, request: web.BaseRequest) -> web.StreamResponse:
        return _text(thread_stacks() + "\n" + task_stacks())

    async def handle_heap(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            limit = int(request.query.get("n", DEFAULT_SITES))
        except ValueError:
            return web.Response(status=400, text="n must be an integer\n")
        return _text(heap_sites(max(limit, 1), request.query.get("group", "lineno")))

    async def handle_gc(self, request: web.BaseRequest) -> web.StreamResponse:
        return _text(gc_report())
