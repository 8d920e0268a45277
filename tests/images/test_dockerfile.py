"""What the operator assumes of its images, checked on the Dockerfile without building it.

`make images` (hack/images/build.sh) builds and runs the images for real; these tests keep
the static contract in the fast tier: the targets, the base, the user the pods run as,
the tags the operator renders, a build context that leaves the checkout's clutter out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from restream_operator.agent.contract import DEFAULT_CA_FILE
from restream_operator.render.common import RUN_AS
from restream_operator.settings import DEFAULT_MEDIA_IMAGE
from restream_operator.version import version
from tests.tools import install_hint, tools_required

CHECKOUT = Path(__file__).resolve().parents[2]
DOCKERFILE = (CHECKOUT / "Dockerfile").read_text()
SCRIPTS = sorted(
    [*(CHECKOUT / "hack").rglob("*.sh"), *(CHECKOUT / "tests").rglob("*.sh"), CHECKOUT / ".ci/run"]
)


def _stages() -> dict[str, str]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    stages: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if m:
            name = m.group(1)
            stages[name] = ""
        if name:
            stages[name] += line + "\n"
    return stages


def test_two_targets_on_the_bookworm_base() -> None:
    stages = _stages()
    assert {"operator", "media"} <= set(stages)
    assert re.search(r"^ARG BASE=debian:bookworm-slim$", DOCKERFILE, re.MULTILINE)
    for line in re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.MULTILINE):
        # Only the imported base or an earlier stage: no stage may need a registry.
        assert line == "${BASE}" or line in stages, line


@pytest.mark.parametrize("target", ["operator", "media"])
def test_final_stages_run_as_the_pods_user(target: str) -> None:
    stage = _stages()[target]
    assert f"USER {RUN_AS}:{RUN_AS}" in stage
    assert "pip install" not in stage and "build-essential" not in stage and "gcc" not in stage
    for key in ("title", "description", "source", "licenses", "version"):
        assert f"org.opencontainers.image.{key}=" in stage, key


def test_the_runtime_user_is_created_with_the_pods_uid() -> None:
    assert f"--uid {RUN_AS} --gid {RUN_AS}" in _stages()["runtime"]


def test_media_entrypoint_is_tini_alone() -> None:
    # A pod's `args` keep tini as PID 1; `command` would replace it.
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in _stages()["media"]


def test_build_tags_are_what_the_operator_renders() -> None:
    build = (CHECKOUT / "hack" / "images" / "build.sh").read_text()
    assert 'media_image="restream-operator/media:$version"' in build
    assert f"restream-operator/media:{version()}" == DEFAULT_MEDIA_IMAGE


def test_build_context_is_an_allowlist() -> None:
    patterns = [
        line.strip()
        for line in (CHECKOUT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # .git, .venv, .cluster, caches: all out
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set(re.findall(r"^COPY\s+(?!--from)(.+)\s+\S+$", DOCKERFILE, re.MULTILINE))
    for sources in copied:
        for src in sources.split():
            assert src.rstrip("/") in included, f"COPY {src} is not in .dockerignore's allowlist"


@pytest.mark.skipif(
    shutil.which("shellcheck") is None and not tools_required(),
    reason=f"shellcheck is not installed ({install_hint('lint')})",
)
def test_scripts_are_shellcheck_clean() -> None:
    assert SCRIPTS
    subprocess.run(["shellcheck", "-x", *map(str, SCRIPTS)], cwd=CHECKOUT, check=True)


# What the media image installs besides the package: Dockerfile's /agent-deps.
AGENT_DEPENDENCIES = {"h11", "prometheus_client"}


def test_the_agents_import_the_standard_library_and_their_dependencies_only() -> None:
    """The media image has none of the operator's dependencies (kopf, kubernetes,
    pydantic...): an agent module that imports one would fail in the pod."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import restream_operator.agent as agent\n"
        "for m in pkgutil.walk_packages(agent.__path__, 'restream_operator.agent.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=CHECKOUT
    ).stdout.split()
    # Underscored names outside the standard library are site's hooks (an editable
    # install's finder, setuptools' distutils shim), not imports of the agents.
    imported = {n for n in out if n not in sys.stdlib_module_names and not n.startswith("_")}
    assert imported == {"restream_operator", *AGENT_DEPENDENCIES}


def test_the_media_image_installs_the_agents_dependencies() -> None:
    stages = _stages()
    for dist in AGENT_DEPENDENCIES:
        # ...at the version the operator's stage resolved.
        assert f'"{dist}==$(' in stages["build"] and "--dest /agent-deps" in stages["build"]
    assert "--no-deps --no-index /wheels/*.whl /agent-deps/*.whl" in stages["build-agent"]


def test_the_media_image_has_the_ca_bundle_relays_verify_rtmps_with() -> None:
    # The relay agent verifies rtmps:// destinations against DEFAULT_CA_FILE: Debian's
    # ca-certificates, installed in the stage the media image starts from.
    stages = _stages()
    assert re.search(r"^FROM runtime AS media$", stages["media"], re.MULTILINE)
    assert re.search(r"apt-get install [^&]*\bca-certificates\b", stages["runtime"])
    assert DEFAULT_CA_FILE == "/etc/ssl/certs/ca-certificates.crt"  # where that package puts it
    check = (CHECKOUT / "hack" / "images" / "check.sh").read_text()
    assert f'run "$media" test -s {DEFAULT_CA_FILE}' in check  # and the built image has it
