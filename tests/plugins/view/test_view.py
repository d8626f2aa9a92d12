"""view against a real server: split DNS among blocks of one zone and port by client
network, query type and name; the fall back to a shorter zone; no memoised reply crosses
views; the expression reader; parsing."""

from __future__ import annotations

import io

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from clusterdns.core.instance import build_instance
from clusterdns.core.process import Process
from clusterdns.corefile import CorefileError, parse
from clusterdns.plugins.log import Log
from clusterdns.plugins.view import Expression, ExpressionError
from tests.helpers.server import running_server

pytestmark = pytest.mark.timeout(30)

SPLIT = r"""
. {
    view low {
        expr incidr(client_ip(), '127.0.0.0/30')
    }
    cache
    hosts {
        1.1.1.1 test
        fallthrough
    }
}
. {
    view net1 {
        expr incidr(client_ip(), '127.0.1.0/24') && type() in ['A', 'AAAA']
    }
    cache
    hosts {
        2.2.2.2 test
    }
}
. {
    view abc {
        expr name() matches '^abc\\..*\\.example\\.com\\.$'
    }
    hosts {
        4.4.4.4 abc.x.example.com abc.x.y.example.com
    }
}
example.org {
    view nobody {
        expr client_ip() == '192.0.2.1'
    }
    hosts {
        5.5.5.5 www.example.org
    }
}
. {
    cache
    hosts {
        3.3.3.3 test
        6.6.6.6 www.example.org
        7.7.7.7 abc.x.example.com
    }
}
"""


async def ask(port: int, source: str, name: str, rdtype: str = "A") -> list[str]:
    query = dns.message.make_query(name, rdtype)
    reply = await dns.asyncquery.udp(query, "127.0.0.1", port=port, source=source, timeout=2)
    return [rdata.to_text() for rrset in reply.answer for rdata in rrset]


CASES = [
    pytest.param("127.0.0.1", "test", ["1.1.1.1"], id="127.0.0.0/30 → first view"),
    pytest.param("127.0.0.3", "test", ["1.1.1.1"], id="edge of the network"),
    pytest.param("127.0.1.9", "test", ["2.2.2.2"], id="127.0.1.0/24 and type A → second view"),
    pytest.param("127.0.0.9", "test", ["3.3.3.3"], id="no view admits → the block without one"),
    pytest.param("127.0.0.9", "abc.x.y.example.com", ["4.4.4.4"], id="name matches a regular expression"),
    pytest.param("127.0.0.9", "abd.x.example.com", [], id="name does not match"),
    pytest.param("127.0.0.9", "www.example.org", ["6.6.6.6"], id="the zone's only view refuses → the shorter zone"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "name", "expected"), CASES)
async def test_split(source: str, name: str, expected: list[str]) -> None:
    async with running_server(SPLIT) as running:
        for _ in range(3):
            assert await ask(running.port, source, name) == expected


async def test_no_memoised_reply_crosses_views() -> None:
    async with running_server(SPLIT) as running:
        for _ in range(3):
            for source, expected in (
                ("127.0.0.1", ["1.1.1.1"]),
                ("127.0.1.9", ["2.2.2.2"]),
                ("127.0.0.9", ["3.3.3.3"]),
            ):
                for _ in range(3):  # repeated bytes: cache hits, then the memo if allowed
                    assert await ask(running.port, source, "test") == expected


async def test_a_type_condition() -> None:
    async with running_server(SPLIT) as running:
        # net1 takes A and AAAA only: a TXT from its network goes to the last block.
        query = dns.message.make_query("test", "TXT")
        reply = await dns.asyncquery.udp(query, "127.0.0.1", port=running.port, source="127.0.1.9")
        assert reply.rcode() == dns.rcode.NOERROR and not reply.answer
        assert await ask(running.port, "127.0.1.9", "test", "AAAA") == []


async def test_view_name_metadata() -> None:
    corefile = """
. {
    view inside {
        expr incidr(client_ip(), '127.0.0.0/8')
    }
    metadata
    log . "{/view/name}"
    whoami
}
"""
    async with running_server(corefile) as running:
        log_plugin = running.plugin("log")
        assert isinstance(log_plugin, Log)
        log_plugin.stream = out = io.StringIO()
        await ask(running.port, "127.0.0.1", "x.test")
        assert out.getvalue().strip() == "[INFO] inside"


