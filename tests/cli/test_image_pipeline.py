"""Pixels end to end: an SR model trained over a (tiny, random) open_clip base indexes real COCO
JPEGs by image through the CLI, reports a corrupt file, and answers queries."""
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import TINY_ARCH

from sparse_engine.cli import main
from sparse_engine.encoders.spine import SpineConfig
from sparse_engine.encoders.train import TrainOptions, train_model

pytest.importorskip("open_clip")


@pytest.mark.slow
def test_index_images_with_an_open_clip_sr_model(tmp_path, shared_data, coco_images, tiny_clip_checkpoint):
    model = tmp_path / "sr-clip"
    train_model(TrainOptions(
        captions=str(shared_data / "flickr8k" / "captions.csv"), out=str(model), device="cpu",
        base=f"openclip:{TINY_ARCH}/{tiny_clip_checkpoint}", dims=64, top_k=8, epochs=1, max_images=60,
        extend_vocab=500, spine=SpineConfig(epochs=5),
    ))  # fmt: skip
    photos = tmp_path / "photos" / "nested"
    photos.mkdir(parents=True)
    for path in coco_images[:12]:
        shutil.copy(path, photos / path.name)
    (photos / "corrupt.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    runner = CliRunner()
    index = tmp_path / "idx"
    result = runner.invoke(main, ["index", str(tmp_path / "photos"), "--index", str(index), "--encoder", str(model),
                                  "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "indexed 12 documents by image" in result.output  # no captions: pixels, chosen automatically
    assert "skipped 1 unreadable image" in result.output and "corrupt.jpg" in result.output
    manifest = json.loads((index / "manifest.json").read_text())
    assert manifest["by"] == "image" and manifest["n_docs"] == 12 and len(manifest["report"]["failed"]) == 1
    # Random towers share no meaning, only dims: the images found are those whose top-k dims meet
    # the query's. Each score must be the explanation's sum, and no result may be a vetoed one.
    for query, at_least in (("a dog on the grass", 5), ("a dog on the grass -frisbee", 0)):
        out = runner.invoke(main, ["query", query, "--index", str(index), "-k", "5", "--json", "--explain"])
        assert out.exit_code == 0, out.output
        results = json.loads(out.output)["results"]
        assert len(results) >= at_least and all(r["path"].startswith("nested/") for r in results)
        assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
        for r in results:
            assert r["score"] == pytest.approx(r["explanation"]["score"], rel=1e-4)
            assert not r["explanation"]["excluded"]
