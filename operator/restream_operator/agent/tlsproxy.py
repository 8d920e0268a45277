"""The ingest's TLS terminator (RTMPS): a second nginx, supervised and reloaded here.

The operator renders its configuration (render/nginx.py, ``tls_conf``): nginx's stream
module takes RTMPS on ``RTMPS_PORT`` and passes the decrypted bytes to nginx-rtmp on
localhost, with a PROXY protocol header carrying the encoder's address. The agent reads
the certificate's paths and the port back from that file, as it does for nginx-rtmp.

Rotation: the kubelet replaces a mounted Secret's files in place when the Secret changes
(cert-manager's renewal); the agent looks at them every ``WATCH_EVERY`` seconds and, when
they changed and form a usable pair, sends nginx SIGHUP. nginx then starts a worker with
the new certificate for new connections, and the old worker keeps serving the live
encoder's connection until it ends: nobody is dropped. A pair that is not usable (a key
that does not match, half-written files) is logged and not loaded; nginx keeps the
certificate it has.

Which protocol the publisher used: nginx-rtmp's on_publish gives the address the PROXY
header names, the same as a plain RTMP client's, so the agent asks the kernel instead:
an encoder whose address holds an established connection to the RTMPS port publishes
over RTMPS (``tls_peers``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import signal
import ssl
import time
from dataclasses import dataclass

from . import process
from .backoff import Backoff
from .ingest import nginx_line
from .nginxconf import parse

log = logging.getLogger("restream.ingest.tls")

WATCH_EVERY = 2.0
TCP_ESTABLISHED = "01"


@dataclass(frozen=True)
class TlsLayout:
    port: int
    cert_file: str
    key_file: str
    work_dir: str


def tls_layout(text: str) -> TlsLayout:
    root = parse(text)
    servers = list(root.find("stream", "server"))
    if not servers:
        raise ValueError("TLS config: no stream { server { ... } }")
    server = servers[0]

    def one(name: str) -> str:
        values = [d.args[0] for d in server.find(name) if d.args]
        if not values:
            raise ValueError(f"TLS config: no {name}")
        return values[0]

    port = one("listen").rpartition(":")[2]
    if not port.isdigit():
        raise ValueError(f"TLS config: listen {port!r} has no port")
    pid = [d.args[0] for d in root.find("pid") if d.args]
    return TlsLayout(
        port=int(port),
        cert_file=one("ssl_certificate"),
        key_file=one("ssl_certificate_key"),
        work_dir=os.path.dirname(pid[0]) if pid else "/tmp/nginx/tls",
    )


def _fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the first certificate (the server's): what `openssl x509 -fingerprint
    -sha256` prints, to tell a renewal in the logs."""
    text = cert_pem.decode("ascii", "replace")
    end = text.find("-----END CERTIFICATE-----")
    der = ssl.PEM_cert_to_DER_cert(text[: end + len("-----END CERTIFICATE-----")])
    return hashlib.sha256(der).hexdigest()


def check_pair(cert_file: str, key_file: str) -> str:
    """The certificate's fingerprint when the files form a pair TLS can serve; else
    ValueError saying why (without the key's bytes)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert_file, key_file)
        with open(cert_file, "rb") as f:
            return _fingerprint(f.read())
    except (OSError, ssl.SSLError, ValueError) as e:
        raise ValueError(f"{cert_file} and {key_file} are not a usable pair: {e}") from None


def _files_digest(*paths: str) -> str | None:
    digest = hashlib.sha256()
    try:
        for path in paths:
            with open(path, "rb") as f:
                digest.update(hashlib.sha256(f.read()).digest())
    except OSError:
        return None
    return digest.hexdigest()


def _address(hex_address: str) -> str:
    """/proc/net/tcp's ``0100007F`` or tcp6's 32 hex digits (host-order words)."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def tls_peers(port: int, proc_net: str = "/proc/net") -> set[str]:
    """Addresses with an established TCP connection to local ``port``: the RTMPS clients
    (the pod's network namespace: only its own sockets)."""
    peers: set[str] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"{proc_net}/{table}") as f:
            next(f, None)
            for line in f:
                fields = line.split()
                if len(fields) < 4 or fields[3] != TCP_ESTABLISHED:
                    continue
                local, remote = fields[1], fields[2]
                if int(local.rpartition(":")[2], 16) == port:
                    peers.add(_address(remote.rpartition(":")[0]))
    return peers


