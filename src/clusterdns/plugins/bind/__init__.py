"""bind: listen on the given addresses (or interfaces) only."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Sequence

from clusterdns.core.plugin import Plugin, SetupContext
from clusterdns.corefile import Directive


class Bind(Plugin):
    in_chain = False


def _interface_addresses(name: str) -> list[str] | None:
    try:
        out = subprocess.run(
            ["ip", "-j", "addr", "show", "dev", name],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    addresses = []
    for link in json.loads(out.stdout or "[]"):
        for info in link.get("addr_info", []):
            if info.get("scope") == "link":
                continue  # link-local IPv6 needs a zone index; CoreDNS skips it too
            addresses.append(info["local"])
    return addresses


def _resolve(directive: Directive, text: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(text))]
    except ValueError:
        pass
    addresses = _interface_addresses(text)
    if addresses is None:
        raise directive.error(f"not a valid IP address or interface name: {text!r}")
    return addresses


def setup(directives: Sequence[Directive], ctx: SetupContext) -> Plugin:
    hosts: list[str] = []
    excluded: list[str] = []
    for directive in directives:
        for arg in directive.expect_args(1):
            hosts.extend(_resolve(directive, arg))
        for item in directive.block_items():
            if item.name != "except":
                raise item.error(f"unknown property '{item.name}', expected except")
            for arg in item.expect_args(1):
                excluded.extend(_resolve(item, arg))
    ctx.settings.bind_hosts = [h for h in dict.fromkeys(hosts) if h not in excluded]
    ctx.settings.bind_except = excluded
    if not ctx.settings.bind_hosts:
        raise directives[0].error("every address is excluded")
    return Bind()
