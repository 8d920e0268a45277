"""The command lines as kubectl users expect them (issue 20, item 5): `render` validates
first (--validate=false skips it), -f takes files, directories and -, -o yaml|json, a
file without a LiveStream or with a misspelt one is an error, --version on both
commands, and every option's help says its default.

Each test runs the real entry point, ``main(argv)`` in this process or the installed
script as a subprocess, on real files; `validate`'s own tests are in
tests/unit/admission/test_validate_cli.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml

from restream_operator import cli
from restream_operator.agent import cli as agent_cli
from tests.unit.admission.helpers import CHECKOUT, livestream, restream

BIN = Path(sys.executable).parent
PRIVATE = livestream(restream(name="Local", url="rtmp://127.0.0.1/live"), name="show")
PRIVATE_URL = 'spec.restreams[0] ("Local").serverUrl'
PRIVATE_LINE = (
    f'media/show: {PRIVATE_URL}: host "127.0.0.1" is a loopback address: destinations must be '
    "public, since the relays run inside the cluster (SSRF guard); if this one is intended, "
    "set the operator's allowPrivateDestinations (RESTREAM_ALLOW_PRIVATE_DESTINATIONS=true)"
)
HINT = "if you choose to ignore these errors, turn validation off with --validate=false"


@pytest.fixture(autouse=True)
def _no_operator_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The operator's settings come from RESTREAM_*: none of this machine's may leak in.
    for name in os.environ:
        if name.startswith("RESTREAM_"):
            monkeypatch.delenv(name)


def _write(path: Path, *objs: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump_all(list(objs)))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _names(stdout: str) -> list[str]:
    return [d["metadata"]["name"] for d in yaml.safe_load_all(stdout) if d]


def _ingests(stdout: str) -> list[str]:
    """The LiveStreams rendered, in order: the names of their ingest Deployments."""
    return [
        d["metadata"]["name"].removesuffix("-ingest")
        for d in yaml.safe_load_all(stdout)
        if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-ingest")
    ]


# ---- render validates first ----------------------------------------------------------


def test_render_refuses_a_private_destination_with_the_field_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "show.yaml", PRIVATE)
    code, out, err = _run(capsys, "render", "-f", str(path))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        f"error: {path}: {PRIVATE_LINE}",
        f"error: 1 LiveStream not rendered: {HINT}",
    ]


def test_render_validation_is_the_admission_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not only addresses: names, the operator's limit, and the models' own types."""
    bad = livestream(
        restream(name="A", url="rtmps://a.rtmps.youtube.com/live2", enabled="maybe"),
        restream(name="B", url="rtmps://b.example.com/live"),
        name="Bad_Name",
    )
    path = _write(tmp_path / "bad.yaml", bad)
    code, _, err = _run(capsys, "render", "--max-restreams", "1", "-f", str(path))
    assert code == 1
    lines = err.splitlines()
    prefix = f"error: {path}: media/Bad_Name: "
    assert any(line.startswith(prefix + "metadata.name: ") for line in lines), err
    assert any(line.startswith(prefix + 'spec.restreams[0] ("A").enabled: ') for line in lines)
    assert any(line.startswith(prefix + "spec.restreams: ") and "(1)" in line for line in lines)
    assert lines[-1] == f"error: 1 LiveStream not rendered: {HINT}"


def test_render_validate_false_warn_and_the_operators_setting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "show.yaml", PRIVATE)
    for skip in ("--validate=false", "--validate=ignore"):
        code, out, err = _run(capsys, "render", skip, "-f", str(path))
        assert code == 0, err
        assert "show-ingest" in _names(out) and err == ""

    code, out, err = _run(capsys, "render", "--validate=warn", "-f", str(path))
    assert code == 0 and "show-ingest" in _names(out)
    assert err.splitlines() == [f"Warning: {path}: {PRIVATE_LINE}"]

    code, out, err = _run(capsys, "render", "--allow-private-destinations", "-f", str(path))
    assert code == 0 and err == "" and "show-ingest" in _names(out)


