"""Search lists: reading a resolv.conf, and names as wire-format suffixes."""

from __future__ import annotations

import logging
from pathlib import Path

from clusterdns.wire import text_to_wire

log = logging.getLogger("clusterdns.plugins.autopath")


def read_search(path: str | Path) -> list[str]:
    """The search list of a resolv.conf (absolute, lower case), as the resolver reads it:
    the last ``search`` or ``domain`` line wins. Raises OSError if it cannot be read."""
    found: list[str] = []
    for line in Path(path).read_text(errors="replace").splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] in ("search", "domain"):
            found = fields[1:] if fields[0] == "search" else fields[1:2]
    return [absolute(name) for name in found if name != "."]


def host_search(path: str | Path) -> list[str]:
    """The server's own search list (what ``@kubernetes`` appends, as CoreDNS); [] if unreadable."""
    try:
        return read_search(path)
    except OSError as err:
        log.warning("autopath: cannot read %s, no host search path: %s", path, err)
        return []


def absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def join(prefix: str, zone: str) -> str:
    """``prefix`` (relative, may be empty) under ``zone`` (absolute), without doubled dots."""
    if not prefix:
        return zone
    return prefix + "." if zone == "." else f"{prefix}.{zone}"


def suffix_wire(name: str) -> bytes:
    """The wire form of an absolute name ("" is the root), to append to a base name's labels."""
    return text_to_wire(name or ".")
