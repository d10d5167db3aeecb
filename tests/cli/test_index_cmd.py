import json

from click.testing import CliRunner
from helpers import TOY_DOCS, make_collection

from sparse_engine.cli import main


def test_index_then_manifest(tmp_path):
    root = make_collection(tmp_path / "c", bad_image=True)
    result = CliRunner().invoke(main, ["index", str(root), "--index", str(tmp_path / "idx"), "--encoder", "toy:v1",
                                       "--by", "image", "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"indexed {len(TOY_DOCS)} documents by image" in result.output
    assert "broken.jpg" in result.output  # the bad image is listed
    assert json.loads((tmp_path / "idx" / "manifest.json").read_text())["n_docs"] == len(TOY_DOCS)


def _one_line_error(result, fragment):
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and fragment in lines[-1], result.output
    return lines[-1]


def test_bad_encoder_name(tmp_path):
    root = make_collection(tmp_path / "c")
    result = CliRunner().invoke(main, ["index", str(root), "--index", str(tmp_path / "i"), "--encoder", "nosuch", "--quiet"])
    _one_line_error(result, "unknown encoder 'nosuch'")
    assert not (tmp_path / "i").exists()


def test_missing_collection(tmp_path):
    result = CliRunner().invoke(main, ["index", str(tmp_path / "none"), "--index", str(tmp_path / "i"), "--encoder", "toy:v1"])
    _one_line_error(result, "does not exist")
