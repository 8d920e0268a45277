"""What destination hosts resolve to: the system resolver, bounded, with a short cache.

A name that passes every rule may still lead to a private address (DNS rebinding, or a
public name for an internal host): a review resolves every distinct host of the object
at once, within a time budget, and refuses the addresses :mod:`.addresses` refuses.

:class:`DnsResolver` holds its cache, its lock and its bound on lookups in flight; the
operator's runtime owns one for all reviews, `restream-operator validate` makes its own,
and each test makes a fresh one (no process-wide state to clear).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Lookup:
    """What one host name resolved to; ``error`` says why it did not."""

    addresses: tuple[str, ...] = ()
    error: str | None = None


# A resolver gets every distinct host of one review at once plus a time budget (seconds)
# and answers for each; a host it cannot answer for within the budget gets an error.
Resolver = Callable[[Sequence[str], float], Mapping[str, Lookup]]

RESOLVE_TIMEOUT = 1.0


def _getaddrinfo(host: str) -> Lookup:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return Lookup(error=reason or type(exc).__name__)
    # A link-local IPv6 answer carries its zone ("fe80::1%eth0"): the address is what counts.
    addresses = sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    return Lookup(addresses=tuple(addresses)) if addresses else Lookup(error="no address")


class DnsResolver:
    """The system resolver, every host at once, within a time budget in total.

    getaddrinfo cannot be cancelled, so each lookup runs in a daemon thread that is
    abandoned (not waited for) when the budget is spent: a slow DNS server delays an
    admission by the budget at most, and never keeps the process from exiting.
    """

    def __init__(
        self, *, slots: int = 64, cache_seconds: float = 30.0, cache_max: int = 1024
    ) -> None:
        # Lookups in flight across concurrent reviews: a burst of admission requests
        # must not become thousands of concurrent queries to the cluster's DNS. A lookup
        # still waiting for a slot at its review's deadline counts as timed out (a
        # warning, not a refusal).
        self._slots = threading.BoundedSemaphore(slots)
        # Answers are reused for a short while: the webhook sees the same hosts on every
        # apply, and each kopf patch of an object is an UPDATE review too. Failures are
        # not kept: the next review asks again.
        self._cache_seconds = cache_seconds
        self._cache_max = cache_max
        self._cache: dict[str, tuple[float, Lookup]] = {}
        self._cache_lock = threading.Lock()

    def __call__(self, hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
        deadline = time.monotonic() + timeout
        results: dict[str, Lookup] = {}
        lock = threading.Lock()
        now = time.monotonic()
        with self._cache_lock:
            for host in hosts:
                cached = self._cache.get(host)
                if cached is not None and cached[0] > now:
                    results[host] = cached[1]

        def work(host: str) -> None:
            if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
                return
            try:
                found = _getaddrinfo(host)
            finally:
                self._slots.release()
            with lock:
                results[host] = found
            if found.addresses:
                self._remember(host, found)

        threads = [
            threading.Thread(target=work, args=(h,), daemon=True, name=f"admission-dns-{h[:40]}")
            for h in dict.fromkeys(hosts)
            if h not in results
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with lock:
            return {
                h: results.get(h, Lookup(error=f"no answer within {timeout:g} s")) for h in hosts
            }

    def _remember(self, host: str, found: Lookup) -> None:
        with self._cache_lock:
            if len(self._cache) >= self._cache_max:
                self._cache.clear()
            self._cache[host] = (time.monotonic() + self._cache_seconds, found)


def static_resolver(table: Mapping[str, Sequence[str] | None]) -> Resolver:
    """A resolver from a table (host -> addresses; None: times out), for tests and tools."""

    def resolve(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
        out: dict[str, Lookup] = {}
        for host in hosts:
            if host not in table:
                out[host] = Lookup(error="Name or service not known")
            elif table[host] is None:
                out[host] = Lookup(error=f"no answer within {timeout:g} s")
            else:
                out[host] = Lookup(addresses=tuple(table[host] or ()))
        return out

    return resolve
