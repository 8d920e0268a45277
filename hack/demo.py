"""`make demo`: the local control plane, the CRD, the operator and the example LiveStream.

Runs against the cluster `make cluster-up` started (.cluster/), starts the operator as a
local process (its PID in .cluster/operator.pid; `make cluster-down` stops it), applies
examples/api-video-compatible.yaml and prints what a user would look at.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster.controlplane import free_port
from tests.operator_process import OperatorProcess

CHECKOUT = Path(__file__).resolve().parents[1]
STATE = CHECKOUT / ".cluster"
KUBECONFIG = STATE / "kubeconfig"
KUBECTL = STATE / "bin" / "kubectl"
PIDFILE = STATE / "operator.pid"
LOG = STATE / "operator.log"


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), f"--kubeconfig={KUBECONFIG}", *args],
        capture_output=True,
        text=True,
        check=check,
    )


def operator_running() -> bool:
    if not PIDFILE.exists():
        return False
    pid = int(PIDFILE.read_text())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"restream_operator" in cmdline


def start_operator() -> None:
    # The example's destinations are public names: the operator does not resolve them
    # (a demo should not depend on DNS to the internet); the name checks still apply.
    proc = OperatorProcess(KUBECONFIG, LOG, env={"RESTREAM_AGENT_POLL_SECONDS": "2"}, detached=True)
    proc.start("--webhook", f"local:127.0.0.1:{free_port()}")
    assert proc.process is not None
    PIDFILE.write_text(str(proc.process.pid))


def wait(what: str, check: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.5)
    raise SystemExit(f"demo: timed out waiting for {what}; see {LOG}")


def main() -> int:
    if not KUBECONFIG.exists():
        print("demo: no local cluster; run `make cluster-up` first", file=sys.stderr)
        return 1
    kubectl("apply", "--server-side", "-f", str(CHECKOUT / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/livestreams.restream.dev")
    if not operator_running():
        start_operator()
    wait(
        "the operator's admission webhook",
        lambda: (
            kubectl(
                "get", "validatingwebhookconfiguration", "restream-operator", check=False
            ).returncode
            == 0
        ),
    )
    out = kubectl("apply", "-f", str(CHECKOUT / "examples" / "api-video-compatible.yaml"))
    print(out.stdout.strip())
    for line in out.stderr.strip().splitlines():
        print(f"  {line}")

    def ready() -> bool:
        got = kubectl("get", "livestream", "launch", "-o", "json", check=False)
        if got.returncode:
            return False
        conds = json.loads(got.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    wait("the LiveStream to be Ready", ready)
    print()
    print(kubectl("get", "livestreams", "-o", "wide").stdout)
    print(
        kubectl(
            "get", "deployments,services,secrets", "-l", "restream.dev/livestream=launch"
        ).stdout
    )
    url = kubectl("get", "livestream", "launch", "-o", "jsonpath={.status.ingest.rtmpUrl}").stdout
    print(f"Ingest URL: {url}/<stream key>")
    print(
        "Stream key: kubectl get secret launch-stream-key -o jsonpath='{.data.streamKey}' "
        "| base64 -d"
    )
    print()
    print("What is simulated: the node is kwok's. Pods are scheduled and report Ready, but")
    print("nothing runs in them: no agent answers, so the restreams show Unknown (healthy by")
    print("their pods' readiness) and nothing can be published. Everything else is real: the")
    print("apiserver, the CRD and its rules, the admission webhooks, the operator and the")
    print("objects it made.")
    print(f"The operator logs to {LOG}. Try: kubectl edit livestream launch")
    print(f"export KUBECONFIG={KUBECONFIG} PATH={KUBECTL.parent}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
