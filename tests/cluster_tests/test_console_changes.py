"""Changes from the console, against the real API server, its RBAC, the CRD's rules and
the operator's admission webhook: over HTTP as the page sends them, and from the
creation form in headless Chromium.

A LiveStream "in git" is one applied server-side by another field manager
("argocd-controller"), as Argo CD and Flux do: the console must leave what that manager
owns to it, and say so instead of forcing.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from hack.localcluster.console_process import Console, running_console
from hack.localcluster.controlplane import LocalCluster
from hack.localcluster.operator_process import OperatorProcess
from restream_operator.console.changes import key_secret_name
from tests.cluster_tests.browser import Browsing, Opened, opened
from tests.cluster_tests.objects import namespace_viewer
from tests.cluster_tests.test_console_accessibility import (
    FAILING_IMPACTS,
    assert_accessible,
    violations,
)
from tests.cluster_tests.test_console_incluster import running_console as incluster_console
from tests.cluster_tests.test_console_incluster import service_account_token

pytestmark = pytest.mark.cluster

CONSOLE_LABEL = "app.kubernetes.io/managed-by=restream-console"
GITOPS = "argocd-controller"


class Api:
    """The console's JSON endpoints, called as its own page calls them: the session
    cookie, and the console's own Origin (a change needs it)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        reply = self._request("GET", f"/?token={console.token}", None, {})
        assert reply[0] == 303
        self.cookie = reply[2]

    def _request(
        self, method: str, path: str, body: object, headers: dict[str, str]
    ) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.console.port, timeout=60)
        try:
            data = None if body is None else json.dumps(body)
            if data is not None:
                headers = {**headers, "Content-Type": "application/json"}
            conn.request(method, path, body=data, headers={
                "Host": f"127.0.0.1:{self.console.port}", **headers})  # fmt: skip
            response = conn.getresponse()
            cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
            return response.status, response.read().decode(), cookie
        finally:
            conn.close()

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        origin = f"http://127.0.0.1:{self.console.port}"
        status, text, _ = self._request(
            method, path, body, {"Cookie": self.cookie, "Origin": origin}
        )
        return status, json.loads(text) if text else None

    def destination(
        self, method: str, namespace: str, name: str, dest: str, body: object = None
    ) -> tuple[int, Any]:
        path = f"/api/livestreams/{namespace}/{name}/restreams/{quote(dest, safe='')}"
        return self.call(method, path, body)


def stored(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any] | None:
    out = cluster.kubectl(
        "get", "livestream", name, "-n", namespace, "-o", "json", "--show-managed-fields",
        check=False,
    )  # fmt: skip
    if "NotFound" in out.stderr:
        return None
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def restreams(cluster: LocalCluster, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    obj = stored(cluster, namespace, name)
    assert obj is not None
    return {r["name"]: r for r in obj["spec"]["restreams"]}


def console_secrets(cluster: LocalCluster, namespace: str) -> dict[str, dict[str, Any]]:
    out = cluster.kubectl("get", "secrets", "-n", namespace, "-l", CONSOLE_LABEL, "-o", "json")
    return {s["metadata"]["name"]: s for s in json.loads(out.stdout)["items"]}


def key_in(secret: dict[str, Any]) -> str:
    return base64.b64decode(secret["data"]["streamKey"]).decode()


def console_owned(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields restream-console's applies own."""
    for entry in obj["metadata"]["managedFields"]:
        if entry["manager"] == "restream-console" and entry["operation"] == "Apply":
            return dict(entry["fieldsV1"])
    return {}


def entry_key(name: str) -> str:
    return "k:" + json.dumps({"name": name}, separators=(",", ":"))


def in_git(cluster: LocalCluster, namespace: str, name: str) -> None:
    """A LiveStream as a GitOps tool applies it: server-side, its own field manager."""
    manifest = {
        "apiVersion": "restream.dev/v1alpha1",
        "kind": "LiveStream",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restreams": [
                {"name": "Youtube", "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
                 "streamKeySecretRef": {"name": "yt"}},
                {"name": "Twitch", "serverUrl": "rtmps://live.twitch.tv:443/app",
                 "streamKey": "live_inline_from_git"},
            ]
        },
    }  # fmt: skip
    cluster.kubectl(
        "apply", "--server-side", f"--field-manager={GITOPS}", "-f", "-",
        input=json.dumps(manifest),
    )  # fmt: skip


