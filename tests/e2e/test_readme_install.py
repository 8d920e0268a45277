"""The README's install section, followed literally on the local cluster with a real node
(issue 20): the code blocks marked `<!-- install-test: run -->` run as written, in order,
in one bash shell, from a folder holding the checkout's `charts/` and `examples/`; the one
marked `stand-in` (build and push the images) is replaced by loading the images
`make images` built into the node's containerd under the names the README pushes them
as. The operator comes up from the chart, and the first LiveStream, with the Secrets the
README creates, becomes Ready.

The cluster is made to look like one of your own first: kwok's simulated node is
cordoned and the real node's taint lifted, so the chart's defaults (no nodeSelector, no
tolerations, pull policy IfNotPresent) put every pod on the real node.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from hack.localcluster.controlplane import KWOK_NODE_NAME
from hack.localcluster.node import REAL_NODE_TOLERATION, NodeCluster
from hack.localcluster.product import (
    IMAGE_TARS,
    VERSION,
    build_images,
    helm_binary,
    reported_on_failure,
)
from tests.docs import CHECKOUT, install_blocks

from .show import figure

pytestmark = pytest.mark.e2e

LIVESTREAM = "keynote"  # examples/secrets.yaml
# What a user would type at `read -rs`: the platforms' keys (nothing connects to them:
# no encoder publishes, and nothing leaves this machine).
KEYS = {
    "YOUTUBE_KEY": "abcd-efgh-ijkl-mnop-qrst",
    "TWITCH_KEY": "live_123456789_AbCdEfGhIjKlMnOpQrStUvWxYz",
    "FACEBOOK_KEY": "FB-1234567890123456-0-AbCdEfGhIjKlMnOp",
}


def bash(script: str, env: dict[str, str], cwd: Path, timeout: float) -> dict[str, str]:
    """Runs ``script`` under `set -euo pipefail`; returns the environment it ends with
    (what it exported: the README's REGISTRY and VERSION)."""
    out = cwd / "env.out"
    proc = subprocess.run(
        ["bash", "-c", f'set -euo pipefail\n{script}\nenv -0 > "{out}"'],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    print(proc.stdout[-3000:], proc.stderr[-3000:])
    assert proc.returncode == 0, f"a README block failed:\n{proc.stderr[-3000:]}"
    pairs = (item.split("=", 1) for item in out.read_text().split("\0") if "=" in item)
    return dict(pairs)


def test_readme_install_brings_the_first_livestream_to_ready(
    node_cluster: NodeCluster, tmp_path: Path
) -> None:
    cluster = node_cluster
    blocks = install_blocks()
    stand_in = next(i for i, b in enumerate(blocks) if b.marker and b.marker != "run")
    before, after = blocks[:stand_in], blocks[stand_in + 1 :]
    assert before and after

    # A cluster of one's own: every pod may be scheduled on the real node, and only there.
    cluster.kubectl("cordon", KWOK_NODE_NAME)
    cluster.kubectl("taint", "node", cluster.node.name, f"{REAL_NODE_TOLERATION['key']}-")
    build_images()  # a no-op when `make images` is current

    # The user's machine: a clone, their kubeconfig, helm and kubectl, a docker login.
    clone = tmp_path / "clone"
    clone.mkdir()
    for folder in ("charts", "examples"):
        (clone / folder).symlink_to(CHECKOUT / folder)
    docker = tmp_path / "docker"
    docker.mkdir()
    login = base64.b64encode(b"ci:not-a-real-password").decode()
    (docker / "config.json").write_text(
        json.dumps({"auths": {"registry.example.com": {"auth": login}}})
    )
    helm_home = tmp_path / "helm"
    env = {
        **os.environ,
        **KEYS,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{helm_binary().parent}:{cluster.bin_dir}:{os.environ['PATH']}",
        "DOCKER_CONFIG": str(docker),
        "HELM_CACHE_HOME": str(helm_home / "cache"),
        "HELM_CONFIG_HOME": str(helm_home / "config"),
        "HELM_DATA_HOME": str(helm_home / "data"),
    }

    t0 = time.monotonic()
    env = bash("\n".join(b.text for b in before), env, clone, timeout=60)
    assert env["VERSION"] == VERSION, "the README's VERSION is not the images' version"

    # The stand-in for the push: the images `make images` built, under the README's names.
    for tar, target in zip(IMAGE_TARS, ("operator", "media"), strict=True):
        cluster.node.import_image(tar)
        cluster.node.tag_image(
            f"docker.io/restream-operator/{target}:{VERSION}",
            f"{env['REGISTRY']}/{target}:{VERSION}",
        )

    evidence = [
        ("get", "pods", "-A", "-o", "wide"),
        ("get", "livestream", LIVESTREAM, "-o", "yaml"),
        ("-n", "restream-system", "logs", "deployment/restream-operator", "--tail=40"),
    ]
    with reported_on_failure(cluster, evidence):
        bash("\n".join(b.text for b in after), env, clone, timeout=900)
    figure("readme_install_to_ready_s", round(time.monotonic() - t0, 1))

    # What the README promised: the operator from the user's registry, on the node; the
    # LiveStream Ready with its relays waiting; the keys only in the Secrets.
    pods = json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert f"{env['REGISTRY']}/operator:{VERSION}" in images
    assert f"{env['REGISTRY']}/media:{VERSION}" in images
    ours = [p for p in pods if p["metadata"]["namespace"] in ("default", "restream-system")]
    assert ours and all(p["spec"]["nodeName"] == cluster.node.name for p in ours)
    ls = json.loads(cluster.kubectl("get", "livestream", LIVESTREAM, "-o", "json").stdout)
    states = {r["name"]: r["state"] for r in ls["status"]["restreams"]}
    assert states == {"YouTube": "Idle", "Twitch": "Idle", "Facebook Live": "Disabled"}, states
    secret = json.loads(cluster.kubectl("get", "secret", "youtube", "-o", "json").stdout)
    assert base64.b64decode(secret["data"]["key"]).decode() == KEYS["YOUTUBE_KEY"]
    dump = json.dumps(ls) + json.dumps(pods)
    assert not any(key in dump for key in KEYS.values()), "a key leaked into a spec or status"
