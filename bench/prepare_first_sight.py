"""Micro-benchmark: the whole first-sight path in process (Dispatcher.prepare: memo miss,
parse, zone match, cache and kubernetes fast steps, memo admission, per-query metrics), no
sockets, over never-seen questions: a third Service A in random letter case, a third random
labels under a namespace, a third search-path NXDOMAIN. The standard Corefile over a
manifests folder of N Services; best of three passes, each with a fresh reply memo.

    python bench/prepare_first_sight.py 20000 time    # us per question (thread CPU, best of
                                                      # 3 passes, each over fresh questions)
    python bench/prepare_first_sight.py 20000 gc      # and what the cyclic GC costs
    python bench/prepare_first_sight.py 20000 prof    # cProfile, by own time
    python bench/prepare_first_sight.py 20000 parts   # us per question of each stage alone
    python bench/prepare_first_sight.py 20000 layers  # the express tier layer by layer
    python bench/prepare_first_sight.py 20000 long    # 100,000 into one memo, GC on and off
    python bench/prepare_first_sight.py 20000 kinds   # us per first sight of A, SRV, PTR and
                                                      # search-path NXDOMAIN, each alone
"""

import asyncio
import cProfile
import json
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

import dns.message

from clusterdns.core.lifecycle import App
from clusterdns.core.memo import ReplyMemo
from clusterdns.core.process import Process
from clusterdns.core.server import ServerOptions

N = int(sys.argv[1])
MODE = sys.argv[2]
tmp = Path(tempfile.mkdtemp())
man = tmp / "m"
man.mkdir()
objs = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"ns-{i}"}} for i in range(10)
]
for i in range(N):
    objs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"svc-{i}", "namespace": f"ns-{i % 10}"},
            "spec": {
                "clusterIP": f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            },
        }
    )
