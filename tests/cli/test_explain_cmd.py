import json

from click.testing import CliRunner
from helpers import build_toy_index

from sparse_engine.cli import main


def test_explain(tmp_path):
    index = str(build_toy_index(tmp_path))
    result = CliRunner().invoke(main, ["explain", "dog -frisbee", "d00", "--index", index, "--strategy", "veto"])
    assert result.exit_code == 0, result.output
    assert "EXCLUDED" in result.output and '"frisbee"' in result.output and "dog/dogs" in result.output
    payload = json.loads(CliRunner().invoke(main, ["explain", "dog", "d02", "--index", index, "--json"]).output)
    assert payload["doc_id"] == "d02" and not payload["excluded"]
    assert payload["contributions"][0]["labels"][0] == "dog"
    assert payload["score"] == sum(c["contribution"] for c in payload["contributions"])


def test_explain_unknown_doc(tmp_path):
    index = str(build_toy_index(tmp_path))
    result = CliRunner().invoke(main, ["explain", "dog", "nope", "--index", index])
    assert result.exit_code == 1 and result.output.strip() == "error: no document with id 'nope' in the index"
