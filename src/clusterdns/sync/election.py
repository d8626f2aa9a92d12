"""Leader election through an etcd lease: one ``clusterdns sync`` writes, the others wait.

A candidate grants a lease of ``ttl`` seconds and creates the election key bound to it in
a transaction that succeeds only if the key does not exist (``create_revision == 0``).
The winner keeps the lease alive every ``ttl/3`` seconds; the others watch the key and
try again when it is deleted, which happens at the latest ``ttl`` seconds after the
leader's last renewal (when it dies, its lease expires).

Fencing, so two leaders never write at once:

* a leader that has not renewed for ``ttl*2/3`` seconds stops writing (:attr:`valid` is
  False), before its lease can expire and another candidate can win;
* every write of the leader is a transaction guarded by :meth:`guard`: the election key
  still has the ``create_revision`` this leader created it with. A deposed leader's
  write, however late it arrives, fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

from clusterdns.sources.etcd.client import (
    Compare,
    EtcdClient,
    EtcdError,
    Put,
    Range,
    RangeResult,
)
from clusterdns.sources.kube.reflector import Backoff

__all__ = ["Election", "LostLeadership"]

log = logging.getLogger("clusterdns.sync")


class LostLeadership(Exception):
    """This process is no longer the leader: stop writing and campaign again."""


class Election:
    def __init__(
        self,
        client: EtcdClient,
        key: str,
        *,
        ttl: int = 10,
        identity: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl < 2:
            raise ValueError("the lease TTL must be at least 2 seconds")
        self.client = client
        self.key = key
        self.ttl = ttl
        self.identity = identity or f"{socket.gethostname()}/{os.getpid()}"
        self.clock = clock
        self.lease = 0
        self.create_revision = 0  # of the election key, while leader
        self.renewed_at = 0.0  # clock() when the last successful renewal was sent
        self.leader = False
        self._watch_from = 0  # revision after which a follower watches the key

    @property
    def valid(self) -> bool:
        """Leader, and renewed recently enough that the lease cannot have expired."""
        return self.leader and self.clock() - self.renewed_at < self.ttl * 2 / 3

    def guard(self) -> Compare:
        """The condition every leader write carries."""
        return Compare(self.key, "create_revision", "==", self.create_revision)

    async def campaign(self) -> None:
        """Return once this process is the leader (retries etcd errors forever)."""
        backoff = Backoff(base=0.1, cap=self.ttl / 3)
        while True:
            try:
                if await self._try_once():
                    return
                await self._wait_for_vacancy()
                backoff.reset()
            except EtcdError as exc:
                delay = backoff.next_delay()
                log.warning("sync: election: %s, retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)

    async def _try_once(self) -> bool:
        sent = self.clock()
        if not self.lease or await self.client.lease_keepalive(self.lease) <= 0:
            self.lease = (await self.client.lease_grant(self.ttl)).id
        result = await self.client.txn(
            [Compare(self.key, "create_revision", "==", 0)],
            [Put(self.key, self.identity, lease=self.lease)],
            [Range(self.key)],
        )
        if result.succeeded:
            return self._won(result.revision, sent)
        found = result.responses[0]
        assert isinstance(found, RangeResult)
        if found.kvs and found.kvs[0].lease == self.lease:
            # Ours already: an earlier attempt timed out on one member but was applied.
            return self._won(found.kvs[0].create_revision, sent)
        holder = found.kvs[0].value.decode(errors="replace") if found.kvs else "?"
        log.info("sync: %s leads; following", holder)
        self._watch_from = found.revision + 1
        return False

    def _won(self, create_revision: int, renewed_at: float) -> bool:
        self.create_revision = create_revision
        self.renewed_at = renewed_at
        self.leader = True
        log.info("sync: elected leader (%s, lease %x)", self.key, self.lease)
        return True

    async def _wait_for_vacancy(self) -> None:
        """Until the election key is deleted (or ``ttl`` passes: look again)."""

        async def deleted() -> None:
            async for batch in self.client.watch(self.key, start_revision=self._watch_from):
                if any(e.type == "DELETE" for e in batch.events):
                    return

        try:
            await asyncio.wait_for(deleted(), self.ttl)
        except TimeoutError:
            pass

    async def keep_alive(self) -> None:
        """While leader: renew the lease every ``ttl/3``; raise :class:`LostLeadership`
        when the lease is gone or when renewals failed for ``ttl*2/3``."""
        interval = self.ttl / 3
        while True:
            await asyncio.sleep(max(0.0, self.renewed_at + interval - self.clock()))
            sent = self.clock()
            try:
                left = await asyncio.wait_for(self.client.lease_keepalive(self.lease), self.ttl / 3)
            except (EtcdError, TimeoutError) as exc:
                if not self.valid:
                    self.resign_locally()
                    raise LostLeadership(f"no lease renewal for {self.ttl * 2 / 3:.1f}s") from exc
                log.warning("sync: lease renewal failed (%s), retrying", exc)
                await asyncio.sleep(min(0.5, interval / 4))
                continue
            if left <= 0:
                self.resign_locally()
                self.lease = 0
                raise LostLeadership("the lease expired")
            self.renewed_at = sent

    def resign_locally(self) -> None:
        self.leader = False
        self.create_revision = 0

    async def resign(self) -> None:
        """Step down now: revoke the lease (deletes the key), so a follower takes over."""
        lease, self.lease = self.lease, 0
        self.resign_locally()
        if lease:
            try:
                await self.client.lease_revoke(lease)
            except EtcdError as exc:
                log.debug("sync: lease revoke failed: %s", exc)
