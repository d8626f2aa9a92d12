"""The answer table: every name the cluster defines, decided from the model on each query.

Nothing is stored per name or per reply. A query is classified on its wire name (zone,
``<svc>.<ns>.svc``, ``<ns>.pod``, reverse names), the Service's record is read from the
model, and :meth:`AnswerTable.decide` returns an :class:`Answer`: rcode, the records as
:data:`~clusterdns.wire.build.Record` tuples, and what the answer depends on (for the
reply memo). The server's fast path writes it straight onto the wire
(:func:`~clusterdns.wire.build.build_reply`); dnspython only ever sees it in tests (the
oracle) and for the rare reply a plugin further up must edit as a message.

Who reads and who writes: UDP receive threads call ``decide`` while the event loop applies
changes to the model and to this table. Every read here is a dict lookup or a read of an
immutable record, and every write is a single assignment, so a reader sees the state
before or after a change, never half of one (GIL). ``generation`` moves after the change
is in, so a reply built during a change is dropped by the memo's next check.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from time import monotonic
from typing import Final

from clusterdns.core.explain import Rule, Why
from clusterdns.core.fast import INFINITE, SERIAL_SLACK, Depends, ExpressReply
from clusterdns.plugins.kubernetes.config import KubernetesConfig, PodMode
from clusterdns.plugins.kubernetes.names import (
    endpoint_label,
    ip_from_reverse,
    is_reverse,
    pod_label_ip,
)
from clusterdns.sources.model import Change, ClusterModel, Endpoint, Service, ServiceImport
from clusterdns.wire import Query, text_to_wire
from clusterdns.wire.build import (
    SOA_TIMERS,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_NS,
    TYPE_PTR,
    TYPE_SOA,
    TYPE_SRV,
    TYPE_TXT,
    Record,
    address_rdata,
    build_reply,
    name_rdata,
    negative_with_soa,
    owned_by_question,
    soa_numbers,
    soa_rdata,
    srv_rdata,
    srv_with_address,
    txt_rdata,
)
from clusterdns.wire.names import (
    ipv4_from_reverse,
    join,
    label_offsets,
    name_to_text,
    prefixed,
    with_suffix_case,
)
from clusterdns.wire.query import read_plain, read_plain_at
from clusterdns.wire.render import limit_for

NOERROR: Final = 0
SERVFAIL: Final = 2
NXDOMAIN: Final = 3
CLASS_IN: Final = 1
AF_INET: Final = socket.AF_INET
AF_INET6: Final = socket.AF_INET6
inet_pton = socket.inet_pton
_ADDRESS_TYPES: Final = (TYPE_A, TYPE_AAAA)
# The SOA's mname and rname are these labels, then the zone (wire form, no root).
_MNAME_HEAD: Final = text_to_wire("ns.dns.")[:-1]
_RNAME_HEAD: Final = text_to_wire("hostmaster.")[:-1]

DNS_SCHEMA_VERSION: Final = "1.1.0"
DNS_VERSION_TTL: Final = 28800  # as CoreDNS (and the spec's example)
DNS_SERVICE: Final = ("kube-system", "kube-dns")  # whose ClusterIP ns.dns.<zone> answers
CNAME_DEPTH: Final = 8
PLUGIN: Final = "kubernetes"
_APEX_LABELS: Final = frozenset({b"dns", b"svc", b"pod", b"dns-version"})
_XFR_TYPES: Final = frozenset({251, 252})  # IXFR, AXFR
_IN_ADDR_ARPA: Final = text_to_wire("in-addr.arpa.")
# A whole IPv4 reverse name in wire form, canonical octets (no leading zeros, <= 255),
# each label with its length byte: ipv4_from_reverse()'s names, read in one match.
_OCTET: Final = rb"(\x01\d|\x02[1-9]\d|\x03(?:1\d\d|2[0-4]\d|25[0-5]))"
_V4_REVERSE: Final = re.compile(_OCTET * 4 + re.escape(_IN_ADDR_ARPA))

ServiceKey = tuple[str, str]


def namespace_token(namespace: str) -> ServiceKey:
    """The dependency token of "no such Service" answers in a namespace: changed when a
    Service is created or deleted there (Change.named), not by endpoint churn. A
    Service's name is never empty."""
    return (namespace, "")


def import_token(namespace: str, name: str) -> tuple[str, str, str]:
    """The dependency token of a multicluster zone's answers about ServiceImport ``name``
    (``""``: any ServiceImport of the namespace, for "no such ServiceImport" answers)."""
    return ("import", namespace, name)


def pod_token(ip: str) -> tuple[str, str, str]:
    """The dependency token of a ``pods verified`` answer: dropped when the Pods with the
    IP change (Change.pod_ips)."""
    return ("pod", "", ip)


# The dependencies of an answer that only a change of everything alters (a namespace's
# existence, a full relist: changes_since says None for those).
NO_TOKENS: Final[frozenset[Hashable]] = frozenset()


def ptr_key(ip: str) -> ServiceKey:
    """The dependency token of a PTR answer: dropped when the model says the IP's owners
    changed (Change.ips). The empty namespace cannot be a real one."""
    return ("", ip)


# One address behind a name (CoreDNS's msg.Service): an IP, a port (-1 for none) and the
# name (wire form) an SRV record for it points to. A plain tuple: one is made per address
# per query, and a frozen dataclass costs several times as much to build.
Item = tuple[str, int, bytes]


@dataclass(slots=True)
class NameData:
    """What one existing name holds. A name with nothing is an empty non-terminal (NODATA)."""

    items: tuple[Item, ...] = ()
    cname: bytes | None = None  # wire form
    txt: str | None = None
    ptrs: tuple[bytes, ...] = ()  # wire form
    apex: bool = False


EMPTY: Final = NameData()


class Answer:
    """What the table decided for one question: rcode, records, and its dependency."""

    __slots__ = ("additional", "answer", "authority", "carries_soa", "chase", "depends", "rcode")

    def __init__(
        self,
        rcode: int,
        answer: Sequence[Record] = (),
        authority: Sequence[Record] = (),
        additional: Sequence[Record] = (),
        depends: Depends = None,
        chase: bytes | None = None,
        carries_soa: bool = False,
    ) -> None:
        self.rcode = rcode
        # A negative answer: its SOA's serial moves with any change in the zone, so it
        # is replayed for a bounded time (core.fast.SERIAL_SLACK), not until a change.
        self.carries_soa = carries_soa
        # An ExternalName's target outside our zones, which the chain looks up through the
        # server (CoreDNS's upstream): the fast path leaves such answers to it.
        self.chase = chase
        self.answer = answer
        self.authority = authority
        self.additional = additional
        self.depends = depends

    def to_wire(self, query: Query, limit: int, payload: int) -> bytes:
        """The reply to ``query`` (its ID, question and EDNS) within ``limit`` bytes."""
        return build_reply(
            query,
            rcode=self.rcode,
            answer=self.answer,
            authority=self.authority,
            additional=self.additional,
            limit=limit,
            payload=payload,
        )

    def __repr__(self) -> str:
        return (
            f"Answer(rcode={self.rcode}, answer={len(self.answer)}, "
            f"authority={len(self.authority)}, additional={len(self.additional)})"
        )


