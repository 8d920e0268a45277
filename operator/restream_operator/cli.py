"""`restream-operator`: run the operator, or work with LiveStream manifests offline.

restream-operator run            start the operator (kopf)
restream-operator crd            print the LiveStream CRD generated from the models
restream-operator render -f F    print the children the operator would apply for F
restream-operator validate -f F  check LiveStreams with the admission rules (for CI)
restream-operator console        serve a live overview of LiveStreams on 127.0.0.1
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from . import admission, models, yamlio
from .admission.fields import NAME_MISSING, check_metadata_name
from .admission.review import spec_errors, without_nulls
from .admission.text import quote
from .crd import crd_yaml
from .render import Owner, generated_secret, owner_from_object, render_children
from .settings import Settings, SettingsError
from .version import VersionAction

GENERATED_PLACEHOLDER = "<random, generated once by the operator>"
INLINE_PLACEHOLDER = "<from the LiveStream's inline streamKey>"


def _redacted(secret: dict[str, Any], placeholder: str) -> dict[str, Any]:
    # A preview may end up in a pull-request comment: never print a key, even in base64.
    out = {k: v for k, v in secret.items() if k != "data"}
    out["stringData"] = dict.fromkeys(secret.get("data", {}), placeholder)
    return out


def render_documents(owner: Owner, settings: Settings) -> list[dict[str, Any]]:
    """What `render` prints: every child, with placeholders instead of secret values."""
    children = render_children(owner, settings)
    generated = [
        _redacted(generated_secret(owner, name, key, ""), GENERATED_PLACEHOLDER)
        for name, key in children.generated.items()
    ]
    applied = [
        _redacted(obj, INLINE_PLACEHOLDER) if obj["kind"] == "Secret" else obj
        for obj in children.applied
    ]
    return generated + applied


def cmd_crd(_: argparse.Namespace) -> int:
    sys.stdout.write(crd_yaml())
    return 0


# kubectl's --validate values: true and strict refuse, warn only warns, false and ignore
# skip the rules (the operator's parser still has to read the LiveStream).
VALIDATE_MODES = {"strict": "strict", "true": "strict", "warn": "warn", "ignore": "ignore",
                  "false": "ignore"}  # fmt: skip
SKIP_HINT = "if you choose to ignore these errors, turn validation off with --validate=false"


def _admitted(doc: dict[str, Any], path: str, settings: Settings, mode: str) -> bool:
    """Whether the admission rules let a LiveStream be rendered (always, unless strict),
    after a line on stderr for each of their problems and warnings."""
    if mode == "ignore":
        return True
    checked = _check(doc, settings, resolver=None)
    for line in checked.warnings:
        print(f"Warning: {path}: {line}", file=sys.stderr)
    severity = "error" if mode == "strict" else "Warning"
    for line in checked.problems:
        print(f"{severity}: {path}: {line}", file=sys.stderr)
    return mode != "strict" or not checked.problems


def cmd_render(args: argparse.Namespace) -> int:
    """Exit 0: rendered; 1: a LiveStream refused by the admission rules or unreadable by
    the operator's parser (or a file without one); 2: a file that cannot be read. What
    can be rendered is printed either way, as kubectl applies the valid objects of a file.

    The rules are validate's and the webhook's, minus what needs a cluster or the
    network (the help says which)."""
    settings = _settings(args)
    mode = VALIDATE_MODES[args.validate]
    out: list[dict[str, Any]] = []
    status = refused = 0
    for path, docs in _files(args.filename, args.recursive, "error: "):
        if docs is None:
            status = 2
            continue
        if not docs:
            print(f"error: {path}: {NO_LIVESTREAM}", file=sys.stderr)
            status = max(status, 1)
        for doc in docs:
            meta = doc.get("metadata")
            if args.namespace and isinstance(meta, dict):
                meta["namespace"] = args.namespace
            if not _admitted(doc, path, settings, mode):
                refused += 1
                continue
            owner, problems = _owner(doc)
            for line in problems:
                print(f"error: {path}: {line}", file=sys.stderr)
            if owner is None:
                status = max(status, 1)
            else:
                out.extend(render_documents(owner, settings))
    if refused:
        status = max(status, 1)
        what = "LiveStream" if refused == 1 else "LiveStreams"
        print(f"error: {refused} {what} not rendered: {SKIP_HINT}", file=sys.stderr)
    if args.output == "json":
        # kubectl apply -o json prints several objects as one v1 List: one JSON document
        # that jq, json.load and kubectl apply -f all take.
        listed = {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": out}
        sys.stdout.write(json.dumps(listed, indent=4, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(yamlio.dump_all(out))
    return status


def _owner(doc: dict[str, Any]) -> tuple[Owner | None, list[str]]:
    """A LiveStream as the operator parses it, or why it cannot be rendered."""
    obj = _object_name(doc)
    wrong = _kind_problem(doc)
    if wrong is not None:
        return None, [f"{obj}: {wrong}"]
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str):
        return None, [f"{obj}: metadata.name: {NAME_MISSING}"]
    problems = [f"{obj}: metadata.name: {m}" for m in check_metadata_name(name)]
    try:
        owner = owner_from_object(doc)
    except ValidationError as exc:
        return None, problems + [
            f"{obj}: {where}: {message}" for where, message in spec_errors(exc)
        ]
    return (None if problems else owner), problems


NO_LIVESTREAM = (
    f"no LiveStream in this file (kind: {models.KIND}, apiVersion: {models.API_VERSION}): "
    "check that it is the right file"
)


# What kubectl reads from a directory given to -f (other files there are skipped).
MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


def _manifests(directory: str, recursive: bool) -> Iterator[str]:
    """A directory's manifest files in kubectl's order: by name, a subdirectory's files
    where its name sorts (with -R; symbolic links to directories are not followed)."""
    with os.scandir(directory) as listing:
        entries = sorted(listing, key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                yield from _manifests(entry.path, recursive)
        elif entry.name.endswith(MANIFEST_SUFFIXES):
            yield entry.path


def _paths(paths: Sequence[str], recursive: bool, prefix: str) -> Iterator[str | None]:
    """Each file to read: a path, - (stdin), or each manifest of a directory; None after
    a line on stderr for a directory that cannot be listed or holds no manifest."""
    for path in paths:
        if path == "-" or not os.path.isdir(path):
            yield path
            continue
        try:
            found = list(_manifests(path, recursive))
        except OSError as exc:
            print(f"{prefix}{path}: cannot list: {exc.strerror or exc}", file=sys.stderr)
            yield None
            continue
        if not found:
            where = "in this directory" + (" or below" if recursive else "")
            more = "" if recursive else " (-R reads its subdirectories too)"
            print(f"{prefix}{path}: no .json, .yaml or .yml file {where}{more}", file=sys.stderr)
            yield None
        yield from found


def _files(
    paths: Sequence[str], recursive: bool, prefix: str
) -> Iterator[tuple[str, list[dict[str, Any]] | None]]:
    """Each file as shown, with what it means as LiveStreams (as the API server would
    store them: nulls dropped), or None after a line on stderr (``prefix`` first) saying
    why it cannot be read."""
    for path in _paths(paths, recursive, prefix):
        if path is None:
            yield "", None
            continue
        shown = "<stdin>" if path == "-" else path
        try:
            if path == "-":
                data = yamlio.read_bytes(sys.stdin.buffer)
            else:
                with open(path, "rb") as f:
                    data = yamlio.read_bytes(f)
            docs = yamlio.load_all(data)
        except OSError as exc:
            print(f"{prefix}{shown}: cannot read: {exc.strerror or exc}", file=sys.stderr)
            yield shown, None
            continue
        except yamlio.InputError as exc:
            print(f"{prefix}{shown}: {exc}", file=sys.stderr)
            yield shown, None
            continue
        yield shown, [without_nulls(ls) for d in docs for ls in _livestreams(d)]


def _livestreams(doc: object) -> Iterator[dict[str, Any]]:
    """What one YAML document holds that is, or was meant as, a LiveStream, including
    the items of a kind: List: a kind of our group, or a kind spelt almost like ours."""
    if not isinstance(doc, dict):
        return
    kind, api = doc.get("kind"), doc.get("apiVersion")
    if kind == "List" and isinstance(doc.get("items"), list):
        for item in doc["items"]:
            yield from _livestreams(item)
    elif (isinstance(api, str) and api.split("/", 1)[0] == models.GROUP) or (
        isinstance(kind, str)
        and difflib.get_close_matches(kind.casefold(), [models.KIND.casefold()], cutoff=0.8)
    ):
        yield doc


def _kind_problem(doc: dict[str, Any]) -> str | None:
    """What makes a document meant as a LiveStream not one, or None."""
    kind = doc.get("kind")
    if kind != models.KIND:
        shown = quote(kind, 40) if isinstance(kind, str) else "(none)"
        return f"kind: {shown} is not a kind this operator serves: did you mean {models.KIND}?"
    if doc.get("apiVersion") != models.API_VERSION:
        return f"apiVersion: must be {models.API_VERSION}"
    return None


@dataclass
class _Checked:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _check(
    doc: dict[str, Any], settings: Settings, resolver: admission.Resolver | None
) -> _Checked:
    """``NAMESPACE/NAME: FIELD: MESSAGE`` for each problem and warning of a LiveStream."""
    obj = _object_name(doc)
    wrong = _kind_problem(doc)
    if wrong is not None:
        return _Checked([f"{obj}: {wrong}"])
    result = admission.review(doc, settings, resolver=resolver)
    return _Checked(
        [f"{obj}: {p.field}: {p.message}" for p in result.problems],
        [f"{obj}: {w.field}: {w.message}" for w in result.warnings],
    )


def _object_name(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    namespace = meta.get("namespace") or "default"
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    # A name is the file's text: never let it put escape sequences on a terminal.
    return yamlio.printable(f"{namespace}/{name}")


def _max_restreams(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= models.MAX_RESTREAMS_CEILING:
        raise argparse.ArgumentTypeError(
            f"must be a number from 1 to {models.MAX_RESTREAMS_CEILING}, not {text!r}"
        )
    return value


def _settings(args: argparse.Namespace) -> Settings:
    """The operator's settings from RESTREAM_* (as its Deployment has them), and the flags."""
    settings = Settings.from_env()
    overrides: dict[str, Any] = {}
    if args.allow_private_destinations:
        overrides["allow_private_destinations"] = True
    if args.max_restreams is not None:
        overrides["max_restreams"] = args.max_restreams
    return Settings.model_validate({**settings.model_dump(), **overrides})


