"""The one exception the Corefile parser raises: a message pinned to a file and line."""

from __future__ import annotations


class CorefileError(Exception):
    """A Corefile problem at ``file:line``; ``str(e)`` is ``"{file}:{line}: {message}"``."""

    file: str
    line: int
    message: str

    def __init__(self, file: str, line: int, message: str) -> None:
        # Passing all three to Exception keeps the error picklable (args round-trip).
        super().__init__(file, line, message)
        self.file = file
        self.line = line
        self.message = message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"
