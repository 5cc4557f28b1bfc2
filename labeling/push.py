"""Push one round's batch to Label Studio, idempotently.

Order of work, chosen so that a crash or a network failure at any point can be
repaired by running the same push again:

1. The project is found or created. Its description carries a key derived from
   the round (``mds-project-key=…``), so a project created just before a crash
   is found again instead of created twice; it is recorded in
   :class:`~mds.db.models.LabelProject`.
2. One :class:`~mds.db.models.LabelingTask` per selected video is written and
   committed *before* anything is imported; its client-side key travels in the
   task data (``mds_task_key``).
3. The tasks that already exist in the project are listed and matched by that
   key (this recovers imports whose answer was lost); only the rest is imported,
   in batches, each batch's task ids committed as soon as they are known.
4. Every task gets the round's prediction if it lacks one: the base model's
   answer as the pre-annotation, ``score`` = (pick order + ½) / n so that Label
   Studio's "Uncertainty sampling" queue (lowest score first, least-served
   cluster first) follows the selection order, ``cluster`` from the selection
   when it has one, and ``model_version = mds-round-<n>``, which is also set on
   the project so that only this round's predictions drive the queue.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.client import LabelStudioClient
from labeling.kinds import get_kind
from labeling.media import media_ref
from mds.db.models import LabelingTask, LabelProject, Prediction, Round, Selection, Video
from mds.errors import LabelingError

log = logging.getLogger(__name__)
SAMPLING = "Uncertainty sampling"


@dataclass
class PushOptions:
    """What to push and how (defaults suit a scalar MOS round)."""

    kind: str | None = None  # label kind; default: the evaluator's, else "scalar"
    slider: bool = False  # continuous 1-5 slider instead of 1-5 stars (scalar only)
    ratings_per_video: int = 3
    project_id: int | None = None  # push into this existing Label Studio project
    title: str | None = None
    batch_size: int = 100
    document_root: Path | None = None  # default: [labelstudio] document_root of the current project
    show_predictions: bool = True  # show the base model's answer to raters as a pre-annotation
    instructions: str | None = None


@dataclass
class PushResult:
    round_number: int
    project_id: int  # Label Studio project id
    label_project_id: int  # LabelProject row
    model_version: str
    total: int
    imported: int = 0
    recovered: int = 0  # found in Label Studio by key (earlier push whose answer was lost)
    already: int = 0  # recorded from an earlier push
    predictions: int = 0
    storages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def round_key(r: Round) -> str:
    """A stable client-side key of a round (differs between databases)."""
    created = r.created_at.replace(tzinfo=None).isoformat() if r.created_at else ""
    return hashlib.sha1(f"{r.id}|{r.number}|{created}".encode()).hexdigest()[:12]


def task_key(r: Round, video_id: int) -> str:
    return f"mds-{round_key(r)}-v{video_id}"


def pair_swapped(r: Round, video_id: int, pair_video_id: int) -> bool:
    """Whether a pair is shown in swapped order (deterministic per round seed and pair, about half of them)."""
    return hashlib.sha1(f"{r.seed}:{video_id}:{pair_video_id}".encode()).digest()[0] % 2 == 1


def model_version(r: Round) -> str:
    return f"mds-round-{r.number}"


def resolve_kind(r: Round, kind: str | None) -> str:
    """The label kind of a round: explicit, else the evaluator's declared kind, else scalar."""
    if kind:
        return kind
    if r.evaluator:
        try:  # an unknown or unloadable evaluator falls back to scalar
            from mds.evaluators.registry import get_spec

            return str(get_spec(r.evaluator).label.kind.value)
        except Exception as e:  # noqa: BLE001
            log.debug("label kind of evaluator %r unknown (%s); using scalar", r.evaluator, e)
    return "scalar"


def get_round(session: Session, number: int) -> Round:
    r = session.scalars(select(Round).where(Round.number == number)).first()
    if r is None:
        raise LabelingError(f"round {number} does not exist")
    return r


def base_prediction(session: Session, video_id: int, evaluator: str | None) -> Prediction | None:
    """The newest prediction of the round's evaluator for a video (the pre-annotation)."""
    q = select(Prediction).where(Prediction.video_id == video_id, Prediction.variant == "")
    if evaluator:
        q = q.where(Prediction.evaluator == evaluator)
    else:
        return None
    return session.scalars(q.order_by(Prediction.created_at.desc(), Prediction.id.desc()).limit(1)).first()


