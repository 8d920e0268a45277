"""The checkout's layout: the source folder is called `operator`, like a standard-library
module, and must never shadow it; the tests use the tools, never the reverse."""

from __future__ import annotations

import ast
import re
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


def _imports(path: Path) -> set[str]:
    """Every module an import statement of ``path`` names (absolute imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_product_the_tools_and_the_benchmarks_never_import_the_tests() -> None:
    # The local cluster, the demo and the media harness are development tools: the tests
    # import them, and the tests may change or go without breaking `make demo` or a bench.
    modules = [p for top in ("operator", "hack", "bench") for p in (CHECKOUT / top).rglob("*.py")]
    scanned = {p.relative_to(CHECKOUT).as_posix() for p in modules}
    assert {"hack/demo.py", "hack/localcluster/__main__.py", "bench/relay.py"} <= scanned
    offenders = sorted(
        f"{p.relative_to(CHECKOUT)} imports {name}"
        for p in modules
        for name in _imports(p)
        if name == "tests" or name.startswith("tests.")
    )
    assert offenders == []


def test_make_and_ci_run_no_module_of_the_tests() -> None:
    scripts = [CHECKOUT / "Makefile", CHECKOUT / ".ci" / "run", *(CHECKOUT / "hack").rglob("*.sh")]
    offenders = [
        f"{p.relative_to(CHECKOUT)}: {m.group(0)}"
        for p in scripts
        for m in re.finditer(r"-m\s+tests\.\S+", p.read_text())
    ]
    assert offenders == []
