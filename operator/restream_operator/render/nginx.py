"""The ingest's nginx-rtmp configuration: a pure function of a few settings.

Nothing from a LiveStream's spec is interpolated here except booleans and the operator's
own integers, so no user input can inject into the configuration. The tests run this
exact text with nginx on loopback (only the ports and directories differ).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..agent import contract

RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
# Where the ingest pod mounts its kubernetes.io/tls Secret (the kubelet's own names).
TLS_DIR = "/etc/restream-tls"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"


@dataclass(frozen=True)
class NginxParams:
    rtmp_port: int = contract.RTMP_PORT
    agent_port: int = contract.AGENT_PORT
    stat_port: int = contract.NGINX_STAT_PORT
    hls_port: int = contract.HLS_PORT
    # A writable emptyDir: the root filesystem is read-only.
    work_dir: str = "/tmp/nginx"
    listen_host: str = ""  # "" listens on every address (a pod); tests pass 127.0.0.1
    hls: bool = False
    # RTMPS: nginx-rtmp also takes the TLS terminator's connections (tls_conf) on
    # proxy_port, which only localhost reaches.
    tls: bool = False
    rtmps_port: int = contract.RTMPS_PORT
    proxy_port: int = contract.RTMP_PROXY_PORT
    tls_dir: str = TLS_DIR


def nginx_conf(p: NginxParams) -> str:
    listen = f"{p.listen_host}:{p.rtmp_port}" if p.listen_host else str(p.rtmp_port)
    hls_listen = f"{p.listen_host}:{p.hls_port}" if p.listen_host else str(p.hls_port)
    agent = f"http://127.0.0.1:{p.agent_port}"
    # The PROXY protocol header carries the encoder's address: on_publish (the status,
    # the logs) sees it instead of the terminator's 127.0.0.1.
    proxied = f"\n        listen 127.0.0.1:{p.proxy_port} proxy_protocol;" if p.tls else ""
    hls_app = ""
    hls_server = ""
    if p.hls:
        # nginx-rtmp's hls module sees the published name before on_publish renames it
        # (it would write <key>.m3u8): the renamed stream is pushed to an application
        # of its own, which only this nginx may publish to.
        hls_app = f"""
            push rtmp://127.0.0.1:{p.rtmp_port}/hls;
        }}

        application hls {{
            live on;
            record off;
            allow publish 127.0.0.1;
            deny publish all;
            deny play all;
            hls on;
            hls_path {p.work_dir}/hls;
            hls_fragment 2s;
            hls_playlist_length 12s;
            hls_cleanup on;"""
        hls_server = f"""
    server {{
        listen {hls_listen};
        location /hls/ {{
            alias {p.work_dir}/hls/;
            types {{
                application/vnd.apple.mpegurl m3u8;
                video/mp2t ts;
            }}
            add_header Cache-Control no-cache;
            add_header Access-Control-Allow-Origin *;
        }}
    }}"""
    return f"""# Rendered by restream-operator. One worker: nginx-rtmp keeps streams per worker.
load_module {RTMP_MODULE};
worker_processes 1;
daemon off;
pid {p.work_dir}/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 1024;
}}

rtmp {{
    server {{
        listen {listen};{proxied}
        chunk_size 4096;
        # nginx-rtmp logs every session, with the published name (the key, before the
        # rename) and the play arguments (the token), to /var/log/nginx by default.
        access_log off;

        application {contract.APPLICATION} {{
            live on;
            record off;
            # A relay that joins a broadcast under way starts on a keyframe, with the
            # codec headers of both tracks before it (nginx sends the audio header with
            # the keyframe only while waiting for video).
            wait_key on;
            wait_video on;
            # Relays wait on the stream before the encoder publishes, so that they get
            # the broadcast from its first keyframe; they are told when it ends
            # (NetStream.Play.UnpublishNotify, which ffmpeg takes for the end of input).
            idle_streams on;
            publish_notify on;
            drop_idle_publisher 10s;
            # The agent checks keys and tokens and renames the published stream to
            # "{contract.STREAM_NAME}", so the key is never a stream name.
            notify_method post;
            on_publish {agent}/rtmp/publish;
            on_publish_done {agent}/rtmp/publish-done;
            on_play {agent}/rtmp/play;{hls_app}
        }}
    }}
}}

http {{
    access_log off;
    client_body_temp_path {p.work_dir}/client_body;
    proxy_temp_path {p.work_dir}/proxy;
    fastcgi_temp_path {p.work_dir}/fastcgi;
    uwsgi_temp_path {p.work_dir}/uwsgi;
    scgi_temp_path {p.work_dir}/scgi;

    server {{
        listen 127.0.0.1:{p.stat_port};
        location /stat {{
            rtmp_stat all;
        }}
    }}{hls_server}
}}
"""


def tls_conf(p: NginxParams) -> str:
    """The TLS terminator: a second nginx (stream module only) in the ingest pod.

    Apart from nginx-rtmp because a certificate renewal needs a reload, and a reload of
    nginx-rtmp would start a new worker without the live stream (streams live in a
    worker's memory): new relays would find nothing to play. Reloading this one leaves
    nginx-rtmp alone, and its old worker keeps the live encoder's connection (and the
    certificate it was made with) until that connection ends.
    """
    listen = f"{p.listen_host}:{p.rtmps_port}" if p.listen_host else str(p.rtmps_port)
    return f"""# Rendered by restream-operator: RTMPS for encoders, decrypted to nginx-rtmp.
load_module {STREAM_MODULE};
worker_processes 1;
daemon off;
pid {p.work_dir}/tls/nginx.pid;
error_log stderr warn;

events {{
    worker_connections 1024;
}}

stream {{
    server {{
        listen {listen} ssl;
        ssl_certificate {p.tls_dir}/{TLS_CERT};
        ssl_certificate_key {p.tls_dir}/{TLS_KEY};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_handshake_timeout 10s;
        proxy_pass 127.0.0.1:{p.proxy_port};
        proxy_protocol on;
        proxy_connect_timeout 5s;
    }}
}}
"""
