import json

from click.testing import CliRunner
from helpers import TOY_DOCS, build_toy_index

from sparse_engine.cli import main


def test_info(tmp_path):
    index = build_toy_index(tmp_path)
    result = CliRunner().invoke(main, ["info", "--index", str(index)])
    assert result.exit_code == 0, result.output
    assert "toy:v1" in result.output and str(len(TOY_DOCS)) in result.output and "captions" in result.output
    assert "terms after the concept dims, weight 0.8" in result.output
    plain = build_toy_index(tmp_path, name="plain", words=0.0)
    assert "none (concepts only)" in CliRunner().invoke(main, ["info", "--index", str(plain)]).output
    as_json = json.loads(CliRunner().invoke(main, ["info", "--index", str(index), "--json"]).output)
    assert as_json["n_docs"] == len(TOY_DOCS)


def test_info_missing(tmp_path):
    result = CliRunner().invoke(main, ["info", "--index", str(tmp_path / "x")])
    assert result.exit_code == 1 and result.output.startswith("error: no index at")
