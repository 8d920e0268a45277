"""A lossy network path for the media tests: a network namespace of the test's own,
joined to this one by a veth pair, dropping a share of the packets each way.

The loss is iptables' ``statistic`` match inside the namespace (OUTPUT towards the
ingest, INPUT back from it): ``tc qdisc ... netem`` would do it too, but the kernels of
this project's machines have no netem ("Specified qdisc kind is unknown"). Addresses
are from 198.18.0.0/15, the range RFC 2544 sets aside for such test links; everything
is removed on exit (deleting the namespace deletes both ends of the pair and the rules).
Needs root, ip (iproute2) and iptables.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Link:
    namespace: str
    host_ip: str  # this side's address: what a process in the namespace connects to
    peer_ip: str

    def run_in(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the namespace (file descriptors are inherited)."""
        return ["ip", "netns", "exec", self.namespace, *argv]


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=15)


@contextlib.contextmanager
def lossy_link(loss: float) -> Iterator[Link]:
    tag = secrets.token_hex(3)
    ns, host_if, peer_if = f"restream-loss-{tag}", f"rsl{tag}a", f"rsl{tag}b"
    subnet = f"198.18.{secrets.randbelow(256)}"
    link = Link(ns, f"{subnet}.1", f"{subnet}.2")
    _run("ip", "netns", "add", ns)
    try:
        _run("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _run("ip", "link", "set", peer_if, "netns", ns)
        _run("ip", "addr", "add", f"{link.host_ip}/30", "dev", host_if)
        _run("ip", "link", "set", host_if, "up")
        _run("ip", "-n", ns, "addr", "add", f"{link.peer_ip}/30", "dev", peer_if)
        _run("ip", "-n", ns, "link", "set", peer_if, "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        for chain, way in (("OUTPUT", "-o"), ("INPUT", "-i")):
            _run(
                *link.run_in(["iptables", "-A", chain, way, peer_if]),
                "-m", "statistic", "--mode", "random", "--probability", f"{loss:g}",
                "-j", "DROP",
            )  # fmt: skip
        yield link
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _run("ip", "netns", "del", ns)
        with contextlib.suppress(subprocess.SubprocessError):
            _run("ip", "link", "del", host_if)  # gone with the namespace, unless it failed
