"""Real media processes on 127.0.0.1 for the media tests and bench/relay.py.

Every process is started in its own session and stopped by its PID (its process group,
whose id is that PID); nothing is ever looked up by name. What the product runs (the
ingest's nginx.conf, the agents' commands) comes from `restream-operator render`; the
sinks and the publisher stand for YouTube and OBS and are written here.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import yaml

from hack import waiting
from hack.media.encoder import gstreamer_argv, preset_pipe, publisher_argv
from hack.media.ertmp import KEY_ENV
from restream_operator.agent import contract
from restream_operator.render.nginx import (
    RTMP_MODULE,
    TLS_CERT,
    TLS_DIR,
    TLS_KEY,
    NginxParams,
    nginx_conf,
    tls_conf,
)

CHECKOUT = Path(__file__).resolve().parents[2]
# The LiveStream whose rendering the media plane runs (destinations swapped for sinks).
EXAMPLE = CHECKOUT / "examples" / "api-video-compatible.yaml"
BIN = Path(sys.executable).parent
RENDER = str(BIN / "restream-operator")
AGENT = str(BIN / "restream-agent")
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
RENDER_NAMESPACE = "demo"

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float, every: float = 0.1) -> T:
    """hack.waiting.wait_for, polling faster: media timings are in tenths of seconds."""
    return waiting.wait_for(condition, what, timeout, every)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


# -- processes -------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 8.0) -> int:
        """Signal the process, wait, then SIGKILL its whole group (id = its PID)."""
        if self.alive():
            self.send(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        return self.popen.wait(5)


class Processes:
    """Owns every process a test starts; ``close`` stops them all, by PID."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> Proc:
        log = self.workdir / f"{name}.{len(self.procs)}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                pass_fds=tuple(pass_fds),
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                if proc.alive():
                    # SIGCONT first: a frozen process cannot act on SIGTERM.
                    proc.send(signal.SIGCONT)
                    for child in children(proc.pid):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(child, signal.SIGCONT)
                proc.stop(signal.SIGTERM, timeout=5)


# -- what the operator renders --------------------------------------------------------


def example() -> dict[str, Any]:
    """The example LiveStream, freshly parsed (callers change it)."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    return doc


def render(manifest: dict[str, Any], workdir: Path) -> list[dict[str, Any]]:
    path = workdir / f"livestream-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(manifest))
    out = subprocess.run(
        # Some media tests name loopback sinks as destinations, which the admission rules
        # refuse: render what the operator's parser makes of each manifest (the rules have
        # tests of their own; render's defaults are for people).
        [RENDER, "render", "--validate=false", "-f", str(path), "-n", RENDER_NAMESPACE],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@dataclass(frozen=True)
class SecretFile:
    """One key of a Secret that a pod mounts as a file."""

    secret: str
    key: str
    path: str  # where the container sees it


@dataclass
class Rendered:
    nginx_conf: str
    ingest_command: list[str]
    ingest_env: list[str]
    relays: dict[str, list[str]]  # restream name -> command
    relay_env: dict[str, list[str]]
    # restream name -> env name -> (Secret, key) its secretKeyRef names
    relay_secret_env: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)
    relay_files: dict[str, list[SecretFile]] = field(default_factory=dict)
    encoders: dict[str, list[str]] = field(default_factory=dict)  # rendition -> command
    encoder_env: dict[str, list[str]] = field(default_factory=dict)
    tls_conf: str | None = None  # the ingest's TLS terminator (spec.ingest.tls)


def secret_files(pod: dict[str, Any]) -> list[SecretFile]:
    """The Secret keys a pod mounts. Every Secret volume must name the keys it takes and
    be mounted read-only; other volumes may only be scratch space."""
    (container,) = pod["containers"]
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    files = []
    for volume in pod.get("volumes", []):
        if "emptyDir" in volume:
            continue
        secret = volume["secret"]  # a ConfigMap or hostPath here would be news
        mount = mounts[volume["name"]]
        assert mount.get("readOnly") is True, mount
        assert secret.get("items"), f"{volume['name']}: the whole Secret is mounted"
        for item in secret["items"]:
            path = f"{mount['mountPath']}/{item['path']}"
            files.append(SecretFile(secret["secretName"], item["key"], path))
    return files


def rendered(docs: list[dict[str, Any]]) -> Rendered:
    conf = ""
    ingest_cmd: list[str] = []
    ingest_env: list[str] = []
    plan = Rendered("", [], [], {}, {})
    for d in docs:
        if d["kind"] == "ConfigMap":
            conf = d["data"]["nginx.conf"]
            plan.tls_conf = d["data"].get("tls.conf")
        if d["kind"] != "Deployment":
            continue
        pod = d["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = [e["name"] for e in container.get("env", [])]
        # Secrets reach the agents only through secretKeyRef: never a literal.
        assert all("secretKeyRef" in e["valueFrom"] for e in container.get("env", []))
        if container["args"][1] == "ingest":
            ingest_cmd, ingest_env = container["args"], env
        elif container["args"][1] == "encoder":
            name = d["metadata"]["annotations"]["restream.dev/rendition-name"]
            plan.encoders[name], plan.encoder_env[name] = container["args"], env
        else:
            name = d["metadata"]["annotations"]["restream.dev/restream-name"]
            plan.relays[name], plan.relay_env[name] = container["args"], env
            plan.relay_secret_env[name] = {
                e["name"]: (
                    e["valueFrom"]["secretKeyRef"]["name"],
                    e["valueFrom"]["secretKeyRef"]["key"],
                )
                for e in container.get("env", [])
            }
            plan.relay_files[name] = secret_files(pod)
    plan.nginx_conf, plan.ingest_command, plan.ingest_env = conf, ingest_cmd, ingest_env
    return plan


def with_secret_files(
    argv: Sequence[str],
    files: Sequence[SecretFile],
    contents: Mapping[tuple[str, str], bytes],
    root: Path,
) -> list[str]:
    """What the kubelet does for a pod's Secret volumes, here: each mounted key
    (``contents`` by (Secret, key)) written under ``root``, and the arguments that name
    its path in the container pointed at the copy."""
    out = list(argv)
    for f in files:
        local = root / f.secret / f.path.lstrip("/")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(contents[(f.secret, f.key)])
        out = [str(local) if arg == f.path else arg for arg in out]
    return out


def secret_env(
    refs: Mapping[str, tuple[str, str]], secrets: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """A container's environment from the Secrets of its namespace (name -> data)."""
    return {env: secrets[secret][key] for env, (secret, key) in refs.items()}


