"""What the ingest agent needs to know from the nginx configuration it runs.

The operator renders the configuration (render/nginx.py); the agent reads the RTMP
port, the stat page, the working directory and the HLS paths back from it instead of
taking them as flags, so that the two can never disagree.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import contract


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] = field(default_factory=list)

    def find(self, *path: str) -> Iterator[Directive]:
        """Descendants reached by following block names in ``path``."""
        yield from _find(self.block, path)


def _find(block: list[Directive], path: tuple[str, ...]) -> Iterator[Directive]:
    head, rest = path[0], path[1:]
    for d in block:
        if d.name == head:
            if rest:
                yield from _find(d.block, rest)
            else:
                yield d


def _tokens(text: str) -> Iterator[str]:
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            yield c
            i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            yield text[i + 1 : j]
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};#":
                j += 1
            yield text[i:j]
            i = j


def parse(text: str) -> Directive:
    root = Directive("", [])
    stack = [root]
    words: list[str] = []
    for tok in _tokens(text):
        if tok == ";":
            if words:
                stack[-1].block.append(Directive(words[0], words[1:]))
            words = []
        elif tok == "{":
            d = Directive(words[0] if words else "", words[1:])
            stack[-1].block.append(d)
            stack.append(d)
            words = []
        elif tok == "}":
            if len(stack) == 1:
                raise ValueError("nginx config: unbalanced '}'")
            stack.pop()
            words = []
        else:
            words.append(tok)
    if len(stack) != 1:
        raise ValueError("nginx config: unclosed block")
    return root


def _host_port(listen: str, default_port: int) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep:
        host, port = "", listen
    host = host.strip("[]")
    if host in ("", "*", "0.0.0.0"):  # noqa: S104 - the wildcard is what we translate here
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port) if port.isdigit() else default_port


@dataclass(frozen=True)
class Layout:
    rtmp_host: str
    rtmp_port: int
    stat_url: str | None
    work_dir: str
    hls_paths: tuple[str, ...]
    local_pushes: tuple[str, ...] = ()  # "127.0.0.1:1935/hls": as on_play reports them

    @property
    def hls(self) -> bool:
        return bool(self.hls_paths)


def layout(text: str, default_work_dir: str = "/tmp/nginx") -> Layout:
    root = parse(text)
    listens = [d.args[0] for d in root.find("rtmp", "server", "listen") if d.args]
    rtmp_host, rtmp_port = _host_port(
        listens[0] if listens else str(contract.RTMP_PORT), contract.RTMP_PORT
    )
    stat_url = None
    for server in root.find("http", "server"):
        for location in server.find("location"):
            if any(True for _ in location.find("rtmp_stat")) and location.args:
                server_listens = [d.args[0] for d in server.find("listen") if d.args]
                if server_listens:
                    host, port = _host_port(server_listens[0], 80)
                    stat_url = f"http://{host}:{port}{location.args[-1]}"
    pid = [d.args[0] for d in root.find("pid") if d.args]
    work_dir = os.path.dirname(pid[0]) if pid else default_work_dir
    hls_paths: list[str] = []
    pushes: list[str] = []
    for app in root.find("rtmp", "server", "application"):
        if any(d.args[:1] == ["on"] for d in app.find("hls")):
            hls_paths += [d.args[0] for d in app.find("hls_path") if d.args]
        for push in app.find("push"):
            target = push.args[0].removeprefix("rtmp://") if push.args else ""
            if target.startswith("127.0.0.1:"):
                pushes.append(target)
    return Layout(
        rtmp_host,
        rtmp_port,
        stat_url,
        work_dir or default_work_dir,
        tuple(hls_paths),
        tuple(pushes),
    )
