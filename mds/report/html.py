"""A self-contained HTML report: headings, paragraphs, tables and embedded PNG figures."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[Any] = field(default_factory=list)  # pandas DataFrames or list[dict]
    images: list[Path] = field(default_factory=list)


def _table(t: Any) -> str:
    import pandas as pd

    df = t if isinstance(t, pd.DataFrame) else pd.DataFrame(t)
    return df.to_html(index=False, float_format=lambda x: f"{x:.4f}", border=0, classes="tbl")


def _img(p: Path) -> str:
    data = base64.b64encode(Path(p).read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(Path(p).stem)}"/></figure>'


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.tbl{border-collapse:collapse;font-size:.85em;margin:.6em 0}.tbl td,.tbl th{padding:.25em .6em;border-bottom:1px solid #eee}
img{max-width:100%}pre{background:#f6f6f6;padding:.6em;font-size:.8em;overflow-x:auto}.note{color:#a33}"""


def write_html_report(path: str | Path, title: str, sections: list[Section], *, notes: list[str] = ()) -> Path:
    """Write one HTML file with every figure embedded (opens offline, can be mailed around)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    for n in notes:
        parts.append(f"<p class='note'>{html.escape(n)}</p>")
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            for para in s.text.strip().split("\n\n"):
                if para.startswith("```"):
                    parts.append(f"<pre>{html.escape(para.strip('`'))}</pre>")
                else:
                    parts.append(f"<p>{html.escape(para)}</p>")
        parts += [_table(t) for t in s.tables]
        parts += [_img(p) for p in s.images]
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