def _project(
    session: Session, client: LabelStudioClient, r: Round, kind: str, opts: PushOptions
) -> tuple[LabelProject, int]:
    lk = get_kind(kind, slider=opts.slider)
    marker = f"mds-project-key={round_key(r)}"
    projects = session.scalars(
        select(LabelProject).where(LabelProject.backend == "labelstudio", LabelProject.base_url == client.url)
    ).all()
    ext: int | None = opts.project_id
    if ext is None:
        for lp in projects:
            if r.id in (lp.settings or {}).get("round_ids", []) and client.get_project(int(lp.external_id)):
                ext = int(lp.external_id)
                break
    if ext is None:
        ext = client.find_project(marker)
    if ext is None:
        ext = client.create_project(
            title=opts.title or f"mds round {r.number}",
            label_config=lk.label_config(),
            description=f"Videos selected by mds for round {r.number}. {marker}",
            expert_instruction=opts.instructions or "",
            show_instruction=bool(opts.instructions),
            maximum_annotations=opts.ratings_per_video,
            model_version=model_version(r),
            sampling=SAMPLING,
            show_collab_predictions=opts.show_predictions,
            show_skip_button=True,
        )
    elif client.get_project(ext) is None:
        raise LabelingError(f"Label Studio project {ext} does not exist at {client.url}")
    lp = next((p for p in projects if p.external_id == str(ext)), None)
    if lp is None:
        lp = LabelProject(
            backend="labelstudio",
            base_url=client.url,
            external_id=str(ext),
            title=opts.title or f"mds round {r.number}",
            label_kind=kind,
            label_config=lk.label_config(),
            settings={},
        )
        session.add(lp)
    settings = dict(lp.settings or {})
    settings["round_ids"] = sorted(set(settings.get("round_ids", [])) | {r.id})
    settings.update(
        ratings_per_video=opts.ratings_per_video, slider=opts.slider, model_version=model_version(r)
    )
    lp.settings = settings
    lp.label_kind = kind
    session.commit()
    # Every push re-asserts the queue settings: another round may have bumped the model version.
    client.update_project(
        ext,
        model_version=model_version(r),
        sampling=SAMPLING,
        maximum_annotations=opts.ratings_per_video,
        show_collab_predictions=opts.show_predictions,
    )
    return lp, ext


