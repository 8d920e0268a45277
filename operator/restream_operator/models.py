"""The LiveStream API (restream.dev/v1alpha1): the single source of truth.

The CRD in ``crds/`` is generated from these models (``restream-operator crd``); the
operator parses ``spec`` with them; the admission rules check what a schema cannot.
Field names follow api.video where its docs define them (``restreams[].name``,
``serverUrl``, ``streamKey``, ``broadcasting``) so that an api.video ``restreams`` array
pastes into ``spec.restreams`` unchanged.

v1alpha1 only grows: kopf has no conversion webhooks, so a field, once served, stays.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from .agent.contract import SRT_DEFAULT_LATENCY_MS, TlsVerification

GROUP = "restream.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "LiveStream"
PLURAL = "livestreams"
SINGULAR = "livestream"
SHORT_NAMES = ["lvs"]
CATEGORIES = ["restream"]

# Hard ceilings the schema enforces; the operator's own limit (default 5) is tighter and
# enforced at admission, where the message can say how to raise it.
MAX_RESTREAMS_CEILING = 50
MAX_NAME_LENGTH = 64
MAX_KEY_LENGTH = 512
MAX_URL_LENGTH = 2048
MIN_RENDITION_HEIGHT = 96
MAX_RENDITION_HEIGHT = 2160

# Patterns that both the CRD's CEL rules and admission apply (admission with a message
# per case): written once here, as regular expressions RE2 and Python read alike.
SCHEMES = ("rtmp", "rtmps", "srt")
# A DNS subdomain (RFC 1123), as Kubernetes requires of a Secret's name.
DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
SECRET_KEY = r"[-._a-zA-Z0-9]+"
# A stream key's characters: printable ASCII, no space (a character-class body).
STREAM_KEY_CHARS = "!-~"
# Characters no serverUrl may hold, beyond whitespace and invisible characters: they
# could end a string or a statement, or start an expansion, in a configuration file, a
# shell or a container command (Kubernetes expands $(VAR) in command lines).
URL_FORBIDDEN_CHARS = "\"'`;{}\\$<>^|"
# After the host, a serverUrl is ASCII of these (RFC 3986 pchar and query, minus the
# delimiters above and '#', '[' and ']'): a character-class body.
URL_PATH_CHARS = "-A-Za-z0-9._~:/?@!&()*+,=%"
# The SRT options a serverUrl's query may set, of those ffmpeg's libsrt (5.1) reads from
# a URL: transport and latency tuning, and the key length and refresh of the encryption
# whose passphrase comes from a Secret. The rest are refused: mode and listen_timeout
# turn the relay around, passphrase is a secret, streamid is the relay's own (it sends
# the stream key as it), enforced_encryption=0 would send in the clear to a peer without
# the passphrase, transtype, messageapi and smoother change what is sent, and ipttl and
# iptos mark packets for the cluster's network. Every value is a number.
SRT_URL_OPTIONS = (
    "latency",
    "rcvlatency",
    "peerlatency",
    "tsbpddelay",
    "connect_timeout",
    "timeout",
    "linger",
    "maxbw",
    "inputbw",
    "oheadbw",
    "mss",
    "ffs",
    "payload_size",
    "pkt_size",
    "sndbuf",
    "rcvbuf",
    "lossmaxttl",
    "tlpktdrop",
    "nakreport",
    "minversion",
    "pbkeylen",
    "kmrefreshrate",
    "kmpreannounce",
)
# A value as strtol reads it (minversion is read in any base, e.g. 0x010300).
SRT_URL_VALUE = "-?[0-9]+|0x[0-9A-Fa-f]+"
# A rendition's name: a DNS label of its own (it names the encoder's objects and its
# stream on the ingest), e.g. 720p, 480p-low.
RENDITION_NAME = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
MAX_RENDITION_NAME_LENGTH = 20
MAX_RENDITIONS = 10
X264Preset = Literal[
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"
]
# Unicode categories no restream name may hold (controls, invisible format characters
# such as bidi overrides and zero-width characters, line and paragraph separators).
NAME_FORBIDDEN_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


def cel_string(text: str) -> str:
    """``text`` as a single-quoted CEL string literal (e.g. a regex for matches())."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _k8s(**extensions: Any) -> dict[str, Any]:
    """Kubernetes schema extensions (x-kubernetes-*) carried into the generated CRD."""
    return {f"x-kubernetes-{k.replace('_', '-')}": v for k, v in extensions.items()}


