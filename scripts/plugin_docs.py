"""Regenerate the plugin reference in README.md from each plugin's README.

python scripts/plugin_docs.py          # rewrite README.md
python scripts/plugin_docs.py --check  # exit 1 if README.md is stale (a test runs this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from clusterdns.core import registry  # noqa: E402

BEGIN, END = "<!-- plugins:begin -->", "<!-- plugins:end -->"
FENCE = re.compile(r"^(~~~|```)[^\n]*\n(.*?)^\1\s*$", re.S | re.M)


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {title}\s*$(.*?)(?=^## |\Z)", text, re.S | re.M)
    return match.group(1) if match else ""


def summary(text: str) -> str:
    name = section(text, "Name").strip()
    if name:
        return re.sub(r"^\*[\w-]+\*\s*-\s*", "", name).strip()
    body = text.split("\n", 1)[1].strip()
    return body.split("\n\n", 1)[0].replace("\n", " ").strip()


def render() -> str:
    parts = [BEGIN, ""]
    for name in registry.implemented():
        path = ROOT / "src" / "clusterdns" / "plugins" / name / "README.md"
        text = path.read_text()
        blocks = [m.group(2).rstrip() for m in FENCE.finditer(section(text, "Syntax"))]
        parts.append(f"### [{name}](src/clusterdns/plugins/{name}/README.md)")
        parts.append("")
        parts.append(summary(text))
        parts.append("")
        for block in blocks:
            parts += ["```", block, "```", ""]
    parts.append(END)
    return "\n".join(parts)


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    updated = text[:start] + render() + text[end:]
    if "--check" in sys.argv:
        if updated != text:
            print("README.md plugin reference is stale: run python scripts/plugin_docs.py")
            return 1
        return 0
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
