"""Shared helpers of the demo / rounds / simulate / notebook tests: one tiny demo pool per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


def tiny_pool_dir(factory: pytest.TempPathFactory) -> Path:
    """Build the tiny demo pool (files only) once per session; later calls reuse it."""
    from mds.demo.pool import build_demo_pool

    root = factory.getbasetemp() / "demo-pool-tiny"
    build_demo_pool(root, "tiny", seed=0, import_db=False)
    return root


def tiny_clip_model(factory: pytest.TempPathFactory) -> str:
    """A tiny random open_clip architecture (registered through open_clip's public API)."""
    from tests.test_selection_embeddings import register_tiny_clip

    return register_tiny_clip(factory.getbasetemp() / "tiny-clip")