def _may_fall_through(fallthrough: tuple[str, ...] | None, zone: str) -> bool:
    """Whether ``fallthrough`` covers any name in ``zone`` (both lower-case, absolute)."""
    if fallthrough is None:
        return False
    if not fallthrough or zone == ".":
        return True  # `fallthrough` alone: every name; or a root zone holds every name
    return any(
        f == "." or f == zone or zone.endswith("." + f) or f.endswith("." + zone)
        for f in fallthrough
    )


def _dedupe(records: list[Record]) -> list[Record]:
    """Equal records once, the first kept (an RRset is a set)."""
    if len(records) < 2:
        return records
    seen: set[tuple[bytes, ...]] = set()
    out = []
    for record in records:
        key = record[3]
        if key not in seen:
            seen.add(key)
            out.append(record)
    return out


class _Zone:
    """One zone of the block, in the forms the query path needs."""

    __slots__ = (
        "may_fall_through", "multicluster", "ns_wire", "reverse", "soa_names", "text", "wire",
    )  # fmt: skip

    def __init__(
        self, text: str, fallthrough: tuple[str, ...] | None, *, multicluster: bool = False
    ) -> None:
        self.text = text
        self.wire = text_to_wire(text)
        self.reverse = is_reverse(text)
        # A KEP-1645 zone (``multicluster``): its Services are the ServiceImports.
        self.multicluster = multicluster
        self.may_fall_through = _may_fall_through(fallthrough, text)
        self.ns_wire = text_to_wire(join("ns.dns", text))
        self.soa_names = (self.ns_wire, text_to_wire(join("hostmaster", text)))


