"""Command line: serve, plugins, and (later) the service-discovery toolbox."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from importlib import resources

from clusterdns import __version__
from clusterdns.core.memo import DEFAULT_SIZE as DEFAULT_MEMO_SIZE


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"[{record.levelname}] {record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else ""
        )


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def default_corefile() -> str:
    """The built-in Corefile; {$CLUSTERDNS_DEMO_CLUSTER} points at the packaged demo cluster."""
    os.environ.setdefault("CLUSTERDNS_DEMO_CLUSTER", demo_cluster_dir())
    return resources.files("clusterdns").joinpath("Corefile.default").read_text()


def demo_cluster_dir() -> str:
    return str(resources.files("clusterdns.demo").joinpath("cluster"))


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            if kind == "uvloop":
                raise
    return asyncio.new_event_loop()


def cmd_serve(args: argparse.Namespace) -> int:
    from clusterdns.core.lifecycle import App
    from clusterdns.core.server import ServerOptions

    configure_logging(args.log_level)
    if args.workers > 1:
        from clusterdns.core.workers import supervise

        argv = [a for a in (sys.argv[1:] if argv_override is None else argv_override)]
        return supervise(_without_workers(argv), args.workers)
    if os.environ.get("CLUSTERDNS_WORKER_DIR"):
        from clusterdns.core.workers import die_with_parent

        die_with_parent()
    config_path = args.conf
    if config_path is None and os.path.exists("Corefile"):
        config_path = "Corefile"
    text = None if config_path else default_corefile()
    if config_path is None:
        logging.getLogger("clusterdns").info(
            "core: no Corefile given, serving the built-in default"
        )
    app = App(
        config_path=config_path,
        default_text=text,
        dns_port=args.dns_port,
        options=ServerOptions(
            reuse_port=args.reuse_port or bool(os.environ.get("CLUSTERDNS_WORKER_DIR")),
            udp_mode=args.udp_mode,
            reply_memo=args.reply_memo,
        ),
    )
    loop = _new_loop(args.loop)
    try:
        return loop.run_until_complete(app.run())
    finally:
        loop.close()


argv_override: list[str] | None = None


def _without_workers(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--workers":
            skip = True
            continue
        if arg.startswith("--workers="):
            continue
        out.append(arg)
    return out


def cmd_sync(args: argparse.Namespace) -> int:
    from clusterdns.sync.command import run

    configure_logging(args.log_level)
    loop = _new_loop("auto")
    try:
        return loop.run_until_complete(run(args))
    finally:
        loop.close()


def cmd_plugins(args: argparse.Namespace) -> int:
    from clusterdns.core import registry

    for name in registry.implemented():
        print(name)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clusterdns", description="Kubernetes cluster DNS and service discovery."
    )
    parser.add_argument("--version", action="version", version=f"clusterdns {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the DNS server (like coredns -conf)")
    serve.add_argument(
        "--conf", "-conf", help="Corefile to load (default ./Corefile, else the built-in one)"
    )
    serve.add_argument(
        "--dns-port", "-dns.port", type=int, help="override the port of every server block"
    )
    serve.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    serve.add_argument("--reuse-port", action="store_true", help="set SO_REUSEPORT on DNS sockets")
    serve.add_argument(
        "--workers", type=int, default=1, help="N server processes sharing the port (SO_REUSEPORT)"
    )
    serve.add_argument(
        "--udp-mode", choices=("batch", "thread", "loop"), default="batch",
        help="UDP: a receive thread reading batches with recvmmsg (default), one datagram "
        "at a time, or everything on the event loop",
    )  # fmt: skip
    serve.add_argument(
        "--reply-memo", type=int, default=DEFAULT_MEMO_SIZE, metavar="N",
        help="finished UDP replies kept per socket for identical queries (0: off)",
    )  # fmt: skip
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    serve.set_defaults(func=cmd_serve)

    from clusterdns.sync.command import add_parser as add_sync_parser

    add_sync_parser(sub, cmd_sync)

    from clusterdns.tools import envvars, lookup, records, resolvconf, vservers

    for tool in (lookup, records, resolvconf, envvars, vservers):
        tool.add_parser(sub)

    plugins = sub.add_parser("plugins", help="list the plugins compiled in, in execution order")
    plugins.set_defaults(func=cmd_plugins)
    return parser


def main(argv: list[str] | None = None) -> int:
    global argv_override
    argv_override = argv
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
