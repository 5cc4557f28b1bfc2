"""The video pool's Python API (used by the ``mds pool`` commands and by notebooks).

>>> from mds.pool import add_paths, import_manifest, list_videos, pool_stats
>>> summary = add_paths("sqlite:///pool.db", ["videos/"], split="pool")
>>> summary.added, summary.failed
"""

from mds.pool.discover import VIDEO_EXTENSIONS, discover
from mds.pool.ingest import add_paths, default_workers, probe_file
from mds.pool.manifest import PATH_COLUMNS, PRED_PREFIX, import_manifest, read_manifest
from mds.pool.query import count_videos, get_video, list_ingest_errors, list_videos, pool_stats, remove_videos
from mds.pool.summary import IngestIssue, IngestSummary, RemoveSummary

__all__ = [
    "PATH_COLUMNS",
    "PRED_PREFIX",
    "VIDEO_EXTENSIONS",
    "IngestIssue",
    "IngestSummary",
    "RemoveSummary",
    "add_paths",
    "count_videos",
    "default_workers",
    "discover",
    "get_video",
    "import_manifest",
    "list_ingest_errors",
    "list_videos",
    "pool_stats",
    "probe_file",
    "read_manifest",
    "remove_videos",
]