(man / "all.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
text = (
    ".:0 {\n    errors\n    health 127.0.0.1:0\n    ready 127.0.0.1:0\n"
    f"    kubernetes cluster.local in-addr.arpa ip6.arpa {{\n        manifests {man}\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n        ttl 30\n    }}\n"
    "    prometheus 127.0.0.1:0\n    forward . 127.0.0.1:9\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n"
)
(tmp / "Corefile").write_text(text)


async def main():
    app = App(
        config_path=str(tmp / "Corefile"),
        process=Process(),
        options=ServerOptions(reply_memo=100000),
    )
    await app.start()
    assert await app.instance.wait_ready(30)
    listener = next(iter(app.server.listeners.values()))
    d = listener.dispatcher

    def unique_mix(seed: int) -> list[bytes]:
        """20,000 questions no earlier pass asked (random case, random labels, numbered
        search-path names): every timed pass meets first sights only."""
        rng = random.Random(seed)
        out = []
        for n in range(20000):
            i = rng.randrange(N)
            kind = n % 3
            if kind == 0:
                name = "".join(
                    c.upper() if rng.random() < 0.5 else c
                    for c in f"svc-{i}.ns-{i % 10}.svc.cluster.local"
                )
            elif kind == 1:
                name = f"{rng.getrandbits(48):012x}.ns-{i % 10}.svc.cluster.local"
            else:
                name = f"api{seed}-{n}.example.com.ns-{i % 10}.svc.cluster.local"
            q = dns.message.make_query(name, "A", use_edns=0, payload=1232)
            q.id = n & 0xFFFF
            out.append(q.to_wire())
        return out

    wires = unique_mix(3)
    memo = ReplyMemo(100000, app.process.metrics.memo)
    prep = d.prepare
    client = ("127.0.0.1", 5353)
    first = prep(dns.message.make_query("warm.example.", "A").to_wire(), "udp", client, None)
    if not isinstance(first, bytes) and first is not None:
        await d.resolve(first)  # the cache learns its block on its first chain request

    def run():
        for w in wires:
            r = prep(w, "udp", client, memo)
            assert type(r) is bytes, (r, w)

    import gc

    gc.collect()
    gc.freeze()
    spent = [0.0, 0, 0, 0]
    t0 = [0.0]

    def cb(phase, info):
        if phase == "start":
            t0[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - t0[0]
            spent[1 + info["generation"]] += 1

    gc.callbacks.append(cb)
    if MODE == "gc":
        t = time.perf_counter()
        run()
        total = time.perf_counter() - t
        print(
            f"total {total / len(wires) * 1e6:.1f} us/q, gc {spent[0] / len(wires) * 1e6:.2f} us/q, collections by gen {spent[1:]}"
        )
    elif MODE == "parts":
        from clusterdns.wire import parse_query

        kubernetes = next(p for p in app.instance.plugins() if p.name == "kubernetes")
        parsed = [parse_query(w) for w in wires]

        def best_of(fn):
            # CPU time of this thread: other processes on a shared machine do not count.
            best = 1e9
            for _ in range(5):
                t = time.thread_time()
                fn()
                best = min(best, time.thread_time() - t)
            return best / len(wires) * 1e6

        def parse_all():
            for w in wires:
                parse_query(w)

        def answer_all():
            answer = kubernetes.answer_fast
            for q in parsed:
                answer(q, 1232, 1232)

        def prepare_without_memo():
            for w in wires:
                prep(w, "udp", client, None)

        print(f"parse_query            {best_of(parse_all):5.1f} us")
        print(f"kubernetes answer_fast {best_of(answer_all):5.1f} us")
        print(f"prepare, no memo       {best_of(prepare_without_memo):5.1f} us")
        fresh = [unique_mix(seed) for seed in range(10, 15)]  # one never-asked set per pass

        def prepare_with_memo():
            memo = ReplyMemo(100000, app.process.metrics.memo)
            for w in fresh.pop():
                prep(w, "udp", client, memo)

        print(f"prepare, memo filling  {best_of(prepare_with_memo):5.1f} us")
    elif MODE == "kinds":
        # Each kind of the cold mix alone, first sight, through prepare with a fresh memo.
        def of_kind(kind: str, seed: int) -> list[bytes]:
            rng = random.Random(seed)
            out = []
            for n in range(5000):
                i = rng.randrange(N)
                name = f"svc-{i}.ns-{i % 10}.svc.cluster.local"
                qtype = "A"
                if kind == "SRV":
                    name, qtype = f"_http._tcp.{name}", "SRV"
                elif kind == "PTR":
                    octets = f"10.{96 + i // 65536}.{(i // 256) % 256}.{i % 256}".split(".")
                    name, qtype = ".".join(reversed(octets)) + ".in-addr.arpa", "PTR"
                elif kind == "search NXDOMAIN":
                    name = f"{name}.default.svc.cluster.local"
                name = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
                q = dns.message.make_query(name, qtype, use_edns=0, payload=1232)
                q.id = n & 0xFFFF
                out.append(q.to_wire())
            return out

        for kind in ("A", "SRV", "PTR", "search NXDOMAIN"):
            sets = [of_kind(kind, seed) for seed in range(20, 25)]
            best = 1e9
            for questions in sets:
                memo = ReplyMemo(100000, app.process.metrics.memo)
                t = time.thread_time()
                for w in questions:
                    prep(w, "udp", client, memo)
                best = min(best, time.thread_time() - t)
            print(f"{kind:<16} {best / 5000 * 1e6:5.1f} us per first sight")
    elif MODE == "layers":
        # The express tier layer by layer over the same never-asked questions: what each
        # layer adds to the one inside it.
        from clusterdns.core.dispatch import _express_of
        from clusterdns.wire.query import read_plain

        kubernetes = next(p for p in app.instance.plugins() if p.name == "kubernetes")
        route = _express_of(d.mux)
        assert route is not None
        express = kubernetes.table.express
        sets = [unique_mix(seed) for seed in range(30, 50)]
        rows = unique_mix(29)  # label rows' tallies are made by the general path, once

        def timed(fn):
            best = 1e9
            for _ in range(5):
                questions = sets.pop()
                memo = ReplyMemo(100000, app.process.metrics.memo)
                for w in rows:
                    prep(w, "udp", client, memo)
                t = time.thread_time()
                fn(questions, memo)
                best = min(best, time.thread_time() - t)
            return best / 20000 * 1e6

        def plain(questions, memo):
            for w in questions:
                read_plain(w)

        def table(questions, memo):
            for w in questions:
                express(w, False, 1232)

        def tier(questions, memo):
            answer = d._answer_express
            for w in questions:
                answer(route, w, "udp", client, memo)

        def prepare(questions, memo):
            for w in questions:
                prep(w, "udp", client, memo)

        for label, fn in (
            ("read_plain", plain),
            ("table.express", table),
            ("express tier", tier),
            ("prepare", prepare),
        ):
            print(f"{label:<14} {timed(fn):5.1f} us")
    elif MODE == "long":
        # 100,000 never-asked questions into one memo, as a server meets them: the cyclic
        # GC's cost grows with what the memo holds. With and without the GC.
        sets = [unique_mix(seed) for seed in range(60, 70)]
        for enabled in (True, False):
            memo = ReplyMemo(100000, app.process.metrics.memo)
            (gc.enable if enabled else gc.disable)()
            t = time.thread_time()
            for _ in range(5):
                for w in sets.pop():
                    prep(w, "udp", client, memo)
            per_question = (time.thread_time() - t) / 100000 * 1e6
            print(f"gc {'on ' if enabled else 'off'}  {per_question:5.1f} us per first sight")
        gc.enable()
    elif MODE == "prof":
        cProfile.runctx("run()", globals(), locals(), str(tmp / "profile.out"))
        pstats.Stats(str(tmp / "profile.out")).sort_stats("tottime").print_stats(22)
    else:
        best = 1e9
        for seed in (4, 5, 6):  # fresh questions and a fresh memo for every pass
            wires = unique_mix(seed)
            memo = ReplyMemo(100000, app.process.metrics.memo)
            t = time.thread_time()  # CPU time of this thread: other processes do not count
            run()
            best = min(best, time.thread_time() - t)
        print(f"{best / len(wires) * 1e6:.1f} us per first-sight question (prepare, unique mix)")
    await app.shutdown()


asyncio.run(main())