def cmd_validate(args: argparse.Namespace) -> int:
    """Exit 0: every LiveStream is valid; 1: some are not (or a file has none); 2: a file
    cannot be read."""
    settings = _settings(args)
    resolver = None if args.no_resolve else admission.DnsResolver()
    status = 0
    for path, docs in _files(args.filename, args.recursive, "restream-operator validate: "):
        if docs is None:
            status = 2
            continue
        if not docs:
            print(f"{path}: {NO_LIVESTREAM}")
            status = max(status, 1)
        for doc in docs:
            checked = _check(doc, settings, resolver)
            for line in checked.problems:
                print(f"{path}: {line}")
            for line in checked.warnings:
                print(f"warning: {path}: {line}", file=sys.stderr)
            if checked.problems:
                status = max(status, 1)
    return status


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run  # noqa: PLC0415  (kopf loads only for the command that needs it)

    return run(
        namespaces=args.namespace,
        standalone=args.standalone,
        priority=args.priority,
        liveness=args.liveness,
        metrics=args.metrics,
        webhook_mode=args.webhook,
        webhook_service=args.webhook_service,
        webhook_namespace=args.webhook_namespace,
        webhook_cert_dir=args.webhook_cert_dir,
    )


_LOCAL_ONLY = ("port", "context", "kubeconfig")
_IN_CLUSTER_ONLY = ("listen", "public_url", "api_server", "api_ca_file", "default_namespace",
                    "session_idle_minutes", "session_max_hours")  # fmt: skip


