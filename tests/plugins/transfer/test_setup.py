"""Parsing ``transfer``: CoreDNS's setup table (plugin/transfer/setup_test.go), errors with file:line."""

from __future__ import annotations

import pytest

from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.transfer.config import TransferRule
from clusterdns.plugins.transfer.setup import parse_rule


def rules(text: str, block_zones: tuple[str, ...] = (".",)) -> list[TransferRule]:
    block = parse(f". {{\n{text}\n}}\n", filename="Corefile").blocks[0]
    return [parse_rule(directive, block_zones) for directive in block.directives]


def test_two_directives_every_address_form() -> None:
    found = rules(
        "transfer example.net example.org {\n"
        "    to 1.2.3.4 5.6.7.8:1053 [1::2]:34 [fe80::1%eth0]:53\n"
        "    source 2001:db8::53\n"
        "}\n"
        "transfer example.com example.edu {\n"
        "    to * 1.2.3.4\n"
        "}"
    )
    assert found == [
        TransferRule(
            zones=("example.net.", "example.org."),
            to=("1.2.3.4:53", "5.6.7.8:1053", "[1::2]:34", "[fe80::1%eth0]:53"),
            source="2001:db8::53",
        ),
        TransferRule(zones=("example.com.", "example.edu."), to=("*", "1.2.3.4:53")),
    ]


def test_zones_from_the_server_block() -> None:
    (rule,) = rules("transfer {\n    to 1.2.3.4 5.6.7.8:1053 [1::2]:34 ::3\n}", ("example.org.",))
    assert rule == TransferRule(
        zones=("example.org.",), to=("1.2.3.4:53", "5.6.7.8:1053", "[1::2]:34", "[::3]:53")
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("transfer example.net {\n}", "Corefile:2: transfer: 'to' is required"),
        ("transfer example.net {\n    invalid option\n}", "Corefile:3: invalid: unknown property"),
        ("transfer {\n    to 1.2.3.4\n    source example.org\n}", "Corefile:4: source: invalid"),
        (
            "transfer {\n    to 1.2.3.4\n    source 192.0.2.53\n    source 2001:db8::53\n}",
            "Corefile:5: source: source already specified",
        ),
        ("transfer {\n    to example.com 1.2.3.4\n}", "Corefile:3: to: must specify an IP"),
        ("transfer {\n    to\n}", "Corefile:3: to:"),
        ("transfer {\n    to 1.2.3.4:99999\n}", "Corefile:3: to: invalid port"),
    ],
    ids=["no to", "unknown option", "source not an IP", "two sources", "to a name", "to alone",
         "bad port"],
)  # fmt: skip
def test_errors(text: str, message: str) -> None:
    with pytest.raises(CorefileError) as err:
        rules(text)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(
    ("to", "client", "allowed"),
    [
        (("*",), "203.0.113.9", True),
        (("1.2.3.4:53",), "1.2.3.4", True),
        (("1.2.3.4:53",), "::ffff:1.2.3.4", True),
        (("1.2.3.4:53",), "1.2.3.5", False),
        (("[1::2]:34",), "1:0::2", True),
        (("[fe80::1%eth0]:53",), "fe80::1", True),
        ((), "1.2.3.4", False),
    ],
)
def test_allows(to: tuple[str, ...], client: str, allowed: bool) -> None:
    assert TransferRule(zones=(".",), to=to).allows(client) is allowed