class AnswerTable:
    """Answers for one ``kubernetes`` block. See the module docstring."""

    def __init__(
        self, config: KubernetesConfig, model: ClusterModel, *, own_addresses: Sequence[str]
    ) -> None:
        self.config = config
        self.model = model
        self.own_addresses = tuple(own_addresses)
        self.zones = tuple(sorted(config.zones, key=len, reverse=True))
        fallthrough = config.fallthrough.zones
        multicluster = frozenset(config.multicluster_zones)
        self._zones = {
            z.wire: z
            for z in (
                _Zone(text, fallthrough, multicluster=text in multicluster) for text in config.zones
            )
        }
        self.zone_wires = frozenset(self._zones)
        # Label counts of the zones, most first (the root zone has none).
        self._zone_label_counts = sorted(
            {len(label_offsets(wire)) - 1 for wire in self._zones}, reverse=True
        )
        self.forward_zones = config.forward_zones
        self._primary = text_to_wire(config.primary_zone)
        self._svc_primary = text_to_wire(join("svc", config.primary_zone))
        # The few names of each zone's apex (the zone, dns, ns.dns, svc, pod, dns-version),
        # by wire name.
        self.names: dict[bytes, NameData] = {}
        # How long express() lets a negative answer be replayed (the handler's
        # SERIAL_SLACK, core/fast.py).
        self.serial_slack = SERIAL_SLACK
        # True until the plugin has the initial lists (or gave up waiting): changes are
        # not applied one by one, the plugin calls rebuild() once instead.
        self.deferring = True
        self.generation = 0
        self.serial = int(time.time())
        self.ttl = config.ttl
        self._soa_cache: tuple[int, bytes] = (-1, b"")
        # quick()'s NXDOMAIN dependency, one frozenset per namespace asked about.
        self._namespace_depends: dict[str, frozenset[Hashable]] = {}
        # Zones quick() may answer in: forward zones where nothing falls through, and only
        # when no filter decides visibility but a namespace's existence.
        self._quick_zones: frozenset[bytes] = frozenset()
        self._quick_reverse: frozenset[bytes] = frozenset()
        # No filter decides visibility but a namespace's existence: quick() may answer.
        self._plain = (
            not config.namespaces and config.labels is None and config.namespace_labels is None
            and not config.noendpoints and not config.ignore_empty_service
        )  # fmt: skip
        if self._plain:
            self._quick_zones = frozenset(
                wire
                for wire, zone in self._zones.items()
                if not zone.reverse
                and not zone.may_fall_through
                and not zone.multicluster
                and wire != b"\x00"
            )
            # Reverse zones where a PTR with one target is written as plain bytes: the
            # target (under the cluster zone) shares no suffix with an .arpa question, so
            # nothing in it would be compressed.
            if not self._svc_primary.endswith(b"\x04arpa\x00"):
                self._quick_reverse = frozenset(
                    wire
                    for wire, zone in self._zones.items()
                    if zone.reverse and not zone.multicluster and wire.endswith(b"\x04arpa\x00")
                )

        # The names express() finds by one lookup of the question's whole name (lower-case
        # wire form), with no label walk: each ClusterIP Service's name in the quick zones,
        # to the Service (an SRV name, by what follows its first two labels). Only a
        # shortcut, never the answer: a Service is used only while the model holds that
        # very Service, so an entry a change has not reached costs the walk, never a wrong
        # answer. Not for a zone with another of the block's zones inside it: zone_of()
        # would take the inner one for some of its names, and quick() would answer
        # differently. (An IPv4 reverse name is read by one regular expression instead:
        # its labels are all the data a PTR question needs, and an index of them would
        # cost ~11 MiB per 100k Services.)
        self._express_names: dict[bytes, Service] = {}
        self._service_suffixes = tuple(
            b"\x03svc" + wire for wire in self._quick_zones if not self._holds_a_zone(wire)
        )
        self._reverse_express = _IN_ADDR_ARPA in self._quick_reverse and not self._holds_a_zone(
            _IN_ADDR_ARPA
        )

    def _holds_a_zone(self, wire: bytes) -> bool:
        """Does another of the block's zones lie inside the zone ``wire``?"""
        return any(other != wire and other.endswith(wire) for other in self._zones)

    # --- updates ---------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Start over from the model (start, and a Change with ``full``)."""
        self._build_apex()
        self._express_names.clear()
        if self._service_suffixes:
            for svc in self.model.services():
                self._index_service(svc)
        self._changed()

    def apply(self, change: Change) -> None:
        """Take in what ``change`` touched (nothing while deferring: see rebuild())."""
        if self.deferring:
            return
        if change.full:
            self.rebuild()
            return
        if DNS_SERVICE in change.services or DNS_SERVICE[0] in change.namespaces:
            self._build_apex()
        if self._service_suffixes:
            for namespace, name in change.services:
                keys = self._service_keys(namespace, name)
                if not keys:
                    continue
                svc = self.model.service(namespace, name)
                old = self._express_names.get(keys[0])
                if old is svc:
                    continue  # its endpoints changed: the same Service, the same names
                if old is not None:
                    self._unindex_service(old)
                if svc is not None:
                    self._index_service(svc)
        self._changed()

    def _service_keys(self, namespace: str, name: str) -> list[bytes]:
        """The wire names quick() finds this Service by (none for a name it cannot find:
        not lower-case ASCII, over 63 bytes, holding a zero byte)."""
        if not (
            name.isascii() and namespace.isascii() and name.islower() and namespace.islower()
            and 0 < len(name) <= 63 and 0 < len(namespace) <= 63
            and "\x00" not in name and "\x00" not in namespace
        ):  # fmt: skip
            return []
        head = bytes((len(name),)) + name.encode() + bytes((len(namespace),)) + namespace.encode()
        return [head + suffix for suffix in self._service_suffixes]

    def _express_keys(self, svc: Service) -> list[bytes]:
        """Where _express_names holds ``svc``: nowhere unless quick() would answer its
        A/AAAA (a ClusterIP Service); then its names (its SRV names are found through
        them: express() looks up what follows ``_<port>._<proto>``)."""
        if not svc.cluster_ips or svc.headless or svc.type == "ExternalName":
            return []
        return self._service_keys(svc.namespace, svc.name)

    def _index_service(self, svc: Service) -> None:
        for key in self._express_keys(svc):
            self._express_names[key] = svc

    def _unindex_service(self, svc: Service) -> None:
        for key in self._express_keys(svc):
            self._express_names.pop(key, None)

    def _changed(self) -> None:
        self.generation += 1
        self.serial = max(self.serial, int(time.time()))

    def _build_apex(self) -> None:
        names: dict[bytes, NameData] = {}
        ns_items = self._ns_items()
        for zone in self._zones.values():
            text = zone.text
            names[zone.wire] = NameData(apex=True)
            names[text_to_wire(join("dns", text))] = EMPTY
            names[zone.ns_wire] = NameData(items=tuple((ip, -1, zone.ns_wire) for ip in ns_items))
            if not zone.reverse:
                names[text_to_wire(join("svc", text))] = EMPTY
                names[text_to_wire(join("pod", text))] = EMPTY
                names[text_to_wire(join("dns-version", text))] = NameData(txt=DNS_SCHEMA_VERSION)
        self.names = names  # one assignment: readers see the old or the new apex

    def _ns_items(self) -> list[str]:
        svc = self.model.service(*DNS_SERVICE)
        if svc is not None and svc.cluster_ips:
            return list(svc.cluster_ips)
        return list(self.own_addresses)

    # --- visibility ------------------------------------------------------------------------

    def namespace_visible(self, namespace: str) -> bool:
        config = self.config
        if config.namespaces and namespace not in config.namespaces:
            return False
        if not self.model.namespace_exists(namespace):
            return False
        if config.namespace_labels is not None:
            ns = self.model.namespace(namespace)
            return ns is not None and config.namespace_labels.matches(ns.labels)
        return True

    def service_visible(self, svc: Service) -> bool:
        if self.config.labels is not None and not self.config.labels.matches(svc.labels):
            return False
        return self.namespace_visible(svc.namespace)

    # --- which zone --------------------------------------------------------------------------

    def zone_for(self, name: str) -> str | None:
        """The zone (text) of a lower-case absolute name, or None."""
        wire = text_to_wire(name)
        found = self.zone_of(wire, label_offsets(wire))
        return None if found is None else found[0].text

    def zone_of(self, lower: bytes, offsets: Sequence[int]) -> tuple[_Zone, int] | None:
        """The longest zone containing the name, and the index of its first label.

        Tried by label count, longest zone first, from the right: one lookup per distinct
        zone length (cluster.local, in-addr.arpa, ip6.arpa: one), not one per label."""
        zones = self._zones
        last = len(offsets) - 1
        for count in self._zone_label_counts:
            index = last - count
            if index < 0:
                continue
            offset = offsets[index]
            zone = zones.get(lower[offset:] if offset else lower)
            if zone is not None:
                return zone, index
        return None

    def ours(self, lower: bytes, offsets: Sequence[int]) -> bool:
        zones = self._zones
        return any(lower[offset:] in zones for offset in offsets)

    # --- the decision --------------------------------------------------------------------------

    def decide(
        self,
        lower: bytes,
        offsets: Sequence[int],
        qtype: int,
        found: tuple[_Zone, int] | bool | None = True,
        asked: bytes | None = None,
        why: list[Why] | None = None,
    ) -> Answer | None:
        """The answer to (name, qtype), the name in lower-case wire form with its label
        offsets; None when it is not ours or falls through. ``found`` is zone_of()'s result
        when the caller has it already. ``asked``: the question's name as the client wrote
        it (wire form); SRV targets end in its zone labels, letter case included, as
        CoreDNS builds them from the question's zone (the rest of the reply gets the
        question's case through compression pointers). ``why``, only when explaining
        (core/explain.py), gets the rule that decided."""
        if found is True:
            found = self.zone_of(lower, offsets)
        if not found:
            return None
        zone, index = found
        data, depends = self._find(lower, offsets, zone, index, why)
        if data is not None:
            cased = None
            if qtype == TYPE_SRV and asked is not None and asked != lower:
                cased = asked[offsets[index] :] if index else asked
            return self._positive(lower, data, qtype, zone, depends, cased)
        if zone.may_fall_through and self.config.fallthrough.through(name_to_text(lower)):
            if why is not None:
                why.append(Why(PLUGIN, Rule.FALLTHROUGH, f"fallthrough covers {zone.text}"))
            return None
        # CoreDNS: before the first sync a missing name is not proof of absence.
        rcode = NXDOMAIN if self.model.synced else SERVFAIL
        if why is not None and rcode == SERVFAIL:
            why.append(Why(PLUGIN, Rule.NOT_SYNCED, "the cluster's lists are not in yet"))
        return Answer(rcode, authority=(self.soa(zone),), depends=depends, carries_soa=True)

    def decide_text(self, name: str, qtype: int) -> Answer | None:
        """decide() for a lower-case absolute name in text form (internal lookups)."""
        wire = text_to_wire(name)
        return self.decide(wire, label_offsets(wire), qtype)

    def _find(
        self,
        lower: bytes,
        offsets: Sequence[int],
        zone: _Zone,
        index: int,
        why: list[Why] | None = None,
    ) -> tuple[NameData | None, Depends]:
        """What the name holds (None: it does not exist) and what that depends on; each
        way out says its rule into ``why`` when explaining (None otherwise: no cost)."""
        static = self.names.get(lower)
        if static is not None:
            if why is not None:
                why.append(Why(PLUGIN, Rule.ZONE, f"a name of zone {zone.text} itself"))
            return static, None
        if index == 0:
            if why is not None:
                why.append(Why(PLUGIN, Rule.NO_SUCH_NAME, f"no such name in {zone.text}"))
            return None, None
        if zone.reverse:
            ip = ipv4_from_reverse(lower, offsets) or ip_from_reverse(name_to_text(lower))
            if ip is None:
                if why is not None:
                    why.append(Why(PLUGIN, Rule.NO_SUCH_NAME, "not a complete reverse name"))
                return None, None
            targets = self._ptr_targets(ip)
            if why is not None:
                if targets:
                    why.append(Why(PLUGIN, Rule.PTR, f"{ip} belongs to a Service or endpoint"))
                else:
                    why.append(Why(PLUGIN, Rule.NO_SUCH_NAME, f"no Service or endpoint has {ip}"))
            return (NameData(ptrs=targets) if targets else None), frozenset((ptr_key(ip),))
        last = lower[offsets[index - 1] + 1 : offsets[index]]
        if last == b"svc":
            if index == 2:
                namespace = lower[1 : offsets[1]].decode("latin-1")
                visible = self.namespace_visible(namespace)
                if why is not None:
                    why.append(_namespace_why(namespace, visible))
                return (EMPTY if visible else None), None
            if index < 3:
                if why is not None:
                    why.append(Why(PLUGIN, Rule.NO_SUCH_NAME, "no such name under svc"))
                return None, None
            if zone.multicluster:
                return self._find_import(lower, offsets, index, why)
            key = (
                lower[offsets[index - 2] + 1 : offsets[index - 1]].decode("latin-1"),
                lower[offsets[index - 3] + 1 : offsets[index - 2]].decode("latin-1"),
            )
            depends: Depends = frozenset((key,))
            if index > 5:
                if why is not None:
                    why.append(Why(PLUGIN, Rule.NO_SUCH_NAME, "too many labels below a Service"))
                return None, depends  # nothing lives more than two labels below a Service
            svc = self.model.service(*key)
            if svc is None:
                if why is not None:
                    if self.namespace_visible(key[0]):
                        why.append(Why(
                            PLUGIN, Rule.NO_SERVICE,
                            f"namespace {key[0]} has no Service {key[1]}",
                        ))  # fmt: skip
                    else:
                        why.append(_namespace_why(key[0], False))
                # Any Service created in the namespace drops it (one group for all the
                # search-path misses of a namespace, not one per missing name).
                return None, frozenset((namespace_token(key[0]),))
            if not self.service_visible(svc):
                if why is not None:
                    if self.namespace_visible(key[0]):
                        why.append(Why(
                            PLUGIN, Rule.SERVICE_HIDDEN,
                            f"Service {key[0]}/{key[1]} does not match the labels filter",
                        ))  # fmt: skip
                    else:
                        why.append(_namespace_why(key[0], False))
                return None, depends
            base_at = offsets[index - 3]
            if index == 3:
                sub: tuple[str, ...] = ()
            elif index == 4:
                sub = (lower[1 : offsets[1]].decode("latin-1"),)
            else:
                sub = (
                    lower[1 : offsets[1]].decode("latin-1"),
                    lower[offsets[1] + 1 : offsets[2]].decode("latin-1"),
                )
            data = self._service_name(svc, sub, lower[base_at:] if base_at else lower)
            if why is not None:
                why.append(_service_why(svc, sub, data))
            return data, depends
        if last == b"pod" and self.config.pods is not PodMode.DISABLED:
            data, depends = self._pod_name(lower, offsets, index)
            if why is not None:
                why.append(self._pod_why(lower, offsets, index, data))
            return data, depends
        if why is not None:
            why.append(
                Why(PLUGIN, Rule.NO_SUCH_NAME, f"not a name the schema defines in {zone.text}")
            )
        # No cluster state makes such a name exist (the search path's last try for an
        # external name, `example.com.cluster.local`): only a change of everything.
        return None, NO_TOKENS

    def _find_import(
        self, lower: bytes, offsets: Sequence[int], index: int, why: list[Why] | None
    ) -> tuple[NameData | None, Depends]:
        """_find() below ``<ns>.svc`` of a multicluster zone: the ServiceImports."""
        namespace = lower[offsets[index - 2] + 1 : offsets[index - 1]].decode("latin-1")
        name = lower[offsets[index - 3] + 1 : offsets[index - 2]].decode("latin-1")
        imported = self.model.service_import(namespace, name)
        if imported is None or not self.namespace_visible(namespace):
            if why is not None:
                if self.namespace_visible(namespace):
                    why.append(Why(
                        PLUGIN, Rule.NO_SERVICE,
                        f"namespace {namespace} has no ServiceImport {name}",
                    ))  # fmt: skip
                else:
                    why.append(_namespace_why(namespace, False))
            # Any ServiceImport created in the namespace drops it (as namespace_token).
            return None, frozenset((import_token(namespace, ""),))
        depends = frozenset((import_token(namespace, name),))
        if index > 5:
            if why is not None:
                why.append(Why(PLUGIN, Rule.NO_SUCH_NAME, "too many labels below a Service"))
            return None, depends
        base_at = offsets[index - 3]
        sub = tuple(
            lower[offsets[i] + 1 : offsets[i + 1]].decode("latin-1") for i in range(index - 3)
        )
        data = self._import_name(imported, sub, lower[base_at:] if base_at else lower)
        if why is not None:
            why.append(_import_why(imported, sub, data))
        return data, depends

    def _import_name(
        self, imported: ServiceImport, sub: tuple[str, ...], base: bytes
    ) -> NameData | None:
        """What ``<sub...>.<svc>.<ns>.svc.<multicluster zone>`` holds (``base``: the
        ServiceImport's own name), or None. KEP-1645's names, as CoreDNS serves them: the
        ServiceImport itself (its clusterset IPs, or every ready imported endpoint when
        headless), ``<hostname>.<clusterid>`` for each ready endpoint, ``_<port>._<proto>``
        for named ports; ``<clusterid>`` and ``_<proto>`` are empty non-terminals above
        those. An endpoint's hostname label is the one the cluster zone would give it."""
        config = self.config
        first = sub[0] if sub else ""
        served: list[tuple[str, Endpoint]] = []
        if imported.headless or config.ignore_empty_service or (first and first[0] != "_"):
            if not config.noendpoints:
                served = [
                    (cluster.lower(), ep)
                    for cluster, ep in self.model.import_endpoints(imported.namespace, imported.name)
                    if ep.ready
                ]  # fmt: skip
            if not served and config.ignore_empty_service and not imported.headless:
                return None
        # No name of its own: NXDOMAIN, as for a Service. A ClusterSetIP ServiceImport
        # with ports but no IP yet (its controller allocates one) exists: NODATA, as in
        # CoreDNS.
        if not (
            any(ep.addresses for _, ep in served)
            if imported.headless
            else imported.ips or imported.ports
        ):
            return None
        pod_names = config.endpoint_pod_names
        items: list[Item] = []
        if not sub or (len(sub) == 2 and first.startswith("_") and sub[1].startswith("_")):
            port_name = first[1:] if sub else None
            protocol = sub[1][1:] if sub else None
            if imported.headless:
                for cluster, ep in served:
                    for ip in ep.addresses:
                        label = endpoint_label(ip, ep.hostname, ep.pod_name, pod_names=pod_names)
                        target = _under(base, cluster, label)
                        for port in ep.ports or (None,):
                            if port_name is None:
                                items.append((ip, -1 if port is None else port.port, target))
                            elif (
                                port is not None
                                and port.name.lower() == port_name
                                and port.protocol.lower() == protocol
                            ):
                                items.append((ip, port.port, target))
            else:
                for port in imported.ports or (None,):
                    if port_name is None:
                        number = -1 if port is None else port.port
                        items += [(ip, number, base) for ip in imported.ips]
                    elif (
                        port is not None
                        and port.name.lower() == port_name
                        and port.protocol.lower() == protocol
                    ):
                        items += [(ip, port.port, base) for ip in imported.ips]
            if not sub:
                return NameData(items=tuple(items))
            return NameData(items=tuple(items)) if items else None
        if len(sub) == 1 and first.startswith("_"):  # _<proto>
            protocol = first[1:]
            ports = (
                (p for _, ep in served for p in ep.ports) if imported.headless else imported.ports
            )
            return EMPTY if any(p.name and p.protocol.lower() == protocol for p in ports) else None
        if len(sub) == 1:
            # <clusterid>: above its endpoints' names; or the endpoint of a slice that
            # names no cluster (CoreDNS matches an empty cluster id so).
            for cluster, ep in served:
                for ip in ep.addresses:
                    if cluster == first:
                        return EMPTY
                    label = endpoint_label(ip, ep.hostname, ep.pod_name, pod_names=pod_names)
                    if not cluster and label == first:
                        name = _under(base, "", first)
                        items += [
                            (ip, -1 if p is None else p.port, name) for p in ep.ports or (None,)
                        ]
            return NameData(items=tuple(items)) if items else None
        if len(sub) != 2 or first.startswith("_") or sub[1].startswith("_"):
            return None
        wanted_label, wanted_cluster = sub
        name = _under(base, wanted_cluster, wanted_label)
        for cluster, ep in served:
            if cluster != wanted_cluster:
                continue
            for ip in ep.addresses:
                if (
                    endpoint_label(ip, ep.hostname, ep.pod_name, pod_names=pod_names)
                    == wanted_label
                ):
                    items += [(ip, -1 if p is None else p.port, name) for p in ep.ports or (None,)]
        return NameData(items=tuple(items)) if items else None

    def _pod_why(
        self, lower: bytes, offsets: Sequence[int], index: int, data: NameData | None
    ) -> Why:
        namespace = lower[offsets[index - 2] + 1 : offsets[index - 1]].decode("latin-1")
        if index in (2, 3) and not self.namespace_visible(namespace):
            return _namespace_why(namespace, False)
        if data is None:
            return Why(PLUGIN, Rule.NO_SUCH_NAME, "not a pod IP label (a-b-c-d) or not a pod's IP")
        if index == 2:
            return Why(PLUGIN, Rule.NAMESPACE, f"namespace {namespace} exists")
        mode = self.config.pods.value
        return Why(PLUGIN, Rule.POD, f"pods {mode}: the IP spelled by the first label")

    def _pod_name(
        self, lower: bytes, offsets: Sequence[int], index: int
    ) -> tuple[NameData | None, Depends]:
        """What ``<a-b-c-d>.<ns>.pod.<zone>`` (or ``<ns>.pod.<zone>``) holds, and what that
        depends on: only the namespace's visibility (whose changes drop every answer,
        NO_TOKENS) in ``pods insecure``, and the Pods with the IP in ``pods verified``."""
        if index == 2:
            namespace = lower[1 : offsets[1]].decode("latin-1")
            return (EMPTY if self.namespace_visible(namespace) else None), NO_TOKENS
        if index != 3:
            return None, NO_TOKENS
        namespace = lower[offsets[1] + 1 : offsets[2]].decode("latin-1")
        if not self.namespace_visible(namespace):
            return None, NO_TOKENS
        ip = pod_label_ip(lower[1 : offsets[1]].decode("latin-1"))
        if ip is None:
            return None, NO_TOKENS
        if self.config.pods is PodMode.VERIFIED:
            depends = frozenset((pod_token(ip),))
            if not any(pod.namespace == namespace for pod in self.model.pods_by_ip(ip)):
                return None, depends
            return NameData(items=((ip, -1, lower),)), depends
        return NameData(items=((ip, -1, lower),)), NO_TOKENS

    def _service_name(self, svc: Service, sub: tuple[str, ...], base: bytes) -> NameData | None:
        """What the name ``<sub...>.<svc>.<ns>.svc.<zone>`` holds (``base`` is the
        Service's own name in wire form), or None when the Service defines no such name.

        The one place that says which names a Service defines: itself; each served
        endpoint's label; ``_<port>._<proto>`` for named ports and the ``_<proto>`` empty
        non-terminal above them. A headless Service without endpoints defines none."""
        if svc.type == "ExternalName":
            if sub or not svc.external_name:
                return None
            try:
                return NameData(cname=text_to_wire(svc.external_name.lower().rstrip(".") + "."))
            except ValueError:
                return None  # not a domain name (the API server would have refused it)
        config = self.config
        first = sub[0] if sub else ""
        if svc.headless or config.ignore_empty_service or (first and first[0] != "_"):
            endpoints = () if config.noendpoints else self.model.endpoints(svc.namespace, svc.name)
            served = [ep for ep in endpoints if ep.ready or svc.publish_not_ready]
            if not served and config.ignore_empty_service:
                return None
        else:
            served = []  # the Service's own names and SRV records need no endpoints
        # Without a name of its own (headless without endpoints, no ClusterIP), a Service
        # defines no name at all: the spec says NXDOMAIN.
        if not (any(ep.addresses for ep in served) if svc.headless else svc.cluster_ips):
            return None
        pod_names = config.endpoint_pod_names
        items: list[Item] = []
        if not sub:
            if svc.headless:
                for ep in served:
                    for ip in ep.addresses:
                        target = prefixed(
                            endpoint_label(ip, ep.hostname, ep.pod_name, pod_names=pod_names), base
                        )
                        for port in ep.ports or (None,):
                            items.append((ip, -1 if port is None else port.port, target))
            elif svc.ports:
                items = [(ip, port.port, base) for port in svc.ports for ip in svc.cluster_ips]
            else:
                items = [(ip, -1, base) for ip in svc.cluster_ips]
            return NameData(items=tuple(items))
        if len(sub) == 1 and not first.startswith("_"):
            name = prefixed(first, base)
            for ep in served:
                for ip in ep.addresses:
                    if endpoint_label(ip, ep.hostname, ep.pod_name, pod_names=pod_names) == first:
                        for port in ep.ports or (None,):
                            items.append((ip, -1 if port is None else port.port, name))
            return NameData(items=tuple(items)) if items else None
        if len(sub) == 1:  # _<proto>: an empty non-terminal when a named port has it
            protocol = first[1:]
            ports = (p for ep in served for p in ep.ports) if svc.headless else svc.ports
            return EMPTY if any(p.name and p.protocol.lower() == protocol for p in ports) else None
        if not (first.startswith("_") and sub[1].startswith("_")):
            return None
        port_name, protocol = first[1:], sub[1][1:]
        if svc.headless:
            for ep in served:
                for ip in ep.addresses:
                    target = prefixed(
                        endpoint_label(ip, ep.hostname, ep.pod_name, pod_names=pod_names), base
                    )
                    for port in ep.ports:
                        if port.name.lower() == port_name and port.protocol.lower() == protocol:
                            items.append((ip, port.port, target))
        else:
            for port in svc.ports:
                if port.name.lower() == port_name and port.protocol.lower() == protocol:
                    items += [(ip, port.port, base) for ip in svc.cluster_ips]
        return NameData(items=tuple(items)) if items else None

    def has_names(self, svc: Service) -> bool:
        """Does the Service define any name (PTR answers only point at those)?"""
        if not self.forward_zones or not self.service_visible(svc):
            return False
        if svc.cluster_ips and not svc.headless and not self.config.ignore_empty_service:
            return True  # its own name, with no need to look at its endpoints
        return self._service_name(svc, (), self._primary) is not None

    def _ptr_targets(self, ip: str) -> tuple[bytes, ...]:
        """PTR targets for an IP: the Services owning it as ClusterIP, else its endpoints."""
        svc_zone = self._svc_primary
        cluster: list[bytes] = []
        endpoints: list[bytes] = []
        for svc in self.model.ip_services(ip):
            if not self.has_names(svc):
                continue
            base = prefixed(svc.name.lower(), prefixed(svc.namespace.lower(), svc_zone))
            if ip in svc.cluster_ips:
                cluster.append(base)
            elif not self.config.noendpoints and not cluster:
                hostname = self.model.hostname_of(svc, ip)
                endpoints.append(prefixed(self._endpoint_label_for(svc, ip, hostname), base))
        return tuple(cluster or endpoints)

    def _endpoint_label_for(self, svc: Service, ip: str, hostname: str | None) -> str:
        pod_name = None
        if not hostname and self.config.endpoint_pod_names:
            for ep in self.model.endpoints(svc.namespace, svc.name):
                if ip in ep.addresses and ep.pod_name:
                    pod_name = ep.pod_name
                    break
        return endpoint_label(ip, hostname, pod_name, pod_names=self.config.endpoint_pod_names)

    # --- the two commonest questions, written without the general decision ------------------

    def quick(
        self, query: Query, found: tuple[_Zone, int], limit: int, payload: int
    ) -> tuple[bytes, Depends, bool] | None:
        """The reply to the two questions a cluster asks most, or None for decide().

        ``<svc>.<ns>.svc.<zone>`` A/AAAA of a Service with a ClusterIP of that family, and
        NXDOMAIN for a name under ``<ns>.svc.<zone>`` whose Service does not exist (the
        search path of ``ndots:5``). Same bytes as decide() + build_reply() (the tests hold
        them equal); it only skips the general path's calls and objects, which are most of a
        first-sight question's cost here. Anything unusual (filters on visibility, other
        Service types, fallthrough in the zone, before the sync) goes to decide()."""
        if query.qclass != CLASS_IN:
            return None
        zone, index = found
        edns = query.edns
        return self._quick(
            query.qname_lower, query.label_offsets, index, zone, query.qtype, query.id,
            query.flags, query.data[12 : query.question_end],
            None if edns is None else edns.do, limit, payload,
        )  # fmt: skip

    def express(self, data: bytes, tcp: bool, max_udp: int) -> ExpressReply | None:
        """quick() straight from a datagram of the commonest shape (wire.query.read_plain),
        without a Query, or None for anything else: the plugin's answer_express()
        (core/fast.py). A negative answer is kept for ``serial_slack`` seconds."""
        if self.deferring:
            return None
        # The name up to the first zero byte: the question's whole name whenever it is
        # one of _express_names (those hold no zero byte but their root label), two labels
        # and one of them (SRV), or an IPv4 reverse name.
        end = data.find(0, 12) + 1
        lower = data[12:end].lower()
        named: Service | tuple[Service, int, int] | str | None = None
        indexed = self._express_names.get(lower)
        if indexed is not None:
            if self.model.service(indexed.namespace, indexed.name) is indexed:
                named = indexed  # else changed since it was indexed: the walk below
        elif lower[1:2] == b"_":
            named = self._srv_service(lower)
        elif self._reverse_express and lower.endswith(_IN_ADDR_ARPA):
            reverse = _V4_REVERSE.fullmatch(lower)
            if reverse is not None:
                last, third, second, first = reverse.groups()
                named = b".".join((first[1:], second[1:], third[1:], last[1:])).decode()
        if named is not None:
            return self._express_named(data, end, lower, named, tcp, max_udp)
        plain = read_plain(data)
        if plain is None:
            return None
        msg_id, flags, name_end, offsets, qtype, question_end, payload, do = plain
        if qtype in _XFR_TYPES:
            return None  # refused by the chain (handler.py), never answered here
        if name_end != end:
            lower = data[12:name_end].lower()
        found = self.zone_of(lower, offsets)
        if found is None:
            return None
        limit = limit_for(tcp, payload, max_udp)
        zone, index = found
        quick = self._quick(
            lower, offsets, index, zone, qtype, msg_id, flags, data[12:question_end],
            None if payload is None else do, limit, max_udp,
        )  # fmt: skip
        if quick is None:
            return None
        wire, depends, carries_soa = quick
        until = monotonic() + self.serial_slack if carries_soa else INFINITE
        return wire, until, depends, lower, qtype, do

    def _srv_service(self, lower: bytes) -> tuple[Service, int, int] | None:
        """For ``_<port>._<proto>.<Service name>``, two labels in front of a name in
        _express_names (so a valid name with them): the model's Service, and where the
        second label and the Service's name start; else None."""
        size = len(lower)
        proto_at = 1 + lower[0]
        if proto_at >= size or lower[0] > 63:
            return None
        service_at = proto_at + 1 + lower[proto_at]
        if service_at >= size or lower[proto_at] > 63:
            return None
        svc = self._express_names.get(lower[service_at:])
        if svc is None or self.model.service(svc.namespace, svc.name) is not svc:
            return None
        return svc, proto_at, service_at

    def _express_named(
        self,
        data: bytes,
        name_end: int,
        lower: bytes,
        named: Service | tuple[Service, int, int] | str,
        tcp: bool,
        max_udp: int,
    ) -> ExpressReply | None:
        """express() of a question whose whole name (a valid one, ending at ``name_end``)
        was found without a walk: a Service's name (its A/AAAA), an SRV name of a Service
        (the Service, where the labels start) or the reverse name of an IP (its PTR), as
        _quick() writes them; None for any other type or query."""
        plain = read_plain_at(data, name_end)
        if plain is None:
            return None
        msg_id, flags, qtype, question_end, payload, do = plain
        question = data[12:question_end]
        edns_do = None if payload is None else do
        limit = limit_for(tcp, payload, max_udp)
        quick: tuple[bytes, Depends] | None = None
        if isinstance(named, Service):
            if qtype in (TYPE_A, TYPE_AAAA):
                quick = self._service_address(
                    named, qtype == TYPE_AAAA, qtype, msg_id, flags, question, edns_do, limit,
                    max_udp,
                )  # fmt: skip
        elif isinstance(named, str):
            if qtype == TYPE_PTR:
                quick = self._ptr_reply(named, msg_id, flags, question, edns_do, limit, max_udp)
        elif qtype == TYPE_SRV:
            svc, proto_at, service_at = named
            if self.model.namespace_exists(svc.namespace):
                namespace_at = service_at + 1 + lower[service_at]
                zone_at = namespace_at + 1 + lower[namespace_at] + 4  # past "\x03svc"
                quick = self._quick_srv(
                    lower, proto_at, service_at, zone_at, svc, msg_id, flags, question,
                    edns_do, limit, max_udp,
                )  # fmt: skip
        if quick is None:
            return None
        return quick[0], INFINITE, quick[1], lower, qtype, do

    def _quick(
        self,
        lower: bytes,
        offsets: Sequence[int],
        index: int,
        zone: _Zone,
        qtype: int,
        msg_id: int,
        flags: int,
        question: bytes,
        edns_do: bool | None,
        limit: int,
        payload: int,
    ) -> tuple[bytes, Depends, bool] | None:
        """quick() from the question's parts (class IN): the name in lower case with its
        label offsets and the zone's first label, the ID, flags, question section and DO
        bit (None: no OPT) to answer with."""
        if zone.wire not in self._quick_zones:
            if qtype == TYPE_PTR and zone.wire in self._quick_reverse:
                return self._quick_ptr(
                    lower, offsets, msg_id, flags, question, edns_do, limit, payload
                )
            return None
        if index < 3:
            return None
        svc_at = offsets[index - 1]
        if lower[svc_at : svc_at + 4] != b"\x03svc":
            return None
        ns_at = offsets[index - 2]
        name_at = offsets[index - 3]
        namespace = lower[ns_at + 1 : svc_at].decode("latin-1")
        name = lower[name_at + 1 : ns_at].decode("latin-1")
        model = self.model
        svc = model.service(namespace, name)
        if svc is None:
            if not model.synced:
                return None
            wire = negative_with_soa(
                msg_id, flags, question, edns_do, NXDOMAIN, 12 + offsets[index],
                min(self.ttl, 300), _MNAME_HEAD, _RNAME_HEAD, self._soa_numbers(), limit, payload,
            )  # fmt: skip
            if wire is None:
                return None
            depends = self._namespace_depends.get(namespace)
            if depends is None:
                if len(self._namespace_depends) >= 4096:
                    self._namespace_depends.clear()
                depends = self._namespace_depends[namespace] = frozenset(
                    (namespace_token(namespace),)
                )
            return wire, depends, True
        if svc.headless or svc.type == "ExternalName":
            return None
        if index != 3:
            if index == 5 and qtype == TYPE_SRV and model.namespace_exists(namespace):
                srv = self._quick_srv(
                    lower, offsets[1], offsets[2], offsets[index], svc, msg_id, flags,
                    question, edns_do, limit, payload,
                )  # fmt: skip
                return None if srv is None else (srv[0], srv[1], False)
            return None
        if qtype == TYPE_A:
            v6 = False
        elif qtype == TYPE_AAAA:
            v6 = True
        else:
            return None
        quick = self._service_address(
            svc, v6, qtype, msg_id, flags, question, edns_do, limit, payload
        )
        return None if quick is None else (quick[0], quick[1], False)

    def _service_address(
        self,
        svc: Service,
        v6: bool,
        qtype: int,
        msg_id: int,
        flags: int,
        question: bytes,
        edns_do: bool | None,
        limit: int,
        payload: int,
    ) -> tuple[bytes, Depends] | None:
        """The A (AAAA with ``v6``) answer of a Service with a ClusterIP, owned by the
        question; None for the general path (no address of that family: NODATA; the
        namespace gone; truncation)."""
        ips = svc.cluster_ips
        if len(ips) == 1:  # the usual single-stack Service
            if (":" in ips[0]) != v6:
                return None  # NODATA: decide() says it
            rdatas: list[bytes] = [inet_pton(AF_INET6 if v6 else AF_INET, ips[0])]
        else:
            family = AF_INET6 if v6 else AF_INET
            rdatas = [inet_pton(family, ip) for ip in ips if (":" in ip) == v6]
            if not rdatas:
                return None
        namespace = svc.namespace
        if not self.model.namespace_exists(namespace):
            return None
        wire = owned_by_question(
            msg_id, flags, question, edns_do, qtype, self.ttl, rdatas, limit, payload
        )
        return None if wire is None else (wire, frozenset(((namespace, svc.name),)))

    def _quick_srv(
        self,
        lower: bytes,
        proto_at: int,
        service_at: int,
        zone_at: int,
        svc: Service,
        msg_id: int,
        flags: int,
        question: bytes,
        edns_do: bool | None,
        limit: int,
        payload: int,
    ) -> tuple[bytes, Depends] | None:
        """_quick() of ``_<port>._<proto>.<svc>.<ns>.svc.<zone>`` SRV for a Service with
        one ClusterIP and one port of that name (the name's labels start at 0,
        ``proto_at`` and ``service_at``, its zone at ``zone_at``): one SRV record and its
        target's address (the general path's _srv(), with the question's letter case in
        the target's zone); anything else goes to decide()."""
        port_label = lower[1:proto_at]
        proto_label = lower[proto_at + 1 : service_at]
        if port_label[:1] != b"_" or proto_label[:1] != b"_" or len(svc.cluster_ips) != 1:
            return None
        port_name = port_label[1:].decode("latin-1")
        protocol = proto_label[1:].decode("latin-1")
        matching = [
            p for p in svc.ports if p.name.lower() == port_name and p.protocol.lower() == protocol
        ]
        if len(matching) != 1:
            return None  # NXDOMAIN, or several records: decide() writes them
        ip = svc.cluster_ips[0]
        v6 = ":" in ip
        target = lower[service_at:zone_at] + question[zone_at : len(lower)]
        wire = srv_with_address(
            msg_id, flags, question, edns_do, self.ttl, matching[0].port, target,
            12 + service_at, TYPE_AAAA if v6 else TYPE_A,
            inet_pton(AF_INET6 if v6 else AF_INET, ip), limit, payload,
        )  # fmt: skip
        return None if wire is None else (wire, frozenset(((svc.namespace, svc.name),)))

    def _quick_ptr(
        self,
        lower: bytes,
        offsets: Sequence[int],
        msg_id: int,
        flags: int,
        question: bytes,
        edns_do: bool | None,
        limit: int,
        payload: int,
    ) -> tuple[bytes, Depends, bool] | None:
        """_quick() of a PTR question for an IPv4 address with one owner (a ClusterIP, or
        one endpoint): one record; anything else (no owner: fallthrough or NXDOMAIN,
        several, IPv6) goes to decide()."""
        ip = ipv4_from_reverse(lower, offsets)
        if ip is None:
            return None
        ptr = self._ptr_reply(ip, msg_id, flags, question, edns_do, limit, payload)
        return None if ptr is None else (ptr[0], ptr[1], False)

    def _ptr_reply(
        self,
        ip: str,
        msg_id: int,
        flags: int,
        question: bytes,
        edns_do: bool | None,
        limit: int,
        payload: int,
    ) -> tuple[bytes, Depends] | None:
        """The PTR answer for ``ip`` when it has one owner; None for decide()."""
        targets = self._ptr_targets(ip)
        if len(targets) != 1:
            return None
        wire = owned_by_question(
            msg_id, flags, question, edns_do, TYPE_PTR, self.ttl, targets, limit, payload
        )
        return None if wire is None else (wire, frozenset((ptr_key(ip),)))

    def _soa_numbers(self) -> bytes:
        """The SOA's serial, refresh, retry, expire and minimum, encoded (kept per serial)."""
        cached = self._soa_cache
        if cached[0] != self.serial:
            packed = soa_numbers(self.serial, *SOA_TIMERS, self.ttl)
            cached = self._soa_cache = (self.serial, packed)
        return cached[1]

    # --- records -------------------------------------------------------------------------------

    def _positive(
        self,
        owner: bytes,
        data: NameData,
        qtype: int,
        zone: _Zone,
        depends: Depends,
        cased: bytes | None = None,
    ) -> Answer:
        answer, additional, chased = self._records(owner, data, qtype, zone, 0, cased=cased)
        if chased:
            depends = None  # the CNAME's target may be another Service
        if not answer:
            return Answer(NOERROR, authority=(self.soa(zone),), depends=depends, carries_soa=True)
        chase = None
        if data.cname is not None and not chased and qtype != TYPE_CNAME:
            chase = data.cname
        return Answer(NOERROR, answer, additional=additional, depends=depends, chase=chase)

    def _records(
        self,
        owner: bytes,
        data: NameData,
        qtype: int,
        zone: _Zone,
        depth: int,
        seen: frozenset[bytes] = frozenset(),
        *,
        cased: bytes | None = None,
    ) -> tuple[list[Record], list[Record], bool]:
        """(answer, additional, whether a CNAME in our zones was followed); ``seen``: the
        owners of the CNAMEs followed so far; ``cased``: the question's zone as the client
        wrote it, for SRV targets in ``zone``."""
        ttl = self.ttl
        if data.cname is not None:
            target = data.cname
            answer: list[Record] = [(owner, TYPE_CNAME, ttl, name_rdata(target))]
            additional: list[Record] = []
            if target == owner or target in seen:
                return answer, additional, True  # a loop of our names ends where it closes
            if qtype == TYPE_CNAME or depth >= CNAME_DEPTH:
                return answer, additional, False
            offsets = label_offsets(target)
            found = self.zone_of(target, offsets)
            if found is None:
                return answer, additional, False
            target_zone, index = found
            target_data = self.names.get(target)
            if (
                target_data is None
                and not target_zone.reverse
                and index >= 3
                and target[offsets[index - 1] + 1 : offsets[index]] == b"svc"
            ):
                target_data, _ = self._find(target, offsets, target_zone, index)
            if target_data is not None:
                more, extra, _ = self._records(
                    target, target_data, qtype, target_zone, depth + 1, seen | {owner},
                    cased=cased if target_zone is zone else None,
                )  # fmt: skip
                answer += more
                additional += extra
            return answer, additional, True
        if data.apex:
            if qtype == TYPE_SOA:
                return [self.soa(zone)], [], False
            if qtype == TYPE_NS:
                ns_wire = zone.ns_wire
                ns_data = self.names.get(ns_wire, EMPTY)
                return (
                    [(owner, TYPE_NS, ttl, name_rdata(ns_wire))],
                    self._addresses(ns_wire, ns_data.items, v6=False)
                    + self._addresses(ns_wire, ns_data.items, v6=True),
                    False,
                )
            return [], [], False
        if data.txt is not None:
            if qtype != TYPE_TXT:
                return [], [], False
            return [(owner, TYPE_TXT, DNS_VERSION_TTL, txt_rdata(data.txt.encode()))], [], False
        if data.ptrs:
            if qtype != TYPE_PTR:
                return [], [], False
            return [(owner, TYPE_PTR, ttl, name_rdata(ptr)) for ptr in data.ptrs], [], False
        if qtype in (TYPE_A, TYPE_AAAA):
            return self._addresses(owner, data.items, v6=qtype == TYPE_AAAA), [], False
        if qtype == TYPE_SRV:
            answer, additional = self._srv(owner, data.items, zone.wire, cased)
            return answer, additional, False
        return [], [], False

    def _addresses(self, owner: bytes, items: Iterable[Item], *, v6: bool) -> list[Record]:
        ttl = self.ttl
        records: list[Record] = []
        for ip, _, _ in items:
            if (":" in ip) == v6:
                rtype, rdata = address_rdata(ip)
                records.append((owner, rtype, ttl, rdata))
        return _dedupe(records)

    def _srv(
        self, owner: bytes, items: Sequence[Item], zone: bytes, cased: bytes | None
    ) -> tuple[list[Record], list[Record]]:
        """SRV records for ``items`` and their targets' addresses. With ``cased`` (``zone``
        as the client wrote it), each target's zone labels are written so: CoreDNS builds
        targets from the question's zone, and SRV targets are never compressed."""
        with_port = [item for item in items if item[1] >= 0]
        if not with_port:
            return [], []
        # CoreDNS: equal priority 0, weight 100 split over every record before de-duplication.
        weight = 100 // len(with_port)
        ttl = self.ttl
        answer: list[Record] = []
        by_target: dict[bytes, list[Item]] = {}
        for item in with_port:
            _, port, target = item
            written = target if cased is None else with_suffix_case(target, zone, cased)
            answer.append((owner, TYPE_SRV, ttl, srv_rdata(0, weight, port, written)))
            by_target.setdefault(target, []).append(item)
        additional: list[Record] = []
        for target, target_items in by_target.items():
            additional += self._addresses(target, target_items, v6=False)
            additional += self._addresses(target, target_items, v6=True)
        return _dedupe(answer), additional

    def soa(self, zone: _Zone | str) -> Record:
        if isinstance(zone, str):
            zone = self._zones[text_to_wire(zone)]
        mname, rname = zone.soa_names
        rdata = soa_rdata(mname, rname, self.serial, *SOA_TIMERS, self.ttl)
        return (zone.wire, TYPE_SOA, min(self.ttl, 300), rdata)


