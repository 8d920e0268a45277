"""Delays between ffmpeg restarts, and when a run of failures counts as Failed."""

from __future__ import annotations

from dataclasses import dataclass

# Never spin: even a 0 s minimum waits this long between attempts.
FLOOR = 0.25


@dataclass
class Backoff:
    """Doubling delays from ``min_delay`` to ``max_delay``; ``reset`` after a healthy run."""

    min_delay: float
    max_delay: float
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        base = max(self.min_delay, FLOOR)
        delay: float = base * 2 ** min(self.failures - 1, 32)
        return min(delay, max(self.max_delay, base))

    def reset(self) -> None:
        self.failures = 0


@dataclass
class RepeatCounter:
    """How many times in a row the same error came back (Failed after ``threshold``)."""

    threshold: int
    last: str | None = None
    count: int = 0

    def record(self, error: str) -> bool:
        """Counts ``error``; True when it has now repeated ``threshold`` times in a row."""
        key = _shape(error)
        if key == self.last:
            self.count += 1
        else:
            self.last, self.count = key, 1
        return self.count >= self.threshold

    def reset(self) -> None:
        self.last, self.count = None, 0


def _shape(error: str) -> str:
    # "the same error" ignores numbers that differ between attempts (ports, sizes, pids).
    return "".join("#" if c.isdigit() else c for c in error)