def cmd_console(args: argparse.Namespace) -> int:
    # aiohttp is imported for the console only.
    from .console import incluster, server  # noqa: PLC0415

    mode, wrong = ("--in-cluster", _LOCAL_ONLY) if args.in_cluster else ("", _IN_CLUSTER_ONLY)
    given = [f"--{n.replace('_', '-')}" for n in wrong if getattr(args, n) not in (None, 0)]
    if given:
        where = "with --in-cluster" if mode else "without --in-cluster"
        print(f"restream-operator console: {' '.join(given)} cannot be used {where}",
              file=sys.stderr)  # fmt: skip
        return 2
    if not args.in_cluster:
        return server.main(port=args.port, context=args.context, kubeconfig=args.kubeconfig)
    if not args.public_url:
        print("restream-operator console: --in-cluster needs --public-url", file=sys.stderr)
        return 2
    return incluster.main(
        listen=args.listen or ("0.0.0.0", 8080),  # noqa: S104 (a pod's port, for its Service)
        public_urls=args.public_url,
        api_server=args.api_server,
        ca_file=args.api_ca_file or incluster.SERVICE_ACCOUNT_CA,
        default_namespace=args.default_namespace or "default",
        idle_minutes=args.session_idle_minutes or 30.0,
        max_hours=args.session_max_hours or 12.0,
    )


