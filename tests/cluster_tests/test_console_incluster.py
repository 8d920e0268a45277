"""`restream-operator console --in-cluster` against the real local control plane.

The console runs as a process on 127.0.0.1, told of the API server the way a pod is
(KUBERNETES_SERVICE_HOST and _PORT) and given the cluster's CA the way the chart gives
it (the kube-root-ca.crt ConfigMap); it has no token of its own. A trap: its
environment names the admin kubeconfig, which it must never use. Viewers are
ServiceAccounts with real RBAC, their tokens made by the API server (TokenRequest):
each sees what their own rights show, signed in on the sign-in page or through a front
proxy's ``Authorization: Bearer``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from hack.localcluster.controlplane import LocalCluster, free_port
from hack.localcluster.pki import CertificateAuthority
from hack.media.harness import Proc
from hack.waiting import wait_for
from tests.cluster_tests.browser import Browsing
from tests.cluster_tests.test_console import another_local_site, create, row
from tests.unit.test_console_auth import send
from tests.unit.test_console_security import Reply

pytestmark = pytest.mark.cluster


CHECKOUT = Path(__file__).resolve().parents[2]
PUBLIC = "console.example.test"  # the name a front proxy would serve it at, over https


@dataclass
class Console:
    port: int
    process: Proc
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.host}"

    def request(
        self,
        path: str,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: str | None = None,
    ) -> Reply:
        return send(self.port, path, method, headers, body)

    def sign_in(self, token: str, host: str | None = None, **fields: str) -> Reply:
        host = host or self.host
        origin = self.origin if host == self.host else f"https://{host}"
        return self.request(
            "/sign-in",
            "POST",
            {"Host": host, "Origin": origin,
             "Content-Type": "application/x-www-form-urlencoded"},
            urllib.parse.urlencode({"token": token, **fields}),
        )  # fmt: skip

    def session(self, token: str, **fields: str) -> dict[str, str]:
        """The Cookie header of a session signed in with ``token``."""
        reply = self.sign_in(token, **fields)
        assert reply.status == 303, reply.body
        name, _, rest = reply.headers["Set-Cookie"].partition("=")
        return {"Cookie": f"{name}={rest.split(';')[0]}"}

    def first_event(self, headers: dict[str, str]) -> tuple[str, dict[str, Any]]:
        """The feed's first event (its snapshot, or why it failed), read from the open
        stream and the stream closed."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", "/api/livestreams/stream", headers={"Host": self.host, **headers})
            response = conn.getresponse()
            assert response.status == 200, response.read().decode()
            kind = ""
            while line := response.readline().decode():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ").strip()
                elif line.startswith("data: ") and kind:
                    return kind, json.loads(line.removeprefix("data: "))
            raise AssertionError("the feed ended without an event")
        finally:
            conn.close()


@contextlib.contextmanager
def running_console(cluster: LocalCluster, log: Path, *args: str) -> Iterator[Console]:
    port = free_port()
    # The CA as the chart's pod gets it: from the ConfigMap every namespace is given.
    ca = log.with_name("ca.crt")
    ca.write_text(cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", "default",
                                  "-o", "jsonpath={.data.ca\\.crt}").stdout)  # fmt: skip
    env = {
        **os.environ,
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(cluster.api_port),
        # Credentials lying around that a careless client would pick up: never used.
        "KUBECONFIG": str(cluster.kubeconfig),
    }
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "restream_operator.cli", "console", "--in-cluster",
             "--listen", f"127.0.0.1:{port}", "--public-url", f"http://127.0.0.1:{port}",
             "--public-url", f"https://{PUBLIC}", "--api-ca-file", str(ca),
             *args],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, env=env,
            cwd=CHECKOUT,
        )  # fmt: skip
    console = Console(port, Proc("console", process, log), log)
    try:
        wait_for(lambda: _healthy(console), "the console to answer /healthz", timeout=30)
        yield console
    finally:
        console.process.stop(timeout=15)


