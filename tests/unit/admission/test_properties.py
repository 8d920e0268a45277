"""Properties of admission over random input (hypothesis).

* review never raises (nor hides a crash behind its catch-all), whatever the shape;
* no accepted name, serverUrl or key holds a control or invisible character;
* what admission accepts, the CRD's own shape rule accepts too, and the operator renders
  safely: the nginx configuration holds no user input at all, and the relay's argv
  carries the serverUrl and the name as single, unchanged elements.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
import socket
import unicodedata
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from restream_operator import admission, crd, models
from restream_operator.admission import Lookup
from restream_operator.admission.review import without_nulls
from restream_operator.render import owner_from_object, render_children
from restream_operator.render.ingest import CONFIG_FILE
from restream_operator.render.nginx import NginxParams, nginx_conf
from restream_operator.settings import Settings

EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SETTINGS = Settings(max_restreams=8)
INVISIBLE = {"Cc", "Cf", "Cs", "Zl", "Zp"}
NGINX = {nginx_conf(NginxParams(hls=False)), nginx_conf(NginxParams(hls=True))}


def everything_public(hosts: Sequence[str], timeout: float) -> dict[str, Lookup]:
    # Every name resolves, to a public address: what is accepted then depends on the
    # rules alone, and much random input is accepted.
    return {h: Lookup(("93.184.216.34",)) for h in hosts}


def _cel_shape() -> re.Pattern[str]:
    """The CRD's serverUrl shape rule, as a Python regex (its syntax is common to both)."""
    schema = crd.custom_resource_definition()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    url = schema["properties"]["spec"]["properties"]["restreams"]["items"]["properties"][
        "serverUrl"
    ]
    rule = next(r["rule"] for r in url["x-kubernetes-validations"] if "6553[0-5]" in r["rule"])
    literal = rule.removeprefix("self.matches('").removesuffix("')")
    return re.compile(literal.replace("\\\\", "\\"))


CEL_SHAPE = _cel_shape()

# ---- strategies -----------------------------------------------------------------------

HOSTS = st.one_of(
    st.sampled_from(
        [
            "a.rtmp.youtube.com",
            "live.twitch.tv",
            "example.com",
            "b\u00fccher.example.com",
            "localhost",
            "127.1",
            "0x7f.1",
            "2130706433",
            "[::1]",
            "[::ffff:127.0.0.1]",
            "[2606:4700::1111]",
            "\uff11\uff12\uff17.\uff10.\uff10.\uff11",
            "l\u043ecalhost.com",
            "svc.cluster.local",
            "nginx",
            "user:pw@example.com",
            "a%2eb.com",
            "",
        ]
    ),
    st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True),
    st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2**32 - 1).map(lambda n: f"{n:#x}"),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.text(max_size=20),
)
PORTS = st.one_of(
    st.just(""),
    st.integers(-5, 70000).map(lambda p: f":{p}"),
    st.text(max_size=6).map(lambda t: ":" + t),
)
PATHS = st.one_of(
    st.just(""),
    st.from_regex(r"(/[A-Za-z0-9._~-]{1,8}){1,3}(\?[a-z]{1,8}=[A-Za-z0-9%]{0,8})?", fullmatch=True),
    st.text(max_size=30).map(lambda t: "/" + t),
)
URLS = st.one_of(
    st.builds(
        "{}://{}{}{}".format,
        st.sampled_from(["rtmp", "rtmps", "srt", "RTMP", "http", "file", ""]),
        HOSTS,
        PORTS,
        PATHS,
    ),
    st.text(max_size=60),
    st.binary(max_size=40),
    st.binary(max_size=40).map(lambda b: "rtmp://example.com/" + b.decode("latin-1")),
)
NAMES = st.one_of(
    st.text(max_size=70),
    st.sampled_from(
        ["Youtube", "youtube", "My Twitch", "\u00dcn\u00efc\u00f6d\u00e9 \U0001f3a5", "a$b"]
    ),
    st.binary(max_size=10),
    st.integers(),
)
PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
KEYS = st.one_of(
    st.text(max_size=600),
    st.text(alphabet=PRINTABLE, min_size=1, max_size=600),
    st.binary(max_size=20),
    st.integers(),
)
REFS = st.one_of(
    st.fixed_dictionaries({"name": st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True)}),
    st.fixed_dictionaries({"name": st.text(max_size=10), "key": st.text(max_size=10)}),
    st.text(max_size=5),
)