def flag(argv: Sequence[str], name: str) -> str:
    return argv[list(argv).index(name) + 1]


def with_flag(argv: Sequence[str], name: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(name) + 1] = value
    return out


def local_command(argv: Sequence[str]) -> list[str]:
    # In the image, `restream-agent` is on PATH; here it is the venv's.
    assert argv[0] == "restream-agent"
    return [AGENT, *argv[1:]]


def loopback_url(url: str, port: int) -> str:
    """The same URL with the host (a Service or the internet) swapped for 127.0.0.1:port."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


# -- the ingest -----------------------------------------------------------------------


@dataclass
class Ingest:
    rtmp_port: int
    agent_port: int
    stat_port: int
    hls_port: int
    work_dir: Path
    conf_path: Path
    proc: Proc | None = None
    rtmps_port: int | None = None
    proxy_port: int | None = None
    tls_dir: Path | None = None  # where the Secret's tls.crt and tls.key are "mounted"
    srt_host: str = "127.0.0.1"
    srt_port: int | None = None

    def srt_url(self, passphrase: str | None = None, latency_ms: int | None = None) -> str:
        """What an encoder publishes to over SRT (the passphrase is the stream key)."""
        query = [f"latency={latency_ms * 1000}"] if latency_ms is not None else []
        if passphrase is not None:
            query.append(f"passphrase={quote(passphrase, safe='')}")
        return f"srt://{self.srt_host}:{self.srt_port}" + ("?" + "&".join(query) if query else "")

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}{contract.PATH_STATUS}"

    def publish_url(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/{contract.APPLICATION}"

    def rtmps_url(self) -> str:
        return f"rtmps://127.0.0.1:{self.rtmps_port}/{contract.APPLICATION}"


def loopback_nginx_conf(text: str, ingest: Ingest) -> str:
    """The rendered config with pod ports and /tmp/nginx swapped for this test's."""
    defaults = NginxParams()
    tls = ingest.proxy_port is not None
    out = (
        text.replace(f"listen {defaults.rtmp_port};", f"listen 127.0.0.1:{ingest.rtmp_port};")
        .replace(
            f"listen 127.0.0.1:{defaults.proxy_port} proxy_protocol;",
            f"listen 127.0.0.1:{ingest.proxy_port} proxy_protocol;",
        )
        .replace(f"127.0.0.1:{defaults.agent_port}/", f"127.0.0.1:{ingest.agent_port}/")
        .replace(f"127.0.0.1:{defaults.rtmp_port}/", f"127.0.0.1:{ingest.rtmp_port}/")
        .replace(f"listen 127.0.0.1:{defaults.stat_port};", f"listen 127.0.0.1:{ingest.stat_port};")
        .replace(f"listen {defaults.hls_port};", f"listen 127.0.0.1:{ingest.hls_port};")
        .replace(defaults.work_dir, str(ingest.work_dir))
    )
    # Only ports and the directory changed: it is what the renderer makes for them.
    expected = nginx_conf(
        NginxParams(
            rtmp_port=ingest.rtmp_port,
            agent_port=ingest.agent_port,
            stat_port=ingest.stat_port,
            hls_port=ingest.hls_port,
            work_dir=str(ingest.work_dir),
            listen_host="127.0.0.1",
            hls="hls on;" in text,
            tls=tls,
            proxy_port=ingest.proxy_port or defaults.proxy_port,
        )
    )
    assert out == expected, "the loopback substitution changed more than ports and paths"
    return out