TWO: list[dict[str, Any]] = [
    {"name": "Youtube", "serverUrl": "rtmp://a.rtmp.youtube.com/live2",
     "streamKey": "yt-key-0001", "enabled": True},
    {"name": "My Twitch", "serverUrl": "rtmps://live.twitch.tv:443/app",
     "streamKey": "tw-key-0002", "enabled": False},
]  # fmt: skip


@dataclass
class Ui:
    browsing: Browsing
    console: Console  # the cluster's admin's


@pytest.fixture
def ui(operator: OperatorProcess, browsing: Browsing, console: Console) -> Ui:
    """A browser on the console, with the operator (and its webhook) up."""
    return Ui(browsing, console)


@pytest.fixture
def api(console: Console, operator: OperatorProcess) -> Api:
    """The console as the cluster's admin, with the operator (and its webhook) up."""
    return Api(console)


def test_create_stores_secret_references_and_secrets_the_console_made(
    cluster: LocalCluster, namespace: str, api: Api, console: Console
) -> None:
    body = {"namespace": namespace, "name": "launch", "playback": {"hls": True}, "restreams": TWO}
    status, answer = api.call("POST", "/api/livestreams", body)
    assert status == 201, answer
    assert (answer["namespace"], answer["name"]) == (namespace, "launch")
    # Admission's warnings come along, but not that the Secrets it just wrote are not
    # there yet (the webhook caches its lookups, and the dry run asked first).
    assert any("rtmps://" in w for w in answer["warnings"]), answer
    assert not any("does not exist yet" in w for w in answer["warnings"]), answer

    obj = stored(cluster, namespace, "launch")
    assert obj is not None
    assert obj["spec"]["playback"] == {"hls": True}
    secrets = console_secrets(cluster, namespace)
    for given, entry in zip(TWO, obj["spec"]["restreams"], strict=True):
        assert "streamKey" not in entry  # never inline
        ref = entry["streamKeySecretRef"]
        assert ref == {"name": key_secret_name("launch", given["name"]), "key": "streamKey"}
        assert (entry["name"], entry["serverUrl"], entry["enabled"]) == (
            given["name"], given["serverUrl"], given["enabled"])  # fmt: skip
        secret = secrets[ref["name"]]
        assert secret["type"] == "Opaque"
        assert key_in(secret) == given["streamKey"]
        owners = secret["metadata"]["ownerReferences"]  # deleted with the LiveStream
        assert [(o["kind"], o["uid"]) for o in owners] == [("LiveStream", obj["metadata"]["uid"])]
    assert len(secrets) == 2
    owned = console_owned(obj)["f:spec"]["f:restreams"]
    assert sorted(owned) == sorted(entry_key(d["name"]) for d in TWO)

    again = api.call("POST", "/api/livestreams", body)
    assert again[0] == 409 and "already exists" in again[1]["message"]
    assert len(console_secrets(cluster, namespace)) == 2
    log = console.log.read_text()
    assert all(d["streamKey"] not in log for d in TWO)


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("http://live.twitch.tv/app", "serverUrl must start with rtmp://"),  # the CRD's rule
        ("rtmp://127.0.0.1/live", "loopback"),  # the webhook's
    ],
    ids=["crd-rule", "webhook"],
)
def test_a_bad_server_url_is_named_by_field_and_nothing_is_stored(
    cluster: LocalCluster, namespace: str, api: Api, url: str, phrase: str
) -> None:
    bad = [TWO[0], {**TWO[1], "serverUrl": url}]
    body = {"namespace": namespace, "name": "launch", "restreams": bad}
    status, answer = api.call("POST", "/api/livestreams", body)
    assert status == 422, answer
    assert list(answer["fields"]) == ["restreams[1].serverUrl"]
    assert phrase in answer["fields"]["restreams[1].serverUrl"]
    assert stored(cluster, namespace, "launch") is None
    assert console_secrets(cluster, namespace) == {}