def _cel(rule: str, message: str, field_path: str | None = None) -> dict[str, str]:
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


# The apiserver defaults a nested field only when its parent object exists: `default: {}`
# on the parents makes every schema default apply to a spec that leaves them out.
_OBJECT_DEFAULT: dict[str, Any] = {"default": {}}


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )


Quantity = Annotated[
    int | str,
    Field(json_schema_extra=_k8s(int_or_string=True)),
]


class ResourceRequirements(Model):
    """Compute resources of a container, as in a Pod spec."""

    limits: dict[str, Quantity] | None = None
    """Maximum compute resources, e.g. {cpu: 500m, memory: 128Mi}."""
    requests: dict[str, Quantity] | None = None
    """Minimum compute resources the scheduler reserves, e.g. {cpu: 50m, memory: 64Mi}."""


def _secret_name() -> Any:
    return Field(
        min_length=1,
        max_length=253,
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    f"self.matches({cel_string(f'^{DNS_SUBDOMAIN}$')})",
                    "name must be a Secret name: lowercase a-z, 0-9, '-' and '.'",
                )
            ]
        ),
    )


def _secret_key(default: str) -> Any:
    return Field(
        default=default,
        min_length=1,
        max_length=253,
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    f"self.matches({cel_string(f'^{SECRET_KEY}$')})",
                    "key must be a Secret key: a-z, A-Z, 0-9, '-', '_' and '.'",
                )
            ]
        ),
    )


class SecretKeySelector(Model):
    """A key of a Secret in the LiveStream's namespace."""

    name: str = _secret_name()
    """Name of the Secret, in the LiveStream's namespace."""
    key: str = _secret_key("streamKey")
    """Key within the Secret whose value is the stream key."""


_SCHEME = f"({'|'.join(SCHEMES)})"
_NAME_FORBIDDEN = "[" + "".join(f"\\p{{{c}}}" for c in NAME_FORBIDDEN_CATEGORIES) + "$]"
# Escaped for a character class: '\\', ']' and '-' ('^' would be too, but is not first).
_URL_FORBIDDEN = (
    "[\\s\\p{Z}\\p{Cc}\\p{Cf}" + re.sub(r"([\\\]-])", r"\\\1", URL_FORBIDDEN_CHARS) + "]"
)
_PORT = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_URL_SHAPE = (
    f"^{_SCHEME}://(\\[[0-9A-Fa-f:.]+\\]|[^/?#@:\\[\\]%]+)(:{_PORT})?([/?][{URL_PATH_CHARS}]*)?$"
)
_SRT_OPTION = f"({'|'.join(SRT_URL_OPTIONS)})=({SRT_URL_VALUE})"
_SRT_QUERY = f"^srt://[^?]*(\\?{_SRT_OPTION}(&{_SRT_OPTION})*)?$"


class CASecretKeySelector(Model):
    """A key of a Secret in the LiveStream's namespace that holds CA certificates."""

    name: str = _secret_name()
    """Name of the Secret, in the LiveStream's namespace."""
    key: str = _secret_key("ca.crt")
    """Key within the Secret whose value is one or more PEM CA certificates (ca.crt is
    where cert-manager puts its issuer's CA)."""


class PassphraseSecretKeySelector(Model):
    """A key of a Secret in the LiveStream's namespace that holds an SRT passphrase."""

    name: str = _secret_name()
    """Name of the Secret, in the LiveStream's namespace."""
    key: str = _secret_key("passphrase")
    """Key within the Secret whose value is the passphrase (10 to 79 characters)."""


class DestinationTLS(Model):
    """How the relay checks an rtmps:// destination's certificate. Unless told otherwise
    it verifies it: the certificate must chain to a CA of the media image's CA bundle
    (Debian's ca-certificates) and be valid for the serverUrl's host name; otherwise the
    relay does not send the stream key, and the restream is Retrying (then Failed) with
    the reason in lastError."""

    model_config = ConfigDict(
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    "!has(self.caSecretRef) || !has(self.insecureSkipVerify) || "
                    "!self.insecureSkipVerify",
                    "set caSecretRef or insecureSkipVerify: true, not both "
                    "(without verification, the CA would not be used)",
                )
            ]
        )
    )

    ca_secret_ref: CASecretKeySelector | None = None
    """Secret key holding the PEM certificate(s) of a private CA: the destination's
    certificate must chain to one of them instead of the media image's bundle. The host
    name is still checked. The relay pod mounts only this key, read-only."""
    insecure_skip_verify: bool = False
    """Do not verify the destination's certificate or host name at all. Anyone on the
    network path can then impersonate the destination and collect the stream key;
    admission warns, and status.restreams[].tls shows InsecureSkipVerify. Prefer
    caSecretRef for a private CA."""