def loopback_tls_conf(text: str, ingest: Ingest) -> str:
    """The rendered TLS terminator's config with this test's ports and directories."""
    defaults = NginxParams()
    assert ingest.rtmps_port and ingest.proxy_port and ingest.tls_dir
    out = (
        text.replace(
            f"listen {defaults.rtmps_port} ssl;", f"listen 127.0.0.1:{ingest.rtmps_port} ssl;"
        )
        .replace(f"127.0.0.1:{defaults.proxy_port};", f"127.0.0.1:{ingest.proxy_port};")
        .replace(f"{TLS_DIR}/", f"{ingest.tls_dir}/")
        .replace(defaults.work_dir, str(ingest.work_dir))
    )
    expected = tls_conf(
        NginxParams(
            rtmps_port=ingest.rtmps_port,
            proxy_port=ingest.proxy_port,
            work_dir=str(ingest.work_dir),
            listen_host="127.0.0.1",
            tls=True,
            tls_dir=str(ingest.tls_dir),
        )
    )
    assert out == expected, "the loopback substitution changed more than ports and paths"
    return out


def install_tls_files(tls_dir: Path, cert: bytes, key: bytes) -> None:
    """What the kubelet does with a kubernetes.io/tls Secret volume, and with its renewal:
    the files are written into a new directory and swapped in through one symlink
    (``..data``), so that a reader sees both old or both new."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"..{time.monotonic_ns()}"
    (tls_dir / stamp).mkdir()
    (tls_dir / stamp / TLS_CERT).write_bytes(cert)
    (tls_dir / stamp / TLS_KEY).write_bytes(key)
    (tls_dir / stamp / TLS_KEY).chmod(0o600)
    tmp = tls_dir / "..data_tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp)
    tmp.replace(tls_dir / "..data")
    for name in (TLS_CERT, TLS_KEY):
        if not (tls_dir / name).is_symlink():
            (tls_dir / name).symlink_to(f"..data/{name}")


def start_ingest(
    procs: Processes,
    plane: Rendered,
    workdir: Path,
    key: str,
    token: str,
    extra_args: Sequence[str] = (),
    tls_files: tuple[bytes, bytes] | None = None,
    srt_host: str = "127.0.0.1",
) -> Ingest:
    """``tls_files``: the (tls.crt, tls.key) of the Secret spec.ingest.tls names, when
    the plan has RTMPS (None: the Secret does not exist yet)."""
    ingest = Ingest(
        rtmp_port=free_port(),
        agent_port=free_port(),
        stat_port=free_port(),
        hls_port=free_port(),
        work_dir=workdir / "ingest-nginx",
        conf_path=workdir / "nginx.conf",
    )
    if plane.tls_conf is not None:
        ingest.rtmps_port, ingest.proxy_port = free_port(), free_port()
        ingest.tls_dir = workdir / "ingest-tls"
        ingest.tls_dir.mkdir()
        if tls_files is not None:  # else: a Secret that does not exist yet (optional volume)
            install_tls_files(ingest.tls_dir, *tls_files)
    ingest.conf_path.write_text(loopback_nginx_conf(plane.nginx_conf, ingest))
    argv = local_command(plane.ingest_command)
    argv = with_flag(argv, "--nginx-config", str(ingest.conf_path))
    if "--srt-listen" in argv:
        ingest.srt_host, ingest.srt_port = srt_host, free_udp_port()
        argv = with_flag(argv, "--srt-listen", f"{srt_host}:{ingest.srt_port}")
    if plane.tls_conf is not None:
        tls_path = workdir / "tls.conf"
        tls_path.write_text(loopback_tls_conf(plane.tls_conf, ingest))
        argv = with_flag(argv, "--tls-config", str(tls_path))
    argv = [*with_flag(argv, "--listen", f"127.0.0.1:{ingest.agent_port}"), *extra_args]
    assert plane.ingest_env == [contract.ENV_STREAM_KEY, contract.ENV_PLAY_TOKEN]
    env = {contract.ENV_STREAM_KEY: key, contract.ENV_PLAY_TOKEN: token}
    ingest.proc = procs.start("ingest-agent", argv, env)
    wait_for(
        lambda: http_status(f"http://127.0.0.1:{ingest.agent_port}/readyz") == 200,
        "the ingest to be ready",
        10,
    )
    return ingest


# -- relays ---------------------------------------------------------------------------


@dataclass
class Relay:
    name: str
    agent_port: int
    argv: list[str]
    env: dict[str, str]
    proc: Proc | None = None

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.agent_port}{contract.PATH_STATUS}"

    def log_lines(self) -> list[dict[str, Any]]:
        """What the agent has logged so far: one JSON object a line."""
        assert self.proc is not None
        return [json.loads(line) for line in self.proc.log.read_text().splitlines()]


def relay_command(
    rendered_argv: list[str], ingest: Ingest, destination_url: str, agent_port: int
) -> list[str]:
    argv = local_command(rendered_argv)
    argv = with_flag(argv, "--source", loopback_url(flag(argv, "--source"), ingest.rtmp_port))
    argv = with_flag(
        argv, "--ingest-status", loopback_url(flag(argv, "--ingest-status"), ingest.agent_port)
    )
    argv = with_flag(argv, "--destination", destination_url)
    return with_flag(argv, "--listen", f"127.0.0.1:{agent_port}")


def encoder_command(rendered_argv: list[str], ingest: Ingest, agent_port: int) -> list[str]:
    """A rendered encoder's command, its ingest URLs swapped for this test's loopback ones."""
    return relay_command(rendered_argv, ingest, ingest.publish_url(), agent_port)


def start_relay(procs: Processes, relay: Relay) -> Relay:
    relay.proc = procs.start(f"relay-{relay.agent_port}", relay.argv, relay.env)
    wait_for(lambda: http_status(relay.status_url) == 200, f"relay {relay.name} to answer", 10)
    return relay


# -- sinks ----------------------------------------------------------------------------


@dataclass
class RtmpSink:
    """A destination: nginx-rtmp recording every stream it receives, per application."""

    root: Path
    port: int
    apps: tuple[str, ...]
    tls_port: int | None = None
    cert: Path | None = None
    key: Path | None = None
    proc: Proc | None = None
    # An HTTP URL that nginx-rtmp asks before it accepts a publish (a refusal: any 4xx/5xx),
    # as platforms check a stream key.
    on_publish: str | None = None

    def config(self) -> str:
        check = f"\n            on_publish {self.on_publish};" if self.on_publish else ""
        apps = "\n".join(
            f"""        application {app} {{
            live on;{check}
            record all;
            record_path {self.root}/rec/{app.replace("/", "_")};
            record_unique on;
        }}"""
            for app in self.apps
        )
        stream = ""
        load_stream = ""
        if self.tls_port is not None:
            load_stream = f"load_module {STREAM_MODULE};\n"
            stream = f"""
