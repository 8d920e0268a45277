"""The source folder is called `operator`, like a standard-library module: never shadow it."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import restream_operator

CHECKOUT = Path(__file__).resolve().parents[2]


def _operator_module_file(cwd: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", "import operator; print(operator.__file__); operator.itemgetter"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_import_operator_is_the_standard_library_from_the_checkout() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    found = Path(_operator_module_file(CHECKOUT)).resolve()
    assert found.parent == stdlib, f"`import operator` gave {found}, not the standard library"


def test_import_operator_is_the_standard_library_elsewhere(tmp_path: Path) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(_operator_module_file(tmp_path)).resolve().parent == stdlib


def test_package_is_installed_under_its_own_name() -> None:
    assert restream_operator.__file__ is not None
    assert Path(restream_operator.__file__).parent.name == "restream_operator"
    assert not (CHECKOUT / "operator" / "__init__.py").exists()