def test_local_checks_name_the_field_before_anything_is_sent(
    cluster: LocalCluster, namespace: str, api: Api
) -> None:
    body = {"namespace": "Not A Namespace", "name": "Launch!", "restreams": [
        {"name": "Youtube", "serverUrl": "rtmp://a.example.com/x", "streamKey": "has space"},
        {"name": "Twitch", "serverUrl": "rtmp://b.example.com/x"},
    ]}  # fmt: skip
    status, answer = api.call("POST", "/api/livestreams", body)
    assert status == 422
    assert set(answer["fields"]) == {
        "namespace", "name", "restreams[0].streamKey", "restreams[1].streamKey"}  # fmt: skip
    assert "has space" not in json.dumps(answer)  # a key is never echoed
    assert "whitespace" in answer["fields"]["restreams[0].streamKey"]
    # Path parameters that are no Kubernetes names never reach an API server URL.
    for ns, name in (("..", "x"), (namespace, "a%2Fb"), (namespace, "UPPER")):
        path = f"/api/livestreams/{ns}/{name}/restreams/Youtube"
        assert api.call("PATCH", path, {"enabled": False})[0] == 404


def test_edits_touch_only_their_destination_and_leave_other_managers_fields_alone(
    cluster: LocalCluster, namespace: str, api: Api
) -> None:
    in_git(cluster, namespace, "show")

    # Disabling Youtube: the console now owns that entry's `enabled`, nothing else.
    status, answer = api.destination("PATCH", namespace, "show", "Youtube", {"enabled": False})
    assert status == 200, answer
    entries = restreams(cluster, namespace, "show")
    assert entries["Youtube"]["enabled"] is False
    assert entries["Twitch"]["enabled"] is True
    obj = stored(cluster, namespace, "show")
    assert obj is not None
    owned = console_owned(obj)["f:spec"]["f:restreams"]
    assert list(owned) == [entry_key("Youtube")]
    assert sorted(owned[entry_key("Youtube")]) == [".", "f:enabled", "f:name"]

    # A field git owns: a conflict naming the manager, never forced; nothing changes.
    before = obj["spec"]
    status, answer = api.destination(
        "PUT", namespace, "show", "Youtube",
        {"serverUrl": "rtmp://b.rtmp.youtube.com/live2", "enabled": False},
    )  # fmt: skip
    assert status == 409, answer
    assert f'conflict with "{GITOPS}"' in answer["message"]
    assert answer["managers"] == [GITOPS]
    assert stored(cluster, namespace, "show")["spec"] == before  # type: ignore[index]

    # Taken over, when the person chooses to (kubectl's --force-conflicts): the console
    # owns the field now, and git's manager no longer does.
    status, answer = api.destination(
        "PUT", namespace, "show", "Youtube",
        {"serverUrl": "rtmp://b.rtmp.youtube.com/live2", "enabled": False, "takeOver": True},
    )  # fmt: skip
    assert status == 200, answer
    assert restreams(cluster, namespace, "show")["Youtube"]["serverUrl"] == (
        "rtmp://b.rtmp.youtube.com/live2")  # fmt: skip
    taken = stored(cluster, namespace, "show")
    assert taken is not None
    assert "f:serverUrl" in console_owned(taken)["f:spec"]["f:restreams"][entry_key("Youtube")]
    gitops = next(m for m in taken["metadata"]["managedFields"] if m["manager"] == GITOPS)
    assert "f:serverUrl" not in gitops["fieldsV1"]["f:spec"]["f:restreams"].get(
        entry_key("Youtube"), {})  # fmt: skip
    # (put back as git has it, for what follows)
    status, answer = api.destination(
        "PUT", namespace, "show", "Youtube",
        {"serverUrl": before["restreams"][0]["serverUrl"], "enabled": False},
    )  # fmt: skip
    assert status == 200, answer

    # A key typed in for Twitch, whose inline key git set: swapped for the console's
    # Secret in one write (the CRD allows exactly one of the two).
    status, answer = api.destination(
        "PUT", namespace, "show", "Twitch",
        {"serverUrl": "rtmps://live.twitch.tv:443/app", "streamKey": "tw-new-key-7"},
    )  # fmt: skip
    assert status == 200, answer
    twitch = restreams(cluster, namespace, "show")["Twitch"]
    assert "streamKey" not in twitch
    assert twitch["streamKeySecretRef"]["name"] == key_secret_name("show", "Twitch")
    assert key_in(console_secrets(cluster, namespace)[key_secret_name("show", "Twitch")]) == (
        "tw-new-key-7")  # fmt: skip
    assert [e["name"] for e in stored(cluster, namespace, "show")["spec"]["restreams"]] == [  # type: ignore[index]
        "Youtube", "Twitch"]  # fmt: skip

    # Enabling again, and an edit without a key: the key stays as it is.
    assert api.destination("PATCH", namespace, "show", "Youtube", {"enabled": True})[0] == 200
    status, _ = api.destination("PUT", namespace, "show", "Twitch", {"enabled": False})
    assert status == 200  # (no serverUrl: kept, as the key is)
    entries = restreams(cluster, namespace, "show")
    assert entries["Youtube"]["enabled"] is True and entries["Twitch"]["enabled"] is False
    assert entries["Twitch"]["streamKeySecretRef"]["name"] == key_secret_name("show", "Twitch")
    assert entries["Twitch"]["serverUrl"] == "rtmps://live.twitch.tv:443/app"
    assert entries["Youtube"]["streamKeySecretRef"] == {"name": "yt", "key": "streamKey"}

    # What admission warns about a change comes back with it.
    status, answer = api.destination("PUT", namespace, "show", "Plain", {
        "serverUrl": "rtmp://b.rtmp.youtube.com/live2", "streamKey": "plain-key-1"})  # fmt: skip
    assert status == 200, answer
    assert any("rtmps://" in w for w in answer["warnings"]), answer


