"""mds: active-learning data selection for video quality assessment (MDS-VQA).

``import mds`` stays light: it never imports torch, transformers, open_clip or
faiss. Heavy modules are imported by the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
