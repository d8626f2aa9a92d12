"""The parsed shape of a Corefile: tokens, directives, server addresses and blocks."""

from __future__ import annotations

from dataclasses import dataclass

from clusterdns.corefile.errors import CorefileError


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a Corefile, after environment substitution, with where it was written."""

    text: str
    file: str
    line: int
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class Directive:
    """One line of a server block (or of a directive's nested block) and its optional ``{ }`` block."""

    name: str
    args: tuple[Token, ...]
    block: tuple[Directive, ...] | None
    file: str
    line: int

    def arg_texts(self) -> list[str]:
        return [arg.text for arg in self.args]

    def error(self, message: str, token: Token | None = None) -> CorefileError:
        """An error at ``token`` (or at this directive), prefixed with the directive's name."""
        where: Token | Directive = token if token is not None else self
        return CorefileError(where.file, where.line, f"{self.name}: {message}")

    def expect_args(self, minimum: int, maximum: int | None = None) -> list[str]:
        """The argument texts, or an error if there are fewer than ``minimum`` or more than ``maximum``."""
        count = len(self.args)
        if minimum <= count and (maximum is None or count <= maximum):
            return self.arg_texts()
        if maximum is None:
            wanted = f"at least {minimum} argument{_plural(minimum)}"
        elif minimum == maximum:
            wanted = f"{minimum} argument{_plural(minimum)}"
        else:
            wanted = f"{minimum}..{maximum} arguments"
        # Too many: point at the first surplus argument, which may sit on a later line.
        culprit = self.args[maximum] if maximum is not None and count > maximum else None
        raise self.error(f"expected {wanted}, got {count}", culprit)

    def no_block(self) -> None:
        if self.block is not None:
            raise self.error("unexpected block: this directive takes no '{ }' block")

    def block_items(self) -> tuple[Directive, ...]:
        return self.block if self.block is not None else ()


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """One zone a server block serves: ``[SCHEME://]ZONE[:PORT]`` normalised."""

    scheme: str
    zone: str
    port: int | None
    key: Token


@dataclass(frozen=True, slots=True)
class ServerBlock:
    keys: tuple[Token, ...]
    addresses: tuple[ServerAddress, ...]
    directives: tuple[Directive, ...]
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class Corefile:
    blocks: tuple[ServerBlock, ...]
    files: tuple[str, ...]
    checksum: str