def _healthy(console: Console) -> bool:
    assert console.process.alive(), console.log.read_text()[-3000:]
    try:
        return console.request("/healthz", headers={"Host": "10.0.0.1:8080"}).body == "ok\n"
    except OSError:
        return False


@pytest.fixture
def console(cluster: LocalCluster, crds: None, tmp_path: Path) -> Iterator[Console]:
    with running_console(cluster, tmp_path / "console.log") as c:
        yield c


def service_account_token(
    cluster: LocalCluster, namespace: str, name: str, *, verbs: str | None = None
) -> str:
    """A ServiceAccount's token; with ``verbs``, the account may use them on
    LiveStreams in ``namespace`` and nothing else."""
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    if verbs:
        cluster.kubectl("create", "role", name, "-n", namespace, f"--verb={verbs}",
                        "--resource=livestreams.restream.dev")  # fmt: skip
        cluster.kubectl("create", "rolebinding", name, "-n", namespace, f"--role={name}",
                        f"--serviceaccount={namespace}:{name}")  # fmt: skip
    return cluster.kubectl("create", "token", name, "-n", namespace).stdout.strip()


@pytest.fixture
def two_namespaces(cluster: LocalCluster, namespace: str, crds: None) -> Iterator[str]:
    """``namespace`` with LiveStream mine, and another with theirs; the other's name."""
    other = f"{namespace}-other"
    cluster.kubectl("create", "namespace", other)
    try:
        create(cluster, namespace, "mine")
        create(cluster, other, "theirs")
        yield other
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def _names(snapshot: dict[str, Any]) -> set[tuple[str, str]]:
    return {(i["namespace"], i["name"]) for i in snapshot["items"]}


def test_a_namespace_viewer_signs_in_and_sees_only_what_their_rbac_lets_them_list(
    cluster: LocalCluster, namespace: str, two_namespaces: str, console: Console
) -> None:
    token = service_account_token(cluster, namespace, "viewer", verbs="get,list,watch")
    reply = console.sign_in(token)
    assert (reply.status, reply.headers["Location"]) == (303, "/")
    cookie = reply.headers["Set-Cookie"]
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert cookie.startswith("restream-console=")
    assert {"httponly", "samesite=strict", "path=/"} <= attributes and "secure" not in attributes
    session = {"Cookie": cookie.split(";")[0]}

    assert console.request("/", headers=session).status == 200
    kind, snapshot = console.first_event(session)
    assert kind == "snapshot"
    assert snapshot["namespace"] == namespace
    assert "your ServiceAccount's" in snapshot["note"]
    assert _names(snapshot) == {(namespace, "mine")}  # not theirs, though the cluster has it

    # Behind https (a front proxy's name), the cookie is Secure and host-only.
    secure = console.sign_in(token, host=PUBLIC)
    assert secure.status == 303
    assert secure.headers["Set-Cookie"].startswith("__Host-restream-console=")
    assert "secure" in secure.headers["Set-Cookie"].lower()


def test_a_front_proxys_bearer_token_needs_no_sign_in(
    cluster: LocalCluster, namespace: str, two_namespaces: str, console: Console
) -> None:
    viewer = service_account_token(cluster, namespace, "viewer", verbs="get,list,watch")
    kind, snapshot = console.first_event({"Authorization": f"Bearer {viewer}"})
    assert kind == "snapshot" and _names(snapshot) == {(namespace, "mine")}

    # Another user, allowed everywhere, through the same console at the same time.
    name = f"{namespace}-all"
    cluster.kubectl("create", "clusterrole", name, "--verb=get,list,watch",
                    "--resource=livestreams.restream.dev")  # fmt: skip
    try:
        everywhere = service_account_token(cluster, namespace, "everywhere")
        cluster.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
                        f"--serviceaccount={namespace}:everywhere")  # fmt: skip
        kind, snapshot = console.first_event({"Authorization": f"Bearer {everywhere}"})
        assert kind == "snapshot" and snapshot["namespace"] is None
        assert {(namespace, "mine"), (two_namespaces, "theirs")} <= _names(snapshot)
        # The first viewer's rights are still their own.
        _, again = console.first_event({"Authorization": f"Bearer {viewer}"})
        assert _names(again) == {(namespace, "mine")}
    finally:
        cluster.kubectl("delete", "clusterrolebinding", name, check=False)
        cluster.kubectl("delete", "clusterrole", name, check=False)
    page = console.request("/", headers={"Authorization": f"Bearer {viewer}"})
    assert page.status == 200 and "Set-Cookie" not in page.headers


