"""SR model on a small real model trained in-module (300 Flickr8k images, d=64)."""
import json
import shutil

import numpy as np
import pytest

from sparse_engine.encoders import create_dense_encoder, create_encoder
from sparse_engine.encoders.sr_model import SREncoder, weights_hash
from sparse_engine.encoders.spine import SpineConfig
from sparse_engine.encoders.train import TrainOptions, train_model
from sparse_engine.errors import SparseEngineError

TOP_K = 8


@pytest.fixture(scope="module")
def model_dir(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sr") / "model"
    opts = TrainOptions(captions=str(shared_data / "flickr8k" / "captions.csv"), out=str(out), dims=64, top_k=TOP_K,
                        epochs=2, max_images=300, device="cpu", spine=SpineConfig(epochs=15, max_dims_per_word=6))
    train_model(opts)
    return out


@pytest.fixture(scope="module")
def encoder(model_dir):
    return SREncoder.load(model_dir, device="cpu")


TEXTS = ["A dog runs through the grass with a frisbee .", "Two men play soccer on a field .", "a qzxv wplk"]


@pytest.mark.slow
def test_vectors_are_sparse_non_negative_and_masked(encoder):
    out = encoder.encode_text(TEXTS)
    assert out.shape == (3, 64) and out.dtype == np.float32
    assert out.data.min() > 0
    masks = encoder.spine.caption_masks(TEXTS)
    nnz = np.diff(out.indptr)
    for i in range(3):
        mask_dims = set(masks[i].indices.tolist())
        assert nnz[i] <= TOP_K + len(mask_dims)
        assert nnz[i] >= min(TOP_K, 64) // 2  # top-k always contributes
    assert masks[2].nnz == 0 and nnz[2] <= TOP_K  # no known word: top-k only
    # the dims of the caption's own words are open (where E_d > 0, they carry weight)
    row0 = set(out[0].indices.tolist())
    assert len(row0 & set(masks[0].indices.tolist())) > 0


@pytest.mark.slow
def test_empty_text_gives_empty_row(encoder):
    out = encoder.encode_text(["", "a dog"])
    assert out[0].nnz == 0 and out[1].nnz > 0


@pytest.mark.slow
def test_labels_hash_and_registry(encoder, model_dir):
    labels = encoder.dim_labels()
    assert len(labels) == 64 and sum(bool(w) for w in labels) > 32
    # a dim's first label is a word whose own one-word query lights that dim
    labelled = [j for j, words in enumerate(labels) if words][:10]
    rows = encoder.encode_text([labels[j][0] for j in labelled])
    assert all(rows[i, j] > 0 for i, j in enumerate(labelled))
    assert encoder.checkpoint_hash == weights_hash(model_dir / "weights.safetensors")
    assert not encoder.has_images
    via_registry = create_encoder(str(model_dir), device="cpu")
    assert via_registry.spec == str(model_dir.resolve())
    assert (via_registry.encode_text(TEXTS) != encoder.encode_text(TEXTS)).nnz == 0
    config = json.loads((model_dir / "config.json").read_text())
    assert config["base"] == "minilm" and config["dims"] == 64 and config["weights_dtype"] == "float16"


@pytest.mark.slow
def test_save_load_round_trip_identical(model_dir, encoder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    again = SREncoder.load(copy, device="cpu")
    a, b = encoder.encode_text(TEXTS), again.encode_text(TEXTS)
    assert (a != b).nnz == 0
    assert again.checkpoint_hash == encoder.checkpoint_hash


@pytest.mark.slow
def test_mismatched_base_or_dims_refused(model_dir, tmp_path):
    with pytest.raises(SparseEngineError, match="trained on dense encoder 'minilm', not 'openclip"):
        SREncoder.load(model_dir, base="openclip:ViT-B-32/x")

    class Wide:
        name, dim, has_images = "minilm", 512, False

    with pytest.raises(SparseEngineError, match="expects 384-d dense vectors"):
        SREncoder.load(model_dir, dense=Wide())
    bad = tmp_path / "bad"
    shutil.copytree(model_dir, bad)
    config = json.loads((bad / "config.json").read_text())
    config["dims"] = 128
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(SparseEngineError, match="do not match config.json") as err:
        SREncoder.load(bad, dense=create_dense_encoder("minilm"))
    assert "\n" not in str(err.value)


def test_not_an_sr_dir(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"type": "vdr-style"}))
    with pytest.raises(SparseEngineError, match="not an SR model"):
        SREncoder.load(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(SparseEngineError, match="cannot read"):
        SREncoder.load(tmp_path)