stream {{
    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        proxy_pass 127.0.0.1:{self.port};
    }}
}}"""
        return f"""load_module {RTMP_MODULE};
{load_stream}worker_processes 1;
daemon off;
pid {self.root}/nginx.pid;
error_log stderr info;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{self.port};
        access_log off;
{apps}
    }}
}}{stream}
"""

    def start(self, procs: Processes) -> RtmpSink:
        for app in self.apps:
            d = self.root / "rec" / app.replace("/", "_")
            d.mkdir(parents=True, exist_ok=True)
            d.chmod(0o777)  # as root, nginx's workers run as nobody
        conf = self.root / "nginx.conf"
        conf.write_text(self.config())
        self.proc = procs.start(
            f"sink-{self.port}",
            ["nginx", "-c", str(conf), "-e", "stderr", "-p", f"{self.root}/"],
        )
        wait_for(lambda: port_open(self.port), f"sink :{self.port}", 10, 0.05)
        if self.tls_port is not None:
            wait_for(lambda: port_open(self.tls_port or 0), f"sink tls :{self.tls_port}", 10, 0.05)
        return self

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.stop(signal.SIGTERM)
        wait_for(lambda: not port_open(self.port), f"sink :{self.port} down", 10, 0.05)

    def worker(self) -> int:
        assert self.proc is not None
        workers = children(self.proc.pid)
        assert len(workers) == 1, workers
        return workers[0]

    def recordings(self, app: str) -> list[Path]:
        d = self.root / "rec" / app.replace("/", "_")
        return sorted(d.glob("*.flv"), key=lambda p: p.stat().st_mtime)

    def total_bytes(self, app: str) -> int:
        return sum(p.stat().st_size for p in self.recordings(app))


@dataclass
class SrtSink:
    """A destination: ffmpeg listening for SRT, copying MPEG-TS to a file."""

    root: Path
    port: int
    # What the listener requires callers to encrypt with. In its own argv: it stands for
    # a destination's server, whose secrets are not the relay's to keep.
    passphrase: str | None = None
    proc: Proc | None = None
    outputs: list[Path] = field(default_factory=list)

    def start(self, procs: Processes) -> SrtSink:
        self.root.mkdir(parents=True, exist_ok=True)
        out = self.root / f"out-{len(self.outputs)}.ts"
        self.outputs.append(out)
        url = f"srt://127.0.0.1:{self.port}?mode=listener"
        if self.passphrase is not None:
            url += f"&passphrase={quote(self.passphrase, safe='')}"
        self.proc = procs.start(
            f"srt-sink-{self.port}",
            [
                "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                "-f", "mpegts", "-i", url, "-map", "0", "-c", "copy",
                # Written as it comes (not in 256 KiB blocks): a growing file is a live stream.
                "-flush_packets", "1", "-y", str(out),
            ],
        )  # fmt: skip
        return self


# -- the encoder ----------------------------------------------------------------------


def start_publisher(
    procs: Processes,
    ingest: Ingest,
    key: str,
    seconds: float | None = None,
    *,
    rtmps_ca: Path | None = None,
    **options: Any,
) -> Proc:
    """ffmpeg publishing; ``options``: publisher_argv's (gop, audio_delay_s, bframes...).
    ``rtmps_ca``: publish over RTMPS instead, verifying the ingest's certificate against
    this CA file (host name included: the test certificates name 127.0.0.1)."""
    if rtmps_ca is not None:
        url, fd = preset_pipe(ingest.rtmps_url(), key, str(rtmps_ca))
    else:
        url, fd = preset_pipe(ingest.publish_url(), key)
    try:
        argv = publisher_argv(url, fd, seconds, **options)
        return procs.start("publisher", argv, pass_fds=[fd])
    finally:
        os.close(fd)


def start_gstreamer(
    procs: Processes, ingest: Ingest, key: str, frames: int, **options: Any
) -> Proc:
    """GStreamer publishing ``frames`` video frames; ``options``: gstreamer_argv's
    (``rtmps=True``: to the ingest's RTMPS port)."""
    base = ingest.rtmps_url() if options.pop("rtmps", False) else ingest.publish_url()
    url = f"{base}/{key}"
    return procs.start("gstreamer", gstreamer_argv(url, frames, **options))


def start_ertmp_publisher(
    procs: Processes, url: str, key: str, codec: str = "hevc", seconds: float = 3600
) -> Proc:
    """hack/media/ertmp.py: ``codec`` over Enhanced RTMP, the key in its environment."""
    argv = [sys.executable, "-m", "hack.media.ertmp", url, "--codec", codec]
    return procs.start(f"ertmp-{codec}", [*argv, "--seconds", f"{seconds:g}"], {KEY_ENV: key})


# -- looking at results ---------------------------------------------------------------


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)
    except OSError:
        return 0