def test_destinations_are_added_and_removed_whoever_owns_them(
    cluster: LocalCluster, namespace: str, api: Api
) -> None:
    in_git(cluster, namespace, "show")
    odd = "Ünïcode/Face book?#"  # free text, in a URL path
    status, answer = api.destination(
        "PUT", namespace, "show", odd,
        {"serverUrl": "rtmps://live-api-s.facebook.com:443/rtmp/", "streamKey": "fb-key-1"},
    )  # fmt: skip
    assert status == 200, answer
    assert list(restreams(cluster, namespace, "show")) == ["Youtube", "Twitch", odd]
    assert key_secret_name("show", odd) in console_secrets(cluster, namespace)

    status, answer = api.destination("PUT", namespace, "show", "Another", {
        "serverUrl": "rtmp://x.example.com/live"})  # fmt: skip
    assert status == 422 and "streamKey" in answer["fields"]  # a new one needs its key
    status, answer = api.destination("PUT", namespace, "show", "Another", {"streamKey": "k-9"})
    assert status == 422 and list(answer["fields"]) == ["serverUrl"]  # ...and its URL
    status, answer = api.destination("PATCH", namespace, "show", "Another", {"enabled": True})
    assert status == 404 and "no destination" in answer["message"]  # a toggle adds nothing

    # The console's alone: its apply without it removes it, and the console's Secret.
    assert api.destination("DELETE", namespace, "show", odd)[0] == 200
    assert list(restreams(cluster, namespace, "show")) == ["Youtube", "Twitch"]
    assert console_secrets(cluster, namespace) == {}

    # Git's: a JSON patch, guarded by a test of the entry's name (an apply cannot).
    assert api.destination("DELETE", namespace, "show", "Youtube")[0] == 200
    assert list(restreams(cluster, namespace, "show")) == ["Twitch"]
    status, answer = api.destination("DELETE", namespace, "show", "Youtube")
    assert status == 404 and "no destination" in answer["message"]


