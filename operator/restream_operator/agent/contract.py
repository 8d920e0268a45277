"""The contract between the operator and the agents in ingest and relay pods.

The operator renders pods that run ``restream-agent ingest|relay`` with the flags and
environment below, and reads back the ``GET /status`` documents defined here. Both
sides import this module, so they cannot drift apart.

Ingest pod: nginx-rtmp (RTMP on ``RTMP_PORT``, application ``live``) and its agent on
``AGENT_PORT``. Encoders publish to ``rtmp://<ingest>/live/<stream key>``; nginx asks the
agent (``on_publish``), which checks the key in constant time and renames the stream to
``STREAM_NAME``, so the key never becomes a stream name, a stat entry or a log line.
Relays play ``rtmp://<ingest>/live/STREAM_NAME?token=<play token>``; ``on_play`` checks
the token, a secret of its own, so relay pods never hold the publishing key.

Encoder pod (a rendition in use): the agent supervises one ffmpeg that plays
``STREAM_NAME`` like a relay, transcodes it, and publishes it to the same ingest under
the name :func:`rendition_publish_key` gives, which only a holder of the play token can
compute; ``on_publish`` renames it to ``rendition-<name>`` (naming.rendition_stream),
which the relays of the destinations on that rendition play.

Relay pod: the agent supervises one ffmpeg that plays from the ingest and pushes to one
destination, composing ``serverUrl`` and the key (from the environment) in memory only.
An rtmps:// destination's certificate and host name are verified against
``DEFAULT_CA_FILE`` (the media image's CA bundle) or the file ``--ca-file`` names (a
private CA, mounted from a Secret), unless ``--tls-insecure-skip-verify`` says not to.
An srt:// destination's passphrase comes from the environment, like the key.
"""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from typing import TypedDict

# The agents import this module and nothing heavy (no pydantic, kopf or kubernetes): a
# relay pod's memory budget is ffmpeg's plus a few MiB.

RTMP_PORT = 1935
# RTMPS for encoders (the port OBS and most encoders assume for rtmps:// without one is
# 443; 1936 is the usual one of servers that serve both, and needs no privilege). A
# second nginx, the TLS terminator, listens there and passes the decrypted stream to
# nginx-rtmp's RTMP_PROXY_PORT, on localhost only, with the PROXY protocol header, so
# that on_publish sees the encoder's address, not the terminator's.
RTMPS_PORT = 1936
RTMP_PROXY_PORT = 1937
# SRT for encoders (UDP): the agent runs a listener there (srtbridge.py) that publishes
# what an encoder sends into nginx-rtmp, with the stream key as the SRT passphrase.
SRT_PORT = 9000
# Its receiver latency unless spec.ingest.srt.latencyMs says otherwise (libsrt's default
# is 120 ms; 200 ms rides out a lossy uplink's retransmissions better).
SRT_DEFAULT_LATENCY_MS = 200
AGENT_PORT = 8080
HLS_PORT = 8088
NGINX_STAT_PORT = 8081  # nginx's rtmp_stat page, on localhost of the ingest pod only
APPLICATION = "live"
STREAM_NAME = "stream"

# Environment variables, filled from Secrets through secretKeyRef, never from literals.
ENV_STREAM_KEY = "RESTREAM_STREAM_KEY"  # ingest: the key encoders publish with
ENV_PLAY_TOKEN = "RESTREAM_PLAY_TOKEN"  # ingest and relays: the relays' read token
ENV_DESTINATION_KEY = "RESTREAM_DESTINATION_KEY"  # relay: the destination's stream key
ENV_SRT_PASSPHRASE = "RESTREAM_SRT_PASSPHRASE"  # relay: an srt:// destination's passphrase

# What an encoder publishes its rendition with: "rendition.<name>.<MAC>", the MAC keyed
# with the play token. The ingest recomputes it; an encoder outside the cluster, which
# knows only the stream key, cannot.
RENDITION_PUBLISH_PREFIX = "rendition."
RENDITION_STREAM_PREFIX = "rendition-"


def rendition_mac(token: str, rendition: str) -> str:
    return hmac.new(
        token.encode(), f"rendition-publish:{rendition}".encode(), hashlib.sha256
    ).hexdigest()


def rendition_publish_key(token: str, rendition: str) -> str:
    """The stream name an encoder publishes ``rendition`` with (a secret: never in argv)."""
    return f"{RENDITION_PUBLISH_PREFIX}{rendition}.{rendition_mac(token, rendition)}"


def rendition_of(publish_name: str, token: str) -> str | None:
    """The rendition a publish name is the genuine key of (constant-time), else None."""
    if not token or not publish_name.startswith(RENDITION_PUBLISH_PREFIX):
        return None
    rendition, dot, mac = publish_name[len(RENDITION_PUBLISH_PREFIX) :].partition(".")
    if not dot or not rendition:
        return None
    if not hmac.compare_digest(mac.encode(), rendition_mac(token, rendition).encode()):
        return None
    return rendition


