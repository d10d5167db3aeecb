"""`sparse-engine demo`: index the COCO sample with the default encoder and run exclusion queries."""
from __future__ import annotations

from pathlib import Path

import click

DEMO_QUERIES = ("dog -frisbee", "pizza -person", "sports -baseball")


def default_collection() -> Path:
    """../shared/data/coco-sample relative to the project root (src/sparse_engine/cli/ → root)."""
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "coco-sample"


@click.command("demo")
@click.option("--index", "index_dir", default=None, type=click.Path(), help="Where to build the demo index [default: a temp folder].")
@click.option("--collection", default=None, type=click.Path(), help="Collection to index [default: ../shared/data/coco-sample].")
@click.option("-k", "k", default=5, show_default=True, type=click.IntRange(1, 100))
def command(index_dir: str | None, collection: str | None, k: int) -> None:
    """Index the COCO sample with the default encoder and run "dog -frisbee", "pizza -person", ..."""
    import tempfile

    from ..encoders.registry import DEFAULT_ENCODER
    from ..errors import SparseEngineError
    from ..indexer import build_index
    from ..searcher import Searcher
    from ._output import print_results, progress_bar

    root = Path(collection) if collection else default_collection()
    if not (root / "metadata.jsonl").exists() and not any(root.glob("*.csv")):
        raise SparseEngineError(
            f"demo collection not found at {root}: pass --collection DIR (images + metadata.jsonl or captions.csv)"
        )
    with tempfile.TemporaryDirectory(prefix="sparse-engine-demo-") as tmp:
        out = Path(index_dir) if index_dir else Path(tmp) / "index"
        click.echo(f"indexing {root} with {DEFAULT_ENCODER} -> {out}", err=True)
        with progress_bar() as progress:
            report = build_index(root, out, DEFAULT_ENCODER, progress=progress)
        click.echo(f"indexed {report.n_docs} images by {report.by} in {report.seconds:.1f} s", err=True)
        searcher = Searcher(out)
        for query in DEMO_QUERIES:
            print_results(query, searcher.search(query, k=k))
