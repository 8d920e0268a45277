# Two images from one file:
#   --target operator  the operator (Python + the package and its dependencies)
#   --target media     the ingest and relay pods (the agents, ffmpeg, nginx with the rtmp
#                      module, tini)
#
# `make images` (hack/images/build.sh) builds both for real, on a private Docker daemon,
# from a `debootstrap --variant=minbase bookworm` root file system imported as ${BASE}, and
# checks them (hack/images/check.sh). Nothing here needs BuildKit (it is built with the
# classic builder), and no stage pulls anything but ${BASE}.
#
# Both final stages run as UID/GID 10001 (the operator renders pods with runAsUser 10001)
# on a read-only root file system: nothing in them writes outside /tmp (an emptyDir).
# No compiler, no pip, no apt lists in the final stages: the virtualenvs are built in
# the build stages and copied.
ARG BASE=debian:bookworm-slim

# --- build-base: Python and pip's trust store ----------------------------------------------
FROM ${BASE} AS build-base
ARG DEBIAN_FRONTEND=noninteractive
# Extra root CAs of the build machine's network, for pip behind a TLS-inspecting proxy:
# build.sh puts them here as *.crt, otherwise the folder holds only a README. Only the
# build stages trust them; the final stages never see them.
COPY hack/images/build-ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore

# --- build: the operator's virtualenv (the package and its dependencies, all wheels) ------
FROM build-base AS build
RUN python3 -m venv /opt/restream
# Dependencies first, from pyproject.toml alone: a change to the code reuses this layer.
# kubernetes>=35 ships an asyncio twin of its client (kubernetes/aio, 68 MB) that nothing
# here imports; the operator image's check imports every module of the package.
# /agent-deps: the wheels of the agents' dependencies besides the standard library, h11
# (restream_operator.httpclient) and prometheus_client (/metrics), at the versions
# resolved here for the operator.
COPY pyproject.toml /src/
RUN python3 -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt \
 && /opt/restream/bin/pip install --only-binary=:all: -r /tmp/requirements.txt \
 && /opt/restream/bin/pip download --only-binary=:all: --no-deps --dest /agent-deps \
      "h11==$(/opt/restream/bin/python -c 'import importlib.metadata as m; print(m.version("h11"))')" \
      "prometheus_client==$(/opt/restream/bin/python -c 'import importlib.metadata as m; print(m.version("prometheus_client"))')" \
 && rm -rf /opt/restream/lib/python3*/site-packages/kubernetes/aio
# LICENSE: the wheel's metadata carries it (pyproject's license-files default).
COPY README.md LICENSE /src/
# operator/ holds the console's browser files from npm (static/vendor/: hls.js), which
# `make images` has `make console-assets` put there first: no Node in these stages.
COPY operator /src/operator
RUN /opt/restream/bin/pip wheel --no-deps --wheel-dir /wheels /src \
 && /opt/restream/bin/pip install --no-deps /wheels/*.whl \
 && /opt/restream/bin/pip uninstall -y pip setuptools \
 && rm -f /opt/restream/bin/Activate.ps1

# --- build-agent: the media image's virtualenv -------------------------------------------
# The agents use the standard library, h11 and prometheus_client only: the package
# without the operator's dependencies (kopf, kubernetes, pydantic...), and without the
# operator's command.
FROM build-base AS build-agent
COPY --from=build /wheels /wheels
COPY --from=build /agent-deps /agent-deps
RUN python3 -m venv /opt/restream \
 && /opt/restream/bin/pip install --no-deps --no-index /wheels/*.whl /agent-deps/*.whl \
 && /opt/restream/bin/pip uninstall -y pip setuptools \
 && rm -f /opt/restream/bin/Activate.ps1 /opt/restream/bin/restream-operator

# --- runtime: what both images share -----------------------------------------------------
FROM ${BASE} AS runtime
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 10001 restream \
 && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin restream
# MALLOC_ARENA_MAX: reconciles and status writes run in threads; glibc's per-thread malloc arenas
# would otherwise grow the operator's RSS far beyond what it uses.
# PYTHONDONTWRITEBYTECODE: the root file system is read-only; the venvs ship their .pyc.
ENV PATH=/opt/restream/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_ARENA_MAX=2
WORKDIR /tmp

# --- operator ----------------------------------------------------------------------------
FROM runtime AS operator
COPY --from=build /opt/restream /opt/restream
USER 10001:10001
ENTRYPOINT ["restream-operator"]
CMD ["run"]
ARG VERSION=0.0.0
# Set to where your copy of this repository lives (docker build --build-arg SOURCE=...).
ARG SOURCE=https://github.com/restream-operator/restream-operator
LABEL org.opencontainers.image.title="restream-operator" \
      org.opencontainers.image.description="Kubernetes operator: LiveStream -> RTMP ingest + one relay per destination" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# --- media: the ingest (nginx-rtmp + agent) and relay (ffmpeg + agent) pods --------------
FROM runtime AS media
ARG DEBIAN_FRONTEND=noninteractive
# Debian's nginx has the rtmp module as a dynamic module: the operator's nginx.conf loads
# /usr/lib/nginx/modules/ngx_rtmp_module.so itself, and the agent runs
# `nginx -c <conf> -e stderr -p /tmp/nginx/`, every path under /tmp. The stream module
# (libnginx-mod-stream) is RTMPS's TLS terminator, a second nginx the agent runs. Debian's writable
# defaults (/var/log/nginx, /var/lib/nginx) are removed: nothing may rely on them.
# Mesa's GL drivers and their LLVM (160 MB of the 460 MB ffmpeg brings) are removed too:
# no binary links them; libGL/libEGL load them only for a GL context, which neither ffmpeg
# (-c copy) nor nginx creates. dpkg records the broken dependency: an image built FROM
# this one that runs apt-get must `apt-get install -f` first (or start from `runtime`).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg nginx libnginx-mod-rtmp libnginx-mod-stream tini \
 && dpkg --purge --force-depends libgl1-mesa-dri libllvm15 libz3-4 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && rm -rf /var/log/nginx /var/lib/nginx
COPY --from=build-agent /opt/restream /opt/restream
USER 10001:10001
# tini is PID 1: it reaps what nginx and ffmpeg leave behind and forwards signals. The
# entrypoint is tini alone, so that a pod's `args` (not `command`) keep it.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["restream-agent", "--help"]
ARG VERSION=0.0.0
ARG SOURCE=https://github.com/restream-operator/restream-operator
LABEL org.opencontainers.image.title="restream-operator-media" \
      org.opencontainers.image.description="restream-operator ingest (nginx-rtmp) and relay (ffmpeg) agents" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
