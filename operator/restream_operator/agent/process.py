"""Child processes of an agent (nginx, ffmpeg): start, read their output, stop them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence


async def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
        pass_fds=tuple(pass_fds),
        # Same process group as the agent: in a pod the agent is PID 1 and its children
        # die with the container; elsewhere, stopping the group stops them all.
    )


def child_env(drop_prefix: str = "RESTREAM_") -> dict[str, str]:
    """The agent's environment minus its secrets: children need none of them."""
    return {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix)}


def pipe_with(data: bytes) -> int:
    """A pipe already holding ``data``; returns the read end for a child to open."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, data)  # small: fits in the pipe buffer, never blocks
    finally:
        os.close(write_fd)
    return read_fd


async def read_lines(stream: asyncio.StreamReader | None, on_line: Callable[[str], None]) -> None:
    if stream is None:
        return
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line longer than the reader's limit: take it in pieces
            raw = await stream.read(64 * 1024)
        if not raw:
            return
        on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))


async def wait_exit(proc: asyncio.subprocess.Process, timeout: float | None = None) -> int:
    """The exit code, as soon as the process has exited.

    Not Process.wait(): in Python 3.11 it also waits until every pipe is closed, and a
    child's own children (nginx's workers) can hold them open after it died.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while proc.returncode is None:
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError
        await asyncio.sleep(0.05)
    return proc.returncode


async def stop(
    proc: asyncio.subprocess.Process, sig: int = signal.SIGINT, grace: float = 5.0
) -> int:
    """Ask politely (``sig``), then SIGKILL after ``grace`` seconds; the exit code."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            return await wait_exit(proc, grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    return await wait_exit(proc)


class LineBudget:
    """At most ``limit`` forwarded lines per ``window`` seconds; counts the rest.

    A misbehaving child (ffmpeg's per-packet warnings) must not flood the pod's log.
    """

    def __init__(self, limit: int = 20, window: float = 10.0) -> None:
        self.limit = limit
        self.window = window
        self._start = time.monotonic()
        self._used = 0
        self.suppressed = 0

    def allow(self) -> bool:
        now = time.monotonic()
        if now - self._start >= self.window:
            self._start, self._used = now, 0
        if self._used < self.limit:
            self._used += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        count, self.suppressed = self.suppressed, 0
        return count
