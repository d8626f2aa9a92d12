"""The small exception family of the wire layer: one place maps malformed to FORMERR."""


class WireError(Exception):
    """Base of every error raised while decoding a message."""


class DropQuery(WireError):
    """The datagram cannot be answered at all (shorter than a header, or a response)."""


class FormError(WireError):
    """The header is readable but the rest is not: answer FORMERR.

    ``question_end`` is the offset just past a question that did parse, or 0
    when the question itself was unreadable (the reply then has no question).
    """

    def __init__(self, message: str, *, question_end: int = 0) -> None:
        super().__init__(message)
        self.question_end = question_end
