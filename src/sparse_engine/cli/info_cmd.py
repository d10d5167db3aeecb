"""`sparse-engine info --index OUT`: what an index holds."""
from __future__ import annotations

import click


@click.command("info")
@click.option("--index", "index_dir", required=True, type=click.Path(), help="Index folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole manifest as JSON.")
def command(index_dir: str, as_json: bool) -> None:
    """Summarise an index's manifest (encoder, documents, backends, size)."""
    from pathlib import Path

    from ..searcher import read_manifest
    from ._output import print_json, stdout_console

    manifest = read_manifest(index_dir)
    if as_json:
        print_json(manifest)
        return
    from rich.table import Table

    enc = manifest["encoder"]
    size = sum(p.stat().st_size for p in Path(index_dir).rglob("*") if p.is_file())
    report = manifest.get("report", {})
    rows = [
        ("index", str(Path(index_dir).resolve())),
        ("documents", str(manifest["n_docs"])),
        ("encoded by", manifest.get("by", "?")),
        ("encoder", f"{enc.get('name')} ({enc.get('dim')} dims, checkpoint {str(enc.get('checkpoint_hash') or '-')[:12]})"),
        ("caption words", _words_text(manifest.get("words"))),
        ("backends", ", ".join(manifest.get("backends", ["numba"]))),
        ("created", manifest.get("created", "?")),
        ("collection", manifest.get("collection", "?")),
        ("size on disk", f"{size / 1e6:.2f} MB"),
        ("format version", str(manifest["format_version"])),
        ("bad images skipped", str(len(report.get("failed", [])))),
        ("documents left out", str(len(report.get("skipped", [])))),
    ]
    table = Table(show_header=False, title="sparse-engine index", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    stdout_console().print(table)


def _words_text(words: dict | None) -> str:
    if not words:
        return "none (concepts only)"
    return f"{words.get('n_terms')} terms after the concept dims, weight {words.get('weight')}"
