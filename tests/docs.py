"""The project's Markdown as the tests read it: fenced code blocks (with the
install-test marker above each, if any), inline code spans, and the prose around them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "CONTRIBUTING.md")
# A marker before a README code block the install test runs (or stands in for).
MARKER = re.compile(r"<!-- install-test: (run|stand-in: [^\n]*?) -->")


@dataclass(frozen=True)
class Block:
    doc: str
    line: int
    info: str
    text: str
    marker: str | None  # the install-test marker right above it, if any


@dataclass(frozen=True)
class Doc:
    name: str
    text: str
    blocks: tuple[Block, ...]
    spans: tuple[str, ...]  # inline code spans outside code blocks and comments
    prose: str  # the text outside code blocks, HTML comments removed


def parse(name: str) -> Doc:
    """Fenced code blocks (also indented, inside list items), inline code spans, prose."""
    text = (CHECKOUT / name).read_text()
    blocks: list[Block] = []
    prose: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if not fence:
            prose.append(lines[i])
            i += 1
            continue
        indent, start = len(fence.group(1)), i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][indent:] if lines[i][:indent].isspace() else lines[i])
            i += 1
        assert i < len(lines), f"{name}:{start + 1}: a code block that is never closed"
        above = prose[-1] if prose else ""
        marker = MARKER.fullmatch(above.strip())
        blocks.append(
            Block(name, start + 1, fence.group(2), "\n".join(body) + "\n",
                  marker.group(1) if marker else None)
        )  # fmt: skip
        prose.append("")
        i += 1
    outside = re.sub(r"<!--.*?-->", "", "\n".join(prose), flags=re.S)
    spans = tuple(re.findall(r"`([^`\n]+)`", outside))
    return Doc(name, text, tuple(blocks), spans, outside)


def code(doc: Doc) -> Iterator[str]:
    """Each code span, and each line of each code block (comments after `#` dropped)."""
    yield from doc.spans
    for block in doc.blocks:
        for line in block.text.splitlines():
            yield re.sub(r"\s#\s.*$", "", line)


def install_blocks() -> list[Block]:
    """The README's code blocks that tests/e2e/test_readme_install.py runs, in order."""
    return [b for b in parse("README.md").blocks if b.marker]
