"""HTML report of the rounds in a database: per-round metrics, curves, and the picks on the embedding map."""

from __future__ import annotations

import tempfile
from pathlib import Path

from sqlalchemy import select

from mds.db.engine import session_scope
from mds.db.models import Round, Selection, Video


def _rounds_table(db_url: str) -> list[dict]:
    with session_scope(db_url) as s:
        rows = []
        for r in s.scalars(select(Round).order_by(Round.number)):
            m = r.metrics or {}
            picks = m.get("picks", {})
            rows.append({
                "round": r.number, "status": r.status, "strategy": r.strategy, "picks": r.budget,
                "base SRCC": (m.get("base") or {}).get("target_test", {}).get("srcc"),
                "fine-tuned SRCC": (m.get("finetuned") or {}).get("target_test", {}).get("srcc"),
                "fine-tuned PLCC": (m.get("finetuned") or {}).get("target_test", {}).get("plcc"),
                "error ratio of picks": picks.get("error_ratio"),
                "base ckpt": r.base_checkpoint_id, "fine-tuned ckpt": r.finetuned_checkpoint_id,
                "random-init CLIP": (r.config or {}).get("clip_random_init"),
            })
    return rows


def _picks_table(db_url: str, number: int) -> list[dict]:
    with session_scope(db_url) as s:
        r = s.scalars(select(Round).where(Round.number == number)).first()
        if r is None:
            return []
        rows = s.execute(select(Selection, Video).join(Video, Video.id == Selection.video_id)
                         .where(Selection.round_id == r.id).order_by(Selection.pick_order)).all()
        return [{"rank": sel.pick_order + 1, "video": v.name, "distortion": (v.meta or {}).get("distortion"),
                 "difficulty g": sel.difficulty, "diversity": sel.diversity, "total": sel.total} for sel, v in rows]


def _embedding_map(db_url: str, data_dir: Path, out: Path) -> Path | None:
    from mds.report.plots import embedding_map
    from selection.embeddings.store import EmbeddingStore

    with session_scope(db_url) as s:
        rounds = list(s.scalars(select(Round).where(Round.encoder.is_not(None)).order_by(Round.number)))
        if not rounds:
            return None
        enc = rounds[-1].encoder
        pool = s.execute(select(Video.id, Video.meta).where(Video.split == "pool").order_by(Video.id)).all()
        picks = {}
        for r in rounds:
            if r.encoder != enc:
                continue
            picks[f"round {r.number} ({r.strategy})"] = [sel.video_id for sel in r.selections]
    try:
        store = EmbeddingStore(data_dir, enc)
        ids = [vid for vid, _ in pool]
        vec = store.pooled(ids)
    except Exception:  # noqa: BLE001 - the map is optional in a report
        return None
    pos = {vid: i for i, vid in enumerate(ids)}
    all_picks = {"all rounds": [pos[v] for rows in picks.values() for v in rows if v in pos]}
    cats = [str((m or {}).get("distortion") or (m or {}).get("category") or "pool") for _, m in pool]
    return embedding_map(vec, cats, all_picks, out, title="pool and the rounds' picks")


def write_rounds_report(db_url: str, path: str | Path, *, data_dir: Path, highlight: int | None = None) -> Path:
    """Write the HTML report (all figures embedded)."""
    from mds.report.html import Section, write_html_report

    rows = _rounds_table(db_url)
    sections = [Section("Rounds", "Target test SRCC/PLCC after the 4-parameter fit; error ratio = mean base-model "
                        "error on the picks over the pool mean (needs an oracle).", tables=[rows])]
    with tempfile.TemporaryDirectory() as tmp:
        if len(rows) >= 1 and any(r["fine-tuned SRCC"] is not None for r in rows):
            from mds.report.plots import _plt

            plt = _plt()
            fig, ax = plt.subplots(figsize=(5, 3.2))
            xs = [0] + [r["round"] for r in rows]
            ys = [rows[0]["base SRCC"]] + [r["fine-tuned SRCC"] for r in rows]
            ax.plot(xs, ys, marker="o", color="#d62728")
            ax.set_xlabel("round")
            ax.set_ylabel("target test SRCC")
            ax.grid(alpha=0.3)
            fig.tight_layout()
            fig.savefig(Path(tmp) / "srcc.png", dpi=110)
            plt.close(fig)
            sections.append(Section("Test SRCC by round", images=[Path(tmp) / "srcc.png"]))
        m = _embedding_map(db_url, data_dir, Path(tmp) / "map.png")
        if m is not None:
            sections.append(Section("Embedding map", "Pooled CLIP vectors of the pool (PCA); picks circled.",
                                    images=[m]))
        if highlight is not None:
            sections.append(Section(f"Picks of round {highlight}", tables=[_picks_table(db_url, highlight)]))
        return write_html_report(path, "mds rounds", sections)
