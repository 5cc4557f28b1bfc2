"""Pull annotations from Label Studio into the pool, aggregate them and detect finished rounds.

A pull lists the project's tasks with their annotations and compares each
annotation with the stored :class:`~mds.db.models.Annotation` row (keyed by
``source`` = ``labelstudio:<server url>`` and the Label Studio annotation id):

* new → ``created`` (status ``ok``, ``skipped`` for a skipped task, or
  ``rejected`` with the reason when the result is malformed or out of range),
* changed (result, annotator or skip flag) → ``updated``,
* stored but no longer in Label Studio → status ``deleted`` (the row is kept).

Only changed rows are written, so a pull is cheap to repeat. Labels of the
affected rounds are then recomputed (:func:`labeling.aggregate.recompute_labels`,
label source ``labelstudio``) and every round whose videos all have their
required ratings is marked ``labelled`` with a fine-tuning job queued
(:func:`check_round_complete`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from labeling.aggregate import AggregationConfig, recompute_labels
from labeling.client import LabelStudioClient
from labeling.jobs import enqueue
from labeling.kinds import ResultRejected, get_kind
from mds.db.models import Annotation, Job, LabelingTask, LabelProject, Round

LABEL_SOURCE = "labelstudio"
LABELLED_FROM = ("created", "scored", "embedded", "selected", "pushed")


def annotation_source(base_url: str) -> str:
    """``labelstudio:<url>`` (shortened to fit the column for very long URLs)."""
    s = f"{LABEL_SOURCE}:{base_url.rstrip('/')}"
    if len(s) <= 64:
        return s
    import hashlib

    return f"{LABEL_SOURCE}:{hashlib.sha1(base_url.encode()).hexdigest()[:40]}"


@dataclass
class PullResult:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: int = 0
    rejected: int = 0
    unchanged: int = 0
    tasks: int = 0
    labels: int = 0
    rounds_labelled: list[int] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)
    missing_projects: list[int] = field(default_factory=list)  # recorded, but gone from Label Studio

    def add(self, other: PullResult) -> None:
        for k in ("created", "updated", "deleted", "skipped", "rejected", "unchanged", "tasks", "labels"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.rounds_labelled += other.rounds_labelled
        self.jobs += other.jobs
        self.missing_projects += other.missing_projects
        for k, v in other.reasons.items():
            self.reasons[k] = self.reasons.get(k, 0) + v

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _user_id(completed_by: Any) -> int | None:
    if isinstance(completed_by, dict):
        return completed_by.get("id")
    return int(completed_by) if completed_by is not None else None


def pull_project(
    session: Session,
    client: LabelStudioClient,
    project: LabelProject,
    *,
    task_ids: Iterable[int] | None = None,
    config: AggregationConfig | None = None,
) -> PullResult:
    """Pull one project's annotations (all tasks, or only ``task_ids``) and aggregate; commits."""
    res = PullResult()
    ext = int(project.external_id)
    source = annotation_source(client.url)
    kind = get_kind(project.label_kind or "scalar", slider=bool((project.settings or {}).get("slider")))
    ours = list(session.scalars(select(LabelingTask).where(LabelingTask.project_id == project.id)))
    by_ext = {t.external_task_id: t for t in ours if t.external_task_id}
    by_key = {(t.extra or {}).get("task_key"): t for t in ours if not t.external_task_id}
    full = task_ids is None
    if full:
        remote = client.list_tasks(ext, full=True)
    else:
        remote = []
        for tid in {int(t) for t in task_ids}:  # type: ignore[union-attr]
            task = client.get_task(tid)
            if task is not None:
                remote.append(task)
            elif str(tid) in by_ext:  # the task was deleted in Label Studio
                remote.append({"id": tid, "annotations": [], "_gone": True})

    seen_tasks: set[int] = set()
    seen_ann: set[str] = set()
    touched_rounds: set[int] = set()
    for task in remote:
        lt = by_ext.get(str(task["id"]))
        if lt is None:  # an import whose answer was lost: match by the key in the task data
            lt = by_key.pop((task.get("data") or {}).get("mds_task_key"), None)
            if lt is None:
                continue
            lt.external_task_id, lt.status = str(task["id"]), "pushed"
        seen_tasks.add(lt.id)
        res.tasks += 1
        for ann in task.get("annotations") or []:
            ann = ann if isinstance(ann, dict) else dict(ann)
            ext_id = str(ann["id"])
            seen_ann.add(ext_id)
            changed = _upsert(session, client, source, kind, lt, ann, res)
            if changed:
                touched_rounds.add(lt.round_id)

    # Deletions: stored annotations of the pulled tasks that Label Studio no longer has.
    scope = [t.id for t in ours if t.id in seen_tasks or (full and t.external_task_id)]
    if scope:
        stale = session.scalars(
            select(Annotation).where(
                Annotation.source == source, Annotation.task_id.in_(scope), Annotation.status != "deleted"
            )
        ).all()
        for a in stale:
            if a.external_id not in seen_ann:
                a.status, a.reject_reason = "deleted", None
                res.deleted += 1
                touched_rounds.add(a.round_id)  # type: ignore[arg-type]
    session.flush()

    rounds = {t.round_id for t in ours if t.id in seen_tasks}
    _update_counts(session, [t for t in ours if t.round_id in rounds], source)
    for rid in sorted(rounds):
        vids = [t.video_id for t in ours if t.round_id == rid]
        if rid in touched_rounds or full:
            res.labels += len(
                recompute_labels(
                    session,
                    vids,
                    source=LABEL_SOURCE,
                    kind=kind.name,
                    scale=(kind.scale_min, kind.scale_max),
                    config=config,
                    round_id=rid,
                )
            )
    settings = dict(project.settings or {})
    settings["last_pull"] = datetime.now(UTC).isoformat()
    project.settings = settings
    session.commit()
    for rid in sorted(rounds):
        rnd = session.get(Round, rid)
        if rnd is None or "labelled" in (rnd.steps or {}):
            continue  # reported when it happened; re-checks must not queue or report it again
        job = check_round_complete(session, rid)
        if job is not None:
            res.rounds_labelled.append(rid)
            res.jobs.append(job.id)
    session.commit()
    return res