@st.composite
def restreams(draw: st.DrawFn) -> Any:
    entry: dict[str, Any] = {}
    if draw(st.integers(0, 20)):
        entry["name"] = draw(NAMES)
    if draw(st.integers(0, 20)):
        entry["serverUrl"] = draw(URLS)
    source = draw(st.sampled_from(["key", "ref", "ref", "both", "neither"]))
    if source in ("key", "both"):
        entry["streamKey"] = draw(KEYS)
    if source in ("ref", "both"):
        entry["streamKeySecretRef"] = draw(REFS)
    if draw(st.booleans()):
        entry["enabled"] = draw(st.one_of(st.booleans(), st.none(), st.text(max_size=3)))
    return (
        entry if draw(st.integers(0, 30)) else draw(st.one_of(st.none(), st.text(), st.integers()))
    )


JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=10),
        st.binary(max_size=5),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SPECS = st.fixed_dictionaries(
    {"restreams": st.lists(restreams(), max_size=4)},
    optional={
        "suspend": st.one_of(st.booleans(), JSON),
        "playback": st.one_of(st.fixed_dictionaries({"hls": st.booleans()}), JSON),
        "relay": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "reconnect": st.fixed_dictionaries(
                        {},
                        optional={
                            "minDelaySeconds": st.integers(-2, 400),
                            "maxDelaySeconds": st.integers(-2, 400),
                        },
                    )
                },
            ),
            JSON,
        ),
        "ingest": st.one_of(
            st.fixed_dictionaries(
                {}, optional={"serviceType": st.sampled_from(["ClusterIP", "NodePort", "x"])}
            ),
            JSON,
        ),
        "streamKeySecretRef": REFS,
    },
)


# Specs that are mostly valid, so that the properties about accepted specs see many.
VISIBLE_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"), blacklist_characters="$"
    ),
    min_size=1,
    max_size=64,
).map(lambda t: t.strip() or "x")
GOOD_URLS = st.builds(
    "{}://{}{}{}".format,
    st.sampled_from(["rtmp", "rtmps", "srt"]),
    st.one_of(
        # Names under real top-level domains: admission refuses the others.
        st.from_regex(
            r"[a-z0-9]{1,10}(\.[a-z0-9-]{0,8}[a-z0-9]){0,2}\.(com|net|tv|io|video|live|xn--p1ai)",
            fullmatch=True,
        ),
        st.sampled_from(["a.rtmp.youtube.com", "b\u00fccher.example.com", "[2606:4700::1111]"]),
    ),
    st.integers(1, 65535).map(lambda p: f":{p}"),
    st.from_regex(
        r"(/[-A-Za-z0-9._~:@!&()*+,=]{1,12}){0,3}(\?[a-z]{1,6}=([-A-Za-z0-9]|%[2-7][0-9A-E]){0,8})?",
        fullmatch=True,
    ),
)


def _restream(name: Any, url: Any, inline: bool, key: Any, enabled: bool | None) -> Any:
    entry = {"name": name, "serverUrl": url}
    entry |= {"streamKey": key} if inline else {"streamKeySecretRef": {"name": "keys", "key": "k"}}
    return entry if enabled is None else entry | {"enabled": enabled}


GOOD_RESTREAMS = st.builds(
    _restream,
    VISIBLE_TEXT,
    GOOD_URLS,
    st.booleans(),
    st.text(alphabet=PRINTABLE, min_size=1, max_size=512),
    st.one_of(st.none(), st.booleans()),
)
# Mostly valid destinations (repeated strategies weigh more), some with a random field.
PLAUSIBLE_RESTREAMS = st.one_of(
    *[GOOD_RESTREAMS] * 6,
    st.builds(
        _restream,
        NAMES,
        GOOD_URLS,
        st.booleans(),
        st.text(alphabet=PRINTABLE, min_size=1),
        st.none(),
    ),
    st.builds(
        _restream,
        VISIBLE_TEXT,
        URLS,
        st.booleans(),
        st.text(alphabet=PRINTABLE, min_size=1),
        st.none(),
    ),
    st.builds(_restream, VISIBLE_TEXT, GOOD_URLS, st.just(True), KEYS, st.none()),
)
PLAUSIBLE_SPECS = st.fixed_dictionaries(
    {
        "restreams": st.lists(
            PLAUSIBLE_RESTREAMS,
            max_size=4,
            unique_by=lambda r: unicodedata.normalize("NFKC", str(r["name"])).casefold(),
        )
    },
    optional={
        "playback": st.fixed_dictionaries({"hls": st.booleans()}),
        "suspend": st.booleans(),
        "relay": st.fixed_dictionaries(
            {"reconnect": st.fixed_dictionaries({"maxDelaySeconds": st.integers(1, 300)})}
        ),
    },
)
ANY_SPECS = st.one_of(PLAUSIBLE_SPECS, SPECS)


def livestream(spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": "launch", "namespace": "media"},
        "spec": spec,
    }


def _no_crash(result: admission.Review) -> None:
    # The catch-all turns a crash into a refusal: that must never be needed.
    assert not any("report this bug" in p.message for p in result.problems), result.problems


