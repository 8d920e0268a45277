"""The attack table of issue 12: every hole it lists that this tier can try, one row each,
with the attacker's input and the verdict the product now gives.

Rows proven in other tiers, for real, and the tests that prove them:

* Secret theft (a LiveStream naming a Secret its author cannot read): the webhook's
  SubjectAccessReview (admission/access.py), in the cluster tier with real RBAC:
  tests/cluster_tests/test_secret_access.py.
* RTMPS without verification: the media tier, against a sink with a self-signed
  certificate (tests/media/test_destination_security.py), as is an SRT passphrase
  from restreams[].srt.passphraseSecretRef reaching ffmpeg without argv.
* Child-name collisions across LiveStreams:
  tests/cluster_tests/test_operator.py::test_livestreams_whose_relay_names_read_alike_get_their_own_children
  and ::test_a_name_another_object_holds_is_a_name_conflict_and_that_object_is_left_alone.
* DNS rebinding (a name that resolves to a public address at admission and to a private
  one later): the NetworkPolicies, in the node tier's network-policy test with a real
  enforcer. Here: the names only the cluster's DNS search path resolves.
* Objects stored before the operator registered its webhook: the reconcile-time rules
  (reconcile.check_rules): tests/cluster_tests/test_operator.py::
  test_a_spec_stored_without_the_webhook_is_held_to_the_rules_at_reconcile.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from restream_operator import admission, cli, models
from restream_operator.agent import cli as agent_cli
from restream_operator.agent.contract import RelayState
from restream_operator.agent.httpserver import Request, Response
from restream_operator.agent.jsonlog import JsonFormatter
from restream_operator.agent.redact import MASK, Redactor
from restream_operator.agent.relay import Relay, RelayConfig
from restream_operator.render import Owner
from restream_operator.render.relay import relay_command
from restream_operator.settings import Settings
from tests.unit.admission.helpers import billion_laughs

# The webhook's DNS answers nothing: every verdict below stands without it.
NO_DNS = admission.static_resolver({})
URL_FIELD = 'spec.restreams[0] ("X").serverUrl'


@dataclass(frozen=True)
class Attack:
    hole: str  # the issue's words
    judge: str  # what judges it: admission, update, validate, agent argv, agent json
    given: Any  # the attacker's input
    verdict: str  # refused, warned, one error line, read as written, valid JSON
    phrase: str = ""  # what the message says (the fix), where there is one


def _livestream(url: str, **fields: Any) -> dict[str, Any]:
    entry = {"name": "X", "serverUrl": url, "streamKeySecretRef": {"name": "k"}, **fields}
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": "show", "namespace": "media"},
        "spec": {"restreams": [entry]},
    }


def _file(doc: dict[str, Any]) -> bytes:
    return yaml.safe_dump(doc).encode()


def _edited(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = _livestream("rtmps://a.rtmps.youtube.com/live2")
    *parents, last = path
    node = doc
    for name in parents:
        node = node[name]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


ATTACKS = [
    # ---- credentials and behaviour switches in URLs --------------------------------------
    Attack(
        "srt passphrase in the URL (shows in ps, pod args, /status, logs)",
        "admission",
        "srt://srt.example.com:9000?passphrase=correct-horse-battery",
        "refused",
        "reference it with restreams[].srt.passphraseSecretRef",
    ),
    Attack(
        "?mode=listener turns a relay into a listener",
        "admission",
        "srt://srt.example.com:9000?mode=listener",
        "refused",
        "would turn the relay into a listener",
    ),
    Attack(
        "mode=rendezvous turns a relay around",
        "admission",
        "srt://srt.example.com:9000?latency=120000&mode=rendezvous",
        "refused",
        "rendezvous peer",
    ),
    Attack(
        "streamid in the URL (the relay's identity, often the key)",
        "admission",
        "srt://srt.example.com:9000?streamid=%23!::r=live/k,m=publish",
        "refused",
        "put the key (or the whole streamid) in streamKeySecretRef",
    ),
    Attack(
        "credentials as userinfo",
        "admission",
        "rtmps://user:hunter2@a.rtmps.youtube.com/live2",
        "refused",
        "remove it and put the key in streamKeySecretRef",
    ),
    Attack(
        "a stream key in the URL's path",
        "admission",
        "rtmps://a.rtmps.youtube.com/live2/abcd-efgh-ijkl-mnop-qrst",
        "warned",
        "looks like a stream key: if it is one, move it into streamKeySecretRef",
    ),
    # ---- names that only resolve inside the cluster, with no DNS answer -------------------
    Attack(
        "kubernetes.default passes when the webhook's DNS cannot resolve it",
        "admission",
        "rtmp://kubernetes.default:443/x",
        "refused",
        "(default) is no public top-level domain",
    ),
    Attack(
        "a Service of another namespace, by name.namespace",
        "admission",
        "rtmp://metrics.kube-system:9090/x",
        "refused",
        "as a Service in namespace kube-system",
    ),
    Attack("a name ending in .svc", "admission", "rtmp://db.prod.svc/x", "refused", "(a Service)"),
    # ---- the smaller holes ---------------------------------------------------------------
    Attack(
        "a restream named -backup crash-loops its relay (argv parsing)",
        "agent argv",
        "-backup",
        "read as written",
    ),
    Attack("a restream named --help", "agent argv", "--help", "read as written"),
    Attack("a restream named --", "agent argv", "--", "read as written"),
    Attack(
        "a 1-character key makes /status and every log line invalid JSON",
        "agent json",
        '"',
        "valid JSON",
    ),
    Attack("a 1-character key (a digit)", "agent json", "1", "valid JSON"),
    Attack(
        "the update ratchet ignores the port: a stored private host moves to another port",
        "update",
        ("rtmp://10.0.0.5:1935/live", "rtmp://10.0.0.5:22/live"),
        "refused",
        "private address (RFC 1918)",
    ),
    Attack(
        "... or to another scheme",
        "update",
        ("rtmp://10.0.0.5:1935/live", "rtmps://10.0.0.5:1935/live"),
        "refused",
        "private address (RFC 1918)",
    ),
    Attack(
        "validate hangs and takes gigabytes on a YAML alias bomb",
        "validate",
        billion_laughs(),
        "one error line",
        "nodes once its aliases are expanded",
    ),
    Attack(
        "validate prints a traceback for deep nesting",
        "validate",
        b"spec: " + b"{a: " * 10_000 + b"1" + b"}" * 10_000,
        "one error line",
        "nests more than 256 levels deep",
    ),
    Attack(
        "validate prints a traceback for huge integers",
        "validate",
        b"spec: {x: 1" + b"0" * 10_000 + b"}",
        "one error line",
        "a number of 10001 digits",
    ),
    Attack(
        "192.0.0.0/24 is not refused",
        "admission",
        "rtmp://192.0.0.8/live",
        "refused",
        "(192.0.0.0/24, IETF protocol assignments)",
    ),
    Attack(
        "a manifest without a name passes validate silently",
        "validate",
        _file(_edited(("metadata", "name"), None)),
        "refused",
        "metadata.name: is missing: name the LiveStream",
    ),
    Attack(
        "a manifest with an invalid namespace passes validate silently",
        "validate",
        _file(_edited(("metadata", "namespace"), "Prod_EU")),
        "refused",
        'metadata.namespace: "Prod_EU" is not a namespace name',
    ),
    Attack(
        "kind: Livestream passes validate silently",
        "validate",
        _file(_edited(("kind",), "Livestream")),
        "refused",
        "did you mean LiveStream?",
    ),
    Attack(
        "a punycode homoglyph host is accepted while its Unicode spelling is refused",
        "admission",
        "rtmps://xn--yutube-i0e.com/live2",  # y\u03bfutube.com, with a Greek omicron
        "refused",
        "mixes look-alike scripts (GREEK, LATIN)",
    ),
]


def _admission(attack: Attack) -> None:
    result = admission.review(_livestream(attack.given), Settings(), resolver=NO_DNS)
    if attack.verdict == "refused":
        assert not result.allowed, result.warnings
        on_field = [p.message for p in result.problems if p.field == URL_FIELD]
        assert any(attack.phrase in m for m in on_field), result.problems
    else:
        assert result.allowed, result.message()
        assert any(attack.phrase in w.message for w in result.warnings), result.warnings


def _update(attack: Attack) -> None:
    old, new = attack.given
    stored = admission.review(_livestream(old), Settings(), resolver=NO_DNS)
    assert not stored.allowed  # the stored object already has the problem
    result = admission.review(_livestream(new), Settings(), old=_livestream(old), resolver=NO_DNS)
    assert not result.allowed and attack.phrase in result.message()


def _validate(attack: Attack) -> None:
    with tempfile.TemporaryDirectory(prefix="restream-attack-") as tmp:
        path = Path(tmp) / "attack.yaml"
        path.write_bytes(attack.given)
        out, err = io.StringIO(), io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["validate", "--no-resolve", "-f", str(path)])
        assert time.monotonic() - started < 5
    if attack.verdict == "one error line":
        assert code == 2 and out.getvalue() == ""
        assert err.getvalue().count("\n") == 1 and attack.phrase in err.getvalue()
    else:
        assert code == 1 and attack.phrase in out.getvalue(), out.getvalue()


def _agent_argv(attack: Attack) -> None:
    url = "rtmps://a.rtmps.youtube.com/live2"
    restream = models.Restream(
        name=attack.given, server_url=url, stream_key_secret_ref={"name": "k"}
    )
    owner = Owner("show", "media", "uid", models.LiveStreamSpec(restreams=[restream]))
    assert admission.review(
        _livestream(url, name=attack.given), Settings(), resolver=NO_DNS
    ).allowed
    args = agent_cli.parse_args(relay_command(owner, restream, Settings())[1:])
    assert (args.role, args.name, args.destination) == ("relay", attack.given, url)


def _agent_json(attack: Attack) -> None:
    key = attack.given
    redact = Redactor([key])
    config = RelayConfig(
        name="X",
        source="rtmp://ingest:1935/live/stream",
        ingest_status="http://ingest:8080/status",
        server_url="rtmp://h/live2",
        output_format="flv",
    )
    relay = Relay(config, key, "token", redact)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(redact))
    logger = logging.getLogger("restream.relay")
    logger.addHandler(handler)
    # setLevel, not the attribute: it clears the enabled-for cache an earlier test filled.
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        relay._enter(RelayState.RETRYING, f"rtmp://h/live2/{key}: Broken pipe")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)

    async def get_status() -> Response:
        return await relay.routes()[("GET", "/status")](
            Request("GET", "/status", {}, {}, b"", "::1")
        )

    response = asyncio.run(get_status())
    status = json.loads(response.body)
    assert status["state"] == "Retrying" and status["since"].endswith("Z")
    assert status["lastError"] == f"rtmp://h/live2/{MASK}: Broken pipe"
    line = json.loads(stream.getvalue())  # the log line the state change wrote
    assert line["state"] == "Retrying" and line["lastError"] == status["lastError"]


JUDGES = {
    "admission": _admission,
    "update": _update,
    "validate": _validate,
    "agent argv": _agent_argv,
    "agent json": _agent_json,
}


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.hole[:60] for a in ATTACKS])
def test_the_attack_gets_its_verdict(attack: Attack) -> None:
    JUDGES[attack.judge](attack)


def test_no_verdict_shows_a_secret() -> None:
    for attack in ATTACKS:
        if attack.judge != "admission":
            continue
        result = admission.review(_livestream(attack.given), Settings(), resolver=NO_DNS)
        text = result.message() + json.dumps([w.message for w in result.warnings])
        for secret in ("correct-horse-battery", "hunter2", "abcd-efgh-ijkl-mnop-qrst"):
            assert secret not in text
