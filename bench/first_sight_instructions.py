"""First-sight cost in instructions, which a shared machine does not blur: valgrind's
callgrind counts the user-space instructions one pass of never-seen questions executes
in `Dispatcher.prepare` (behind the batch loop's memo lookup), in process, no sockets.

The cluster and the questions are section 1's at 100k Services (the fixture run.py
writes, generated here when missing): 100,000 lines of the mix (70% Service A, 10% SRV,
10% PTR, 10% search-path NXDOMAIN), asked in order into a fresh reply memo, so ~79% are
first sights and the rest the memo hits a cold server meets. Instrumentation is on for
that pass only; the hash seed is fixed, so a run repeats to the instruction.

    python bench/first_sight_instructions.py          # instructions per question
    python bench/first_sight_instructions.py --src /path/to/other/checkout/src

Needs valgrind (scripts/install-bench-deps). Takes ~1 min (start-up under valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "out" / "fixtures" / "s100000-n1000"


def measure(src: Path) -> None:
    """Re-run this file under callgrind against ``src``; print instructions per question."""
    if not (FIXTURE / "queries.txt").exists():
        sys.path.insert(0, str(HERE.parent))
        from bench.fixture import Cluster

        cluster = Cluster(100_000)
        cluster.write_manifests(FIXTURE / "manifests")
        cluster.write_queries(FIXTURE / "queries.txt", 100_000)
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(src), FSI_PASS="1")
        done = subprocess.run(
            [
                "valgrind", "--tool=callgrind", "--trace-children=no", "--instr-atstart=no",
                f"--callgrind-out-file={out}/cg.out", sys.executable, __file__,
            ],
            env=env, capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        report = [line for line in done.stdout.splitlines() if line.startswith("pass ")]
        totals = 0
        for path in Path(out).glob("cg.out*"):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("totals:"):  # ("summary:" counts from the start: 0)
                    totals += int(line.split()[1])
        if not report or not totals:
            sys.exit(f"no measurement:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        questions = int(report[0].split()[1])
        print(f"{totals / questions:,.0f} instructions per question ({report[0]}; src {src})")


def one_pass() -> None:
    """Under callgrind: start the standard Corefile over the fixture, then one pass."""
    import dns.message

    from clusterdns.core.lifecycle import App
    from clusterdns.core.memo import ReplyMemo
    from clusterdns.core.process import Process
    from clusterdns.core.server import ServerOptions

    tmp = Path(tempfile.mkdtemp())
    (tmp / "Corefile").write_text(
        ".:0 {\n    errors\n    health 127.0.0.1:0\n    ready 127.0.0.1:0\n"
        "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
        f"        manifests {FIXTURE / 'manifests'}\n        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }\n"
        "    prometheus 127.0.0.1:0\n    forward . 127.0.0.1:9\n    cache 30\n    loop\n"
        "    reload\n    loadbalance\n}\n"
    )
    wires = []
    for n, line in enumerate((FIXTURE / "queries.txt").read_text().splitlines()):
        name, qtype = line.split()
        query = dns.message.make_query(name, qtype, use_edns=0, payload=1232)
        query.id = n & 0xFFFF
        wires.append(query.to_wire())

    async def main() -> None:
        app = App(
            config_path=str(tmp / "Corefile"),
            process=Process(),
            options=ServerOptions(reply_memo=100_000),
        )
        await app.start()
        assert app.instance is not None and await app.instance.wait_ready(600)
        dispatcher = next(iter(app.server.listeners.values())).dispatcher
        client = ("127.0.0.1", 5353)
        # The cache learns its block on its first chain request, as in a server.
        first = dispatcher.prepare(
            dns.message.make_query("warm.example.", "A").to_wire(), "udp", client, None
        )
        if first is not None and not isinstance(first, bytes):
            await dispatcher.resolve(first)
        memo = ReplyMemo(100_000, app.process.metrics.memo)
        memo.batch_timed = True
        get = memo.entries.get
        prepare = dispatcher.prepare
        hits = 0
        control = ["callgrind_control", "-i"]
        subprocess.run([*control, "on", str(os.getpid())], capture_output=True, check=False)
        for wire in wires:  # what the batch loop does: the memo, then prepare()
            if get(wire[2:]) is not None:
                hits += 1
                continue
            prepare(wire, "udp", client, memo)
        subprocess.run([*control, "off", str(os.getpid())], capture_output=True, check=False)
        print(f"pass {len(wires)} questions, {hits} memo hits, {len(memo.entries)} kept")

    asyncio.run(main())


if __name__ == "__main__":
    if os.environ.get("FSI_PASS"):
        one_pass()
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--src", type=Path, default=HERE.parent / "src")
        measure(parser.parse_args().src.resolve())