def _visible(text: str) -> bool:
    return not any(unicodedata.category(c) in INVISIBLE for c in text)


# ---- properties -----------------------------------------------------------------------


@EXAMPLES
@given(st.one_of(JSON, st.builds(livestream, JSON), st.builds(livestream, ANY_SPECS)))
def test_review_never_raises(obj: Any) -> None:
    _no_crash(admission.review(obj, SETTINGS, resolver=everything_public))


@EXAMPLES
@given(ANY_SPECS)
def test_accepted_values_hold_no_control_or_invisible_characters(spec: dict[str, Any]) -> None:
    result = admission.review(livestream(spec), SETTINGS, resolver=everything_public)
    _no_crash(result)
    if not result.allowed:
        return
    for entry in spec["restreams"]:
        name, url, key = entry["name"], entry["serverUrl"], entry.get("streamKey")
        assert _visible(name) and "$" not in name and name == name.strip()
        assert _visible(url) and not any(c.isspace() for c in url)
        assert CEL_SHAPE.search(url), f"admission accepted what the CRD refuses: {url!r}"
        authority = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
        assert url[len(url.split("://", 1)[0]) + 3 + len(authority) :].isascii()
        if key is not None:
            assert re.fullmatch(r"[!-~]{1,512}", key)


@EXAMPLES
@given(ANY_SPECS)
def test_accepted_specs_render_without_user_input_in_nginx_or_in_argv(spec: dict[str, Any]) -> None:
    obj = livestream(spec)
    result = admission.review(obj, SETTINGS, resolver=everything_public)
    if not result.allowed:
        return
    # As the API server would store it: nulls dropped, then the schema's defaults applied
    # (which are the models' defaults: the schema is generated from them).
    parsed = models.LiveStreamSpec.model_validate(without_nulls(copy.deepcopy(spec)))
    stored = livestream(parsed.model_dump(mode="json", by_alias=True, exclude_none=True))
    children = render_children(owner_from_object(stored), SETTINGS)

    config = next(o for o in children.applied if o["kind"] == "ConfigMap")
    assert config["data"][CONFIG_FILE] in NGINX  # a function of a boolean: no user input

    by_name = {r["name"]: r for r in stored["spec"]["restreams"]}
    relays = [
        o
        for o in children.applied
        if o["kind"] == "Deployment" and "relay" in o["metadata"]["name"]
    ]
    assert len(relays) == sum(1 for r in by_name.values() if r["enabled"])
    for deployment in relays:
        argv: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        name = next(a for a in argv if a.startswith("--name=")).removeprefix("--name=")
        url = argv[argv.index("--destination") + 1]
        assert url == by_name[name]["serverUrl"]
        # Every other element is what a placeholder destination gets: no element mixes
        # user input with anything else.
        scheme = url.split("://", 1)[0]
        placeholder = {"name": "P", "serverUrl": f"{scheme}://p.example:1/x", "streamKey": "k"}
        same_spec = {**stored["spec"], "restreams": [placeholder]}
        reference = render_children(owner_from_object(livestream(same_spec)), SETTINGS)
        ref_argv = next(
            o
            for o in reference.applied
            if o["kind"] == "Deployment" and "relay" in o["metadata"]["name"]
        )["spec"]["template"]["spec"]["containers"][0]["args"]
        assert len(argv) == len(ref_argv)
        for mine, theirs, i in zip(argv, ref_argv, range(len(argv)), strict=True):
            if (i - 1 >= 0 and argv[i - 1] == "--destination") or mine.startswith("--name="):
                continue
            assert mine == theirs
        key = by_name[name].get("streamKey")
        if key and len(key) >= 12:
            assert key not in json.dumps(deployment)


@EXAMPLES
@given(st.text(alphabet="0123456789abcdefxX.", max_size=24))
def test_inet_aton_agrees_with_the_c_library(text: str) -> None:
    try:
        expected: int | None = int.from_bytes(socket.inet_aton(text), "big")
    except OSError:
        expected = None
    assert admission.inet_aton(text) == expected


@EXAMPLES
@given(st.integers(0, 2**32 - 1), st.sampled_from(["dotted", "{:d}", "{:#x}", "{:#o}"]))
def test_no_spelling_of_a_private_ipv4_address_passes(number: int, form: str) -> None:
    address = ipaddress.IPv4Address(number)
    text = str(address) if form == "dotted" else form.format(number).replace("0o", "0")
    url = f"rtmp://{text}/live"
    result = admission.review(
        livestream({"restreams": [{"name": "X", "serverUrl": url, "streamKey": "k"}]}),
        SETTINGS,
        resolver=everything_public,
    )
    if form == "dotted":
        assert result.allowed == (admission.address_problem(address) is None)
    else:  # a bare number is never the canonical spelling: refused whatever it leads to
        assert not result.allowed
