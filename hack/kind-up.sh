#!/usr/bin/env bash
# `make kind-up`: the tested local path, step for step, on a kind cluster.
# Needs Docker, kind, kubectl and helm on the machine (the CI machines have no Docker
# daemon, so this path is not run there; the steps it shares with the tested path --
# the images from the Dockerfile, the Helm chart, the example -- are the tested ones).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(python3 -c 'import tomllib;print(tomllib.load(open("pyproject.toml","rb"))["project"]["version"])')
for tool in docker kind kubectl helm; do
  command -v "$tool" >/dev/null || { echo "kind-up: $tool is required" >&2; exit 1; }
done

kind get clusters | grep -qx restream || kind create cluster --config hack/kind/cluster.yaml

# 1. images: the same Dockerfile targets that `make images` builds and checks
docker build --build-arg VERSION="$version" --target operator -t "restream-operator/operator:$version" .
docker build --build-arg VERSION="$version" --target media -t "restream-operator/media:$version" .
kind load docker-image --name restream "restream-operator/operator:$version" "restream-operator/media:$version"

# 2. the chart, as tested against the local control plane
helm upgrade --install restream-operator charts/restream-operator \
  --namespace restream-system --create-namespace --wait --timeout 3m

# 3. the example LiveStream, with its ingest on a NodePort mapped to the host's 1935
kubectl apply -f examples/api-video-compatible.yaml
kubectl patch livestream launch --type merge -p '{"spec":{"ingest":{"serviceType":"NodePort"}}}'
kubectl wait livestream/launch --for=condition=IngestReady --timeout=3m
kubectl patch service launch-ingest --type json \
  -p '[{"op":"replace","path":"/spec/ports/0/nodePort","value":31935}]' || true
kubectl get livestreams -o wide
key=$(kubectl get secret launch-stream-key -o jsonpath='{.data.streamKey}' | base64 -d)
echo
echo "Publish from this machine:"
echo "  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine \\"
echo "    -c:v libx264 -preset veryfast -g 60 -c:a aac -f flv rtmp://127.0.0.1:1935/live/$key"
echo "OBS: Server rtmp://127.0.0.1:1935/live, Stream Key $key"
