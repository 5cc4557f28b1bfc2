"""SQLAlchemy ORM models of the video pool.

Everything is keyed by stable integer ``video_id`` (``videos.id``), never by list
positions. Free-form facts live in JSON columns so that plug-ins can record what
they need without a schema change; anything queried or constrained is a column.

Glossary of status strings (kept as plain strings, validated in code):

* ``Video.split``: ``source`` (labelled source domain), ``pool`` (unlabelled
  candidates), ``test`` (held out).
* ``Prediction.parse_status``: ``ok``, ``fallback``, ``out_of_range``,
  ``truncated``, ``recommend_only``, ``missing_dims``, ``failed``, ``error``.
* ``Round.status``: ``created`` → ``scored`` → ``embedded`` → ``selected`` →
  ``pushed`` → ``labelled`` → ``finetuned`` → ``evaluated`` → ``done``; or ``failed``.
* ``Annotation.status``: ``ok``, ``rejected``, ``deleted``, ``skipped``.
* ``Checkpoint.kind``: ``base``, ``failure_predictor``, ``finetuned``.
* ``Job.status``: ``queued``, ``running``, ``done``, ``failed``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SPLITS = ("source", "pool", "test")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class Video(TimestampMixin, Base):
    """One video of the pool. ``uri`` is a local absolute path or a URL."""

    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(512), index=True)  # file name or external id, e.g. "SDR_Animal_01ld.mp4"
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # sha256 hex; NULL = not probed
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    container: Mapped[str | None] = mapped_column(String(64))
    codec: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    dataset: Mapped[str] = mapped_column(String(128), default="default", index=True)  # domain / rating scale
    split: Mapped[str] = mapped_column(String(16), default="pool", index=True)
    # title, tags, asr, category, subcategory, prompt (text-to-video), cover, ... anything else
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    probed: Mapped[bool] = mapped_column(Boolean, default=False)

    labels: Mapped[list[Label]] = relationship(
        back_populates="video", cascade="all, delete-orphan", foreign_keys="Label.video_id"
    )


class IngestError(Base):
    """A file or manifest row that could not be ingested, with the reason."""

    __tablename__ = "ingest_errors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(2048), index=True)  # path, URL or "manifest.csv:17"
    reason: Mapped[str] = mapped_column(Text)
    error_type: Mapped[str] = mapped_column(String(64))  # e.g. truncated, no_video_stream, missing_path
    run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Checkpoint(Base):
    """A model artefact: base model, failure predictor or fine-tuned adapter."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("kind", "name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[str] = mapped_column(String(128))
    evaluator: Mapped[str | None] = mapped_column(String(128))  # base evaluator the artefact belongs to
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    path: Mapped[str | None] = mapped_column(String(2048))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    round_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # rounds whose labels trained it
    status: Mapped[str] = mapped_column(String(32), default="ready")  # training, ready, failed
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    parent: Mapped[Checkpoint | None] = relationship(remote_side=[id])


class Round(TimestampMixin, Base):
    """One labelling round: config snapshot, seeds, model versions, status and metrics."""

    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)  # 1, 2, 3 ... as users speak of rounds
    name: Mapped[str | None] = mapped_column(String(256))
    strategy: Mapped[str] = mapped_column(String(64))
    budget: Mapped[int] = mapped_column(Integer)
    budget_spec: Mapped[str | None] = mapped_column(String(32))  # as given: "64" or "5%"
    seed: Mapped[int] = mapped_column(Integer, default=0)
    lambda_: Mapped[float | None] = mapped_column("lambda", Float)
    encoder: Mapped[str | None] = mapped_column(String(256))
    evaluator: Mapped[str | None] = mapped_column(String(128))
    base_checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    predictor_checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    finetuned_checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # full config snapshot
    config_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="created", index=True)
    steps: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # step -> {"done_at": ..., ...}
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    selections: Mapped[list[Selection]] = relationship(
        back_populates="round", cascade="all, delete-orphan", order_by="Selection.pick_order"
    )