class SRTOptions(Model):
    """Settings of an srt:// destination that must not be in its URL."""

    passphrase_secret_ref: PassphraseSecretKeySelector | None = None
    """Secret key holding the passphrase the destination expects (SRT's AES encryption;
    10 to 79 characters). It reaches the relay through its environment and ffmpeg
    through a pipe: never a URL, a command line, a log line or the status."""


class Restream(Model):
    """One destination the ingested stream is relayed to, live.

    Same fields as an api.video restream, plus a Secret reference and an on/off switch.
    """

    model_config = ConfigDict(
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    "has(self.streamKey) != has(self.streamKeySecretRef)",
                    "set exactly one of streamKey or streamKeySecretRef "
                    "(prefer streamKeySecretRef: keys belong in Secrets)",
                ),
                # On the object, not the field: a field rule's error echoes the value,
                # and this one is a secret.
                _cel(
                    "!has(self.streamKey) || "
                    f"self.streamKey.matches({cel_string(f'^[{STREAM_KEY_CHARS}]+$')})",
                    "streamKey must be printable ASCII without spaces (a copy-paste error?)",
                    ".streamKey",
                ),
                _cel(
                    "!has(self.tls) || self.serverUrl.startsWith('rtmps://')",
                    "tls applies to rtmps:// destinations only: use an rtmps:// serverUrl, "
                    "or remove tls",
                    ".tls",
                ),
                _cel(
                    "!has(self.srt) || self.serverUrl.startsWith('srt://')",
                    "srt applies to srt:// destinations only: use an srt:// serverUrl, "
                    "or remove srt",
                    ".srt",
                ),
            ]
        )
    )

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        json_schema_extra=_k8s(
            validations=[
                # Also invisible format characters (bidi overrides, zero-width) and line
                # separators, which make names look alike; '$' because Kubernetes expands
                # $(VAR) in the relay's command line, which carries the name.
                _cel(
                    f"!self.matches({cel_string(_NAME_FORBIDDEN)})",
                    "name must not contain control characters, invisible formatting "
                    "characters (such as bidi overrides), line separators or '$'",
                ),
                _cel(
                    r"!self.matches('^[\\s\\p{Z}]|[\\s\\p{Z}]$')",
                    "name must not start or end with whitespace",
                ),
            ]
        ),
    )
    """Free-text name of the destination, as in api.video (e.g. Youtube, My Twitch).
    Unique within the LiveStream, ignoring case."""
    server_url: str = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        # Not a docstring: the list of SRT options is written once, above.
        description="RTMP, RTMPS or SRT URL of the destination's ingest server, without the "
        "stream key (e.g. rtmp://a.rtmp.youtube.com/live2) and without credentials (no "
        "user:password@). An srt:// URL may set only these options in its query, each to a "
        f"number: {', '.join(SRT_URL_OPTIONS)} (the relay sends the stream key as the "
        "streamid, and a passphrase comes from restreams[].srt.passphraseSecretRef).",
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    f"self.matches({cel_string(f'^{_SCHEME}://[^/?#]+')})",
                    "serverUrl must start with rtmp://, rtmps:// or srt:// followed by a host",
                ),
                _cel(
                    f"!self.matches({cel_string(_URL_FORBIDDEN)})",
                    "serverUrl must not contain whitespace, control or invisible characters, "
                    "quotes, backslashes, '$', ';', '{', '}', '<', '>', '^' or '|'",
                ),
                # The shape admission checks, so that the webhook being down lets no
                # userinfo, fragment, bad port or non-URL character in.
                _cel(
                    f"self.matches({cel_string(_URL_SHAPE)})",
                    "serverUrl must be scheme://host[:port][/path][?query]: a port from 1 to "
                    "65535, IPv6 hosts in [brackets], no user:password@, no '%' in the host, "
                    "no #fragment, and only ASCII URL characters after the host",
                ),
                _cel(
                    r"!self.startsWith('srt://') || "
                    r"self.matches('^srt://(\\[[^\\]]*\\]|[^/?#:]*):[0-9]')",
                    "an srt:// serverUrl needs a port: srt://HOST:PORT",
                ),
                # No option that changes the relay's direction or carries a secret.
                _cel(
                    f"!self.startsWith('srt://') || self.matches({cel_string(_SRT_QUERY)})",
                    "an srt:// serverUrl may only set these options, each to a number: "
                    + ", ".join(SRT_URL_OPTIONS)
                    + " (a passphrase goes in restreams[].srt.passphraseSecretRef; mode and "
                    "streamid are the relay's own)",
                ),
            ]
        ),
    )

    stream_key: str | None = Field(default=None, min_length=1, max_length=MAX_KEY_LENGTH)
    """The destination's stream key, inline (api.video compatibility). Accepted with a
    warning: the operator moves it into a Secret of its own and never echoes it. Prefer
    streamKeySecretRef."""
    stream_key_secret_ref: SecretKeySelector | None = None
    """Secret key holding the destination's stream key."""
    enabled: bool = True
    """Relay to this destination. false keeps the entry but stops its relay."""
    tls: DestinationTLS | None = None
    """rtmps:// only: how the destination's certificate is verified (by default against
    the media image's CA bundle, host name included)."""
    srt: SRTOptions | None = None
    """srt:// only: the destination's passphrase, from a Secret."""
    rendition: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_RENDITION_NAME_LENGTH,
        pattern=f"^{RENDITION_NAME}$",
    )
    """Name of one of spec.renditions: this destination receives that profile's encode
    (made once, however many destinations use it) instead of the stream as the encoder
    publishes it. Unset: the source as published, untouched (-c copy)."""


