"""The offline demo: a pool built from packaged material, pseudo-MOS, simulated annotators."""

from mds.demo.annotators import Rater, RaterPanel
from mds.demo.pool import SIZES, DemoPool, build_demo_pool, load_demo_pool

__all__ = ["SIZES", "DemoPool", "Rater", "RaterPanel", "build_demo_pool", "load_demo_pool"]