def _upsert(
    session: Session,
    client: LabelStudioClient,
    source: str,
    kind: Any,
    lt: LabelingTask,
    ann: dict[str, Any],
    res: PullResult,
) -> bool:
    ext_id = str(ann["id"])
    annotator = client.user_label(_user_id(ann.get("completed_by")))
    status, reason, value, score = "ok", None, {}, None
    if ann.get("was_cancelled"):
        status = "skipped"
    else:
        try:
            value, score = kind.parse_result(ann.get("result"))
        except ResultRejected as e:
            status, reason, value = "rejected", str(e), {"raw_result": ann.get("result")}
    pair = (lt.extra or {}).get("pair_video_id")
    if pair and status == "ok":
        if (lt.extra or {}).get("swapped"):  # the pair was shown right-left: map the answer back
            flip = {"Video 1": "Video 2", "Video 2": "Video 1"}
            value = {k: flip.get(v, v) if isinstance(v, str) else v for k, v in value.items()}
            value["shown_swapped"] = True
            score = -score if score else score
        value = {**value, "pair_video_id": pair}
    a = session.scalars(
        select(Annotation).where(Annotation.source == source, Annotation.external_id == ext_id)
    ).first()
    if a is None:
        a = Annotation(
            source=source,
            external_id=ext_id,
            video_id=lt.video_id,
            round_id=lt.round_id,
            task_id=lt.id,
            pair_video_id=pair,
            annotator=annotator,
            value=value,
            score=score,
            status=status,
            reject_reason=reason,
            lead_time_s=ann.get("lead_time"),
        )
        session.add(a)
        res.created += 1
    elif (a.status, a.value, a.score, a.annotator, a.reject_reason) != (
        status,
        value,
        score,
        annotator,
        reason,
    ):
        a.status, a.value, a.score, a.annotator, a.reject_reason = status, value, score, annotator, reason
        a.lead_time_s = ann.get("lead_time")
        res.updated += 1
    else:
        res.unchanged += 1
        return False
    if status == "skipped":
        res.skipped += 1
    elif status == "rejected":
        res.rejected += 1
        key = (reason or "").split(":", 1)[0]
        res.reasons[key] = res.reasons.get(key, 0) + 1
    return True


def _update_counts(session: Session, tasks: list[LabelingTask], source: str) -> None:
    if not tasks:
        return
    ids = [t.id for t in tasks]
    done: dict[int, set[str]] = defaultdict(set)
    for tid, who in session.execute(
        select(Annotation.task_id, Annotation.annotator).where(
            Annotation.task_id.in_(ids), Annotation.status == "ok", Annotation.source == source
        )
    ):
        done[tid].add(who)
    for t in tasks:
        t.ratings_done = len(done.get(t.id, ()))
        if t.external_task_id:
            t.status = "labelled" if t.ratings_done >= t.ratings_wanted else "pushed"


def check_round_complete(session: Session, round_id: int) -> Job | None:
    """If every video of the round has its required ratings: mark it labelled and queue fine-tuning.

    Returns the fine-tuning job when the round is (or already was) complete.
    The job's ``dedupe_key`` makes repeated checks harmless.
    """
    r = session.get(Round, round_id)
    if r is None:
        return None
    tasks = list(session.scalars(select(LabelingTask).where(LabelingTask.round_id == round_id)))
    if not tasks or any(t.ratings_done < t.ratings_wanted for t in tasks):
        return None
    steps = dict(r.steps or {})
    if "labelled" not in steps:
        steps["labelled"] = {
            "done_at": datetime.now(UTC).isoformat(),
            "n_videos": len(tasks),
            "n_ratings": sum(t.ratings_done for t in tasks),
        }
        r.steps = steps
    if r.status in LABELLED_FROM:
        r.status = "labelled"
    job = enqueue(
        session, "finetune", {"round_id": r.id, "round_number": r.number}, dedupe_key=f"finetune:round:{r.id}"
    )
    session.commit()
    return job


def projects_for(session: Session, base_url: str, round_number: int | None = None) -> list[LabelProject]:
    """mds's Label Studio projects on ``base_url`` (only those of one round when given)."""
    ps = list(
        session.scalars(
            select(LabelProject).where(
                LabelProject.backend == "labelstudio", LabelProject.base_url == base_url.rstrip("/")
            )
        )
    )
    if round_number is None:
        return ps
    r = session.scalars(select(Round).where(Round.number == round_number)).first()
    return [p for p in ps if r is not None and r.id in (p.settings or {}).get("round_ids", [])]


def pull(
    session: Session,
    client: LabelStudioClient,
    *,
    round_number: int | None = None,
    config: AggregationConfig | None = None,
) -> PullResult:
    """Pull every mds project on the client's server (or one round's); this is also ``mds label sync``."""
    total = PullResult()
    client.whoami()  # fail loudly on a wrong URL or token even when there is nothing to pull
    for p in projects_for(session, client.url, round_number):
        if client.get_project(int(p.external_id)) is None:  # deleted in Label Studio: skip, keep what we have
            total.missing_projects.append(int(p.external_id))
            continue
        total.add(pull_project(session, client, p, config=config))
    return total