def _port(text: str) -> int:
    value = int(text) if text.isdigit() else -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 65535, not {text!r}")
    return value


def _address(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (every IPv4 address)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"must be HOST:PORT, not {text!r}")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"  # noqa: S104
    return host, _port(port)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="restream-operator",
        description="Kubernetes operator: a LiveStream becomes an RTMP ingest plus one "
        "relay per destination.",
    )
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crd = sub.add_parser(
        "crd",
        help="print the LiveStream CRD generated from the models",
        description="Print the LiveStream CustomResourceDefinition, as YAML.",
    )
    crd.set_defaults(func=cmd_crd)

    # -f as kubectl reads it, and the operator settings the admission rules depend on.
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument(
        "-f", "--filename", action="extend", nargs="+", required=True, metavar="FILE",
        help="a file of one or more YAML or JSON documents (a kind: List too), a directory "
        "(its .json, .yaml and .yml files, by name), or - for stdin; repeatable",
    )  # fmt: skip
    files.add_argument(
        "-R", "--recursive", action="store_true",
        help="also read the manifests in the subdirectories of -f directories",
    )  # fmt: skip
    operator_settings = argparse.ArgumentParser(add_help=False)
    rules = operator_settings.add_argument_group(
        "the operator's settings",
        "The admission rules depend on two of the operator's settings: give them as the "
        "operator has them (its RESTREAM_* environment variables are read too).",
    )
    rules.add_argument(
        "--allow-private-destinations", action="store_true",
        help="accept loopback, private and cluster destinations, as the operator setting "
        "allowPrivateDestinations does (default: RESTREAM_ALLOW_PRIVATE_DESTINATIONS, else off)",
    )  # fmt: skip
    rules.add_argument(
        "--max-restreams", type=_max_restreams, metavar="N",
        help="the operator's limit of destinations (default: RESTREAM_MAX_RESTREAMS, else 5)",
    )  # fmt: skip

    render = sub.add_parser(
        "render",
        parents=[files, operator_settings],
        help="print the children the operator would apply for LiveStreams, after checking "
        "them with the admission rules",
        description="Check every LiveStream in the files with the admission rules, then print "
        "what the operator would apply for it, with placeholders instead of secret values. "
        "A LiveStream the rules refuse is not rendered: one line per problem on stderr "
        "(error: FILE: NAMESPACE/NAME: FIELD: MESSAGE), and exit 1; so is a file that holds "
        "no LiveStream or a misspelt one. Exit 2: a file cannot be read. "
        "Offline, as kubectl's client-side validation: what needs the cluster or the network "
        "is not checked here: whether the Secrets named exist and hold the keys, whether you "
        "may read them (the webhook asks the API server), what the destination hosts resolve "
        "to (validate resolves them), and, on an update, what the stored object already had.",
    )
    render.add_argument(
        "-n", "--namespace", metavar="NS",
        help="namespace to render into (default: each LiveStream's own, else default)",
    )  # fmt: skip
    render.add_argument(
        "-o", "--output", choices=["yaml", "json"], default="yaml",
        help="yaml: one document per object; json: one v1 List of the objects, as "
        "kubectl apply -o json prints several (default: %(default)s)",
    )  # fmt: skip
    render.add_argument(
        "--validate", nargs="?", const="strict", default="strict", choices=list(VALIDATE_MODES),
        metavar="MODE",
        help="as kubectl's: strict or true refuse what the admission rules refuse; warn prints "
        "their problems as warnings and renders anyway; false or ignore skips them (the "
        "operator's parser still has to read each LiveStream) (default: %(default)s)",
    )  # fmt: skip
    render.set_defaults(func=cmd_render)

    validate = sub.add_parser(
        "validate",
        parents=[files, operator_settings],
        help="check LiveStreams with the admission webhook's rules (exit 0: all valid, "
        "1: problems, 2: unreadable file)",
        description="Check every LiveStream in the files with the admission webhook's rules. "
        "Prints one line per problem (FILE: NAMESPACE/NAME: FIELD: MESSAGE) on stdout and "
        "warnings on stderr. Other kinds of objects are skipped. Not checked here, as they "
        "need the cluster: whether the Secrets named exist and whether you may read them.",
    )
    validate.add_argument(
        "--no-resolve",
        action="store_true",
        help="do not resolve host names (the other checks of hosts still apply; default: "
        "resolve them with this machine's resolver)",
    )
    validate.set_defaults(func=cmd_validate)

    run = sub.add_parser(
        "run",
        help="start the operator",
        description="Start the operator (kopf): reconcile LiveStreams until SIGTERM.",
    )
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; default: cluster-wide)",
    )
    run.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: the only replica (default: peering with priority)",
    )
    run.add_argument(
        "--priority", type=int, default=0,
        help="peering priority of this replica (default: %(default)s)",
    )  # fmt: skip
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8081/healthz",
        help="liveness endpoint URL, or '' for none (default: %(default)s)",
    )
    run.add_argument(
        "--metrics",
        default="",
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics, or '' for none "
        "(default: '', none; the chart: 0.0.0.0:8080)",
    )
    run.add_argument(
        "--webhook",
        default="",
        help="serve admission webhooks: '' (off), 'local:HOST:PORT' or 'cluster' "
        "(default: '', off)",
    )
    run.add_argument(
        "--webhook-service",
        default="restream-operator-webhook",
        help="with --webhook cluster: the Service in front of this operator's webhook port "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--webhook-namespace",
        default="",
        help="with --webhook cluster: the operator's namespace (default: the pod's)",
    )
    run.add_argument(
        "--webhook-cert-dir",
        default="",
        help="with --webhook cluster: a directory with tls.crt, tls.key, ca.crt (cert-manager); "
        "default: a certificate the operator makes once and keeps in <service>-tls",
    )
    run.set_defaults(func=cmd_run)

    console = sub.add_parser(
        "console",
        help="serve a live overview of LiveStreams on 127.0.0.1, with your own credentials",
        description="Serve the console on 127.0.0.1 and print the URL to open (with its "
        "token). Everything it shows comes from the Kubernetes API with your kubeconfig's "
        "credentials: it has no rights of its own. Stops on Ctrl-C or SIGTERM.",
    )
    console.add_argument(
        "--port", type=_port, default=0, help="local port (default: 0, a free one)"
    )
    console.add_argument("--context", help="kubeconfig context (default: the current one)")
    console.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"
    )
    cluster = console.add_argument_group(
        "in a cluster",
        "Serve the console from a pod (the Helm chart's console.enabled): every viewer "
        "signs in with their own bearer token, or a front proxy sends one with every "
        "request (Authorization: Bearer); the console has no credentials of its own.",
    )
    cluster.add_argument("--in-cluster", action="store_true", help="serve in a cluster")
    cluster.add_argument(
        "--listen", type=_address, metavar="HOST:PORT", help="address (default: 0.0.0.0:8080)"
    )
    cluster.add_argument(
        "--public-url", action="append", metavar="URL",
        help="a URL people open the console at, e.g. https://console.example.com (repeatable; "
        "requests for other host names are refused; https makes the cookie Secure; "
        "default: none, and --in-cluster needs one)",
    )  # fmt: skip
    cluster.add_argument(
        "--api-server", metavar="URL",
        help="the API server (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)",
    )  # fmt: skip
    cluster.add_argument(
        "--api-ca-file", metavar="PATH",
        help="the API server's CA certificate (default: the ServiceAccount's ca.crt)",
    )  # fmt: skip
    cluster.add_argument(
        "--default-namespace", metavar="NS",
        help="shown to a viewer who may not list every namespace, when their token is not "
        "a ServiceAccount's and they name none (default: default)",
    )  # fmt: skip
    cluster.add_argument(
        "--session-idle-minutes", type=_positive, metavar="N",
        help="a session without requests or an open page ends after this (default: 30)",
    )  # fmt: skip
    cluster.add_argument(
        "--session-max-hours", type=_positive, metavar="N",
        help="every session ends this long after sign-in (default: 12)",
    )  # fmt: skip
    console.set_defaults(func=cmd_console)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"restream-operator: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