def instance_of(text: str) -> object:
    return build_instance(parse(text, filename="Corefile"), process=Process(), dns_port=0)


def test_same_zone_without_views_is_still_a_conflict() -> None:
    with pytest.raises(CorefileError, match="already served"):
        instance_of(". {\n whoami\n}\n. {\n whoami\n}\n")
    instance_of(". {\n view a {\n expr type() == 'A'\n }\n whoami\n}\n. {\n whoami\n}\n")


ENV = {
    "type": "AAAA",
    "name": "abc.x.example.com.",
    "class": "IN",
    "client_ip": "10.1.2.3",
    "port": "5353",
    "proto": "udp",
    "size": 40,
    "id": 7,
    "opcode": 0,
    "do": False,
    "bufsize": 1232,
    "server_ip": "",
    "server_port": "",
    "metadata:kubernetes/client-namespace": "prod",
    "metadata:none": "",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("incidr(client_ip(), '10.0.0.0/8')", True),
        ("incidr(client_ip(), '192.168.0.0/16')", False),
        ("incidr(client_ip(), '::/0')", False),
        (r"name() matches '^abc\\..*\\.example\\.com\\.$'", True),
        (r"name() matches '^abd\\.'", False),
        ("type() == 'AAAA'", True),
        ("type() != 'AAAA'", False),
        ("type() in ['A', 'AAAA']", True),
        ("type() not in ['A', 'AAAA']", False),
        ("type() == 'A' && client_ip() == '10.1.2.3'", False),
        ("type() == 'A' || client_ip() == '10.1.2.3'", True),
        ("(type() == 'A' && name() == 'example.com.') || client_ip() == '1.2.3.4'", False),
        ("!(type() == 'A')", True),
        ("not do() and proto() == 'udp'", True),
        ("metadata('kubernetes/client-namespace') == 'prod'", True),
        ("metadata('none') == ''", True),
        ("bufsize() >= 1232 && size() < 512 && id() == 7 && opcode() == 0", True),
        ("class() == \"IN\" and port() == '5353'", True),
        (
            "name() endsWith 'example.com.' && name() startsWith 'abc' && name() contains '.x.'",
            True,
        ),
        ("incidr('not-an-ip', '10.0.0.0/8')", False),  # an error is false
        ("type()", False),  # not a boolean: false
        ("size() > 'a'", False),
        ("true", True),
    ],
)
def test_expression(text: str, expected: bool) -> None:
    assert Expression(text).evaluate(ENV.__getitem__) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type() ==", "expected a value"),
        ("type() == 'A' &&", "expected a value"),
        ("type( == 'A'", "expected a value"),
        ("os.system('x')", "unexpected"),
        ("__import__('os')", "unknown function '__import__'"),
        ("eval('1')", "unknown function 'eval'"),
        ("client_ip", "unknown name 'client_ip'"),
        ("type('x') == 'A'", "type\\(\\) takes no arguments"),
        ("incidr(client_ip())", "incidr\\(\\) takes 2 arguments"),
        ("name() == 'a", "unterminated string"),
        ("type() == 'A' $", "unexpected '\\$'"),
        ("(type() == 'A'", "expected '\\)'"),
    ],
)
def test_expression_errors(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        Expression(text)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("view {\nexpr true\n}", "Corefile:2: view: expected 1 argument"),
        ("view a b {\nexpr true\n}", "expected 1 argument"),
        ("view a {\nwhen true\n}", "Corefile:3: view: unknown property 'when'"),
        ("view a {\nexpr\n}", "Corefile:3: view: expr needs an expression"),
        ("view a {\nexpr type( ==\n}", "Corefile:3: view: invalid expression"),
        ("view a\nview b", "Corefile:3: view: this plugin can only be used once"),
    ],
)
def test_setup_errors(body: str, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        instance_of(f". {{\n{body}\n}}\n")
