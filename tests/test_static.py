"""The static checks CI relies on: ruff (lint + format) and mypy (strict on the core)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(120)
def test_ruff_lint_and_format() -> None:
    for args in (
        ["check", "src", "tests", "scripts"],
        ["format", "--check", "src", "tests", "scripts"],
    ):
        out = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.timeout(300)
def test_mypy() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