def test_a_bad_edit_is_named_by_field_and_changes_nothing(
    cluster: LocalCluster, namespace: str, api: Api
) -> None:
    in_git(cluster, namespace, "show")
    before = stored(cluster, namespace, "show")["spec"]  # type: ignore[index]
    status, answer = api.destination(
        "PUT", namespace, "show", "Local",
        {"serverUrl": "rtmp://127.0.0.1/live", "streamKey": "local-key-1"},
    )  # fmt: skip
    assert status == 422, answer
    assert "loopback" in answer["fields"]["serverUrl"]
    assert stored(cluster, namespace, "show")["spec"] == before  # type: ignore[index]
    assert console_secrets(cluster, namespace) == {}


REFUSE_REAL_WRITES = """
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {{apiGroups: [restream.dev], apiVersions: ["*"], operations: [CREATE, UPDATE],
       resources: [livestreams]}}
  validations:
  - {{expression: "request.dryRun == true", message: "a test refuses every real write here"}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {namespace}}}
"""


def test_a_write_refused_after_its_dry_run_takes_back_the_secrets_it_wrote(
    cluster: LocalCluster, namespace: str, api: Api
) -> None:
    """A policy that lets dry runs through and refuses the real write (as a webhook that
    changed its mind, or a race, would): the Secrets this request wrote are undone."""
    body = {"namespace": namespace, "name": "launch", "restreams": TWO[:1]}
    assert api.call("POST", "/api/livestreams", body)[0] == 201
    secret = key_secret_name("launch", "Youtube")
    policy = f"{namespace}-only-dry-runs"
    cluster.kubectl("apply", "-f", "-", input=REFUSE_REAL_WRITES.format(
        name=policy, namespace=namespace))  # fmt: skip
    try:
        # Until the API server enforces it (it compiles policies in the background): a
        # label is a real write, and no key is involved.
        deadline = time.monotonic() + 30
        for attempt in range(1000):
            probe = cluster.kubectl(
                "label", "livestream", "launch", "-n", namespace, f"probe={attempt}",
                "--overwrite", check=False,
            )  # fmt: skip
            if probe.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "a test refuses every real write" in probe.stderr
        status, answer = api.destination(
            "PUT", namespace, "launch", "Youtube",
            {"serverUrl": TWO[0]["serverUrl"], "streamKey": "replaced-key-2"},
        )  # fmt: skip
        assert status == 422 and "a test refuses every real write" in answer["message"]
        # The existing Secret holds its old key again...
        assert key_in(console_secrets(cluster, namespace)[secret]) == TWO[0]["streamKey"]
        # ...and a Secret this request created is gone.
        status, answer = api.call("POST", "/api/livestreams", {**body, "name": "other"})
        assert status == 422 and "a test refuses every real write" in answer["message"]
        assert list(console_secrets(cluster, namespace)) == [secret]
        assert stored(cluster, namespace, "other") is None
    finally:
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            cluster.kubectl("delete", kind, policy, "--ignore-not-found", check=False)