def _under(base: bytes, cluster: str, label: str) -> bytes:
    """``<label>.<cluster>.<base>`` in wire form (no cluster label when ``cluster`` is "")."""
    return prefixed(label, prefixed(cluster, base) if cluster else base)


def _import_why(imported: ServiceImport, sub: tuple[str, ...], data: NameData | None) -> Why:
    key = f"{imported.namespace}/{imported.name}"
    if data is None:
        return Why(PLUGIN, Rule.NO_SUCH_NAME, f"ServiceImport {key} defines no such name "
                   "(a headless one without ready imported endpoints has no name)")  # fmt: skip
    if sub:
        return Why(PLUGIN, Rule.ENDPOINT if not sub[0].startswith("_") else Rule.SRV_PORT,
                   f"a name below ServiceImport {key}")  # fmt: skip
    if imported.headless:
        return Why(PLUGIN, Rule.HEADLESS,
                   f"headless ServiceImport {key}: its ready endpoints in every cluster")  # fmt: skip
    return Why(
        PLUGIN, Rule.CLUSTER_IP, f"ServiceImport {key}: clusterset IP {', '.join(imported.ips)}"
    )


def _namespace_why(namespace: str, visible: bool) -> Why:
    if visible:
        return Why(PLUGIN, Rule.NAMESPACE, f"namespace {namespace} exists")
    return Why(PLUGIN, Rule.NO_NAMESPACE, f"namespace {namespace} does not exist or is not served")