class RenditionVideo(Model):
    """The H.264 video of a rendition (libx264). The source is scaled to ``height``
    (width follows the source's aspect ratio, rounded to an even number), converted to
    ``fps``, and encoded with a keyframe exactly every ``keyframeIntervalSeconds``."""

    model_config = ConfigDict(
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    "!has(self.maxBitrateKbps) || self.maxBitrateKbps >= self.bitrateKbps",
                    "maxBitrateKbps must be at least bitrateKbps",
                    ".maxBitrateKbps",
                ),
            ]
        )
    )

    height: int = Field(
        ge=MIN_RENDITION_HEIGHT,
        le=MAX_RENDITION_HEIGHT,
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    "self % 2 == 0",
                    "height must be even (H.264 4:2:0 needs even dimensions): e.g. 1080, "
                    "720, 480 or 360",
                )
            ]
        ),
    )
    """Output height in pixels, even (e.g. 1080, 720, 480, 360). Width follows from the
    source's aspect ratio (a 16:9 source at 480 gives 854x480)."""
    fps: int = Field(default=30, ge=1, le=60)
    """Output frame rate, frames per second (frames are dropped or repeated to reach it)."""
    bitrate_kbps: int = Field(ge=100, le=50_000)
    """Target video bitrate, kbit/s (e.g. 3000 for 720p30, 1200 for 480p30, 800 for
    360p30)."""
    max_bitrate_kbps: int | None = Field(default=None, ge=100, le=60_000)
    """Peak video bitrate, kbit/s, enforced with a VBV buffer of one second. Unset: equal
    to bitrateKbps, i.e. constant-bitrate-like output, as Twitch and Facebook ask."""
    keyframe_interval_seconds: int = Field(default=2, ge=1, le=10)
    """Seconds between keyframes, exact (no scene-cut keyframes in between). Platforms
    want 2 (YouTube and Facebook refuse over 4)."""
    preset: X264Preset = "veryfast"
    """x264 preset: slower presets give better pictures for the same bitrate at more CPU.
    veryfast is what the default CPU requests are measured for."""
    profile: Literal["baseline", "main", "high"] = "high"
    """H.264 profile. high suits every platform; baseline only very old players."""


class RenditionAudio(Model):
    """The AAC audio of a rendition."""

    bitrate_kbps: int = Field(default=128, ge=32, le=320)
    """Audio bitrate, kbit/s."""
    sample_rate: Literal[44100, 48000] = 48000
    """Sample rate, Hz: 48000 or 44100."""
    channels: int = Field(default=2, ge=1, le=2)
    """1 (mono) or 2 (stereo)."""


