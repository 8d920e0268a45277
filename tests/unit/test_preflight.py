"""`make test` on a machine without nginx stops at once and names the one command that
installs it (hack/preflight.sh), rather than building for minutes and then skipping or
failing the media tier."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def path_without(tmp_path: Path, *left_out: str) -> str:
    """A PATH of one folder with a link to every command of this one but ``left_out``:
    this machine, as one that never installed them."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            link = bin_dir / entry.name
            if entry.name in left_out or link.exists() or link.is_symlink():
                continue
            if os.access(entry.path, os.X_OK) and not entry.is_dir():
                link.symlink_to(entry.path)
    return str(bin_dir)


def test_make_test_without_nginx_fails_at_once_naming_the_install_command(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PATH": path_without(tmp_path, "nginx")}
    env.pop("MAKEFLAGS", None)
    t0 = time.monotonic()
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(CHECKOUT), "test"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    assert proc.returncode != 0, proc.stdout
    assert elapsed < 10, f"took {elapsed:.1f} s: it must stop before building anything"
    assert "  media: nginx\n" in proc.stderr, proc.stderr
    assert "Install it with:  sudo bash hack/packages.sh media" in proc.stderr, proc.stderr
    assert "pytest" not in proc.stdout + proc.stderr  # no tier started


def test_preflight_passes_where_nothing_is_missing(tmp_path: Path) -> None:
    # Whatever this machine lacks, preflight names exactly that, and only that: with
    # nothing left out of PATH, nginx is not among what it reports.
    proc = subprocess.run(
        ["bash", str(CHECKOUT / "hack/preflight.sh")],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    if proc.returncode == 0:
        assert proc.stderr == ""
    else:
        assert proc.returncode == 2
        assert "media: nginx\n" not in proc.stderr or not _on_path("nginx")


def _on_path(command: str) -> bool:
    return any(
        os.access(os.path.join(d, command), os.X_OK)
        for d in os.environ.get("PATH", "").split(os.pathsep)
    )
