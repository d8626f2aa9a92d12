"""An in-memory store with EtcdStore's reading interface, for tests without etcd.

The same snapshot discipline as the real store: a write builds new dicts and publishes
them in one assignment, bumps ``generation`` and then tells the subscribers.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Mapping

from clusterdns.sources.etcd.store import EtcdEntry

Callback = Callable[[frozenset[str] | None], None]


class FakeStore:
    def __init__(
        self, entries: Mapping[str, str | bytes] = (), *, clock: Callable[[], float] | None = None
    ) -> None:
        self.synced = False
        self.generation = 0
        self.errors = 0
        self.relists = 0
        self.revision = 0
        self.clock = clock or (lambda: 0.0)
        self.leases: dict[int, float] = {}  # lease → deadline on self.clock
        self._entries: dict[str, EtcdEntry] = {}
        self._keys: list[str] = []
        self._subscribers: list[Callback] = []
        for key, value in dict(entries).items():
            self._put(key, value, 0)

    # --- EtcdStore's readers ---------------------------------------------------------------

    def get(self, key: str) -> EtcdEntry | None:
        return self._entries.get(key)

    def range(self, prefix: str) -> list[EtcdEntry]:
        keys = self._keys
        start = bisect.bisect_left(keys, prefix)
        out = []
        for key in keys[start:]:
            if not key.startswith(prefix):
                break
            out.append(self._entries[key])
        return out

    def more_than(self, prefix: str, count: int) -> bool:
        return len(self.range(prefix)) > count

    def has_prefix(self, prefix: str) -> bool:
        i = bisect.bisect_left(self._keys, prefix)
        return i < len(self._keys) and self._keys[i].startswith(prefix)

    def __len__(self) -> int:
        return len(self._keys)

    def lease_remaining(self, lease: int) -> float | None:
        deadline = self.leases.get(lease)
        if deadline is None:
            return None
        left = deadline - self.clock()
        return left if left > 0 else None

    def subscribe(self, callback: Callback) -> None:
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callback) -> None:
        self._subscribers = [c for c in self._subscribers if c != callback]

    async def wait_synced(self, timeout: float | None = None) -> bool:
        return self.synced

    async def run(self) -> None:
        await asyncio.Event().wait()

    # --- writing (tests) ------------------------------------------------------------------

    def _put(self, key: str, value: str | bytes, lease: int) -> None:
        raw = value.encode() if isinstance(value, str) else value
        self.revision += 1
        entries = dict(self._entries)
        if key not in entries:
            keys = list(self._keys)
            bisect.insort(keys, key)
            self._keys = keys
        entries[key] = EtcdEntry(key, raw, lease, self.revision)
        self._entries = entries

    def sync(self) -> None:
        """The first full list arrived."""
        self.synced = True
        self.generation += 1
        self._notify(None)

    def put(self, key: str, value: str | bytes, *, lease: int = 0) -> None:
        self._put(key, value, lease)
        self.generation += 1
        self._notify(frozenset({key}))

    def delete(self, key: str) -> None:
        entries = dict(self._entries)
        if entries.pop(key, None) is None:
            return
        self._entries = entries
        self._keys = [k for k in self._keys if k != key]
        self.generation += 1
        self._notify(frozenset({key}))

    def _notify(self, changed: frozenset[str] | None) -> None:
        for callback in list(self._subscribers):
            callback(changed)
