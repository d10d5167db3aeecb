"""`sparse-engine explain "query" DOC_ID --index OUT`: why a document scores what it does."""
from __future__ import annotations

import click

from .query_cmd import STRATEGIES


@click.command("explain", context_settings={"ignore_unknown_options": True})
@click.argument("query")
@click.argument("doc_id")
@click.option("--index", "index_dir", required=True, type=click.Path(), help="Index folder.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default=None, help="Exclusion strategy [default: veto+subtract, see README].")
def command(query: str, doc_id: str, index_dir: str, as_json: bool, strategy: str | None) -> None:
    """Show the per-concept contributions of DOC_ID to QUERY's score."""
    from ..query_parser import parse_query
    from ..searcher import Searcher
    from ._output import explanation_table, print_json, stdout_console

    parse_query(query)
    expl = Searcher(index_dir).explain(query, doc_id, strategy=strategy)
    if as_json:
        print_json(expl.to_dict())
    else:
        stdout_console().print(explanation_table(expl))