def test_a_token_the_api_server_refuses_is_refused_with_its_reason(
    cluster: LocalCluster, namespace: str, console: Console
) -> None:
    good = service_account_token(cluster, namespace, "gone")
    cluster.kubectl("delete", "serviceaccount", "gone", "-n", namespace)  # its tokens die
    for token in ("not-a-token", good):
        reply = console.sign_in(token)
        assert reply.status == 401
        assert "The API server refused the token: 401 Unauthorized" in reply.body
        assert 'role="alert"' in reply.body and '<form method="post"' in reply.body
        assert "Set-Cookie" not in reply.headers
        proxied = console.request("/api/livestreams/stream",
                                  headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert proxied.status == 401 and "401 Unauthorized" in proxied.body
        assert "event:" not in proxied.body


def test_without_a_token_there_is_the_sign_in_page_and_no_data(
    cluster: LocalCluster, namespace: str, console: Console
) -> None:
    create(cluster, namespace, "secretive")
    page = console.request("/")
    assert (page.status, page.headers["Location"]) == (303, "/sign-in")
    sign_in = console.request("/sign-in")
    assert sign_in.status == 200 and "Bearer token" in sign_in.body
    feed = console.request("/api/livestreams/stream")
    assert feed.status == 401 and "secretive" not in feed.body and "event:" not in feed.body
    # A cookie the console did not hand out is no session.
    forged = console.request("/api/livestreams/stream", headers={"Cookie": "restream-console=x"})
    assert forged.status == 401


def test_a_token_with_no_rights_signs_in_and_sees_the_api_servers_refusal(
    cluster: LocalCluster, namespace: str, console: Console
) -> None:
    """Signing in proves who one is, not what one may do: RBAC decides that, request by
    request, and the console shows its answer."""
    token = service_account_token(cluster, namespace, "nobody")
    session = console.session(token, namespace=namespace)
    kind, failure = console.first_event(session)
    assert kind == "failure"
    assert "403" in failure["message"] and "cannot list resource" in failure["message"]
    assert f"system:serviceaccount:{namespace}:nobody" in failure["message"]


def test_signing_out_ends_the_session_and_its_live_feed(
    cluster: LocalCluster, namespace: str, crds: None, console: Console
) -> None:
    token = service_account_token(cluster, namespace, "viewer", verbs="get,list,watch")
    session = console.session(token)
    watching, ended = threading.Event(), threading.Event()

    def follow() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", console.port, timeout=60)
        try:
            conn.request("GET", "/api/livestreams/stream",
                         headers={"Host": console.host, **session})  # fmt: skip
            response = conn.getresponse()
            while line := response.readline():
                if line.startswith(b"event: snapshot"):
                    watching.set()
        finally:
            conn.close()
            ended.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert watching.wait(30), "no snapshot"
    assert not ended.is_set()
    out = console.request("/sign-out", "POST", {**session, "Origin": console.origin})
    assert out.status == 303
    assert ended.wait(10), "the feed went on after sign-out"
    assert console.request("/", headers=session).status == 303
    assert console.request("/api/livestreams/stream", headers=session).status == 401


def test_the_console_logs_no_token_and_stops_on_sigterm(
    cluster: LocalCluster, namespace: str, crds: None, console: Console
) -> None:
    token = service_account_token(cluster, namespace, "viewer", verbs="get,list,watch")
    session = console.session(token)
    console.first_event(session)
    console.first_event({"Authorization": f"Bearer {token}"})
    console.sign_in("not-a-token")
    console.process.send(signal.SIGTERM)
    assert console.process.popen.wait(timeout=15) == 0
    log = console.log.read_text()
    assert "POST /sign-in 303" in log and "POST /sign-in 401" in log
    assert f"system:serviceaccount:{namespace}:viewer" in log  # who signed in
    session_id = session["Cookie"].split("=", 1)[1]
    assert token not in log and session_id not in log and "not-a-token" not in log
    for line in log.splitlines():
        json.loads(line)  # JSON lines only


def test_in_the_browser_a_viewer_signs_in_and_sees_their_livestreams(
    cluster: LocalCluster, namespace: str, two_namespaces: str, console: Console,
    browsing: Browsing,
) -> None:  # fmt: skip
    token = service_account_token(cluster, namespace, "viewer", verbs="get,list,watch")
    page = browsing.new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    refused = "Failed to load resource: the server responded with a status of 401"
    response = page.goto(f"{console.origin}/")
    assert response is not None and response.status == 200
    assert page.url == f"{console.origin}/sign-in"

    page.get_by_label("Bearer token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("401 Unauthorized")
    assert page.context.cookies() == []

    page.get_by_label("Bearer token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{console.origin}/")
    expect(page.get_by_role("status")).to_have_text(re.compile("^Live"))
    expect(page.locator("#scope")).to_contain_text(f"showing namespace {namespace}")
    expect(row(page, namespace, "mine")).to_have_count(1)
    expect(row(page, two_namespaces, "theirs")).to_have_count(0)
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert token not in json.dumps(page.context.storage_state())

    # A link followed from another site's page opens the console (and only that).
    with another_local_site() as site:
        other = page.context.new_page()
        other.goto(site)
        stream = f"{console.origin}/api/livestreams/stream"
        with other.expect_response(stream) as answer:
            other.evaluate(
                "url => fetch(url, {credentials: 'include', mode: 'no-cors'}).catch(() => null)",
                stream,
            )
        assert answer.value.status == 403
        other.evaluate("url => { location.href = url }", f"{console.origin}/")
        expect(row(other, namespace, "mine")).to_have_count(1)
        other.close()

    page.goto(f"{console.origin}/sign-out")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{console.origin}/sign-in")
    page.goto(f"{console.origin}/")
    assert page.url == f"{console.origin}/sign-in"
    # No script error, no Content-Security-Policy violation; only the wrong token's 401.
    assert [e for e in errors if not e.startswith(refused)] == []
    assert len(errors) == 1


def test_an_idle_session_ends(
    cluster: LocalCluster, namespace: str, crds: None, tmp_path: Path
) -> None:
    token = service_account_token(cluster, namespace, "viewer", verbs="get,list,watch")
    idle = ("--session-idle-minutes", "0.05")  # 3 s
    with running_console(cluster, tmp_path / "console.log", *idle) as console:
        session = console.session(token)
        assert console.request("/", headers=session).status == 200
        time.sleep(1.0)
        assert console.request("/", headers=session).status == 200  # used: it lives on
        time.sleep(4.0)  # (any request with the session would count as use)
        assert console.request("/", headers=session).status == 303
        assert console.request("/api/livestreams/stream", headers=session).status == 401


def test_an_api_server_the_ca_does_not_vouch_for_gets_no_token(
    cluster: LocalCluster, namespace: str, crds: None, tmp_path: Path
) -> None:
    """The console checks the API server's certificate against the CA it was given
    before it sends anyone's token there."""
    token = service_account_token(cluster, namespace, "viewer", verbs="get,list,watch")
    (tmp_path / "stranger").mkdir()
    stranger = CertificateAuthority(tmp_path / "stranger", "not-the-clusters-ca")
    args = ("--api-ca-file", str(stranger.pair.cert))
    with running_console(cluster, tmp_path / "console.log", *args) as console:
        reply = console.sign_in(token)
        assert reply.status == 502 and "could not be asked" in reply.body
        assert "Set-Cookie" not in reply.headers
        proxied = console.request("/", headers={"Authorization": f"Bearer {token}"})
        assert proxied.status == 502
    assert "CERTIFICATE_VERIFY_FAILED" in console.log.read_text()
