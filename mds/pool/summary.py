"""Results of pool operations: what was ingested, what failed and why."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class IngestIssue:
    """One file or manifest row that could not be ingested.

    ``source`` is a path, a URL or ``"manifest.csv:17"`` (file and line/row);
    ``error_type`` is a short code such as ``truncated``, ``no_video_stream``,
    ``missing_path``, ``duplicate_row``, ``bad_value``, ``bad_split``, ``bad_json``.
    """

    source: str
    error_type: str
    reason: str


@dataclass
class IngestSummary:
    """Counts of one ingest run (``mds pool add`` / ``mds pool import``).

    ``added``: new videos; ``unchanged``: already in the pool as given;
    ``updated``: known videos whose metadata, split, dataset, label, predictions or
    probe facts changed; ``moved``: known content (same sha256) found at a new
    location, its ``uri`` updated; ``failed``: entries recorded as errors.
    """

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    added: int = 0
    unchanged: int = 0
    updated: int = 0
    moved: int = 0
    failed: int = 0
    labels_written: int = 0
    predictions_written: int = 0
    elapsed_s: float = 0.0
    errors: list[IngestIssue] = field(default_factory=list)

    @property
    def ingested(self) -> int:
        """Entries that are in the pool after the run (added, unchanged, updated or moved)."""
        return self.added + self.unchanged + self.updated + self.moved

    @property
    def total(self) -> int:
        return self.ingested + self.failed

    def exit_code(self, strict: bool = False) -> int:
        """0 on success; 1 when nothing could be ingested (out of something), or any failure with ``strict``."""
        if self.failed and (strict or self.ingested == 0):
            return 1
        return 0

    def line(self) -> str:
        """A one-line human summary."""
        return (
            f"added {self.added}, moved {self.moved}, updated {self.updated}, unchanged {self.unchanged}, "
            f"failed {self.failed} ({self.elapsed_s:.1f} s, run {self.run_id})"
        )

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ingested"] = self.ingested
        d["total"] = self.total
        return d

    def record_error(self, source: str, error_type: str, reason: str) -> IngestIssue:
        issue = IngestIssue(str(source), error_type, reason)
        self.errors.append(issue)
        self.failed += 1
        return issue


@dataclass
class RemoveSummary:
    """Result of :func:`mds.pool.remove_videos`."""

    removed: list[int] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"id", "name", "reason"}
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)
