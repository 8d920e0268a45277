"""`restream-operator console` as a process, for the tests and the benchmarks: started
with a kubeconfig, its URL read from its first line, stopped by its PID whatever
happens."""

from __future__ import annotations

import contextlib
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]
URL_LINE = re.compile(r"console: (http://127\.0\.0\.1:(\d+)/\?token=([A-Za-z0-9_-]{43}))\n")


@dataclass
class Console:
    url: str  # the one it printed, with the token
    port: int
    token: str
    process: subprocess.Popen[str]
    log: Path

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@contextlib.contextmanager
def running_console(kubeconfig: Path, log: Path) -> Iterator[Console]:
    """The console as a process, stopped by its PID whatever happens."""
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "restream_operator.cli", "console",
             "--kubeconfig", str(kubeconfig)],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=CHECKOUT,
        )  # fmt: skip
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        found = URL_LINE.fullmatch(line)
        assert found, f"the console printed {line!r}; its log:\n{log.read_text()[-3000:]}"
        yield Console(found[1], int(found[2]), found[3], process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
