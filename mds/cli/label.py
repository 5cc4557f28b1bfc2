"""``mds label push|pull|sync|serve-webhook|worker`` and ``mds labelstudio install|start|stop``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mds.cli._options import JsonOpt, console, db_url, print_json, settings

label_app = typer.Typer(help="Send rounds to Label Studio and bring the ratings back.", no_args_is_help=True)
ls_app = typer.Typer(help="Run a local Label Studio server configured for mds.", no_args_is_help=True)

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="MDS_LABEL_STUDIO_URL", help="Label Studio URL.")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="MDS_LABEL_STUDIO_TOKEN", help="Label Studio API token.", show_default=False
    ),
]


def _client(url: str | None, token: str | None):
    from labeling.client import client_from_settings

    return client_from_settings(settings(), url=url, token=token)


def _session(url: str):
    from mds.db.engine import make_sessionmaker

    return make_sessionmaker(url)()


def _summary(res: dict[str, Any], keys: tuple[str, ...]) -> str:
    return ", ".join(f"{k} {res[k]}" for k in keys if res.get(k))


@label_app.command("push")
def push(
    round_number: Annotated[int, typer.Option("--round", "-r", help="Round number to push.")],
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", help="Label kind: scalar|binary|ordinal|pairwise|multidim (default: the evaluator's)."
        ),
    ] = None,
    slider: Annotated[
        bool, typer.Option("--slider", help="Continuous 1-5 slider instead of stars (scalar).")
    ] = False,
    ratings: Annotated[
        int | None, typer.Option("--ratings", help="Ratings wanted per video (default from mds.toml, 3).")
    ] = None,
    project_id: Annotated[
        int | None, typer.Option("--project-id", help="Use this existing Label Studio project.")
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Tasks per import request.")] = 100,
    hide_predictions: Annotated[
        bool, typer.Option("--hide-predictions", help="Do not show the base model's answer to raters.")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Send a round's selected videos to Label Studio (safe to re-run after any failure)."""
    from labeling.push import PushOptions, push_round
    from labeling.settings import ls_settings

    s = settings()
    lss = ls_settings(s)
    opts = PushOptions(
        kind=kind,
        slider=slider,
        ratings_per_video=ratings or lss.ratings_per_video,
        project_id=project_id,
        batch_size=batch_size,
        document_root=lss.document_root,
        show_predictions=not hide_predictions,
    )
    dbu = db_url()
    client = _client(url, token)
    with _session(dbu) as session:
        res = push_round(session, client, round_number, opts).as_dict()
    if json_out:
        print_json(res)
        return
    console().print(
        f"round {res['round_number']} → project {res['project_id']} at {client.url}: {res['total']} tasks "
        f"({_summary(res, ('imported', 'recovered', 'already', 'predictions')) or 'nothing new'}); "
        f"queue ordered by {res['model_version']}"
    )


