"""`restream-operator validate`: the admission rules on files, for CI pipelines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.unit.admission.helpers import (
    CHECKOUT,
    check,
    livestream,
    restream,
)

# ---- `restream-operator validate` ---------------------------------------------------


def _validate(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RESTREAM_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "restream_operator.cli", "validate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )


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
