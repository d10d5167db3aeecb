"""`sparse-engine index DIR --index OUT`: encode a collection and build an index."""
from __future__ import annotations

import click


@click.command("index")
@click.argument("collection", type=click.Path(file_okay=False))
@click.option("--index", "index_dir", required=True, type=click.Path(), help="Index folder to create or replace.")
@click.option("--encoder", default=None, help="Sparse encoder name or model folder [default: sr-minilm].")
@click.option("--by", type=click.Choice(["image", "captions", "both"]), default=None,
              help="Encode captions, pixels, or both (max) [default: captions when there are any].")
@click.option("--backend", type=click.Choice(["numba", "lucene", "both"]), default="numba", show_default=True,
              help="lucene/both also build a Lucene impact index (needs the 'lucene' extra).")
@click.option("--words", "word_weight", type=click.FloatRange(min=0.0), default=None,
              help="Weight of the caption-word dims beside the concepts; 0 = concepts only [default: 0.8].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(collection: str, index_dir: str, encoder: str | None, by: str | None, backend: str,
            word_weight: float | None, quiet: bool) -> None:  # fmt: skip
    """Index the images (and sidecar captions) under COLLECTION."""
    from ..encoders.registry import DEFAULT_ENCODER
    from ..indexer import build_index
    from ..words import DEFAULT_WEIGHT
    from ._output import progress_bar

    backends = ("numba",) if backend == "numba" else ("numba", "lucene")
    with progress_bar(not quiet) as progress:
        report = build_index(collection, index_dir, encoder or DEFAULT_ENCODER, by=by, backends=backends,
                             progress=progress, words=DEFAULT_WEIGHT if word_weight is None else word_weight)
    click.echo(f"indexed {report.n_docs} documents by {report.by} into {report.index_dir} in {report.seconds:.1f} s")
    if report.failed:
        click.echo(f"skipped {len(report.failed)} unreadable image(s):", err=True)
        for path, reason in report.failed:
            click.echo(f"  {path}: {reason}", err=True)
    if report.skipped:
        click.echo(f"left out {len(report.skipped)} document(s) with nothing to encode:", err=True)
        for path, reason in report.skipped[:20]:
            click.echo(f"  {path}: {reason}", err=True)
