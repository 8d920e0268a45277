# syntax=docker/dockerfile:1
# Two images from one file (issue #6 proves them with `make images`):
#   --target operator  the operator (Python + the package)
#   --target media     the ingest and relay pods (adds ffmpeg, nginx-rtmp, tini)
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY operator /src/operator
RUN python3 -m venv /opt/restream \
 && /opt/restream/bin/pip install --no-cache-dir /src

FROM ${BASE} AS operator
LABEL org.opencontainers.image.title="restream-operator" \
      org.opencontainers.image.description="Kubernetes operator: LiveStream -> RTMP ingest + one relay per destination" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 restream && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin restream
COPY --from=build /opt/restream /opt/restream
# MALLOC_ARENA_MAX: kopf runs sync handlers in threads; glibc's per-thread malloc arenas
# would otherwise grow the operator's RSS far beyond what it uses.
ENV PATH=/opt/restream/bin:$PATH PYTHONUNBUFFERED=1 MALLOC_ARENA_MAX=2
USER 10001:10001
ENTRYPOINT ["restream-operator"]
CMD ["run"]

FROM operator AS media
LABEL org.opencontainers.image.title="restream-media" \
      org.opencontainers.image.description="restream-operator ingest (nginx-rtmp) and relay (ffmpeg) agents"
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg nginx-light libnginx-mod-rtmp tini \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "restream-agent"]
CMD ["--help"]
