"""README.md and CONTRIBUTING.md say only what is true of this checkout: no code block
repeats another, and every repository path, `make` target, CLI subcommand, `python -m`
module, chart value and `#anchor` link they mention exists. (tests/e2e's
test_readme_install.py runs the README's install section itself.)"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from restream_operator import cli
from restream_operator.agent import cli as agent_cli
from tests.docs import DOCS, Block, Doc, code, parse

CHECKOUT = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((CHECKOUT / "charts/restream-operator/values.yaml").read_text())
PARSED = {name: parse(name) for name in DOCS}


def anchors(doc: Doc) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", doc.prose, re.MULTILINE):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


def subcommands(parser: argparse.ArgumentParser) -> set[str]:
    return {
        name
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def make_targets() -> set[str]:
    makefile = (CHECKOUT / "Makefile").read_text()
    return set(re.findall(r"^([a-z0-9][a-z0-9-]*)\s*:", makefile, re.MULTILINE))


def value_exists(path: str) -> bool:
    node: Any = VALUES
    for key in re.sub(r"\[\d+\]", "", path).split("."):
        if key == "*":
            return True
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def value_paths(tree: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(tree, dict):
        for key, sub in tree.items():
            yield from value_paths(sub, f"{prefix}{key}.")
    elif prefix:
        yield prefix[:-1]


# -- no repeated blocks ---------------------------------------------------------------


def test_no_code_block_repeats_another() -> None:
    blocks = [b for doc in PARSED.values() for b in doc.blocks]
    assert len(blocks) > 20
    seen: dict[str, Block] = {}
    repeated = []
    for block in blocks:
        key = " ".join(block.text.split())
        if key in seen:
            first = seen[key]
            repeated.append(f"{block.doc}:{block.line} repeats {first.doc}:{first.line}")
        seen.setdefault(key, block)
    assert not repeated, "\n".join(repeated)


def test_the_status_table_is_shown_once() -> None:
    # The issue that asked for this README found `kubectl get livestreams` three times.
    headers = [
        line
        for doc in PARSED.values()
        for line in doc.text.splitlines()
        if re.match(r"^NAME\s+READY\s+BROADCASTING\s+LIVE", line)
    ]
    assert len(headers) == 1, headers


# -- what they mention exists ------------------------------------------------------------


@pytest.mark.parametrize("name", DOCS)
def test_repository_paths_exist(name: str) -> None:
    doc = PARSED[name]
    tops = {p.name for p in CHECKOUT.iterdir()} - {".venv", ".cluster", "node_modules"}
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.prose)
    candidates = {*links}
    for chunk in code(doc):
        for word in re.split(r"[\s,;()=\"'`|]+", chunk):
            token = word.rstrip(".:")
            if "/" in token and re.fullmatch(r"[\w.\-/]+", token):
                candidates.add(token)
    checked, missing = 0, []
    for path in sorted(candidates):
        if path.startswith(("http", "/")) or path.split("/")[0] not in tops:
            continue
        checked += 1
        if not (CHECKOUT / path).exists():
            missing.append(path)
    assert checked > 10 if name == "README.md" else checked > 5
    assert not missing, f"{name} mentions paths this checkout lacks: {missing}"


@pytest.mark.parametrize("name", DOCS)
def test_make_targets_exist(name: str) -> None:
    mentioned = {
        t for chunk in code(PARSED[name]) for t in re.findall(r"\bmake ([a-z][\w-]*)", chunk)
    }
    assert {"demo", "test"} <= mentioned or name != "README.md"
    assert not mentioned - make_targets(), f"{name}: no such make target"


@pytest.mark.parametrize("name", DOCS)
def test_cli_subcommands_exist(name: str) -> None:
    commands = {
        "restream-operator": subcommands(cli.build_parser()),
        "restream-agent": subcommands(agent_cli.build_parser()),
    }
    wrong = []
    for chunk in code(PARSED[name]):
        # The command itself: at the start of a span or line, or after a prompt or pipe.
        for program, sub in re.findall(
            r"(?:^|[$|;&]\s*)(restream-operator|restream-agent)\s+([a-z][\w-]*)", chunk.strip()
        ):
            if sub not in commands[program]:
                wrong.append(f"{program} {sub}")
    assert not wrong, f"{name}: no such subcommand: {wrong}"


@pytest.mark.parametrize("name", DOCS)
def test_python_modules_exist(name: str) -> None:
    modules = {m for chunk in code(PARSED[name]) for m in re.findall(r"python -m ([\w.]+)", chunk)}
    ours = {m for m in modules if m.split(".")[0] in ("bench", "hack", "tests")}
    missing = [
        m for m in ours
        if not (CHECKOUT / (m.replace(".", "/") + ".py")).exists()
        and not (CHECKOUT / m.replace(".", "/") / "__main__.py").exists()
    ]  # fmt: skip
    assert not missing, f"{name}: no such module: {missing}"


def test_chart_values_exist() -> None:
    readme = PARSED["README.md"]
    mentioned = set()
    for chunk in code(readme):
        mentioned |= set(re.findall(r"--set\s+\"?([\w.\[\]]+)=", chunk))
        # Dotted names under one of the chart's top-level values: crds.keep, metrics.port
        for token in re.findall(r"^[a-z][A-Za-z]*(?:\.[A-Za-z*][\w*]*)+$", chunk.strip()):
            if token.split(".")[0] in VALUES:
                mentioned.add(token)
    # The values file the install section writes, with its variables filled in.
    install = next(b for b in readme.blocks if "restream-values.yaml <<EOF" in b.text)
    heredoc = install.text.split("<<EOF\n", 1)[1].split("\nEOF\n", 1)[0]
    written = yaml.safe_load(heredoc.replace("$REGISTRY", "registry.example.com/r"))
    mentioned |= set(value_paths(written))
    assert {"image.repository", "mediaImage.repository", "crds.keep"} <= mentioned
    missing = sorted(p for p in mentioned if not value_exists(p))
    assert not missing, f"README.md names chart values that values.yaml lacks: {missing}"


@pytest.mark.parametrize("name", DOCS)
def test_anchor_links_resolve(name: str) -> None:
    doc = PARSED[name]
    broken = []
    for target, anchor in re.findall(r"\]\(([\w.\-/]*)#([\w\-]+)\)", doc.prose):
        into = PARSED.get(target or name)
        if into is None or anchor not in anchors(into):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{name}: links to no heading: {broken}"


def test_install_section_is_marked_for_its_test() -> None:
    marked = [b for b in PARSED["README.md"].blocks if b.marker]
    kinds = [b.marker.split(":")[0] for b in marked if b.marker]
    assert kinds.count("stand-in") == 1 and kinds.count("run") >= 4
    stand_in = next(b for b in marked if b.marker and b.marker.startswith("stand-in"))
    # What the stand-in replaces: both Dockerfile targets, built for both architectures.
    assert "--platform linux/amd64,linux/arm64" in stand_in.text
    assert "for target in operator media" in stand_in.text
    targets = set(re.findall(r"^FROM \S+ AS (\S+)$", (CHECKOUT / "Dockerfile").read_text(), re.M))
    assert {"operator", "media"} <= targets
