"""YAML in and out: files read within bounds, YAML written as people read it.

In: `restream-operator validate` and `render` read files a pipeline hands them, which may
be hostile. A file is read up to a size, and its events are counted before anything is
built from them: nesting deeper than a bound, aliases that would expand past a number
of nodes ("billion laughs"), an alias to the node that holds it, and numbers too long
for Python to read are refused with one line, as is text that is not UTF-8. What is
built then holds shared references for aliases, but everything that walks it (the
admission rules, the renderer) sees at most ``MAX_NODES`` nodes.

Out: no anchors, multi-line strings as literal blocks.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import IO, Any

import yaml

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 256
# Nodes once every alias is expanded: far more than a file of LiveStreams has, and what
# the admission rules walk through in well under a second.
MAX_NODES = 1_000_000

# What PyYAML reads as an integer (YAML 1.1: signs, underscores, bases, sexagesimal).
_INTEGER = re.compile(r"[-+]?(0b[0-1_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_:]*)")
# libyaml when PyYAML has it (the wheels do), else the same rules in Python.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(ValueError):
    """Why a file cannot be read, as one line for a person (no traceback)."""


def read_bytes(stream: IO[bytes]) -> bytes:
    """At most ``MAX_BYTES`` of a stream (a file, stdin, /dev/zero)."""
    data = stream.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise InputError(
            f"larger than {MAX_BYTES // (1024 * 1024)} MiB: split it (no LiveStream "
            "manifest is nearly that large)"
        )
    return data


def printable(text: str, limit: int = 120) -> str:
    """A file's text made safe for a terminal: shortened, unprintable characters escaped."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in shown)


def _where(event: yaml.Event) -> str:
    mark = event.start_mark
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


class _Budget:
    """What a file's events add up to: depth, and nodes with every alias expanded."""

    def __init__(self) -> None:
        self.depth = 0
        self.expanded = 0  # nodes so far, each alias counted as the whole node it repeats
        self.open: list[tuple[str | None, int]] = []  # open collections: anchor, nodes before
        self.sizes: dict[str, int | None] = {}  # anchor -> nodes it stands for (None: open)
        self.digits = sys.get_int_max_str_digits() or None
        self.aliased = False

    def take(self, event: yaml.Event) -> None:
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.DocumentStartEvent):
            self.sizes.clear()  # anchors belong to one document
        elif isinstance(event, yaml.AliasEvent):
            self._alias(str(anchor), event)
        elif isinstance(event, yaml.ScalarEvent):
            self._anchor(anchor, event, 1)
            self._number(event)
        elif isinstance(event, yaml.CollectionStartEvent):
            self._anchor(anchor, event, None)
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise InputError(
                    f"nests more than {MAX_DEPTH} levels deep{_where(event)}: no manifest "
                    "does; check the file"
                )
            self.open.append((anchor, self.expanded - 1))
        elif isinstance(event, yaml.CollectionEndEvent):
            self.depth -= 1
            opened, before = self.open.pop()
            if opened is not None:
                self.sizes[opened] = self.expanded - before
        if self.expanded > MAX_NODES and self.aliased:
            raise InputError(
                f"has more than {MAX_NODES} nodes once its aliases are expanded"
                f"{_where(event)} (an alias bomb?): write the values out, or use fewer aliases"
            )
        if self.expanded > MAX_NODES:
            raise InputError(f"has more than {MAX_NODES} nodes{_where(event)}: split it")

    def _anchor(self, anchor: str | None, event: yaml.Event, size: int | None) -> None:
        self.expanded += 1
        if anchor is None:
            return
        if anchor in self.sizes:
            raise InputError(f"defines the anchor &{anchor} twice{_where(event)}: rename one")
        self.sizes[anchor] = size

    def _alias(self, anchor: str, event: yaml.Event) -> None:
        size = self.sizes.get(anchor, 0)
        if size is None:
            raise InputError(
                f"has an alias (*{anchor}){_where(event)} inside the node it repeats, a "
                "structure without end: remove it"
            )
        self.expanded += size
        self.aliased = True

    def _number(self, event: yaml.ScalarEvent) -> None:
        # Python refuses to read longer integers (a ValueError, from deep inside PyYAML).
        if (
            self.digits is not None
            and len(event.value) > self.digits
            and (not event.style or event.tag == "tag:yaml.org,2002:int")
            and _INTEGER.fullmatch(event.value)
        ):
            raise InputError(
                f"has a number of {len(event.value)} digits{_where(event)}, more than "
                f"{self.digits}: quote it if it is text"
            )


def load_all(data: bytes) -> list[Any]:
    """Every document of a YAML file, or an :class:`InputError` saying why not."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not UTF-8 text (byte {exc.start + 1} is 0x{data[exc.start]:02x}): save it as UTF-8"
        ) from None
    try:
        budget = _Budget()
        for event in yaml.parse(text, Loader=_LOADER):
            budget.take(event)
        return list(yaml.load_all(text, Loader=_LOADER))
    except InputError:
        raise
    except yaml.reader.ReaderError as exc:
        raise InputError(
            f"not valid YAML: character {exc.position + 1} (#x{exc.character:04x}) may not "
            f"appear in it ({exc.reason}): remove it"
            if isinstance(exc.character, int)
            else f"not valid YAML: {exc.reason}"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise InputError(f"not valid YAML{where}: {printable(str(problem))}") from None
    except Exception as exc:  # PyYAML's constructors raise what they raise
        # A value PyYAML matched but cannot build: the date 2024-13-01 (ValueError), an
        # empty !!int (IndexError), and so on.
        raise InputError(
            f"has a value that cannot be read ({printable(str(exc))}): quote it if it is text"
        ) from None


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 (the override's signature)
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=100)


def dump_all(objs: Iterable[Any]) -> str:
    return yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, width=100)