def test_render_still_refuses_what_the_parser_cannot_read_without_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = livestream(restream(url="rtmps://a.rtmps.youtube.com/live2", enabled="maybe"))
    path = _write(tmp_path / "bad.yaml", bad)
    code, out, err = _run(capsys, "render", "--validate=false", "-f", str(path))
    assert code == 1 and out == ""
    assert err == (
        f"error: {path}: media/launch: spec.restreams[0].enabled: Input should be a valid "
        "boolean, unable to interpret input\n"
    )


def test_render_prints_what_is_valid_and_warnings_as_kubectl_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = livestream(
        restream(name="YT", url="rtmps://a.rtmps.youtube.com/live2", streamKey="k" * 24)
    )
    path = _write(tmp_path / "two.yaml", PRIVATE, good)
    code, out, err = _run(capsys, "render", "-f", str(path))
    assert code == 1
    assert "launch-ingest" in _names(out) and "show-ingest" not in _names(out)
    assert (
        f'Warning: {path}: media/launch: spec.restreams[0] ("YT").streamKey: the key is inline'
        in err
    )
    assert "k" * 24 not in out + err


# ---- -f: files, directories, stdin ---------------------------------------------------


def _tree(root: Path) -> None:
    _write(root / "b.yaml", livestream(name="b"))
    _write(root / "a.yml", livestream(name="a"))
    (root / "c.json").write_text(json.dumps(livestream(name="c")))
    (root / "notes.txt").write_text("not a manifest: skipped, as kubectl skips it\n")
    _write(root / "nested" / "d.yaml", livestream(name="d"))


def test_a_directory_is_its_manifests_by_name_and_r_descends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tree(tmp_path / "manifests")
    code, out, err = _run(capsys, "render", "-f", str(tmp_path / "manifests"))
    assert code == 0, err
    assert _ingests(out) == ["a", "b", "c"]

    code, out, err = _run(capsys, "render", "-R", "-f", str(tmp_path / "manifests"))
    assert code == 0, err
    assert _ingests(out) == ["a", "b", "c", "d"]


def test_an_empty_directory_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    (tmp_path / "empty" / "README.md").write_text("no manifests here\n")
    _write(tmp_path / "empty" / "deeper" / "x.yaml", livestream(name="x"))
    code, out, err = _run(capsys, "render", "-f", str(tmp_path / "empty"))
    assert code == 2 and out == ""
    assert err == (
        f"error: {tmp_path / 'empty'}: no .json, .yaml or .yml file in this directory "
        "(-R reads its subdirectories too)\n"
    )


def test_repeated_f_and_several_files_after_one_f(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two, three = (_write(tmp_path / f"{n}.yaml", livestream(name=n)) for n in ("x", "y", "z"))
    code, out, err = _run(capsys, "render", "-f", str(two), "-f", str(one), str(three))
    assert code == 0, err
    assert _ingests(out) == ["y", "x", "z"]


def test_stdin_through_the_installed_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTREAM_")}
    proc = subprocess.run(
        [str(BIN / "restream-operator"), "render", "-o", "json", "-f", "-"],
        input=yaml.safe_dump_all([livestream(name="piped"), PRIVATE]),
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert f"error: <stdin>: {PRIVATE_LINE}\n" in proc.stderr
    listed = json.loads(proc.stdout)
    assert "piped-ingest" in [i["metadata"]["name"] for i in listed["items"]]


# ---- -o yaml|json --------------------------------------------------------------------


def test_output_json_is_one_list_of_the_yaml_documents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = CHECKOUT / "examples" / "secrets.yaml"
    code, as_yaml, _ = _run(capsys, "render", "-f", str(path))
    assert code == 0
    code, as_json, _ = _run(capsys, "render", "-f", str(path), "-o", "json")
    assert code == 0
    listed = json.loads(as_json)
    assert {k: v for k, v in listed.items() if k != "items"} == {
        "apiVersion": "v1", "kind": "List", "metadata": {}
    }  # fmt: skip
    assert listed["items"] == [d for d in yaml.safe_load_all(as_yaml) if d]
    assert len(listed["items"]) > 1
    with pytest.raises(SystemExit) as exited:
        cli.main(["render", "-f", str(path), "-o", "xml"])
    assert exited.value.code == 2
    assert "argument -o/--output: invalid choice: 'xml'" in capsys.readouterr().err


# ---- not a LiveStream ----------------------------------------------------------------


def test_a_file_without_a_livestream_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path / "cm.yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    )
    code, out, err = _run(capsys, "render", "-f", str(path))
    assert code == 1 and out == ""
    assert err == (
        f"error: {path}: no LiveStream in this file (kind: LiveStream, apiVersion: "
        "restream.dev/v1alpha1): check that it is the right file\n"
    )


@pytest.mark.parametrize("validate", ["--validate=true", "--validate=false"])
def test_a_misspelt_kind_or_version_is_an_error_that_says_the_right_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], validate: str
) -> None:
    typo = livestream(name="typo")
    typo["kind"] = "Livestream"
    version = livestream(name="old")
    version["apiVersion"] = "restream.dev/v1"
    path = _write(tmp_path / "wrong.yaml", typo, version)
    code, out, err = _run(capsys, "render", validate, "-f", str(path))
    assert code == 1 and out == ""
    errors = [line for line in err.splitlines() if "not rendered" not in line]
    assert errors == [
        f'error: {path}: media/typo: kind: "Livestream" is not a kind this operator serves: '
        "did you mean LiveStream?",
        f"error: {path}: media/old: apiVersion: must be restream.dev/v1alpha1",
    ]


