"""The one adapter over label-studio-sdk 2.x (``LabelStudio`` client).

Every call mds makes to Label Studio goes through :class:`LabelStudioClient`, so
an SDK upgrade touches this module only. SDK objects are turned into plain dicts;
connection failures, timeouts and API errors become one-line
:class:`~mds.errors.LabelingError` messages.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from mds.errors import LabelingError

T = TypeVar("T")
ENV_URL = "MDS_LABEL_STUDIO_URL"
ENV_TOKEN = "MDS_LABEL_STUDIO_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8080"


def _as_dict(obj: Any) -> Any:
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, dict):
        return {k: _as_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_as_dict(v) for v in obj]
    for meth in ("model_dump", "dict"):
        f = getattr(obj, meth, None)
        if callable(f):
            return _as_dict(f())
    return obj


def _short(body: Any, limit: int = 200) -> str:
    if isinstance(body, dict):
        body = body.get("detail") or body.get("validation_errors") or body
    text = " ".join(str(body).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Map SDK / transport exceptions of one call to a one-line LabelingError."""

    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def inner(self: LabelStudioClient, *a: Any, **kw: Any) -> T:
            import httpx
            from label_studio_sdk.core.api_error import ApiError

            try:
                return fn(self, *a, **kw)
            except LabelingError:
                raise
            except ApiError as e:
                if e.status_code == 401:
                    raise LabelingError(
                        f"Label Studio at {self.url} rejected the API token ({what})"
                    ) from None
                raise LabelingError(
                    f"Label Studio {what} failed: HTTP {e.status_code}: {_short(e.body)}"
                ) from None
            except httpx.TimeoutException:
                raise LabelingError(f"Label Studio at {self.url} timed out ({what})") from None
            except httpx.TransportError as e:
                raise LabelingError(
                    f"Label Studio at {self.url} is unreachable ({what}): {type(e).__name__}"
                ) from None

        return inner

    return deco