class StatusLog:
    """Fetches /status documents and keeps every one, for the secret scan."""

    def __init__(self) -> None:
        self.documents: list[str] = []
        self._lock = threading.Lock()

    def get(self, url: str) -> dict[str, Any]:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
            text = r.read().decode()
        with self._lock:
            self.documents.append(text)
        doc: dict[str, Any] = json.loads(text)
        return doc

    def state(self, relay: Relay) -> str:
        try:
            return str(self.get(relay.status_url)["state"])
        except OSError:
            return "unreachable"


def probe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name,codec_type",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def codecs_and_duration(path: Path) -> tuple[set[str], float]:
    doc = probe(path)
    return {s["codec_name"] for s in doc["streams"]}, float(doc["format"]["duration"])


def packet_times(path: Path, stream: str = "v") -> list[float]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "packet=dts_time",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return [float(x) for x in out.stdout.split() if x and x != "N/A"]


def packets(path: Path) -> list[dict[str, Any]]:
    """Every packet of a recording: codec_type, pts_time, dts_time, flags ("K_" a keyframe)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "packet=codec_type,pts_time,dts_time,flags",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    found: list[dict[str, Any]] = json.loads(out.stdout).get("packets", [])
    return found


class Sampler:
    """Calls ``sample()`` every ``every`` s in a thread, from ``start()`` (or entering
    ``with``) until ``stop()``."""

    def __init__(self, every: float, join_timeout: float = 5.0) -> None:
        self._every = every
        self._join_timeout = join_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self._join_timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._every)


class GrowthSampler(Sampler):
    """Samples sizes every ``every`` s in a thread; the longest time one did not grow."""

    def __init__(self, sizes: dict[str, Callable[[], int]], every: float = 0.15) -> None:
        super().__init__(every, join_timeout=30)  # a sample may be slow (kubectl exec)
        self._sizes = sizes
        self.samples: dict[str, list[tuple[float, int]]] = {k: [] for k in sizes}

    def sample(self) -> None:
        now = time.monotonic()
        for k, size in self._sizes.items():
            with contextlib.suppress(OSError):
                self.samples[k].append((now, size()))

    def longest_stall(self, name: str) -> float:
        """The longest a size was seen not growing (from its last change to a sample)."""
        samples = self.samples[name]
        longest, last_change = 0.0, samples[0][0]
        for (_, a), (t, b) in itertools.pairwise(samples):
            if b != a:
                last_change = t
            longest = max(longest, t - last_change)
        return longest

    def longest_between_changes(self, name: str) -> float:
        """The longest time from one sample that saw a size change to the next: the
        stall bounded from above (sparse samples, e.g. kubectl exec, widen it)."""
        samples = self.samples[name]
        changes = [t for (_, a), (t, b) in itertools.pairwise(samples) if b != a]
        return max((b - a for a, b in itertools.pairwise([samples[0][0], *changes])), default=0.0)


class PsSampler(Sampler):
    """`ps -eo args` every half second in a thread: what a node's users could see."""

    def __init__(self) -> None:
        super().__init__(0.5)
        self.lines: set[str] = set()

    def sample(self) -> None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                ["ps", "-eo", "args"], capture_output=True, text=True, timeout=5, check=False
            )
            self.lines.update(out.stdout.splitlines())


class ProcessSampler(Sampler):
    """The command lines of some processes and of their children (``roots()``: the
    PIDs), and the children's environments, read from /proc every 0.2 s in a thread:
    what `ps`, and anyone on a node without PID namespaces, could read of them."""

    def __init__(self, roots: Callable[[], list[int]]) -> None:
        super().__init__(0.2)
        self._roots = roots
        self.cmdlines: dict[int, str] = {}
        self.child_environs: dict[int, bytes] = {}

    def sample(self) -> None:
        for root in self._roots():
            kids = children(root)
            for pid in (root, *kids):
                with contextlib.suppress(OSError):
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                    if not raw:
                        # An exited child not yet reaped has no command line: keep the
                        # one it had (a listener that ended with its caller's stream).
                        continue
                    self.cmdlines[pid] = raw.replace(b"\0", b" ").decode("utf-8", "replace")
                    if pid in kids:
                        self.child_environs[pid] = Path(f"/proc/{pid}/environ").read_bytes()


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        # Run as root, nginx's workers are nobody: they must reach the recording dirs.
        Path(d).chmod(0o755)
        yield Path(d)