class Rendition(Model):
    """A transcode profile. It is encoded once, by one encoder pod, whatever the number
    of destinations that use it (restreams[].rendition); a rendition no enabled
    destination uses runs nothing."""

    name: str = Field(
        min_length=1, max_length=MAX_RENDITION_NAME_LENGTH, pattern=f"^{RENDITION_NAME}$"
    )
    """Name of the rendition, as restreams[].rendition refers to it: lowercase letters,
    digits and '-' (e.g. 720p, 480p-low)."""
    video: RenditionVideo
    """The video encode (H.264)."""
    audio: RenditionAudio = Field(default_factory=RenditionAudio, json_schema_extra=_OBJECT_DEFAULT)
    """The audio encode (AAC)."""
    resources: ResourceRequirements | None = None
    """Resources of the encoder container. Unset: CPU requests measured for the profile's
    height, frame rate and preset (see the README's Renditions section), 256Mi of memory
    requested and 1Gi as a limit."""


class ReconnectSpec(Model):
    """How a relay retries after its destination or the ingest goes away. Unset fields
    take the operator's defaults (1 s and 10 s unless the operator is configured
    otherwise)."""

    model_config = ConfigDict(
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    "!has(self.minDelaySeconds) || !has(self.maxDelaySeconds) || "
                    "self.minDelaySeconds <= self.maxDelaySeconds",
                    "minDelaySeconds must not exceed maxDelaySeconds",
                )
            ]
        )
    )

    min_delay_seconds: int | None = Field(default=None, ge=0, le=300)
    """Delay before the first retry, in seconds; doubles on each failure."""
    max_delay_seconds: int | None = Field(default=None, ge=1, le=300)
    """Upper bound of the retry delay, in seconds. Relays retry forever while the
    ingest is live."""


class TLSSecretReference(Model):
    """A Secret of type kubernetes.io/tls in the LiveStream's namespace."""

    name: str = _secret_name()
    """Name of the Secret: its tls.crt (the certificate, then its chain) and tls.key (the
    private key), in PEM, as cert-manager's Certificate writes them."""


class IngestTLS(Model):
    """RTMPS: the ingest terminates TLS for encoders on its own port (1936)."""

    secret_ref: TLSSecretReference
    """The kubernetes.io/tls Secret holding the ingest's certificate and key (e.g. a
    cert-manager Certificate's secretName). Renewals are picked up while live: the ingest
    reloads its TLS terminator when the mounted files change, and a publishing encoder
    stays connected."""


class IngestSRT(Model):
    """SRT for encoders: a listener on its own UDP port (9000), whose passphrase is the
    stream key, so only an encoder that holds the key connects, and the stream is
    encrypted (AES) on the way."""

    latency_ms: int = Field(default=SRT_DEFAULT_LATENCY_MS, ge=20, le=8000)
    """How long the ingest holds received packets to recover lost ones by retransmission
    (SRT's receiver latency), in milliseconds. About 4 times the encoder's round-trip
    time; more for a lossy link. The larger of this and the encoder's latency applies."""


EncoderProtocol = Literal["RTMP", "RTMPS", "SRT"]
_PROTOCOL_ITEM = Annotated[EncoderProtocol, Field(description="RTMP, RTMPS or SRT")]


