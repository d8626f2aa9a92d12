"""The long fuzz run (CLUSTERDNS_FUZZ_EXAMPLES set) lifts the per-test timeout."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not os.environ.get("CLUSTERDNS_FUZZ_EXAMPLES"):
        return
    for item in items:
        if "fuzz" in item.nodeid:
            item.add_marker(pytest.mark.timeout(0), append=False)