@label_app.command("pull")
def pull_cmd(
    round_number: Annotated[
        int | None, typer.Option("--round", "-r", help="Only this round's project.")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Bring new, changed, skipped and deleted annotations into the pool and recompute MOS labels."""
    _pull(round_number, url, token, json_out)


def _pull(round_number: int | None, url: str | None, token: str | None, json_out: bool) -> dict[str, Any]:
    from labeling.pull import pull

    dbu = db_url()
    client = _client(url, token)
    with _session(dbu) as session:
        res = pull(session, client, round_number=round_number).as_dict()
    if json_out:
        print_json(res)
    else:
        msg = (
            _summary(res, ("created", "updated", "deleted", "skipped", "rejected", "unchanged"))
            or "no annotations"
        )
        console().print(f"{res['tasks']} tasks: {msg}; {res['labels']} labels recomputed")
        for reason, n in res["reasons"].items():
            console().print(f"  rejected ({reason}): {n}")
        for pid in res["missing_projects"]:
            console().print(f"  project {pid} no longer exists in Label Studio (its stored ratings are kept)")
        for rid, jid in zip(res["rounds_labelled"], res["jobs"]):
            console().print(f"  round id {rid} is labelled; fine-tuning job {jid} queued")
    return res


@label_app.command("sync")
def sync(
    round_number: Annotated[
        int | None, typer.Option("--round", "-r", help="Only this round's project.")
    ] = None,
    every: Annotated[
        float | None, typer.Option("--every", help="Repeat every N seconds (until interrupted).")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Reconcile with Label Studio: a full pull of every mds project (run it periodically)."""
    import time

    while True:
        _pull(round_number, url, token, json_out)
        if not every:
            return
        time.sleep(every)


@label_app.command("serve-webhook")
def serve_webhook(
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on.")] = None,
    secret: Annotated[
        str | None,
        typer.Option("--secret", envvar="MDS_WEBHOOK_SECRET", help="Shared secret.", show_default=False),
    ] = None,
    register: Annotated[
        bool,
        typer.Option("--register", help="Create/refresh the webhook in every mds project on the server."),
    ] = False,
    public_url: Annotated[
        str | None,
        typer.Option("--public-url", help="URL Label Studio should call (default: the listen address)."),
    ] = None,
    defer: Annotated[
        bool, typer.Option("--defer", help="Only record events; `mds label worker` processes them.")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Receive Label Studio webhooks (annotation created/updated/deleted) and process them in the background."""
    from labeling.pull import projects_for
    from labeling.settings import ls_settings
    from labeling.webhook import SECRET_HEADER, WebhookServer
    from mds.errors import LabelingError

    lss = ls_settings(settings())
    secret = secret or lss.webhook_secret
    if not secret:
        raise LabelingError("a webhook secret is required: --secret or MDS_WEBHOOK_SECRET")
    dbu = db_url()
    srv = WebhookServer(
        dbu,
        secret,
        host=host or lss.webhook_host,
        port=port if port is not None else lss.webhook_port,
        process=not defer,
        client_factory=lambda: _client(url, token),
    )
    if register:
        client = _client(url, token)
        target = public_url or srv.url
        with _session(dbu) as session:
            for p in projects_for(session, client.url):
                client.ensure_webhook(int(p.external_id), target, headers={SECRET_HEADER: secret})
                console().print(f"webhook of project {p.external_id} → {target}")
    console().print(
        f"listening on {srv.url} ({'record only' if defer else 'record and process'}); Ctrl-C stops"
    )
    srv.serve_forever()


@label_app.command("worker")
def worker(
    once: Annotated[bool, typer.Option("--once", help="Exit when nothing is left to do.")] = False,
    poll: Annotated[float, typer.Option("--poll", help="Seconds between queue checks.")] = 2.0,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only jobs of these kinds.")] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Queue failed jobs again first.")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Run queued jobs (e.g. fine-tuning of a labelled round) and pending webhook events."""
    from labeling.jobs import requeue_failed, run_worker

    dbu = db_url()
    if retry_failed:
        with _session(dbu) as session:
            console().print(f"{requeue_failed(session, kind)} failed jobs queued again")
    counts = run_worker(
        dbu,
        once=once,
        poll_s=poll,
        settings=settings(),
        kinds=kind,
        client_factory=lambda: _client(url, token),
    )
    if json_out:
        print_json(counts)
    else:
        console().print(f"events {counts['events']}, jobs done {counts['done']}, failed {counts['failed']}")


@ls_app.command("install")
def ls_install(
    venv: Annotated[
        str | None, typer.Option("--venv", help="Virtualenv to create (default <repo>/.venv-ls).")
    ] = None,
) -> None:
    """Install the Label Studio server into its own virtualenv (about 70 s, 1 GB)."""
    from pathlib import Path

    from labeling.server import LS_VERSION, install_label_studio

    with console().status(f"installing label-studio {LS_VERSION}"):
        exe = install_label_studio(Path(venv) if venv else None)
    console().print(f"label-studio {LS_VERSION}: {exe}")


@ls_app.command("start")
def ls_start(
    port: Annotated[
        int | None, typer.Option("--port", help="Port (default from [labelstudio] url, 8080).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Server data directory.")] = None,
    document_root: Annotated[
        str | None, typer.Option("--document-root", help="Local files are served below it.")
    ] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Leave it running in the background.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Start a local Label Studio for mds (predefined admin user and API token, local file serving)."""
    from pathlib import Path

    from labeling.server import LocalLabelStudio, find_label_studio_bin
    from labeling.settings import ls_settings

    lss = ls_settings(settings())
    srv = LocalLabelStudio(
        data_dir=Path(data_dir) if data_dir else lss.data_dir,
        document_root=Path(document_root) if document_root else lss.document_root,
        host=host or lss.host,
        port=port or lss.port,
        executable=find_label_studio_bin(lss.bin),
    )
    cred = srv.credentials
    assert cred is not None
    with console().status(f"starting Label Studio at {srv.url} (first start about 30 s)"):
        srv.start()
    info = srv.info()
    if json_out:
        print_json(
            {
                **info,
                "token": cred.token if cred.created else None,
                "pid": srv.process.pid if srv.process else None,
            }
        )
    else:
        c = console()
        c.print(f"Label Studio is up at {srv.url}  (log: {srv.log_path})")
        if cred.created:
            c.print(f"admin login: {cred.username} / {cred.password}")
            c.print(f"API token (shown once; also read from {srv.data_dir}/mds-labelstudio.json by mds):")
            c.print(f"  export MDS_LABEL_STUDIO_TOKEN={cred.token}")
    if detach:
        return
    try:
        assert srv.process is not None
        srv.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


@ls_app.command("stop")
def ls_stop(
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Server data directory.")] = None,
) -> None:
    """Stop a server started with ``mds labelstudio start --detach``."""
    from pathlib import Path

    from labeling.server import stop_by_pidfile
    from labeling.settings import ls_settings

    d = Path(data_dir) if data_dir else ls_settings(settings()).data_dir
    console().print("stopped" if stop_by_pidfile(d) else "no running server recorded in " + str(d))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(label_app, name="label")
    app.add_typer(ls_app, name="labelstudio")