def test_a_read_only_viewer_is_refused_every_change_with_the_api_servers_reason(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    in_git(cluster, namespace, "show")
    before = stored(cluster, namespace, "show")["spec"]  # type: ignore[index]
    kubeconfig = namespace_viewer(cluster, namespace, tmp_path)
    who = f'User "system:serviceaccount:{namespace}:viewer"'
    with running_console(kubeconfig, tmp_path / "console.log") as console:
        api = Api(console)
        body = {"namespace": namespace, "name": "launch", "restreams": TWO}
        attempts = [
            api.call("POST", "/api/livestreams", body),
            api.destination("PUT", namespace, "show", "New",
                            {"serverUrl": "rtmp://x.example.com/a", "streamKey": "k-1234"}),
            api.destination("PUT", namespace, "show", "Twitch",
                            {"serverUrl": "rtmps://live.twitch.tv:443/app", "streamKey": "k2"}),
            api.destination("PATCH", namespace, "show", "Youtube", {"enabled": False}),
            api.destination("DELETE", namespace, "show", "Youtube"),
        ]  # fmt: skip
        for status, answer in attempts:
            assert status == 403, answer
            assert answer["message"].startswith('livestreams.restream.dev "')
            assert f"is forbidden: {who} cannot patch resource" in answer["message"]
        assert "k-1234" not in console.log.read_text()
    assert stored(cluster, namespace, "launch") is None
    assert stored(cluster, namespace, "show")["spec"] == before  # type: ignore[index]
    assert console_secrets(cluster, namespace) == {}


def test_in_a_cluster_changes_carry_the_signed_in_viewers_own_token(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    """The in-cluster console has no rights of its own: a change is made with the token
    of the session (or of a front proxy's Authorization header) it belongs to."""
    editor = service_account_token(cluster, namespace, "editor", verbs="get,list,watch,patch")
    cluster.kubectl("create", "role", "editor-keys", "-n", namespace,
                    "--verb=get,create,update,delete", "--resource=secrets")  # fmt: skip
    cluster.kubectl("create", "rolebinding", "editor-keys", "-n", namespace,
                    "--role=editor-keys", f"--serviceaccount={namespace}:editor")  # fmt: skip
    reader = service_account_token(cluster, namespace, "reader", verbs="get,list,watch")
    in_git(cluster, namespace, "show")
    with incluster_console(cluster, tmp_path / "console.log") as console:
        signed_in = console.session(editor)
        body = json.dumps({"enabled": False})
        path = f"/api/livestreams/{namespace}/show/restreams/Youtube"
        change = {"Origin": console.origin, "Content-Type": "application/json"}
        reply = console.request(path, "PATCH", {**signed_in, **change}, body)
        assert reply.status == 200, reply.body
        assert restreams(cluster, namespace, "show")["Youtube"]["enabled"] is False
        reply = console.request(
            f"/api/livestreams/{namespace}/show/restreams/New", "PUT", {**signed_in, **change},
            json.dumps({"serverUrl": "rtmp://x.example.com/live", "streamKey": "new-key-5"}),
        )  # fmt: skip
        assert reply.status == 200, reply.body
        assert key_secret_name("show", "New") in console_secrets(cluster, namespace)

        proxied = {"Authorization": f"Bearer {reader}", **change}
        reply = console.request(path, "PATCH", proxied, json.dumps({"enabled": True}))
        assert reply.status == 403
        assert f'User "system:serviceaccount:{namespace}:reader" cannot patch' in (
            json.loads(reply.body)["message"])  # fmt: skip
        assert "new-key-5" not in console.log.read_text()
    assert restreams(cluster, namespace, "show")["Youtube"]["enabled"] is False


# ---- in the browser ---------------------------------------------------------------------


def _fill_row(page: Page, index: int, dest: dict[str, Any]) -> None:
    row = page.locator("#destination-rows > li").nth(index)
    row.get_by_label("Name", exact=True).fill(dest["name"])
    row.get_by_label("Server URL").fill(dest["serverUrl"])
    row.get_by_label("Stream key").fill(dest["streamKey"])
    row.get_by_label("Enabled").set_checked(dest["enabled"])


def _new_form(ui: Ui, namespace: str, name: str) -> Page:
    view = opened(ui.browsing, ui.console)
    page = view.page
    page.get_by_role("link", name="New LiveStream").click()
    expect(page.get_by_role("heading", name="New LiveStream")).to_be_visible()
    identity = page.locator("#identity")
    expect(identity.get_by_label("Namespace")).to_have_value("default")  # the context's
    identity.get_by_label("Namespace").fill(namespace)
    identity.get_by_label("Name", exact=True).fill(name)
    return page


def test_the_form_creates_a_livestream_with_two_destinations(
    cluster: LocalCluster, namespace: str, ui: Ui
) -> None:
    page = _new_form(ui, namespace, "from-the-form")
    page.get_by_label("Serve the stream as HLS too").check()
    _fill_row(page, 0, TWO[0])
    page.get_by_role("button", name="Add a destination row").click()
    expect(page.locator("#destination-rows > li").nth(1).get_by_label("Name", exact=True)
           ).to_be_focused()  # fmt: skip
    _fill_row(page, 1, TWO[1])
    assert_accessible(page)
    # From the keyboard: Enter in a text field submits the form.
    page.locator("#destination-rows > li").nth(1).get_by_label("Stream key").press("Enter")
    page.wait_for_url(f"**/livestreams/{namespace}/from-the-form")
    entries = restreams(cluster, namespace, "from-the-form")
    assert list(entries) == ["Youtube", "My Twitch"]
    assert entries["My Twitch"]["enabled"] is False
    assert all("streamKey" not in e for e in entries.values())
    assert len(console_secrets(cluster, namespace)) == 2


def test_the_form_shows_admissions_message_beside_the_field_and_stores_nothing(
    cluster: LocalCluster, namespace: str, ui: Ui
) -> None:
    page = _new_form(ui, namespace, "refused")
    _fill_row(page, 0, TWO[0])
    page.get_by_role("button", name="Add a destination row").click()
    _fill_row(page, 1, {**TWO[1], "serverUrl": "rtmp://127.0.0.1/live"})
    page.get_by_role("button", name="Create LiveStream").click()
    url = page.locator("#destination-rows > li").nth(1).get_by_label("Server URL")
    expect(url).to_have_attribute("aria-invalid", "true")
    error_id = url.get_attribute("aria-describedby").split()[-1]  # type: ignore[union-attr]
    expect(page.locator(f"#{error_id}")).to_contain_text("loopback")
    first = page.locator("#destination-rows > li").nth(0).get_by_label("Server URL")
    expect(first).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_contain_text("Not saved")
    expect(url).to_be_focused()
    assert_accessible(page)
    assert stored(cluster, namespace, "refused") is None
    assert console_secrets(cluster, namespace) == {}


# ---- on the LiveStream page: the destination actions (changes.js) --------------------------


def no_script_errors(errors: list[str]) -> None:
    """No script error and no Content-Security-Policy violation (the browser also logs
    each refused request, which these tests make on purpose)."""
    assert [e for e in errors if not e.startswith("Failed to load resource")] == []


def card(page: Page, dest: str) -> Any:
    return page.locator(f'[data-destination="{dest}"]')


def livestream_page(view: Opened, namespace: str, name: str) -> Page:
    """The LiveStream's page, from the overview's link, with its cards' actions."""
    page = view.page
    page.locator(f'tr[data-key="{namespace}/{name}"]').get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    expect(page.get_by_role("button", name="Add destination")).to_be_visible()
    return page


def test_the_livestream_page_adds_edits_disables_and_removes_destinations(
    cluster: LocalCluster, namespace: str, ui: Ui
) -> None:
    in_git(cluster, namespace, "show")
    view = opened(ui.browsing, ui.console)
    page = livestream_page(view, namespace, "show")
    expect(card(page, "Youtube").get_by_role("button")).to_have_count(3)
    assert_accessible(page)

    page.get_by_role("button", name="Disable Youtube").click()
    status = card(page, "Youtube").get_by_role("status")
    expect(status).to_have_text(re.compile(r"^Disabled Youtube\. Admission warns: .*rtmps://"))
    expect(status).not_to_contain_text("Twitch")  # what it says of others is not news here
    # The page re-renders the card from its watch; the actions follow, once.
    expect(page.get_by_role("button", name="Enable Youtube")).to_be_visible()
    expect(card(page, "Youtube").get_by_role("button")).to_have_count(3)
    assert restreams(cluster, namespace, "show")["Youtube"]["enabled"] is False
    page.get_by_role("button", name="Enable Youtube").click()
    expect(page.get_by_role("button", name="Disable Youtube")).to_be_visible()
    assert restreams(cluster, namespace, "show")["Youtube"]["enabled"] is True

    # Adding: admission's message next to the field in the dialog, then saved.
    page.get_by_role("button", name="Add destination").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Name")).to_be_focused()
    dialog.get_by_label("Name").fill("Facebook Live")
    dialog.get_by_label("Server URL").fill("rtmp://169.254.169.254/live")
    dialog.get_by_label("Stream key").fill("fb-key-77")
    dialog.get_by_role("button", name="Save").click()
    url = dialog.get_by_label("Server URL")
    expect(url).to_have_attribute("aria-invalid", "true")
    error_id = url.get_attribute("aria-describedby").split()[-1]  # type: ignore[union-attr]
    expect(page.locator(f"#{error_id}")).to_contain_text("link-local")
    # (axe's own probe would be outside the modal dialog, where nothing is seen)
    assert [v["id"] for v in violations(page) if v["impact"] in FAILING_IMPACTS] == []
    url.fill("rtmps://live-api-s.facebook.com:443/rtmp/")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("button", name="Edit Facebook Live")).to_be_visible()
    assert key_secret_name("show", "Facebook Live") in console_secrets(cluster, namespace)

    # Editing git's field: the conflict, naming the manager, and nothing forced.
    page.get_by_role("button", name="Edit Twitch").click()
    expect(dialog.get_by_label("Name")).to_have_value("Twitch")
    expect(url).to_have_value("rtmps://live.twitch.tv:443/app")
    url.fill("rtmps://elsewhere.example.com/app")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.get_by_role("alert")).to_contain_text(f'conflict with "{GITOPS}"')
    expect(dialog.get_by_role("alert")).to_contain_text(f"Managed by {GITOPS}")
    dialog.get_by_role("button", name="Cancel").click()
    assert restreams(cluster, namespace, "show")["Twitch"]["serverUrl"] == (
        "rtmps://live.twitch.tv:443/app")  # fmt: skip

    # A new key for Twitch, whose inline key git set: into the console's Secret.
    page.get_by_role("button", name="Edit Twitch").click()
    dialog.get_by_label("Stream key").fill("tw-key-from-the-page")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    twitch = restreams(cluster, namespace, "show")["Twitch"]
    assert twitch["streamKeySecretRef"]["name"] == key_secret_name("show", "Twitch")

    # Removing asks first; keeping it changes nothing.
    page.get_by_role("button", name="Remove Youtube").click()
    page.get_by_role("button", name="Keep it").click()
    expect(page.get_by_role("button", name="Remove Youtube")).to_be_focused()
    assert "Youtube" in restreams(cluster, namespace, "show")
    page.get_by_role("button", name="Remove Youtube").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(card(page, "Youtube")).to_have_count(0)
    assert list(restreams(cluster, namespace, "show")) == ["Twitch", "Facebook Live"]
    no_script_errors(view.errors)