# Debian's ca-certificates bundle, in the media image (and wherever Debian's ffmpeg runs).
DEFAULT_CA_FILE = "/etc/ssl/certs/ca-certificates.crt"

# Paths the agents expose on AGENT_PORT.
PATH_STATUS = "/status"
PATH_HEALTHZ = "/healthz"
PATH_READYZ = "/readyz"
PATH_METRICS = "/metrics"


class RelayState(StrEnum):
    """What a relay agent reports in ``state``. The API's ``RestreamState``
    (models.py) has these and the operator's own words for a relay that is off, not
    ready or silent; a unit test holds the two to the same spelling."""

    IDLE = "Idle"
    CONNECTING = "Connecting"
    LIVE = "Live"
    RETRYING = "Retrying"
    FAILED = "Failed"


class TlsVerification(StrEnum):
    """How a relay checks an rtmps:// destination's certificate: in the relay agent's
    ``tls`` and in the LiveStream's ``status.restreams[].tls``."""

    VERIFY = "Verify"  # certificate chain and host name, against DEFAULT_CA_FILE
    VERIFY_WITH_CA_SECRET = "VerifyWithCASecret"  # the same, against tls.caSecretRef's CAs
    INSECURE_SKIP_VERIFY = "InsecureSkipVerify"  # not checked: tls.insecureSkipVerify


# The ingest's probe (agent/probe.py) plays the stream as a relay does and says a track
# is missing when the encoder announced it (onMetaData) and none has arrived: audio within
# TRACK_TIMEOUT seconds of the first video (nginx-rtmp holds audio until a player has
# video), or of the play when no video is announced; video within VIDEO_TRACK_TIMEOUT
# seconds, since a player starts at the next keyframe (OBS's default interval: 250 frames).
TRACK_TIMEOUT = 5.0
VIDEO_TRACK_TIMEOUT = 12.0
TRACK_KINDS = ("video", "audio")


class TrackStatus(TypedDict):
    """One track as the ingest's probe saw it (codec names as in ``videoCodec``)."""

    announced: str | None  # the codec onMetaData names (videocodecid/audiocodecid), if any
    arrived: str | None  # the codec of the first media message that reached the probe
    enhanced: bool  # signalled with Enhanced RTMP's FourCC (announced or arrived)


class SourceVideo(TypedDict):
    """The video the encoder sends, measured by the ingest's probe (source.py); each
    figure None until known."""

    width: int | None  # from the H.264 sequence parameter set (None for other codecs)
    height: int | None
    frameRate: float | None  # frames per second of media time, over the last 10 s
    keyframeIntervalSeconds: float | None  # the median of the last keyframe intervals
    bitrateKbps: int | None  # over the last 10 s of media time


class SourceAudio(TypedDict):
    """The audio the encoder sends, measured by the ingest's probe."""

    sampleRateHz: int | None  # from AAC's AudioSpecificConfig, else the FLV tag header
    channels: int | None
    bitrateKbps: int | None


class IngestAgentStatus(TypedDict, total=False):
    """GET /status of an ingest agent (JSON, camelCase keys)."""

    publishing: bool
    since: str | None  # RFC 3339; when `publishing` last changed
    version: int  # counts changes of this document; ?wait=S&since=T&version=N long-polls
    clientAddress: str | None
    clientProtocol: str | None  # RTMP, RTMPS or SRT: how the publishing encoder connected
    srtError: str | None  # why the SRT listener cannot run (e.g. a key SRT cannot use)
    rtmpsError: str | None  # why RTMPS is not served (e.g. no usable certificate yet)
    bitrateKbps: int | None
    # The codecs the probe saw arrive (else announced); nginx stat's reading before that,
    # which for Enhanced RTMP is wrong (e.g. "ScreenVideo" for HEVC).
    videoCodec: str | None
    audioCodec: str | None
    hlsUrl: str | None
    # What the probe saw of this broadcast: "video"/"audio" -> TrackStatus; None while
    # no broadcast is on or before the probe has played.
    tracks: dict[str, TrackStatus] | None
    # Tracks (TRACK_KINDS) announced but not arrived within their timeout: a relay would
    # deliver the stream without them. [] when none is missing or nothing is known yet.
    missingTracks: list[str]
    # False when the probe saw a codec this release does not relay; None until it knows.
    relayable: bool | None
    notRelayableReason: str | None  # why not, in words (and what to set in the encoder)
    # What the probe measured of this broadcast's media; None while none is on or
    # before the probe has played.
    sourceVideo: SourceVideo | None
    sourceAudio: SourceAudio | None


class RelayAgentStatus(TypedDict, total=False):
    """GET /status of a relay agent (JSON, camelCase keys)."""

    state: str  # a RelayState value: Idle, Connecting, Live, Retrying or Failed
    since: str | None
    restarts: int
    lastError: str | None  # redacted: no key ever appears here
    bitrateKbps: int | None
    bytesSent: int
    command: str | None  # the ffmpeg command line, key replaced by ***
    tls: str | None  # a TlsVerification value for rtmps:// destinations, else None
    # An encoder's only: its output as measured from the stream it publishes.
    output: SourceVideo | None
