"""Start a real clusterdns server in-process on loopback, port 0."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import AsyncIterator

import pytest

from clusterdns.core.lifecycle import App
from clusterdns.core.process import Process


class Running:
    def __init__(self, app: App, path: pathlib.Path) -> None:
        self.app = app
        self.path = path

    def port(self, host: str = "127.0.0.1", port: int = 0) -> int:
        return self.app.server.bound_port(host, port)

    def http_port(self, host: str = "127.0.0.1", port: int = 0) -> int:
        return self.app.process.http.bound_port(host, port)


@contextlib.asynccontextmanager
async def serve(text: str, tmp_path: pathlib.Path) -> AsyncIterator[Running]:
    path = tmp_path / "Corefile"
    path.write_text(text)
    app = App(config_path=str(path), process=Process())
    await app.start()
    try:
        yield Running(app, path)
    finally:
        await app.shutdown()


@pytest.fixture
def corefile_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path