# ---- --version -----------------------------------------------------------------------


def _declared_version() -> str:
    with (CHECKOUT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


@pytest.mark.parametrize("command", ["restream-operator", "restream-agent"])
def test_version_of_both_commands_is_the_packages(command: str) -> None:
    proc = subprocess.run(
        [str(BIN / command), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{command} {_declared_version()}\n"
    assert metadata.version("restream-operator") == _declared_version()


# ---- help: every option says its default ---------------------------------------------


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


ALL_PARSERS = [
    *_parsers(cli.build_parser(), ("restream-operator",)),
    *_parsers(agent_cli.build_parser(), ("restream-agent",)),
]


def test_every_subcommand_is_walked() -> None:
    assert {" ".join(p) for p, _ in ALL_PARSERS} == {
        "restream-operator", "restream-operator crd", "restream-operator render",
        "restream-operator validate", "restream-operator run", "restream-operator console",
        "restream-agent", "restream-agent ingest", "restream-agent relay", "restream-agent encoder",
    }  # fmt: skip


@pytest.mark.parametrize(("path", "parser"), ALL_PARSERS, ids=[" ".join(p) for p, _ in ALL_PARSERS])
def test_every_option_has_help_that_says_its_default(
    path: tuple[str, ...], parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]
) -> None:
    main = cli.main if path[0] == "restream-operator" else agent_cli.main
    with pytest.raises(SystemExit) as exited:
        main([*path[1:], "--help"])
    assert exited.value.code == 0
    # argparse wraps lines, at hyphens too: compare without white space.
    shown = "".join(capsys.readouterr().out.split())
    assert parser.description or len(path) == 1, f"{' '.join(path)} has no description"
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        option = "/".join(action.option_strings)
        text = " ".join(formatter._expand_help(action).split()) if action.help else ""
        assert text, f"{' '.join(path)} {option} has no help"
        assert "".join(text.split()) in shown, f"{' '.join(path)} --help lacks {text!r}"
        if action.nargs == 0 or action.required:
            continue  # a flag (off unless given), or an option that has no default
        assert "default" in text, f"{' '.join(path)} {option}: say its default: {text!r}"
        if isinstance(action.default, str | int | float) and action.default not in ("", 0):
            assert str(action.default) in text, f"{option}: default {action.default!r} not shown"


def test_validate_reads_directories_as_render_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _tree(tmp_path / "manifests")
    _write(tmp_path / "manifests" / "nested" / "e.yaml", PRIVATE)
    code, out, _ = _run(capsys, "validate", "--no-resolve", "-f", str(tmp_path / "manifests"))
    assert code == 0 and out == ""
    code, out, _ = _run(capsys, "validate", "--no-resolve", "-R", "-f", str(tmp_path / "manifests"))
    assert code == 1
    assert out == f"{tmp_path / 'manifests' / 'nested' / 'e.yaml'}: {PRIVATE_LINE}\n"
