"""`validate` and `render` on generated hostile files (hypothesis): they never raise, never
take long, and a file they cannot read gets exactly one line on stderr and exit code 2.

The explicit cases (the billion laughs, 10,000 levels of nesting, 10**10000, files too
large, not UTF-8, binary), each run in a process with a bounded address space, are in
tests/unit/admission/test_validate_cli.py.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restream_operator import cli, models
from tests.unit.admission.helpers import billion_laughs

EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
# Per file: far above what any of these takes, far below a hang.
SECONDS = 10.0

# Pieces of YAML syntax, values that are hard to read, and bytes that are not text.
TOKENS = st.sampled_from(
    [
        "[",
        "]",
        "{",
        "}",
        ": ",
        ", ",
        "- ",
        "\n",
        "  ",
        "\t",
        "? ",
        "---\n",
        "...\n",
        "#",
        "&a ",
        "&b ",
        "*a",
        "*b",
        "!!int ",
        "!!binary ",
        "!!python/object:os.system ",
        "!!timestamp ",
        "<<: ",
        "'",
        '"',
        "|\n",
        ">\n",
        "0x",
        "1" * 5000,
        "2024-13-01",
        "\x00",
        "\x1b[2J",
        "\u202e",
        "\ufeff",
        "caf\u00e9",
        "%YAML 1.1\n",
        "%TAG ! x\n",
        "apiVersion: restream.dev/v1alpha1\n",
        "kind: LiveStream\n",
        "kind: Livestream\n",
        "metadata: {name: x}\n",
        "spec:\n",
        "restreams:\n",
        "serverUrl: ",
        "name: ",
    ]
)
SOUP = st.lists(TOKENS, max_size=80).map(lambda parts: "".join(parts).encode("utf-8", "replace"))


@st.composite
def _alias_tower(draw: st.DrawFn) -> bytes:
    """Anchors of anchors: from harmless sharing to a bomb, under a LiveStream's spec."""
    levels, fan = draw(st.integers(1, 14)), draw(st.integers(1, 12))
    tail = draw(st.sampled_from(["  restreams: []", f"  restreams: *a{levels - 1}", ""]))
    return billion_laughs(levels, fan, tail)


@st.composite
def _nesting(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(0, 3000))
    style = draw(st.sampled_from(["flow-list", "flow-map", "block"]))
    if style == "flow-list":
        return b"spec: " + b"[" * depth + b"]" * depth
    if style == "flow-map":
        return b"spec: " + b"{a: " * depth + b"1" + b"}" * depth
    return "".join(f"{' ' * min(i, 400)}a:\n" for i in range(depth)).encode()


def _livestream_with(value: object) -> bytes:
    doc = {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": "x"},
        "spec": {"restreams": [{"name": "X", "serverUrl": value, "streamKey": value}]},
    }
    return yaml.safe_dump(doc).encode()


VALUES = st.one_of(
    st.integers(), st.floats(), st.text(max_size=200), st.binary(max_size=50), st.none()
)
FILES = st.one_of(
    SOUP,
    _alias_tower(),
    _nesting(),
    st.binary(max_size=2000),
    VALUES.map(_livestream_with),
)


def _run(command: str, data: bytes) -> tuple[int, str, float]:
    with tempfile.TemporaryDirectory(prefix="restream-hostile-") as tmp:
        path = Path(tmp) / "file.yaml"
        path.write_bytes(data)
        argv = [command, "-f", str(path)] + (["--no-resolve"] if command == "validate" else [])
        out, err = io.StringIO(), io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(argv)
        return code, err.getvalue(), time.monotonic() - started


def _check(command: str, data: bytes) -> None:
    code, err, elapsed = _run(command, data)
    assert code in (0, 1, 2)
    assert elapsed < SECONDS, f"{command} took {elapsed:.1f} s"
    assert "Traceback" not in err and "report this bug" not in err, err
    if code == 2:
        assert len(err.splitlines()) == 1, err
        # validate's lines name the command; render's are kubectl's (error: ...).
        assert err.startswith(
            "error: " if command == "render" else f"restream-operator {command}: "
        )


@EXAMPLES
@given(FILES)
def test_validate_never_raises_nor_hangs(data: bytes) -> None:
    _check("validate", data)


@EXAMPLES
@given(FILES)
def test_render_never_raises_nor_hangs(data: bytes) -> None:
    _check("render", data)