def test_on_the_livestream_page_a_read_only_viewer_is_shown_the_refusal(
    cluster: LocalCluster, namespace: str, operator: OperatorProcess, browsing: Browsing,
    tmp_path: Path,
) -> None:  # fmt: skip
    in_git(cluster, namespace, "show")
    before = stored(cluster, namespace, "show")["spec"]  # type: ignore[index]
    kubeconfig = namespace_viewer(cluster, namespace, tmp_path)
    reason = f'User "system:serviceaccount:{namespace}:viewer" cannot patch resource'
    with running_console(kubeconfig, tmp_path / "console.log") as console:
        page = livestream_page(opened(browsing, console), namespace, "show")
        page.get_by_role("button", name="Disable Youtube").click()
        expect(card(page, "Youtube").get_by_role("alert")).to_contain_text(reason)
        page.get_by_role("button", name="Remove Twitch").click()
        page.get_by_role("dialog").get_by_role("button", name="Remove").click()
        expect(card(page, "Twitch").get_by_role("alert")).to_contain_text(reason)
        page.get_by_role("button", name="Add destination").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Name").fill("New")
        dialog.get_by_label("Server URL").fill("rtmp://x.example.com/live")
        dialog.get_by_label("Stream key").fill("never-stored-1")
        dialog.get_by_role("button", name="Save").click()
        expect(dialog.get_by_role("alert")).to_contain_text(reason)
    assert stored(cluster, namespace, "show")["spec"] == before  # type: ignore[index]
    assert console_secrets(cluster, namespace) == {}
