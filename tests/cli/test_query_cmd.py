import json

import pytest
from click.testing import CliRunner
from helpers import build_toy_index

from sparse_engine.cli import main


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return str(build_toy_index(tmp_path_factory.mktemp("cli-query")))


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_table(index_dir):
    result = run("query", "dog -frisbee", "--index", index_dir, "-k", "3", "--strategy", "veto")
    assert result.exit_code == 0, result.output
    for header in ("score", "file", "top concepts"):
        assert header in result.output
    assert "images/d02.jpg" in result.output and "dog/dogs" in result.output
    assert "d00.jpg" not in result.output  # the dog with a frisbee


def test_json(index_dir):
    result = run("query", "pizza -person", "--index", index_dir, "--json", "--strategy", "veto")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    ids = [r["doc_id"] for r in payload["results"]]
    assert payload["query"] == "pizza -person" and ids[0] == "d05" and "d04" not in ids
    assert payload["results"][0]["concepts"][0]["labels"][0] == "pizza"


def test_explain_flag(index_dir):
    result = run("query", "cat", "--index", index_dir, "-k", "1", "--explain", "--json")
    payload = json.loads(result.output)
    expl = payload["results"][0]["explanation"]
    assert expl["score"] == pytest.approx(payload["results"][0]["score"], rel=1e-4)
    table = run("query", "cat", "--index", index_dir, "-k", "1", "--explain")
    assert "contribution" in table.output and "cat/cats" in table.output


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["query", "", "--index", "IDX"], "empty query"),
        (["query", "-dog", "--index", "IDX"], "only excludes"),
        (["query", "dog", "--index", "MISSING"], "no index at"),
        (["query", "zebra", "--index", "IDX"], "no known concepts"),
        (["query", '"hot dog', "--index", "IDX"], "unbalanced quote"),
    ],
)
def test_errors_one_line(index_dir, tmp_path, args, fragment):
    args = [index_dir if a == "IDX" else str(tmp_path / "missing") if a == "MISSING" else a for a in args]
    result = run(*args)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.output


def test_strategy_choices_are_the_planners():
    from sparse_engine.cli.query_cmd import STRATEGIES
    from sparse_engine.planner import PlanOptions, STRATEGIES as PLANNER

    assert sorted(STRATEGIES) == sorted(PLANNER) and STRATEGIES[0] == PlanOptions().strategy