class LabelStudioClient:
    """A connection to one Label Studio server (``url`` + API ``token``)."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        if not token:
            raise LabelingError(
                f"no Label Studio API token: set {ENV_TOKEN} or [labelstudio] token in mds.toml "
                "(`mds labelstudio start` prints one)"
            )
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        self.token = token
        self.sdk = LabelStudio(base_url=self.url, api_key=token, timeout=timeout)
        self._users: dict[int, str] = {}

    # -- server ----------------------------------------------------------------------
    @_wrap("whoami")
    def whoami(self) -> dict[str, Any]:
        return _as_dict(self.sdk.users.whoami())

    @_wrap("list users")
    def user_label(self, user_id: int | None) -> str:
        """A stable annotator name for a user id (the e-mail; ``user:<id>`` if unknown)."""
        if user_id is None:
            return "unknown"
        if user_id not in self._users:
            self._users = {u.id: (u.email or u.username or f"user:{u.id}") for u in self.sdk.users.list()}
        return self._users.get(user_id, f"user:{user_id}")

    @_wrap("create user")
    def create_user(self, username: str, email: str, password: str | None = None) -> int:
        kw: dict[str, Any] = {"username": username, "email": email}
        if password:
            kw["password"] = password
        return int(self.sdk.users.create(**kw).id)

    # -- projects --------------------------------------------------------------------
    @_wrap("create project")
    def create_project(self, *, title: str, label_config: str, **settings: Any) -> int:
        return int(self.sdk.projects.create(title=title, label_config=label_config, **settings).id)

    @_wrap("update project")
    def update_project(self, project_id: int, **settings: Any) -> dict[str, Any]:
        return _as_dict(self.sdk.projects.update(id=project_id, **settings))

    @_wrap("get project")
    def get_project(self, project_id: int) -> dict[str, Any] | None:
        from label_studio_sdk.core.api_error import ApiError

        try:
            return _as_dict(self.sdk.projects.get(id=project_id))
        except ApiError as e:
            if e.status_code == 404:
                return None
            raise

    @_wrap("list projects")
    def find_project(self, marker: str) -> int | None:
        """The project whose description contains ``marker`` (the newest one if several)."""
        hits = [p.id for p in self.sdk.projects.list() if marker in (p.description or "")]
        return max(hits) if hits else None

    @_wrap("delete project")
    def delete_project(self, project_id: int) -> None:
        self.sdk.projects.delete(id=project_id)

    # -- storage ---------------------------------------------------------------------
    @_wrap("local storage")
    def ensure_local_storage(self, project_id: int, path: str) -> int:
        """A local-files import storage on ``path`` (created once; never synced: tasks are imported)."""
        for s in self.sdk.import_storage.local.list(project=project_id):
            if (s.path or "").rstrip("/") == path.rstrip("/"):
                return int(s.id)
        s = self.sdk.import_storage.local.create(
            project=project_id, path=path, use_blob_urls=True, title=f"mds {path}", regex_filter=r"^$"
        )
        return int(s.id)

    # -- tasks -----------------------------------------------------------------------
    @_wrap("import tasks")
    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> list[int]:
        """Import tasks (with predictions); returns the new task ids in request order."""
        r = self.sdk.projects.import_tasks(id=project_id, request=tasks, return_task_ids=True)
        ids = list(r.task_ids or [])
        if len(ids) != len(tasks):
            raise LabelingError(f"Label Studio returned {len(ids)} task ids for {len(tasks)} imported tasks")
        return ids

    @_wrap("list tasks")
    def list_tasks(self, project_id: int, *, full: bool = True) -> list[dict[str, Any]]:
        """All tasks of a project; ``full`` includes annotations and predictions."""
        fields = "all" if full else "task_only"
        return [_as_dict(t) for t in self.sdk.tasks.list(project=project_id, fields=fields, page_size=500)]

    @_wrap("get task")
    def get_task(self, task_id: int) -> dict[str, Any] | None:
        from label_studio_sdk.core.api_error import ApiError

        try:
            return _as_dict(self.sdk.tasks.get(id=str(task_id)))
        except ApiError as e:
            if e.status_code == 404:
                return None
            raise

    @_wrap("create prediction")
    def create_prediction(
        self,
        task_id: int,
        *,
        result: list[dict[str, Any]],
        score: float | None,
        model_version: str,
        cluster: int | None = None,
    ) -> int:
        kw: dict[str, Any] = {"task": task_id, "result": result, "model_version": model_version}
        if score is not None:
            kw["score"] = score
        if cluster is not None:
            kw["cluster"] = cluster
        return int(self.sdk.predictions.create(**kw).id)

    # -- annotations -----------------------------------------------------------------
    @_wrap("create annotation")
    def create_annotation(
        self,
        task_id: int,
        result: list[dict[str, Any]],
        *,
        completed_by: int | None = None,
        lead_time: float | None = None,
        was_cancelled: bool = False,
    ) -> int:
        kw: dict[str, Any] = {"id": task_id, "result": result}
        if completed_by is not None:
            kw["completed_by"] = completed_by
        if lead_time is not None:
            kw["lead_time"] = lead_time
        if was_cancelled:
            kw["was_cancelled"] = True
        return int(self.sdk.annotations.create(**kw).id)

    @_wrap("update annotation")
    def update_annotation(self, annotation_id: int, result: list[dict[str, Any]]) -> None:
        self.sdk.annotations.update(id=annotation_id, result=result)

    @_wrap("delete annotation")
    def delete_annotation(self, annotation_id: int) -> None:
        self.sdk.annotations.delete(id=annotation_id)

    # -- webhooks --------------------------------------------------------------------
    @_wrap("webhooks")
    def ensure_webhook(
        self,
        project_id: int,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        actions: Iterable[str] = (
            "ANNOTATION_CREATED",
            "ANNOTATIONS_CREATED",
            "ANNOTATION_UPDATED",
            "ANNOTATIONS_DELETED",
        ),
    ) -> int:
        """A webhook of ``project_id`` posting to ``url`` (reused when one with that URL exists)."""
        for w in self.sdk.webhooks.list(project=str(project_id)):
            if w.url == url:
                self.sdk.webhooks.update(
                    id=w.id,
                    url=url,
                    headers=headers or {},
                    actions=list(actions),
                    send_payload=True,
                    send_for_all_actions=False,
                    is_active=True,
                )
                return int(w.id)
        w = self.sdk.webhooks.create(
            url=url,
            project=project_id,
            headers=headers or {},
            actions=list(actions),
            send_payload=True,
            send_for_all_actions=False,
            is_active=True,
        )
        return int(w.id)


def client_from_settings(
    settings: Any = None, *, url: str | None = None, token: str | None = None
) -> LabelStudioClient:
    """A client from explicit values, the environment or ``[labelstudio]`` in mds.toml.

    Token lookup: argument, ``MDS_LABEL_STUDIO_TOKEN`` (or the variable named by
    ``token_env``), ``token`` in mds.toml, then the credentials file of a server
    started by ``mds labelstudio start`` in this project.
    """
    from labeling.server import CREDENTIALS_FILE
    from labeling.settings import ls_settings

    sec = settings.section("labelstudio") if settings is not None else {}
    url = url or os.environ.get(ENV_URL) or sec.get("url") or DEFAULT_URL
    token = token or os.environ.get(sec.get("token_env") or ENV_TOKEN) or sec.get("token")
    if not token and settings is not None:
        cred = ls_settings(settings).data_dir / CREDENTIALS_FILE
        if cred.is_file():
            import json

            token = json.loads(cred.read_text())["token"]
    return LabelStudioClient(url, token or "", timeout=float(sec.get("timeout", 30.0)))
