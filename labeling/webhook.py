"""Receive Label Studio webhooks: verify, record, answer at once, process afterwards.

``POST /webhook`` (any path works) must carry the shared secret in the
``X-Mds-Webhook-Secret`` header (Label Studio sends custom headers configured on
the webhook) or as ``?token=`` in the URL. A request with a missing or wrong
secret gets 401 and nothing is stored. A valid request is stored as a
:class:`~mds.db.models.WebhookEvent` whose ``delivery_key`` is the SHA-256 of
the body, so a duplicate delivery is answered 200 ("duplicate") without a second
row. The answer is sent before any processing: Label Studio waits only about a
second for it.

Processing (:func:`process_pending_events`) pulls the tasks the event names,
re-aggregates and may mark the round labelled and queue fine-tuning. It runs in
a background thread of the server right after the answer, or — with
``process=False`` — in ``mds label worker``. Events whose processing failed stay
``failed`` with the reason; ``mds label sync`` repairs whatever was missed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from mds.db.models import Annotation, LabelingTask, LabelProject, WebhookEvent

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Mds-Webhook-Secret"
MAX_BODY = 20 * 1024 * 1024
ACTIONS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED")


def record_event(db_url: str, body: bytes) -> tuple[str, int | None]:
    """Store one delivery; returns ``("accepted", id)``, ``("duplicate", id)`` or raises ``ValueError``."""
    from mds.db.engine import make_sessionmaker

    payload = json.loads(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("action"), str):
        raise ValueError("payload is not a Label Studio webhook (no 'action')")  # noqa: TRY004 - answered 400
    key = hashlib.sha256(body).hexdigest()
    with make_sessionmaker(db_url)() as s:
        ev = WebhookEvent(delivery_key=key, action=payload["action"][:64], payload=payload, status="received")
        s.add(ev)
        try:
            s.commit()
            return "accepted", ev.id
        except IntegrityError:
            s.rollback()
            old = s.scalars(select(WebhookEvent.id).where(WebhookEvent.delivery_key == key)).first()
            return "duplicate", old


def _as_list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else ([x] if isinstance(x, dict) else [])


def _tasks_of(s: Any, ev: WebhookEvent) -> tuple[LabelProject | None, set[int]]:
    p = ev.payload or {}
    project_ext = (
        (p.get("project") or {}).get("id") if isinstance(p.get("project"), dict) else p.get("project")
    )
    task_ids: set[int] = set()
    for t in _as_list(p.get("task")):
        if isinstance(t, dict) and t.get("id") is not None:
            task_ids.add(int(t["id"]))
    anns = _as_list(p.get("annotations")) + _as_list(p.get("annotation"))
    for a in anns:
        if isinstance(a, dict) and a.get("task") is not None:
            task_ids.add(int(a["task"]["id"] if isinstance(a["task"], dict) else a["task"]))
    if ev.action == "ANNOTATIONS_DELETED":  # the payload names annotations only: find their tasks here
        ids = [str(a["id"]) for a in anns if isinstance(a, dict) and a.get("id") is not None]
        if ids:
            rows = s.execute(
                select(LabelingTask.external_task_id, LabelingTask.project_id)
                .join(Annotation, Annotation.task_id == LabelingTask.id)
                .where(Annotation.external_id.in_(ids), Annotation.source.like("labelstudio:%"))
            ).all()
            task_ids |= {int(t) for t, _ in rows if t}
            if project_ext is None and rows:
                lp = s.get(LabelProject, rows[0][1])
                return lp, task_ids
    if project_ext is None:
        return None, task_ids
    lp = s.scalars(
        select(LabelProject).where(
            LabelProject.backend == "labelstudio", LabelProject.external_id == str(project_ext)
        )
    ).first()
    return lp, task_ids


def process_event(db_url: str, event_id: int, client: Any) -> str:
    """Process one claimed event; returns its final status."""
    from labeling.pull import pull_project
    from mds.db.engine import make_sessionmaker

    with make_sessionmaker(db_url)() as s:
        ev = s.get(WebhookEvent, event_id)
        assert ev is not None
        status, error = "processed", None
        try:
            if ev.action in ACTIONS:
                lp, task_ids = _tasks_of(s, ev)
                if lp is None:
                    error = "ignored: not an mds project"
                elif lp.base_url != client.url:
                    error = f"ignored: project belongs to {lp.base_url}"
                elif task_ids:
                    pull_project(s, client, lp, task_ids=task_ids)
            else:
                error = f"ignored: action {ev.action}"
        except Exception as e:  # noqa: BLE001 - recorded; sync repairs it later
            s.rollback()
            status, error = "failed", f"{type(e).__name__}: {e}"
        ev = s.get(WebhookEvent, event_id)
        assert ev is not None
        ev.status, ev.error, ev.processed_at = status, error, datetime.now(UTC)
        s.commit()
        return status


def process_pending_events(db_url: str, *, client_factory: Callable[[], Any] | None = None) -> int:
    """Process every ``received`` event in arrival order; returns how many were handled."""
    from mds.db.engine import make_sessionmaker

    Session_ = make_sessionmaker(db_url)
    with Session_() as s:
        ids = list(
            s.scalars(
                select(WebhookEvent.id).where(WebhookEvent.status == "received").order_by(WebhookEvent.id)
            )
        )
    if not ids:
        return 0
    client = None
    n = 0
    for eid in ids:
        with Session_() as s:  # claim: another processor may be on the same event
            claimed = s.execute(
                update(WebhookEvent)
                .where(WebhookEvent.id == eid, WebhookEvent.status == "received")
                .values(status="processing")
            ).rowcount
            s.commit()
        if not claimed:
            continue
        if client is None:
            try:
                client = client_factory() if client_factory else _default_client()
            except Exception as e:  # noqa: BLE001
                with Session_() as s:
                    ev = s.get(WebhookEvent, eid)
                    ev.status, ev.error = "failed", f"{type(e).__name__}: {e}"  # type: ignore[union-attr]
                    s.commit()
                n += 1
                continue
        process_event(db_url, eid, client)
        n += 1
    return n


def _default_client() -> Any:
    from labeling.client import client_from_settings
    from mds.config import load_settings

    return client_from_settings(load_settings())


class WebhookServer:
    """The HTTP receiver. ``start()`` serves in a thread; ``serve_forever()`` blocks."""

    def __init__(
        self,
        db_url: str,
        secret: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        process: bool = True,
        client_factory: Callable[[], Any] | None = None,
    ) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self.db_url, self.secret, self.process = db_url, secret, process
        self.client_factory = client_factory
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.httpd = ThreadingHTTPServer((host, port), self._handler())
        self.httpd.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/webhook"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet; errors go to logging
                log.debug("webhook: " + fmt, *args)

            def _answer(self, code: int, obj: dict[str, Any]) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self) -> None:
                if urlparse(self.path).path.rstrip("/") == "/health":
                    self._answer(200, {"status": "UP"})
                else:
                    self._answer(404, {"error": "not found"})

            def do_POST(self) -> None:
                given = (
                    self.headers.get(SECRET_HEADER)
                    or (parse_qs(urlparse(self.path).query).get("token") or [""])[0]
                )
                length = int(self.headers.get("Content-Length") or 0)
                if not hmac.compare_digest(given.encode(), server.secret.encode()):
                    self._answer(401, {"error": "bad or missing webhook secret"})
                    return
                if length <= 0 or length > MAX_BODY:
                    self._answer(400, {"error": "empty or oversized body"})
                    return
                body = self.rfile.read(length)
                try:
                    status, eid = record_event(server.db_url, body)
                except (ValueError, UnicodeDecodeError) as e:
                    self._answer(400, {"error": f"bad payload: {e}"})
                    return
                except Exception as e:
                    log.exception("webhook: cannot record event")
                    self._answer(503, {"error": f"cannot record: {type(e).__name__}"})
                    return
                self._answer(200, {"status": status, "event_id": eid})
                if status == "accepted" and server.process:
                    server._wake.set()

        return Handler

    def _processor(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=5.0)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                process_pending_events(self.db_url, client_factory=self.client_factory)
            except Exception:
                log.exception("webhook: processing failed")

    def start(self) -> WebhookServer:
        t = threading.Thread(target=self.httpd.serve_forever, name="mds-webhook-http", daemon=True)
        t.start()
        self._threads.append(t)
        if self.process:
            p = threading.Thread(target=self._processor, name="mds-webhook-process", daemon=True)
            p.start()
            self._threads.append(p)
        return self

    def serve_forever(self) -> None:
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        for t in self._threads:
            t.join(timeout=10)
