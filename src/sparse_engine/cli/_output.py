"""Shared output helpers: rich tables on stdout, JSON, progress bars on stderr."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterator

import click


def stdout_console():
    from rich.console import Console

    return Console(file=sys.stdout, soft_wrap=False, width=max(100, _terminal_width()))


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((120, 24)).columns


def print_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def results_table(query: str, results, show_captions: bool = True):
    """A rich table: rank, score, file, top concepts (and the first caption)."""
    from rich.table import Table

    table = Table(title=f"{query}", title_justify="left", show_lines=False)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("file", overflow="fold")
    table.add_column("top concepts", overflow="fold")
    if show_captions:
        table.add_column("caption", overflow="fold", max_width=48)
    for r in results:
        row = [str(r.rank), f"{r.score:.3f}", r.path, r.concept_text or "-"]
        if show_captions:
            row.append(r.captions[0] if r.captions else "")
        table.add_row(*row)
    if not results:
        table.caption = "no results"
    return table


def print_results(query: str, results, as_json: bool = False) -> None:
    if as_json:
        print_json({"query": query, "results": [r.to_dict() for r in results]})
    else:
        stdout_console().print(results_table(query, results))


def explanation_table(expl):
    from rich.table import Table

    status = "EXCLUDED" if expl.excluded else "kept"
    table = Table(title=f"{expl.query}  ·  {expl.doc_id} ({expl.path})  ·  score {expl.score:.4f}  ·  {status}",
                  title_justify="left")  # fmt: skip
    for name, justify in (("dim", "right"), ("concept", "left"), ("query w", "right"), ("doc w", "right"), ("contribution", "right")):
        table.add_column(name, justify=justify)
    for c in expl.contributions:
        table.add_row(str(c.dim), c.label, f"{c.query_weight:.4f}", f"{c.doc_weight:.4f}", f"{c.contribution:+.4f}")
    for c in expl.vetoed_by:
        table.add_row(str(c.dim), c.label, "veto", f"{c.doc_weight:.4f}", "drops the document")
    if expl.missing_must:
        table.caption = "the document lacks every concept of a +term"
    elif not expl.contributions:
        table.caption = "the document shares no concept with the query"
    return table


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator:
    """Yield a ``(stage, done, total)`` callback that drives a rich progress bar on stderr."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(file=sys.stderr), transient=False)  # fmt: skip
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()  # lazily: an early user error then prints no empty bar
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    try:
        yield update
    finally:
        if tasks:
            bar.stop()