class Selection(Base):
    """One pick of a round, with the terms that explain it."""

    __tablename__ = "selections"
    __table_args__ = (UniqueConstraint("round_id", "video_id"), UniqueConstraint("round_id", "pick_order"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id"), index=True)
    pick_order: Mapped[int] = mapped_column(Integer)  # 0-based
    difficulty: Mapped[float | None] = mapped_column(Float)
    diversity: Mapped[float | None] = mapped_column(Float)  # mean distance to the selected set (unscaled)
    total: Mapped[float | None] = mapped_column(Float)  # difficulty + lambda * diversity
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # rank, runner-up margin, ...

    round: Mapped[Round] = relationship(back_populates="selections")


class Prediction(Base):
    """A base evaluator's output for one video (or one pair for pairwise evaluators)."""

    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("video_id", "evaluator", "evaluator_version", "variant"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    evaluator: Mapped[str] = mapped_column(String(128), index=True)
    evaluator_version: Mapped[str] = mapped_column(String(256))  # version string or checkpoint hash
    variant: Mapped[str] = mapped_column(String(128), default="")  # "" or e.g. "vs:123" for a pair
    pair_video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id"))
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    score: Mapped[float | None] = mapped_column(Float)  # scalar predicted quality for ranking
    parsed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    raw_output: Mapped[str | None] = mapped_column(Text)
    parse_status: Mapped[str] = mapped_column(String(32), default="ok")
    n_samples: Mapped[int] = mapped_column(Integer, default=1)
    gen_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    preproc: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DifficultyScore(Base):
    """Failure-predictor output g(x) for one video and one predictor version."""

    __tablename__ = "difficulty_scores"
    __table_args__ = (UniqueConstraint("video_id", "predictor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    predictor: Mapped[str] = mapped_column(String(256), index=True)  # "name@version" or "import:<file>"
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id"))
    score: Mapped[float] = mapped_column(Float)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EmbeddingRecord(Base):
    """Where one video's frame vectors for one encoder live (vectors are stored outside the DB)."""

    __tablename__ = "embedding_records"
    __table_args__ = (UniqueConstraint("video_id", "encoder"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    encoder: Mapped[str] = mapped_column(String(256), index=True)  # encoder key incl. sampling config
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok, failed
    n_frames: Mapped[int | None] = mapped_column(Integer)
    dim: Mapped[int | None] = mapped_column(Integer)
    dtype: Mapped[str | None] = mapped_column(String(16))
    location: Mapped[str | None] = mapped_column(String(2048))  # store file / shard
    offset: Mapped[int | None] = mapped_column(BigInteger)  # row offset within the shard
    error: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LabelProject(Base):
    """An external annotation project (e.g. a Label Studio project) used by mds."""

    __tablename__ = "label_projects"
    __table_args__ = (UniqueConstraint("backend", "base_url", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backend: Mapped[str] = mapped_column(String(32))  # labelstudio, simulated
    base_url: Mapped[str] = mapped_column(String(512), default="")
    external_id: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(256))
    label_kind: Mapped[str] = mapped_column(String(32))  # scalar, binary, pairwise, multidim
    label_config: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LabelingTask(TimestampMixin, Base):
    """One video of a round sent to annotators, with the external task id."""

    __tablename__ = "labeling_tasks"
    __table_args__ = (
        UniqueConstraint("round_id", "video_id", "project_id"),
        Index("ix_labeling_tasks_external", "project_id", "external_task_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("label_projects.id"))
    external_task_id: Mapped[str | None] = mapped_column(String(64))  # NULL until the import is confirmed
    status: Mapped[str] = mapped_column(String(32), default="pending")  # pending, pushed, labelled
    ratings_wanted: Mapped[int] = mapped_column(Integer, default=1)
    ratings_done: Mapped[int] = mapped_column(Integer, default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Annotation(TimestampMixin, Base):
    """One raw rating by one annotator (kept even when rejected or deleted)."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    pair_video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("labeling_tasks.id"))
    source: Mapped[str] = mapped_column(String(64))  # labelstudio:<base_url>, simulated, manifest
    external_id: Mapped[str] = mapped_column(String(128))  # annotation id at the source
    annotator: Mapped[str] = mapped_column(String(256), index=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # typed result
    score: Mapped[float | None] = mapped_column(Float)  # scalar rating when the label kind has one
    status: Mapped[str] = mapped_column(String(16), default="ok")
    reject_reason: Mapped[str | None] = mapped_column(Text)
    lead_time_s: Mapped[float | None] = mapped_column(Float)


class Label(TimestampMixin, Base):
    """An aggregated human label of a video (MOS with count, spread and scale)."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("video_id", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(64), default="manifest")  # manifest, labelstudio, simulated, oracle
    kind: Mapped[str] = mapped_column(String(32), default="scalar")  # scalar, binary, ordinal, pairwise, multidim
    mos: Mapped[float | None] = mapped_column(Float)  # scalar value (MOS) on the dataset's own scale
    n_ratings: Mapped[int | None] = mapped_column(Integer)
    std: Mapped[float | None] = mapped_column(Float)
    ci95: Mapped[float | None] = mapped_column(Float)  # half-width of the 95% confidence interval
    scale_min: Mapped[float | None] = mapped_column(Float)
    scale_max: Mapped[float | None] = mapped_column(Float)
    value: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # non-scalar labels, per-dimension values
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))

    video: Mapped[Video] = relationship(back_populates="labels", foreign_keys=[video_id])


class WebhookEvent(Base):
    """A received annotation webhook; ``delivery_key`` makes duplicate deliveries harmless."""

    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_key: Mapped[str] = mapped_column(String(128), unique=True)
    action: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="received")  # received, processed, failed
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Job(Base):
    """A queued background job (e.g. active fine-tuning after a round is labelled)."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
