"""Admission: every rule a LiveStream must pass, with a message that names the field and
the fix.

Two callers share :func:`review`, so the rules cannot diverge:

* the validating webhook (``webhook.py``) refuses the object when ``Review.problems``
  is not empty and returns ``Review.warnings`` as admission warnings;
* ``restream-operator validate -f FILE...`` reviews every LiveStream of the files, for
  CI pipelines that check manifests before they reach a cluster.

The CRD schema and its CEL rules (generated from models.py) refuse what they can express,
so that nothing invalid is stored while the webhook is down; the API server applies the
schema's defaults itself. These modules refuse all of that too, with better messages (a
cluster test holds every CEL rule and its Python twin to the same verdict), plus what a
schema cannot say: the operator's limit, look-alike names and hosts, and destinations
that are or resolve to private addresses (the relays run inside the cluster: an SSRF
guard).

Where things are: ``review`` (the entry point, the ratchet), ``rules`` (which rule
checks which model field), ``schema`` (the walk over the CRD schema), ``fields`` (names,
keys, quantities), ``urls`` (serverUrl), ``hosts`` (host names, IDNA), ``addresses``
(the SSRF address classes), ``resolver`` (DNS), ``secretrefs`` (referenced Secrets),
``access`` (whether the requester may read them),
``check`` (what a review collects), ``text`` (how values are quoted in messages).

No message ever contains a stream key.
"""

from __future__ import annotations

from .access import Requester, SecretAccess
from .addresses import address_problem, inet_aton
from .check import Problem
from .resolver import RESOLVE_TIMEOUT, DnsResolver, Lookup, Resolver, static_resolver
from .review import MAX_PROBLEMS, Review, review
from .secretrefs import SecretLookup, SecretRef, SecretState

__all__ = [
    "MAX_PROBLEMS",
    "RESOLVE_TIMEOUT",
    "DnsResolver",
    "Lookup",
    "Problem",
    "Requester",
    "Resolver",
    "Review",
    "SecretAccess",
    "SecretLookup",
    "SecretRef",
    "SecretState",
    "address_problem",
    "inet_aton",
    "review",
    "static_resolver",
]