class IngestSpec(Model):
    """The ingest an encoder publishes to: RTMP, RTMPS when tls is set, SRT when srt is
    set (protocols can leave some of them out)."""

    model_config = ConfigDict(
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    "!has(self.protocols) || self.protocols.exists(p, p == 'RTMP' || "
                    "(p == 'RTMPS' && has(self.tls)) || (p == 'SRT' && has(self.srt)))",
                    "protocols must keep one way in for encoders: RTMP, RTMPS with tls "
                    "set, or SRT with srt set",
                    ".protocols",
                )
            ]
        )
    )

    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    """Type of the ingest Service. Use LoadBalancer or NodePort for encoders outside
    the cluster."""
    service_annotations: dict[str, str] | None = None
    """Annotations for the ingest Service (e.g. for a cloud load balancer)."""
    resources: ResourceRequirements | None = None
    """Resources of the ingest container (nginx-rtmp and its agent)."""
    tls: IngestTLS | None = None
    """RTMPS for encoders on port 1936 (TCP), with the certificate from a Secret. Plain
    RTMP on 1935 stays available beside it unless protocols leaves it out."""
    srt: IngestSRT | None = None
    """SRT for encoders on port 9000 (UDP), with the stream key as the passphrase (so
    the stream key must be 10 to 79 characters long, as SRT requires of a passphrase;
    the generated one is). {} turns it on with the default latency. One encoder publishes
    at a time, whichever the protocol."""
    protocols: list[_PROTOCOL_ITEM] | None = Field(
        default=None, min_length=1, max_length=3, json_schema_extra=_k8s(list_type="set")
    )
    """The protocols encoders may publish with, of RTMP, RTMPS (served when tls is set)
    and SRT (served when srt is set). Unset: all of them. [RTMPS, SRT] turns plain RTMP
    off for encoders: its port leaves the Service, and a plain RTMP publish is refused
    (the relays still play the stream over RTMP inside the cluster)."""

    def serves(self, protocol: EncoderProtocol) -> bool:
        """Whether encoders may publish with ``protocol``."""
        if self.protocols is not None and protocol not in self.protocols:
            return False
        return {"RTMP": True, "RTMPS": self.tls is not None, "SRT": self.srt is not None}[protocol]


class RelaySpec(Model):
    """The relays, one pod per enabled destination."""

    resources: ResourceRequirements | None = None
    """Resources of each relay container (its agent and ffmpeg)."""
    reconnect: ReconnectSpec = Field(
        default_factory=ReconnectSpec, json_schema_extra=_OBJECT_DEFAULT
    )
    """Retry policy of every relay."""


class PlaybackSpec(Model):
    """Playback of the ingested stream, besides the restreams."""

    hls: bool = False
    """Serve the stream as HLS from the ingest (like api.video's assets.hls)."""


class LiveStreamSpec(Model):
    """What the LiveStream should be: an ingest and the destinations it feeds."""

    model_config = ConfigDict(
        json_schema_extra=_k8s(
            validations=[
                _cel(
                    "!has(self.restreams) || self.restreams.all(a, "
                    "self.restreams.exists_one(b, b.name.lowerAscii() == a.name.lowerAscii()))",
                    "restreams[].name must be unique, ignoring case",
                    ".restreams",
                ),
                _cel(
                    "!has(self.restreams) || self.restreams.all(r, !has(r.rendition) || "
                    "(has(self.renditions) && self.renditions.exists(d, d.name == r.rendition)))",
                    "restreams[].rendition must name one of spec.renditions",
                    ".restreams",
                ),
            ]
        )
    )

    stream_key_secret_ref: SecretKeySelector | None = None
    """Secret key holding the ingest's stream key, which encoders publish with. When
    unset, the operator generates a Secret named <livestream>-stream-key."""
    ingest: IngestSpec = Field(default_factory=IngestSpec, json_schema_extra=_OBJECT_DEFAULT)
    """The RTMP ingest."""
    relay: RelaySpec = Field(default_factory=RelaySpec, json_schema_extra=_OBJECT_DEFAULT)
    """Settings shared by every relay."""
    restreams: list[Restream] = Field(
        default_factory=list,
        max_length=MAX_RESTREAMS_CEILING,
        json_schema_extra=_k8s(list_type="map", list_map_keys=["name"]),
    )
    """Destinations the stream is relayed to, keyed by name (api.video's restreams)."""
    renditions: list[Rendition] = Field(
        default_factory=list,
        max_length=MAX_RENDITIONS,
        json_schema_extra=_k8s(list_type="map", list_map_keys=["name"]),
    )
    """Transcode profiles (H.264 + AAC) that destinations may receive instead of the
    source (restreams[].rendition). Each one in use is encoded once, by its own encoder
    pod, which plays the ingest and publishes the result back to it."""
    suspend: bool = False
    """Stop every relay (scaled to zero) while keeping the ingest and the
    configuration."""
    playback: PlaybackSpec = Field(default_factory=PlaybackSpec, json_schema_extra=_OBJECT_DEFAULT)
    """Playback options of the ingested stream."""


# ---- status --------------------------------------------------------------------------


