"""The operator as a real process against the local control plane (what users run)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hack.waiting import wait_for

from .controlplane import LocalCluster

CHECKOUT = Path(__file__).resolve().parents[2]


class OperatorProcess:
    def __init__(
        self,
        kubeconfig: Path,
        log: Path,
        env: dict[str, str] | None = None,
        detached: bool = False,  # `make demo`: outlives the command that started it
    ) -> None:
        self.detached = detached
        self.kubeconfig = kubeconfig
        self.log = log
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "RESTREAM_AGENT_POLL_SECONDS": "1",
            # Tests reach nothing but loopback: no DNS lookups of destination hosts.
            "RESTREAM_RESOLVE_DESTINATIONS": "false",
            # As in the image: glibc's per-thread arenas would otherwise inflate RSS.
            "MALLOC_ARENA_MAX": "2",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.args: tuple[str, ...] = ()

    def start(self, *args: str) -> None:
        """Starts the operator; with no args, with the args of the previous start."""
        assert self.process is None
        self.args = args or self.args
        args = self.args
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "restream_operator.cli",
                    "run",
                    "--standalone",
                    "--liveness",
                    "",
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=CHECKOUT,
                start_new_session=self.detached,
            )
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited at once:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for_webhooks(
    cluster: LocalCluster, timeout: float = 30, name: str = "restream-operator"
) -> None:
    """Until the operator has registered its validating webhook configuration (``name``:
    its RESTREAM_WEBHOOK_CONFIGURATION_NAME)."""
    wait_for(
        lambda: (
            cluster.kubectl("get", "validatingwebhookconfiguration", name, check=False).returncode
            == 0
        ),
        "the operator to register its admission webhook",
        timeout,
        every=0.2,
    )


def remove_webhook_configuration(cluster: LocalCluster) -> None:
    """A configuration left behind by a killed operator would block every admission."""
    cluster.kubectl(
        "delete",
        "validatingwebhookconfiguration",
        "restream-operator",
        "--ignore-not-found",
        check=False,
    )
