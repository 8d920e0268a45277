"""`restream-operator validate`: the admission rules on files, for CI pipelines."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.admission.helpers import (
    CHECKOUT,
    billion_laughs,
    check,
    livestream,
    restream,
)

# ---- `restream-operator validate` ---------------------------------------------------


def _cli(
    command: str, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESTREAM_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "restream_operator.cli", command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
        # What a hostile file may cost: well under a gigabyte of address space.
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY)),
    )


MEMORY = 1 << 30


def _validate(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return _cli("validate", *args, stdin=stdin, env=env)


def _yaml(*objs: Any) -> str:
    return yaml.safe_dump_all(list(objs), allow_unicode=True)


def test_validate_accepts_the_examples() -> None:
    files = [str(p) for p in sorted((CHECKOUT / "examples").glob("*.yaml"))]
    proc = _validate("--no-resolve", "-f", *files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    # api-video-compatible.yaml has inline keys: warned about, on stderr.
    assert "warning: " in proc.stderr and "store it in a Secret" in proc.stderr
    assert all(line.startswith("warning: ") for line in proc.stderr.splitlines())


def test_validate_prints_one_line_per_problem_and_exits_1(tmp_path: Path) -> None:
    bad = livestream(
        restream(url="rtmp://127.1/live"), restream(name="x", url="http://a.example.com/x")
    )
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "skipped"}}
    path = tmp_path / "bad.yaml"
    path.write_text(_yaml(other, bad))
    proc = _validate("--no-resolve", "-f", str(path))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines == [
        f"{path}: media/launch: {p.field}: {p.message}" for p in check(bad, resolver=None).problems
    ]
    assert (
        f'{path}: media/launch: spec.restreams[0] ("X").serverUrl: host "127.1" is a loopback'
        in proc.stdout
    )
    assert "skipped" not in proc.stdout + proc.stderr


def test_validate_reads_stdin_and_lists(tmp_path: Path) -> None:
    good = livestream(restream(url="rtmps://a.rtmps.youtube.com/live2"))
    listed = {"apiVersion": "v1", "kind": "List", "items": [good, livestream(name="Bad")]}
    proc = _validate("--no-resolve", "-f", "-", stdin=_yaml(listed))
    assert proc.returncode == 1
    assert proc.stdout.startswith("<stdin>: media/Bad: metadata.name: ")


def test_validate_exits_2_and_names_an_unreadable_or_unparsable_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec: [\n")
    good = tmp_path / "good.yaml"
    good.write_text(_yaml(livestream()))
    proc = _validate("--no-resolve", "-f", str(tmp_path / "missing.yaml"), str(broken), str(good))
    assert proc.returncode == 2
    assert f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory" in proc.stderr
    assert f"{broken}: not valid YAML at line 2" in proc.stderr


def test_validate_flags_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "ls.yaml"
    path.write_text(
        _yaml(livestream(restream(name="A", url="rtmp://127.0.0.1/live"), restream(name="B")))
    )
    assert _validate("--no-resolve", "-f", str(path)).returncode == 1
    assert (
        _validate("--no-resolve", "--allow-private-destinations", "-f", str(path)).returncode == 0
    )
    limited = _validate(
        "--no-resolve", "--allow-private-destinations", "--max-restreams", "1", "-f", str(path)
    )
    assert limited.returncode == 1 and "more than this operator allows (1)" in limited.stdout
    env = {"RESTREAM_ALLOW_PRIVATE_DESTINATIONS": "true", "RESTREAM_MAX_RESTREAMS": "1"}
    assert _validate("--no-resolve", "-f", str(path), env=env).returncode == 1
    bad_flag = _validate("--max-restreams", "0", "-f", str(path))
    assert bad_flag.returncode == 2 and "from 1 to 50" in bad_flag.stderr


def test_validate_refuses_another_version_and_escapes_names(tmp_path: Path) -> None:
    obj = livestream(name="evil\x1b[2J")
    obj["apiVersion"] = "restream.dev/v1"
    path = tmp_path / "v1.yaml"
    path.write_text(_yaml(obj))
    proc = _validate("--no-resolve", "-f", str(path))
    assert proc.returncode == 1
    assert proc.stdout == f"{path}: media/evil\\x1b[2J: apiVersion: must be restream.dev/v1alpha1\n"


# ---- files a pipeline may hand over: hostile, broken, or not what they seem ------------


HOSTILE = [
    pytest.param(billion_laughs(), "nodes once its aliases are expanded", id="billion-laughs"),
    pytest.param(
        b"spec: " + b"[" * 10_000 + b"]" * 10_000, "not valid YAML at line 1", id="deep-flow"
    ),
    pytest.param(
        b"a: " + b"{a: " * 10_000 + b"1" + b"}" * 10_000,
        "nests more than 256 levels",
        id="deep-map",
    ),
    pytest.param(
        "".join(f"{' ' * 2 * i}a:\n" for i in range(1000)).encode(),
        "nests more than 256 levels",
        id="deep-block",
    ),
    pytest.param(b"spec: 1" + b"0" * 10_000, "a number of 10001 digits", id="10^10000"),
    pytest.param(b"spec: &a [*a]", "inside the node it repeats", id="recursive-alias"),
    pytest.param(b"a: &x 1\nb: &x 2", "defines the anchor &x twice", id="duplicate-anchor"),
    pytest.param("spec: caf\u00e9".encode("latin-1"), "not UTF-8 text (byte 10", id="latin-1"),
    pytest.param(bytes(range(256)) * 4, "not UTF-8 text", id="binary"),
    pytest.param(b"spec: a\x00b", "may not appear in it", id="nul"),
    pytest.param(b"a: 2024-13-01", "cannot be read (month must be in 1..12)", id="bad-date"),
    pytest.param(b"a: !!python/object:os.system x", "not valid YAML", id="python-tag"),
    pytest.param(b"x" * (9 << 20), "larger than 8 MiB", id="9-MiB"),
    pytest.param(b"- a\n" * 1_000_001, "has more than 1000000 nodes", id="many-nodes"),
]


@pytest.mark.parametrize("command", ["validate", "render"])
@pytest.mark.parametrize(("data", "phrase"), HOSTILE)
def test_a_hostile_file_gets_one_line_and_exit_2_quickly(
    tmp_path: Path, command: str, data: bytes, phrase: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(data)
    started = time.monotonic()
    proc = _cli(command, "-f", str(path), *(["--no-resolve"] if command == "validate" else []))
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.rstrip("\n")], proc.stderr  # one line
    # validate's lines name the command; render's are kubectl's (error: ...).
    prefix = "error: " if command == "render" else f"restream-operator {command}: "
    assert proc.stderr.startswith(f"{prefix}{path}: ")
    assert phrase in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert elapsed < 15, f"{elapsed:.1f} s"


def test_stdin_and_devices_are_read_within_the_bound() -> None:
    proc = _validate("--no-resolve", "-f", "/dev/zero")
    assert proc.returncode == 2
    assert (
        proc.stderr == "restream-operator validate: /dev/zero: larger than 8 MiB: split it "
        "(no LiveStream manifest is nearly that large)\n"
    )
    proc = _validate("--no-resolve", "-f", "-", stdin="spec: &a [*a]\n")
    assert proc.returncode == 2 and proc.stderr.startswith("restream-operator validate: <stdin>: ")


def test_what_is_not_a_livestream_is_said(tmp_path: Path) -> None:
    typo = livestream()
    typo["kind"] = "Livestream"
    other_group = livestream(name="other")
    other_group["apiVersion"] = "restream.io/v1alpha1"
    path = tmp_path / "mixed.yaml"
    path.write_text(_yaml(typo, other_group))
    proc = _validate("--no-resolve", "-f", str(path))
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f'{path}: media/launch: kind: "Livestream" is not a kind this operator serves: '
        "did you mean LiveStream?",
        f"{path}: media/other: apiVersion: must be restream.dev/v1alpha1",
    ]
    empty = tmp_path / "configmap.yaml"
    empty.write_text(_yaml({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}))
    proc = _validate("--no-resolve", "-f", str(empty))
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"{empty}: no LiveStream in this file (kind: LiveStream, ")


def test_a_livestream_without_a_name_or_with_a_bad_namespace_is_refused(tmp_path: Path) -> None:
    unnamed = livestream()
    del unnamed["metadata"]["name"]
    bad_namespace = livestream(name="ok")
    bad_namespace["metadata"]["namespace"] = "Media_1"
    path = tmp_path / "meta.yaml"
    path.write_text(_yaml(unnamed, bad_namespace))
    proc = _validate("--no-resolve", "-f", str(path))
    assert proc.returncode == 1
    assert f"{path}: media/<unnamed>: metadata.name: is missing: name the LiveStream" in proc.stdout
    assert f'{path}: Media_1/ok: metadata.namespace: "Media_1" is not a namespace' in proc.stdout
