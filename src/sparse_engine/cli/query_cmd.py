"""`sparse-engine query "dog -frisbee" --index OUT`: search and print a table (or JSON)."""
from __future__ import annotations

import click

# planner.STRATEGIES, spelled out so that --help does not import numpy (a test keeps them equal)
STRATEGIES = ["veto+subtract", "subtract", "veto", "paper", "paper+veto"]


@click.command("query", context_settings={"ignore_unknown_options": True})  # a query may start with "-"
@click.argument("query")
@click.option("--index", "index_dir", required=True, type=click.Path(), help="Index folder.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 10_000), help="Number of results.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--explain", is_flag=True, help="Also print each result's per-concept contributions.")
@click.option("--backend", type=click.Choice(["numba", "lucene"]), default="numba", show_default=True)
@click.option("--strategy", type=click.Choice(STRATEGIES), default=None, help="Exclusion strategy [default: veto+subtract, see README].")
def command(query: str, index_dir: str, k: int, as_json: bool, explain: bool, backend: str, strategy: str | None) -> None:
    """Search the index with QUERY, e.g. "dog -frisbee", '"hot dog" -bun', "+dog grass"."""
    from ..query_parser import parse_query
    from ..searcher import Searcher
    from ._output import explanation_table, print_json, print_results, stdout_console

    parse_query(query)  # fail on a bad query before loading models
    searcher = Searcher(index_dir, backend=backend)
    try:
        results = searcher.search(query, k=k, strategy=strategy)
        explanations = [searcher.explain(query, r.doc_id, strategy=strategy) for r in results] if explain else []
    finally:
        searcher.close()
    if as_json:
        payload = {"query": query, "results": [r.to_dict() for r in results]}
        if explain:
            for row, expl in zip(payload["results"], explanations):
                row["explanation"] = expl.to_dict()
        print_json(payload)
        return
    print_results(query, results)
    console = stdout_console()
    for expl in explanations:
        console.print(explanation_table(expl))
