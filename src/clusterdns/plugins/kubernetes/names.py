"""Name arithmetic of the Kubernetes DNS schema: endpoint and pod labels, reverse names."""

from __future__ import annotations

import ipaddress
from typing import Final

IN_ADDR_ARPA = "in-addr.arpa."
IP6_ARPA = "ip6.arpa."


# A DNS label holds at most 63 octets. CoreDNS ignores longer Pod names (a Pod name may have
# 253 characters) and the endpoint keeps its IP-derived label.
MAX_LABEL: Final = 63


def ip_label(ip: str) -> str:
    """``10.0.0.1`` → ``10-0-0-1``; ``fd00::1`` → ``fd00--1``; ``fd00::`` → ``fd00--0`` (a
    label does not end with a dash: CoreDNS's derived label)."""
    if "." in ip:
        return ip.replace(".", "-")
    label = ip.replace(":", "-")
    return label + "0" if label.endswith("-") else label


def endpoint_label(ip: str, hostname: str | None, pod_name: str | None, *, pod_names: bool) -> str:
    """The first label of an endpoint's name: its hostname, else (``endpoint_pod_names``) the
    Pod's name when it fits in a label, else derived from the IP."""
    if hostname:
        return hostname.lower()
    if pod_names and pod_name and len(pod_name) <= MAX_LABEL:
        return pod_name.lower()
    return ip_label(ip)


def pod_label_ip(label: str) -> str | None:
    """The IP a pod label spells (``1-2-3-4``, ``fd00--1``), canonical; None if it spells none.

    As CoreDNS: three dashes and no ``--`` is IPv4, anything else is read as IPv6.
    """
    if label.count("-") == 3 and "--" not in label:
        text = label.replace("-", ".")
    else:
        text = label.replace("-", ":")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def ip_from_reverse(name: str) -> str | None:
    """The canonical IP of a complete reverse name, None for anything shorter or malformed."""
    if name.endswith("." + IN_ADDR_ARPA):
        labels = name[: -len(IN_ADDR_ARPA) - 1].split(".")
        if len(labels) != 4 or not all(
            label.isdigit() and len(label) <= 3 and int(label) <= 255 for label in labels
        ):
            return None
        if any(len(label) > 1 and label[0] == "0" for label in labels):
            return None
        return ".".join(reversed(labels))
    if name.endswith("." + IP6_ARPA):
        nibbles = name[: -len(IP6_ARPA) - 1].split(".")
        if len(nibbles) != 32 or not all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            return None
        digits = "".join(reversed(nibbles))
        groups = ":".join(digits[i : i + 4] for i in range(0, 32, 4))
        return str(ipaddress.ip_address(groups))
    return None


def is_reverse(zone: str) -> bool:
    return zone in (IN_ADDR_ARPA, IP6_ARPA) or zone.endswith(("." + IN_ADDR_ARPA, "." + IP6_ARPA))
