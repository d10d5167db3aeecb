from pathlib import Path

import pytest
from click.testing import CliRunner

from sparse_engine.cli import main


def test_demo_without_collection(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--collection", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "demo collection not found" in result.output and "Traceback" not in result.output


SR_MODEL = Path(__file__).resolve().parents[2] / "src" / "sparse_engine" / "models" / "sr-minilm" / "config.json"
needs_model = pytest.mark.skipif(not SR_MODEL.exists(), reason="the shipped sr-minilm model is not in this checkout")


def _mentions(captions: list[str], words: tuple[str, ...]) -> bool:
    return any(w in c.lower() for c in captions for w in words)


@pytest.mark.slow
@needs_model
def test_coco_sample_end_to_end(coco_sample, tmp_path):
    """The shipped encoder on the 239 real COCO images: exclusion removes the frisbee dog."""
    from sparse_engine.indexer import build_index
    from sparse_engine.searcher import Searcher

    report = build_index(coco_sample, tmp_path / "idx", encoder="sr-minilm")
    assert report.n_docs == 239 and report.by == "captions"
    searcher = Searcher(tmp_path / "idx")
    plain = searcher.search("dog", k=15)
    assert any(_mentions(r.captions, ("frisbee",)) for r in plain)  # the exclusion has work to do
    assert sum(_mentions(r.captions, ("dog", "puppy")) for r in plain[:5]) >= 4
    top = searcher.search("dog -frisbee", k=5)
    assert len(top) == 5
    assert not any(_mentions(r.captions, ("frisbee",)) for r in top)
    assert sum(_mentions(r.captions, ("dog", "puppy")) for r in top) >= 4
    pizza = searcher.search("pizza -person", k=3)
    assert pizza and _mentions(pizza[0].captions, ("pizza",))


@pytest.mark.slow
@needs_model
def test_demo_prints_tables(coco_sample, tmp_path):
    result = CliRunner().invoke(main, ["demo", "--index", str(tmp_path / "demo"), "-k", "3"])
    assert result.exit_code == 0, result.output
    for query in ("dog -frisbee", "pizza -person"):
        assert query in result.output
    assert "top concepts" in result.output and ".jpg" in result.output
