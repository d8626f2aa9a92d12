"""Property: arbitrary text either parses or raises CorefileError, never anything else."""

from __future__ import annotations

import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterdns.corefile import CorefileError, parse

# Corefile-ish alphabet so the parser's interesting paths are reached often. No glob
# characters, so an "import" never wanders over the real filesystem.
_ALPHABET = st.sampled_from([*'abcz.:/,()${}%#"\\ \t\n\r019', "import ", "{$A}", "\u00e9"])
_TEXT = st.lists(_ALPHABET, max_size=80).map("".join)
_EMPTY_DIR = tempfile.mkdtemp(prefix="clusterdns-corefile-fuzz-")


@settings(max_examples=500, deadline=None)
@given(st.one_of(_TEXT, st.text(max_size=80)))
def test_random_text_only_raises_corefile_error(text: str) -> None:
    try:
        parse(text, env={"A": "x"}, base_dir=_EMPTY_DIR)
    except CorefileError as err:
        assert err.line >= 1
        assert str(err).startswith(f"{err.file}:{err.line}: ")