class TlsTerminator:
    """Runs the TLS terminator's nginx, restarts it if it exits, reloads it on renewal."""

    def __init__(self, config: str, layout: TlsLayout, nginx: str = "nginx") -> None:
        self.config = config
        self.layout = layout
        self.nginx = nginx
        self.reloads = 0
        self.restarts = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._loaded: str | None = None  # digest of the files nginx was started/reloaded with
        self._refused: str | None = None  # digest of files already found unusable
        self._stop = asyncio.Event()
        # Why RTMPS is not served, while it is not (in /status: rtmpsError).
        self.error: str | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def protocol_of(self, address: str) -> str:
        return "RTMPS" if address in tls_peers(self.layout.port) else "RTMP"

    async def accepting(self) -> bool:
        if not self.running:
            return False
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.layout.port), 1.0
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        return True

    def stop(self) -> None:
        self._stop.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def run(self) -> None:
        backoff = Backoff(0.5, 10.0)
        while not self._stop.is_set():
            os.makedirs(self.layout.work_dir, exist_ok=True)
            try:
                fingerprint = check_pair(self.layout.cert_file, self.layout.key_file)
            except ValueError as e:
                # The Secret may not exist yet (cert-manager still issuing): its volume is
                # optional, RTMP serves meanwhile, and the files are looked for again.
                if str(e) != self.error:
                    log.error("RTMPS unavailable until the certificate is usable: %s", e)
                self.error = str(e)
                await self._pause(WATCH_EVERY)
                continue
            digest = _files_digest(self.layout.cert_file, self.layout.key_file)
            argv = [self.nginx, "-c", self.config, "-e", "stderr", "-p", self.layout.work_dir + "/"]
            try:
                proc = await process.spawn(argv, env=process.child_env())
            except OSError as e:
                log.error("cannot start the TLS terminator: %s", e)
                await self._pause(backoff.next_delay())
                continue
            self._proc, self._loaded, started = proc, digest, time.monotonic()
            self.error = None
            log.info(
                "TLS terminator started",
                extra={"pid": proc.pid, "port": self.layout.port, "certificate": fingerprint},
            )
            readers = [
                asyncio.create_task(process.read_lines(proc.stderr, _nginx_line)),
                asyncio.create_task(process.read_lines(proc.stdout, _nginx_line)),
            ]
            while proc.returncode is None and not self._stop.is_set():
                await self._pause(WATCH_EVERY)
                self._maybe_reload(proc)
            code = await process.stop(proc, signal.SIGTERM, grace=5.0)
            self.error = f"the TLS terminator exited ({code})"
            for task in readers:
                task.cancel()
            if self._stop.is_set():
                return
            self.restarts += 1
            if time.monotonic() - started > 30:
                backoff.reset()
            delay = backoff.next_delay()
            log.error("the TLS terminator exited (%s); restarting in %.1f s", code, delay)
            await self._pause(delay)

    def _maybe_reload(self, proc: asyncio.subprocess.Process) -> None:
        digest = _files_digest(self.layout.cert_file, self.layout.key_file)
        if digest is None or digest in (self._loaded, self._refused):
            return
        try:
            fingerprint = check_pair(self.layout.cert_file, self.layout.key_file)
        except ValueError as e:
            self._refused = digest
            log.error("new TLS files not loaded, still serving the previous certificate: %s", e)
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGHUP)
        self._loaded = digest
        self.reloads += 1
        log.info(
            "TLS certificate changed: reloaded (live connections keep the previous one)",
            extra={"certificate": fingerprint},
        )


def _nginx_line(line: str) -> None:
    if line.strip():
        level, text = nginx_line(line)
        log.log(level, "%s", text, extra={"source": "nginx-tls"})