class RestreamState(StrEnum):
    """States of a restream: what its relay agent reports (Idle, Connecting, Live,
    Retrying, Failed), or the operator's word for a relay that is off (Disabled), whose
    pod is not ready (Pending), or whose agent does not answer (Unknown)."""

    DISABLED = "Disabled"
    PENDING = "Pending"
    IDLE = "Idle"
    CONNECTING = "Connecting"
    LIVE = "Live"
    RETRYING = "Retrying"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(Model):
    """A condition in the metav1.Condition shape."""

    type: str = Field(max_length=316)
    """Type of the condition: Ready, IngestReady, Broadcasting or RestreamsReady."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(max_length=1024)
    """One CamelCase word saying why the condition is what it is."""
    message: str = Field(default="", max_length=32768)
    """A sentence for people."""
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    """When status last changed (not when the condition was last checked)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The .metadata.generation the condition was computed from."""


class PlatformWarning(Model):
    """A rule of the destination's platform that the stream it receives breaks."""

    rule: str
    """KeyframeInterval, VideoCodec, AudioCodec, VideoBitrate or AudioBitrate."""
    message: str
    """The platform's limit, what the encoder sends, and what to change."""
    source: str
    """The platform's page that states the rule."""


class RestreamStatus(Model):
    """What one destination's relay is doing."""

    name: str
    """The restream's name, as in spec.restreams[].name."""
    state: RestreamState
    """Disabled, Pending (relay pod not ready), Idle (nothing to relay), Connecting, Live,
    Retrying (backing off after an error), Failed (a lasting error; still retried) or
    Unknown (the relay runs but its agent did not answer)."""
    since: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    """When the restream entered its current state."""
    restarts: int = 0
    """How many times the relay restarted ffmpeg."""
    last_error: str | None = None
    """The last error the relay saw, with any stream key redacted."""
    bitrate_kbps: int | None = None
    """Outgoing bitrate, kbit/s, while Live."""
    warnings: list[PlatformWarning] | None = None
    """While a broadcast is on: the rules of the destination's platform (YouTube, Twitch,
    Facebook, known by the server's host name) that the stream it receives breaks, as
    measured by the ingest. The platform may refuse, cut or degrade such a stream."""
    tls: TlsVerification | None = None
    """rtmps:// only: how the relay checks the destination's certificate: Verify (against
    the media image's CA bundle), VerifyWithCASecret (against tls.caSecretRef) or
    InsecureSkipVerify (not at all: tls.insecureSkipVerify)."""


class RenditionStatus(Model):
    """What one rendition's encoder is doing."""

    name: str
    """The rendition's name, as in spec.renditions[].name."""
    state: RestreamState
    """Idle (no destination uses it, or nothing to encode), Pending (encoder pod not
    ready), Connecting, Live (publishing its encode to the ingest), Retrying, Failed or
    Unknown (its agent did not answer)."""
    since: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    """When the rendition entered its current state."""
    restarts: int = 0
    """How many times the encoder restarted ffmpeg."""
    last_error: str | None = None
    """The last error the encoder saw."""
    output_bitrate_kbps: int | None = None
    """Bitrate of the encode, kbit/s, measured by the encoder while Live."""
    width: int | None = None
    """Width of the encode in pixels, measured from its H.264 stream."""
    height: int | None = None
    """Height of the encode in pixels, measured from its H.264 stream."""
    keyframe_interval_seconds: float | None = None
    """Seconds between the encode's keyframes, measured."""
    restreams: list[Annotated[str, Field(description="a restream's name")]] | None = None
    """The enabled restreams that receive this rendition."""


class SourceVideoStatus(Model):
    """The video the encoder sends, measured from the stream itself (not from the
    metadata the encoder announces). Each figure is absent until measured."""

    width: int | None = None
    """Width in pixels, from the H.264 sequence parameter set (cropped)."""
    height: int | None = None
    """Height in pixels, from the H.264 sequence parameter set (cropped)."""
    frame_rate: float | None = None
    """Frames per second of media time, over the last 10 s."""
    keyframe_interval_seconds: float | None = None
    """Seconds between keyframes: the median of the last few intervals. Platforms want
    at most 2 to 4."""
    bitrate_kbps: int | None = None
    """Video bitrate, kbit/s, over the last 10 s of media time."""


