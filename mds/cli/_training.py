"""Rich progress for training commands (imported inside command functions only)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def epoch_progress(title: str, enabled: bool = True) -> Iterator[Callable[[int, int, dict[str, float]], None]]:
    """Yields an ``on_epoch(epoch, total, record)`` callback that drives a Rich progress bar (stderr)."""
    if not enabled:
        yield lambda *_: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mds.cli._options import err_console

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=err_console(),
                  transient=False) as prog:
        task = prog.add_task(title, total=None, info="")

        def on_epoch(epoch: int, total: int, rec: dict[str, Any]) -> None:
            info = f"loss {rec.get('loss', float('nan')):.4f}"
            if "val_spearman" in rec:
                info += f"  val ρ {rec['val_spearman']:.3f}"
            prog.update(task, total=total, completed=epoch, info=info)

        yield on_epoch


@contextmanager
def count_progress(title: str, total: int, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    if not enabled or total == 0:
        yield lambda n: None
        return
    from rich.progress import Progress

    from mds.cli._options import err_console

    with Progress(console=err_console()) as prog:
        task = prog.add_task(title, total=total)
        yield lambda n: prog.advance(task, n)


INTERRUPT_HINT = "interrupted: the training state is saved; run the same command again to resume"