def _service_why(svc: Service, sub: tuple[str, ...], data: NameData | None) -> Why:
    """The rule that gave a name at or below a Service what it holds (``data``)."""
    key = f"{svc.namespace}/{svc.name}"
    if data is None:
        if svc.type == "ExternalName" or not sub:
            return Why(PLUGIN, Rule.NO_SUCH_NAME, f"Service {key} defines no such name "
                       "(a headless Service without ready endpoints has no name)")  # fmt: skip
        return Why(PLUGIN, Rule.NO_SUCH_NAME, f"Service {key} has no such endpoint or port")
    if svc.type == "ExternalName":
        return Why(PLUGIN, Rule.EXTERNAL_NAME, f"Service {key} is an ExternalName for "
                   f"{svc.external_name}")  # fmt: skip
    if not sub:
        if svc.headless:
            return Why(PLUGIN, Rule.HEADLESS, f"headless Service {key}: its ready endpoints")
        return Why(
            PLUGIN, Rule.CLUSTER_IP, f"Service {key}: ClusterIP {', '.join(svc.cluster_ips)}"
        )
    if len(sub) == 1 and not sub[0].startswith("_"):
        return Why(PLUGIN, Rule.ENDPOINT, f"endpoint {sub[0]} of Service {key}")
    return Why(PLUGIN, Rule.SRV_PORT, f"named port of Service {key}")
