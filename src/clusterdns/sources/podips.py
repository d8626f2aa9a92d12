"""PodIPIndex: which namespace the Pod holding an IP lives in, and nothing else about Pods.

What ``autopath @kubernetes`` needs to confirm that a client is a Pod of the namespace its
query names. Watching Pods in full (``pods verified``) keeps a record per Pod; this keeps one
dict entry per Pod IP: an integer key (the address) and an integer value packing an interned
namespace's number with a 36-bit tag of the owning Pod's (namespace, name): 119 bytes per Pod
at 100k Pods, against 614 for the full Pod records (``bench/autopath_memory.py``).

Which Pods count (:func:`eligible`): running or pending Pods with an IP, not terminating
(``deletionTimestamp`` set), not finished (``Succeeded``/``Failed``) and not on the host network
(a host-network Pod's IP is its node's, shared with every other such Pod and with the node's
own processes, so it says nothing about a namespace).

IP reuse: the kubelet frees a finished or terminating Pod's IP before the Pod object is deleted,
so a new Pod, perhaps in another namespace, can show up with that IP before the old Pod's last
events arrive. So the newest eligible claim wins, and a Pod that stops being eligible (or is
deleted) only releases an IP whose tag is still its own: a late event of the old Pod never
removes, nor takes back, the new owner's entry.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable
from functools import lru_cache

from .kube import objects as api

__all__ = ["PodIPIndex", "eligible", "ip_key"]

_NS_BITS = 24  # namespace numbers; 16 million distinct namespaces ever seen per process
_NS_MASK = (1 << _NS_BITS) - 1
_TAG_BITS = 36  # tag + namespace number stay under 2**60: a two-digit (32-byte) int
_TAG_MASK = (1 << _TAG_BITS) - 1
_V6 = 1 << 128  # IPv6 keys are offset so that ::a.b.c.d never equals a.b.c.d


def _key(text: str) -> int | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return int(address) | (_V6 if address.version == 6 else 0)


# Client addresses repeat; Pod addresses in a relist mostly do not (those use _key).
ip_key = lru_cache(maxsize=4096)(_key)
ip_key.__doc__ = "The integer key of an IP address text (any valid form), None if it is not one."


def _tag(namespace: str, name: str) -> int:
    # Within one process str hashes are stable; a collision (2**-36 between two Pods that
    # hold the same IP at the same time) only means one release is not skipped.
    return hash((namespace, name)) & _TAG_MASK


def eligible(pod: api.Pod) -> bool:
    """May this Pod's IPs confirm its namespace? (See the module docstring.)"""
    return not (
        pod.spec.host_network
        or pod.metadata.deletion_timestamp is not None
        or pod.status.phase in ("Succeeded", "Failed")
    )


def _status_keys(pod: api.Pod) -> tuple[int, ...]:
    status = pod.status
    raw = [p.ip for p in status.pod_ips] if status.pod_ips else [status.pod_ip or ""]
    return tuple(key for key in (_key(r) for r in raw if r) if key is not None)


class PodIPIndex:
    """Pod IP → namespace of the Pod that holds it now. Mutated from the event loop only;
    :meth:`namespace_of` is a dict lookup and safe from any thread."""

    __slots__ = ("_by_ip", "_ns_ids", "_ns_names")

    def __init__(self) -> None:
        self._by_ip: dict[int, int] = {}  # ip key → tag << _NS_BITS | namespace number
        self._ns_ids: dict[str, int] = {}
        self._ns_names: list[str] = []

    def __len__(self) -> int:
        return len(self._by_ip)

    def _ns_id(self, namespace: str) -> int:
        found = self._ns_ids.get(namespace)
        if found is None:
            found = len(self._ns_names)
            if found > _NS_MASK:
                raise OverflowError("too many distinct namespaces for the pod ip index")
            namespace = sys.intern(namespace)
            self._ns_names.append(namespace)
            self._ns_ids[namespace] = found
        return found

    def namespace_of(self, ip: str) -> str | None:
        """The namespace of the Pod holding ``ip`` (any valid text form), or None."""
        key = ip_key(ip)
        if key is None:
            return None
        value = self._by_ip.get(key)
        return None if value is None else self._ns_names[value & _NS_MASK]

    def apply(self, pod: api.Pod, *, deleted: bool = False) -> bool:
        """One watch event for ``pod``; True if the index changed."""
        meta = pod.metadata
        tag = _tag(meta.namespace, meta.name)
        keys = _status_keys(pod)
        changed = False
        if not deleted and eligible(pod):
            if keys:
                value = tag << _NS_BITS | self._ns_id(meta.namespace)
                for key in keys:
                    if self._by_ip.get(key) != value:
                        self._by_ip[key] = value
                        changed = True
            return changed
        # Finished, terminating or deleted: release the IPs the object still shows, only
        # where this Pod is still the owner.
        for key in keys:
            value_now = self._by_ip.get(key)
            if value_now is not None and value_now >> _NS_BITS == tag:
                del self._by_ip[key]
                changed = True
        return changed

    def replace_all(self, pods: Iterable[api.Pod]) -> bool:
        """Rebuild from a full list; True if the index changed."""
        fresh: dict[int, int] = {}
        self.collect(pods, fresh)
        return self.swap(fresh)

    def collect(self, pods: Iterable[api.Pod], fresh: dict[int, int]) -> None:
        """Add one page of a full list to ``fresh`` (for :meth:`swap`)."""
        for pod in pods:
            keys = _status_keys(pod) if eligible(pod) else ()
            if not keys:
                continue
            meta = pod.metadata
            value = _tag(meta.namespace, meta.name) << _NS_BITS | self._ns_id(meta.namespace)
            for key in keys:
                fresh[key] = value

    def swap(self, fresh: dict[int, int]) -> bool:
        """Replace the index with a full list's entries; True if it changed."""
        if fresh == self._by_ip:
            return False
        self._by_ip = fresh
        return True
