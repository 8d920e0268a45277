"""The installed package's version: pyproject.toml's, read from the package metadata.

One source: pyproject's ``version``, which pip writes into the metadata of every install
(the images install the wheel, a checkout installs itself with ``make venv``). It is read
only when asked: importing importlib.metadata costs a process about 75 ms and several MiB,
and a relay agent's memory is counted (bench/metrics_memory.py).
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Sequence
from typing import Any

DISTRIBUTION = "restream-operator"


@functools.cache
def version() -> str:
    from importlib import metadata  # noqa: PLC0415  (lazily: see the module's text)

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # Run from a source tree that was never installed: say how to install it rather
        # than invent a version (it names the media image the operator deploys).
        raise ImportError(
            f"the {DISTRIBUTION} package is not installed: run `make venv` (or pip install .)"
        ) from None


class VersionAction(argparse.Action):
    """``--version``: prints ``PROG VERSION`` and exits 0, reading the version only then."""

    def __init__(
        self,
        option_strings: Sequence[str],
        dest: str = argparse.SUPPRESS,
        default: Any = argparse.SUPPRESS,
        help: str = "print the version and exit",
    ) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,  # noqa: ARG002  (argparse's signature)
        values: object,  # noqa: ARG002
        option_string: str | None = None,  # noqa: ARG002
    ) -> None:
        # On stdout, as argparse's own version action: `--version | cut` works.
        sys.stdout.write(f"{parser.prog} {version()}\n")
        parser.exit()
