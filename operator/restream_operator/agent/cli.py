"""`restream-agent ingest|relay`: the entry point of ingest and relay containers.

Secrets come from the environment only (Kubernetes fills it from Secrets); flags carry
nothing secret, so the container's command line can be shown anywhere.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..version import VersionAction
from . import contract, jsonlog
from .redact import Redactor

if TYPE_CHECKING:
    from .encoder import Profile


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="restream-agent",
        description="Agents of restream-operator's ingest and relay pods.",
    )
    p.add_argument("--version", action=VersionAction)
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"],
        help="the least severe level logged (default: %(default)s)",
    )  # fmt: skip
    sub = p.add_subparsers(dest="role", required=True, metavar="ROLE")

    ing = sub.add_parser(
        "ingest",
        help="run nginx-rtmp, check stream keys and play tokens, report the broadcast",
        description=f"Secrets from the environment: {contract.ENV_STREAM_KEY} (what encoders "
        f"publish with), {contract.ENV_PLAY_TOKEN} (what relays play with).",
    )
    ing.add_argument("--nginx-config", required=True, help="nginx.conf rendered by the operator")
    ing.add_argument(
        "--listen", default=f"0.0.0.0:{contract.AGENT_PORT}", metavar="HOST:PORT",
        help="the agent's HTTP server: /status, probes, /metrics (default: %(default)s)",
    )  # fmt: skip
    ing.add_argument(
        "--nginx-binary", default="nginx", help="nginx with the RTMP module (default: %(default)s, "
        "from PATH)",
    )  # fmt: skip
    ing.add_argument(
        "--tls-config", default=None, metavar="FILE",
        help="the TLS terminator's nginx config (RTMPS), rendered by the operator; the agent "
        "runs a second nginx with it and reloads it when the certificate files change "
        "(default: none, no RTMPS)",
    )  # fmt: skip
    ing.add_argument(
        "--srt-listen", default=None, metavar="HOST:PORT",
        help="run an SRT listener on this UDP address whose passphrase is the stream key, "
        "publishing into nginx-rtmp (default: none, no SRT)",
    )  # fmt: skip
    ing.add_argument(
        "--srt-latency-ms", type=int, default=contract.SRT_DEFAULT_LATENCY_MS, metavar="MS",
        help="the SRT listener's receiver latency (default: %(default)s)",
    )  # fmt: skip
    ing.add_argument(
        "--refuse-plain-rtmp", action="store_true",
        help="refuse an encoder's plain RTMP publish (RTMPS and SRT only; default: allowed)",
    )  # fmt: skip
    ing.add_argument(
        "--hls-url", default=None,
        help="reported as hlsUrl when the config has HLS on (default: none reported)",
    )  # fmt: skip

    rel = sub.add_parser(
        "relay",
        help="supervise one ffmpeg from the ingest to one destination",
        description=f"Secrets from the environment: {contract.ENV_DESTINATION_KEY} (the "
        f"destination's stream key), {contract.ENV_PLAY_TOKEN} (to play from the ingest), "
        f"{contract.ENV_SRT_PASSPHRASE} (an srt:// destination's passphrase, if it has one).",
    )
    rel.add_argument("--name", required=True, help="the restream's name (for logs and metrics)")
    rel.add_argument("--source", required=True, help="the ingest's play URL, without token")
    rel.add_argument("--ingest-status", required=True, help="the ingest agent's /status URL")
    rel.add_argument("--destination", required=True, help="server URL, without the key")
    rel.add_argument(
        "--format", choices=["flv", "mpegts"], required=True,
        help="what ffmpeg writes: flv for rtmp and rtmps, mpegts for srt",
    )  # fmt: skip
    rel.add_argument(
        "--min-delay", type=float, default=1.0, help="first retry delay (s) (default: %(default)s)"
    )
    rel.add_argument(
        "--max-delay", type=float, default=10.0,
        help="longest retry delay (s) (default: %(default)s)",
    )  # fmt: skip
    rel.add_argument(
        "--listen", default=f"0.0.0.0:{contract.AGENT_PORT}", metavar="HOST:PORT",
        help="the agent's HTTP server: /status, probes, /metrics (default: %(default)s)",
    )  # fmt: skip
    rel.add_argument(
        "--stall-timeout",
        type=float,
        default=5.0,
        help="restart ffmpeg after this long (s) without progress (default: %(default)s)",
    )
    rel.add_argument(
        "--connect-timeout",
        type=float,
        default=3.5,  # RelayConfig.connect_timeout's, which says why
        help="restart ffmpeg when no media reached the destination this long (s) after start "
        "(default: %(default)s)",
    )
    rel.add_argument(
        "--healthy-after", type=float, default=30.0,
        help="Live this long (s) resets the backoff (default: %(default)s)",
    )  # fmt: skip
    rel.add_argument(
        "--failed-after",
        type=int,
        default=5,
        help="the same error this many times in a row: Failed (default: %(default)s)",
    )
    rel.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        help="between /status requests (s) when the ingest answers without long-polling "
        "(default: %(default)s)",
    )
    rel.add_argument(
        "--ffmpeg-binary", default="ffmpeg", help="ffmpeg to run (default: %(default)s, from PATH)"
    )
    rel.add_argument(
        "--ca-file",
        default=contract.DEFAULT_CA_FILE,
        help="PEM file of the CAs an rtmps destination's certificate must chain to "
        "(default: %(default)s, the system's bundle)",
    )
    rel.add_argument(
        "--tls-insecure-skip-verify",
        action="store_true",
        help="do not verify an rtmps destination's certificate or host name (unsafe: "
        "anyone on the path can read the stream key; default: verify)",
    )
    enc = sub.add_parser(
        "encoder",
        help="supervise one ffmpeg that encodes a rendition from the ingest back to it",
        description=f"Secrets from the environment: {contract.ENV_PLAY_TOKEN} (to play the "
        "source from the ingest; the rendition's publish key is derived from it).",
    )
    enc.add_argument("--name", required=True, help="the rendition's name (its stream's too)")
    enc.add_argument("--source", required=True, help="the ingest's play URL, without token")
    enc.add_argument("--ingest-status", required=True, help="the ingest agent's /status URL")
    enc.add_argument("--destination", required=True, help="the ingest's RTMP URL to publish to")
    # The operator renders every profile flag (render/encoder.profile_args): they are
    # required, so a profile is never half defaulted here and half in the CRD.
    enc.add_argument("--height", type=int, required=True, help="output height (px)")
    enc.add_argument("--fps", type=int, required=True, help="output frame rate")
    enc.add_argument("--video-bitrate", type=int, required=True, help="H.264 target (kbit/s)")
    enc.add_argument("--max-bitrate", type=int, required=True, help="VBV peak (kbit/s; 1 s)")
    enc.add_argument(
        "--keyframe-interval", type=int, required=True, help="seconds between keyframes"
    )
    enc.add_argument("--preset", required=True, help="x264 preset")
    enc.add_argument(
        "--profile", required=True, choices=["baseline", "main", "high"], help="H.264 profile"
    )
    enc.add_argument("--audio-bitrate", type=int, required=True, help="AAC bitrate (kbit/s)")
    enc.add_argument("--sample-rate", type=int, required=True, help="AAC sample rate (Hz)")
    enc.add_argument("--channels", type=int, required=True, help="AAC channels")
    enc.add_argument(
        "--min-delay", type=float, default=1.0, help="first retry delay (s; default: %(default)s)"
    )
    enc.add_argument(
        "--max-delay",
        type=float,
        default=10.0,
        help="longest retry delay (s; default: %(default)s)",
    )
    enc.add_argument(
        "--listen",
        default=f"0.0.0.0:{contract.AGENT_PORT}",
        help="HOST:PORT of /status, /metrics and the probes (default: %(default)s)",
    )
    enc.add_argument(
        "--ffmpeg-binary", default="ffmpeg", help="ffmpeg to run (default: %(default)s, from PATH)"
    )
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.role == "relay" and args.name == []:
        # Python 3.11's argparse drops a value of exactly "--", even from --name=--.
        args.name = "--"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The agents speak plain HTTP on a pod network, but prometheus_client (their
    # /metrics) imports the ssl module and OpenSSL (4.4 MiB of RSS) for its push and
    # HTTPS server: bench/metrics_memory.py measures what the library costs a relay.
    import asyncio  # noqa: PLC0415

    passphrase = ""
    if args.role == "encoder":
        token = os.environ.get(contract.ENV_PLAY_TOKEN, "")
        publish_key = contract.rendition_publish_key(token, args.name) if token else ""
        redact = Redactor([token, publish_key])
        jsonlog.setup(redact, getattr(logging, args.log_level.upper()))
        try:
            return asyncio.run(_encoder(args, token, redact))
        except KeyboardInterrupt:
            return 0
    if args.role == "ingest":
        key, token = (
            os.environ.get(contract.ENV_STREAM_KEY, ""),
            os.environ.get(contract.ENV_PLAY_TOKEN, ""),
        )
    else:
        key, token = (
            os.environ.get(contract.ENV_DESTINATION_KEY, ""),
            os.environ.get(contract.ENV_PLAY_TOKEN, ""),
        )
        passphrase = os.environ.get(contract.ENV_SRT_PASSPHRASE, "")
    redact = Redactor([key, token, passphrase])
    jsonlog.setup(redact, getattr(logging, args.log_level.upper()))
    try:
        if args.role == "ingest":
            return asyncio.run(_ingest(args, key, token, redact))
        return asyncio.run(_relay(args, key, token, redact, passphrase))
    except KeyboardInterrupt:
        return 0


async def _ingest(args: argparse.Namespace, key: str, token: str, redact: Redactor) -> int:
    # Each role loads only its own modules: a relay pod's memory is counted.
    from .ingest import IngestConfig, serve  # noqa: PLC0415
    from .nginxconf import layout  # noqa: PLC0415

    try:
        with open(args.nginx_config) as f:
            nginx_layout = layout(f.read())
    except (OSError, ValueError) as e:
        logging.getLogger("restream.ingest").error("cannot read the nginx config: %s", e)
        return 2
    tls = None
    if args.tls_config:
        from .tlsproxy import TlsTerminator, tls_layout  # noqa: PLC0415

        try:
            with open(args.tls_config) as f:
                tls = TlsTerminator(args.tls_config, tls_layout(f.read()), args.nginx_binary)
        except (OSError, ValueError) as e:
            logging.getLogger("restream.ingest").error("cannot read the TLS config: %s", e)
            return 2
    cfg = IngestConfig(
        nginx_config=args.nginx_config,
        listen=args.listen,
        nginx=args.nginx_binary,
        hls_url=args.hls_url,
        refuse_plain_rtmp=args.refuse_plain_rtmp,
    )
    srt = None
    if args.srt_listen is not None:
        from .srtbridge import SrtBridge  # noqa: PLC0415

        host, _, port = args.srt_listen.rpartition(":")
        if not host or not port.isdigit():
            logging.getLogger("restream.ingest").error("--srt-listen: HOST:PORT, e.g. 0.0.0.0:9000")
            return 2
        srt = SrtBridge(
            host=host,
            port=int(port),
            latency_ms=args.srt_latency_ms,
            key=key,
            rtmp_host=nginx_layout.rtmp_host,
            rtmp_port=nginx_layout.rtmp_port,
            application=contract.APPLICATION,
            redact=redact,
        )
    return await serve(cfg, nginx_layout, key, token, redact, tls, srt)


async def _relay(
    args: argparse.Namespace, key: str, token: str, redact: Redactor, passphrase: str
) -> int:
    from .ffmpeg import Tls  # noqa: PLC0415
    from .relay import RelayConfig, serve  # noqa: PLC0415

    cfg = RelayConfig(
        name=args.name,
        source=args.source,
        ingest_status=args.ingest_status,
        server_url=args.destination,
        output_format=args.format,
        min_delay=args.min_delay,
        max_delay=args.max_delay,
        listen=args.listen,
        stall_timeout=args.stall_timeout,
        connect_timeout=args.connect_timeout,
        healthy_after=args.healthy_after,
        failed_after=args.failed_after,
        poll_interval=args.poll_interval,
        ffmpeg=args.ffmpeg_binary,
        tls=Tls(verify=not args.tls_insecure_skip_verify, ca_file=args.ca_file),
    )
    return await serve(cfg, key, token, redact, passphrase)


def encoder_profile(args: argparse.Namespace) -> Profile:
    """What the encoder's flags (render/encoder.profile_args) say to encode."""
    from .encoder import Profile  # noqa: PLC0415

    return Profile(
        height=args.height,
        fps=args.fps,
        video_kbps=args.video_bitrate,
        max_kbps=args.max_bitrate,
        keyframe_interval=args.keyframe_interval,
        preset=args.preset,
        profile=args.profile,
        audio_kbps=args.audio_bitrate,
        sample_rate=args.sample_rate,
        channels=args.channels,
    )


async def _encoder(args: argparse.Namespace, token: str, redact: Redactor) -> int:
    from .encoder import serve, transcode_args  # noqa: PLC0415
    from .relay import RelayConfig  # noqa: PLC0415

    profile = encoder_profile(args)
    cfg = RelayConfig(
        name=args.name,
        source=args.source,
        ingest_status=args.ingest_status,
        server_url=args.destination,
        output_format="flv",
        min_delay=args.min_delay,
        max_delay=args.max_delay,
        listen=args.listen,
        ffmpeg=args.ffmpeg_binary,
        codecs=transcode_args(profile),
    )
    return await serve(cfg, token, redact)


if __name__ == "__main__":
    sys.exit(main())