class SourceAudioStatus(Model):
    """The audio the encoder sends, measured from the stream itself."""

    sample_rate_hz: int | None = None
    """Sample rate, Hz (from AAC's AudioSpecificConfig, else the FLV tag header)."""
    channels: int | None = None
    """Number of channels (2 for stereo)."""
    bitrate_kbps: int | None = None
    """Audio bitrate, kbit/s, over the last 10 s of media time."""


class IngestStatus(Model):
    """Where encoders publish."""

    rtmp_url: str | None = None
    """In-cluster RTMP URL to publish to; append /<stream key>."""
    external_url: str | None = None
    """RTMP URL reachable from outside the cluster, when the Service has one."""
    rtmps_url: str | None = None
    """In-cluster RTMPS URL to publish to, when spec.ingest.tls is set; append /<stream
    key>. The certificate must be valid for the name encoders use."""
    external_rtmps_url: str | None = None
    """RTMPS URL reachable from outside the cluster, when the Service has one."""
    rtmps_error: str | None = None
    """Why the ingest does not serve RTMPS, while it does not (e.g. the TLS Secret does not
    exist yet, or its key does not match its certificate). RTMP serves meanwhile."""
    srt_url: str | None = None
    """In-cluster SRT URL to publish to, when spec.ingest.srt is set; the encoder's SRT
    passphrase is the stream key (OBS: srt://HOST:9000?passphrase=<stream key> as the
    server, no stream key)."""
    external_srt_url: str | None = None
    """SRT URL reachable from outside the cluster, when the Service has one."""
    srt_error: str | None = None
    """Why the ingest's SRT listener cannot run, when it cannot (e.g. a stream key SRT
    cannot take as a passphrase)."""
    client_protocol: str | None = None
    """How the encoder that is publishing reached the ingest: RTMP, RTMPS or SRT."""
    client_address: str | None = None
    """The IP address the publishing encoder connects from, as the ingest sees it (behind
    a load balancer that rewrites source addresses, the balancer's)."""
    stream_key_secret: str | None = None
    """Name of the Secret holding the stream key (key streamKey unless referenced)."""
    hls_url: str | None = None
    """In-cluster HLS playback URL, when spec.playback.hls is true."""
    video_codec: str | None = None
    """Video codec of the broadcast that is on, as the ingest saw it (H264, HEVC, AV1,
    VP9...). The Relayable condition says whether this release relays it."""
    audio_codec: str | None = None
    """Audio codec of the broadcast that is on, as the ingest saw it (AAC, MP3, Opus...)."""
    missing_tracks: list[Annotated[str, Field(description="video or audio")]] | None = None
    """Tracks (video, audio) the encoder announced but has not sent: the destinations lack
    them. The Relayable condition says so too (reason TrackMissing)."""
    bitrate_kbps: int | None = None
    """Incoming bitrate of the broadcast that is on, in kbit/s, as the ingest measures it;
    unset while nobody publishes. Changes under 10% are not written."""
    video: SourceVideoStatus | None = None
    """The video of the broadcast that is on, as measured by the ingest."""
    audio: SourceAudioStatus | None = None
    """The audio of the broadcast that is on, as measured by the ingest."""


class LiveStreamStatus(Model):
    """What the LiveStream is, as the operator last observed it."""

    observed_generation: int | None = None
    """The .metadata.generation this status reflects."""
    broadcasting: bool = False
    """An encoder is publishing to the ingest right now."""
    broadcast_started_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}
    )
    """When the current (or last) broadcast started."""
    broadcast_ended_at: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    """When the last broadcast ended; unset while broadcasting."""
    ingest: IngestStatus | None = None
    """Ingest endpoints."""
    live_restreams: str | None = None
    """Live restreams out of all restreams, e.g. 2/3 (for kubectl get)."""
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=_k8s(list_type="map", list_map_keys=["type"]),
    )
    """Ready, IngestReady, Broadcasting, RestreamsReady, Relayable (whether this release
    relays the codecs the encoder publishes, and why not), Reconciling, Stalled and
    UpdatePending."""
    restreams: list[RestreamStatus] = Field(
        default_factory=list,
        json_schema_extra=_k8s(list_type="map", list_map_keys=["name"]),
    )
    """One entry per restream in spec, in the same order."""
    renditions: list[RenditionStatus] = Field(
        default_factory=list,
        json_schema_extra=_k8s(list_type="map", list_map_keys=["name"]),
    )
    """One entry per rendition in spec, in the same order."""
