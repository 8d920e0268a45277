"""What the admission webhook asks the API server, each answer remembered briefly:
whether referenced Secret keys exist (:class:`SecretCache`, for warnings) and whether the
requester may read them (:class:`AccessReviews`, for refusals).

50 concurrent reviews of the same manifest must not mean 100 API calls, and a review
must finish well within the webhook's 5 s: reads here time out after 1 s, not the
client's usual 30 s.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .admission import Requester, SecretRef, SecretState
from .kube import Kube, KubeError

READ_TIMEOUT_SECONDS = 1.0
_MAX_ENTRIES = 10_000


class SecretCache:
    """Whether referenced Secret keys exist, remembered briefly: a warning may be a few
    seconds stale, but 50 concurrent reviews must not mean 100 API calls."""

    TTL_SECONDS = 10.0

    def __init__(self, kube: Kube) -> None:
        self.kube = Kube(kube.api, timeout=READ_TIMEOUT_SECONDS)
        self._seen: dict[SecretRef, tuple[float, SecretState | None]] = {}

    def lookup(self, ref: SecretRef) -> SecretState | None:
        now = time.monotonic()
        hit = self._seen.get(ref)
        if hit is not None and now - hit[0] < self.TTL_SECONDS:
            return hit[1]
        found: SecretState | None
        try:
            secret = self.kube.get("Secret", ref.namespace, ref.name)
        except (KubeError, OSError):
            found = None  # unknown: no warning rather than a wrong one
        else:
            if secret is None:
                found = SecretState.MISSING
            elif ref.key in (secret.get("data") or {}):
                found = SecretState.PRESENT
            else:
                found = SecretState.NO_KEY
        if len(self._seen) > _MAX_ENTRIES:
            self._seen.clear()
        self._seen[ref] = (now, found)
        return found


class AccessReviews:
    """SubjectAccessReviews of "may this requester get this Secret", cached for a few
    seconds as the API server's own webhook authorizers cache theirs: a permission just
    revoked may still be honoured that long, never longer."""

    TTL_SECONDS = 5.0

    def __init__(self, kube: Kube) -> None:
        self.kube = Kube(kube.api, timeout=READ_TIMEOUT_SECONDS)
        self._seen: dict[tuple[Requester, str, str], tuple[float, bool]] = {}
        self._lock = threading.Lock()

    def allowed(self, requester: Requester, namespace: str, name: str) -> bool | None:
        now = time.monotonic()
        key = (requester, namespace, name)
        with self._lock:
            hit = self._seen.get(key)
        if hit is not None and now - hit[0] < self.TTL_SECONDS:
            return hit[1]
        try:
            allowed = self.kube.may_get_secret(
                user=requester.username,
                uid=requester.uid,
                groups=requester.groups,
                extra=dict(requester.extra),
                namespace=namespace,
                name=name,
            )
        except (KubeError, OSError):
            return None  # unknown: the review refuses and says to try again; not cached
        with self._lock:
            if len(self._seen) > _MAX_ENTRIES:
                self._seen.clear()
            self._seen[key] = (now, allowed)
        return allowed

    def of(self, requester: Requester) -> RequesterAccess:
        return RequesterAccess(self, requester)


@dataclass(frozen=True)
class RequesterAccess:
    """:class:`AccessReviews` bound to one requester: what ``admission.review`` asks."""

    reviews: AccessReviews
    requester: Requester

    def may_get(self, *, namespace: str, name: str) -> bool | None:
        return self.reviews.allowed(self.requester, namespace, name)