def push_round(
    session: Session,
    client: LabelStudioClient,
    round_number: int,
    options: PushOptions | None = None,
    *,
    on_batch: Callable[[int, list[int]], None] | None = None,
) -> PushResult:
    """Send round ``round_number``'s selection to Label Studio (safe to re-run; see the module docstring).

    ``on_batch(i, task_ids)`` is called after each imported batch is recorded.
    """
    opts = options or PushOptions()
    if opts.ratings_per_video < 1:
        raise LabelingError("ratings per video must be at least 1")
    r = get_round(session, round_number)
    sels = list(
        session.scalars(select(Selection).where(Selection.round_id == r.id).order_by(Selection.pick_order))
    )
    if not sels:
        raise LabelingError(f"round {round_number} has no selected videos to push")
    kind = resolve_kind(r, opts.kind)
    lk = get_kind(kind, slider=opts.slider)
    n = len(sels)

    # Media first: a missing file fails the push before anything is created remotely.
    root = opts.document_root
    if root is None:
        from labeling.settings import ls_settings
        from mds.config import load_settings

        root = ls_settings(load_settings()).document_root
    refs: dict[int, Any] = {}
    pair_refs: dict[int, Any] = {}
    for s in sels:
        v = session.get(Video, s.video_id)
        assert v is not None
        refs[s.video_id] = media_ref(v.uri, v.id, v.name, root)
        if kind == "pairwise":
            pid = (s.extra or {}).get("pair_video_id")
            pv = session.get(Video, int(pid)) if pid is not None else None
            if pv is None:
                raise LabelingError(f"pairwise round: selection of video {s.video_id} has no pair_video_id")
            pair_refs[s.video_id] = media_ref(pv.uri, pv.id, pv.name, root)

    lp, ext = _project(session, client, r, kind, opts)
    mv = model_version(r)
    storages = sorted({m.storage_dir for m in [*refs.values(), *pair_refs.values()] if m.storage_dir})
    for d in storages:
        client.ensure_local_storage(ext, d)

    # 2. LabelingTask rows, committed before any import.
    existing = {
        t.video_id: t
        for t in session.scalars(
            select(LabelingTask).where(LabelingTask.round_id == r.id, LabelingTask.project_id == lp.id)
        )
    }
    rows: dict[int, LabelingTask] = {}
    for s in sels:
        t = existing.get(s.video_id)
        v = session.get(Video, s.video_id)
        if t is None:
            t = LabelingTask(
                round_id=r.id,
                video_id=s.video_id,
                project_id=lp.id,
                status="pending",
                ratings_wanted=opts.ratings_per_video,
                ratings_done=0,
                extra={},
            )
            session.add(t)
        extra = dict(t.extra or {})
        extra.update(
            task_key=task_key(r, s.video_id),
            pick_order=s.pick_order,
            url=refs[s.video_id].url,
            content_hash=v.content_hash if v else None,
        )
        if kind == "pairwise":
            extra["pair_video_id"] = int((s.extra or {})["pair_video_id"])
            extra.setdefault("swapped", pair_swapped(r, s.video_id, extra["pair_video_id"]))
        t.extra = extra
        t.ratings_wanted = opts.ratings_per_video
        rows[s.video_id] = t
    session.commit()

    result = PushResult(
        round_number=r.number,
        project_id=ext,
        label_project_id=lp.id,
        model_version=mv,
        total=n,
        storages=storages,
    )
    # 3. Reconcile with what exists, then import the rest.
    remote = client.list_tasks(ext, full=True)
    by_key: dict[str, dict[str, Any]] = {}
    for task in remote:
        key = (task.get("data") or {}).get("mds_task_key")
        if key and key not in by_key:
            by_key[key] = task
    for t in rows.values():
        found = by_key.get(t.extra["task_key"])
        if t.external_task_id is not None:
            result.already += 1
        elif found is not None:
            t.external_task_id, t.status = str(found["id"]), "pushed"
            result.recovered += 1
    session.commit()

    def payload(s: Selection) -> dict[str, Any]:
        v = session.get(Video, s.video_id)
        assert v is not None
        meta = v.meta or {}
        data: dict[str, Any] = {
            "video": refs[s.video_id].url,
            "title": str(meta.get("title") or v.name),
            "prompt": str(meta.get("prompt") or meta.get("t2v_prompt") or ""),
            "name": v.name,
            "mds_task_key": task_key(r, s.video_id),
            "mds_video_id": v.id,
            "mds_round": r.number,
            "mds_pick_order": s.pick_order,
        }
        if kind == "pairwise":
            data["video2"] = pair_refs[s.video_id].url
            data["mds_pair_video_id"] = rows[s.video_id].extra["pair_video_id"]
            if rows[s.video_id].extra.get("swapped"):  # shown right-left; pull maps the answers back
                data["video"], data["video2"] = data["video2"], data["video"]
                data["mds_swapped"] = True
        return {"data": data}

    todo = [s for s in sels if rows[s.video_id].external_task_id is None]
    with_clusters = any((s.extra or {}).get("cluster") is not None for s in sels)
    for i in range(0, len(todo), max(1, opts.batch_size)):
        batch = todo[i : i + opts.batch_size]
        tasks = [payload(s) for s in batch]
        if not with_clusters:  # bulk import cannot carry the cluster; those get predictions one by one below
            for s, tk in zip(batch, tasks):
                tk["predictions"] = [
                    _prediction(session, r, s, n, lk, mv, rows[s.video_id].extra.get("swapped"))
                ]
        ids = client.import_tasks(ext, tasks)
        for s, tid in zip(batch, ids):
            rows[s.video_id].external_task_id = str(tid)
            rows[s.video_id].status = "pushed"
        session.commit()
        result.imported += len(batch)
        if on_batch is not None:
            on_batch(i // max(1, opts.batch_size), ids)

    # 4. Predictions for tasks that lack the round's one (cluster rounds, or a crash in between).
    remote = {int(t["id"]): t for t in client.list_tasks(ext, full=True)}
    for s in sels:
        tid = int(rows[s.video_id].external_task_id)  # type: ignore[arg-type]
        preds = (remote.get(tid) or {}).get("predictions") or []
        if not any(p.get("model_version") == mv for p in preds):
            p = _prediction(session, r, s, n, lk, mv, rows[s.video_id].extra.get("swapped"))
            client.create_prediction(
                tid, result=p["result"], score=p["score"], model_version=mv, cluster=p.get("cluster")
            )
            result.predictions += 1
        elif not with_clusters and rows[s.video_id].external_task_id and s in todo:
            result.predictions += 1

    if r.status in ("created", "scored", "embedded", "selected"):
        r.status = "pushed"
    steps = dict(r.steps or {})
    steps["pushed"] = {
        "done_at": datetime.now(UTC).isoformat(),
        "project_id": ext,
        "base_url": client.url,
        "n_tasks": n,
        "model_version": mv,
        "label_kind": kind,
        "ratings_per_video": opts.ratings_per_video,
    }
    r.steps = steps
    session.commit()
    return result


def _prediction(
    session: Session, r: Round, s: Selection, n: int, lk: Any, mv: str, swapped: bool | None = False
) -> dict[str, Any]:
    pred = base_prediction(session, s.video_id, r.evaluator)
    parsed = dict(pred.parsed or {}) if pred else None
    if swapped and parsed:
        parsed = {
            k: {1: 2, 2: 1, "1": "2", "2": "1"}.get(v, v) if not isinstance(v, dict) else v
            for k, v in parsed.items()
        }
    result = lk.prediction_result(pred.score if pred else None, parsed)
    out: dict[str, Any] = {"model_version": mv, "score": (s.pick_order + 0.5) / n, "result": result}
    cluster = (s.extra or {}).get("cluster")
    if cluster is not None:
        out["cluster"] = int(cluster)
    return out
