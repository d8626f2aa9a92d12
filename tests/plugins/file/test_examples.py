"""examples/zones: the seed's multi-block Corefile boots and answers on both of its ports."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import dns.flags
import dns.rcode
import pytest

from clusterdns.core.lifecycle import App
from tests.helpers.dnsclient import query
from tests.helpers.server import free_port

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "zones"


@pytest.fixture
def corefile(tmp_path: Path) -> tuple[Path, int, int]:
    """Corefile.multi as written, on free ports, with its zone files beside it."""
    for zone in EXAMPLES.glob("*.db"):
        shutil.copy(zone, tmp_path / zone.name)
    zones_port, main_port, http_port = free_port(), free_port(), free_port()
    text = (EXAMPLES / "Corefile.multi").read_text()
    text = text.replace(":5300", f":{zones_port}").replace(":1053", f":{main_port}")
    text = re.sub(r"health \S+", f"health 127.0.0.1:{http_port}", text)
    path = tmp_path / "Corefile"
    path.write_text(text)
    return path, zones_port, main_port


CASES = [
    ("zones", "www.coredns.io", "A", "NOERROR", "192.0.2.10", "coredns.io on the first port"),
    ("main", "www.example.io", "A", "NOERROR", "198.51.100.80", "example.io on the second port"),
    ("main", "blog.example.net", "A", "NOERROR", "203.0.113.80", "example.net CNAME chain"),
    ("main", "nope.example.net", "A", "NXDOMAIN", None, "example.net NXDOMAIN"),
    ("main", "foo.example.com", "A", "NOERROR", "10.96.0.42", "root block rewrite"),
    ("zones", "www.example.io", "A", "REFUSED", None, "example.io is not served on the first port"),
]  # fmt: skip


async def test_multi_block_corefile(corefile: tuple[Path, int, int]) -> None:
    path, zones_port, main_port = corefile
    app = App(config_path=str(path))
    await app.start()
    try:
        ports = {"zones": zones_port, "main": main_port}
        for where, name, rdtype, rcode, address, what in CASES:
            reply = await query(ports[where], name, rdtype)
            assert dns.rcode.to_text(reply.rcode()) == rcode, what
            if address is not None:
                assert address in [rdata.to_text() for rrset in reply.answer for rdata in rrset]
                assert reply.flags & dns.flags.AA
    finally:
        await app.shutdown()


def test_seed_zone_files_exist() -> None:
    for name in ("coredns.io.db", "example.io.db", "example.net.db"):
        assert (EXAMPLES / name).is_file()
