"""VDR-style lexical encoder: real frozen MiniLM, a small trainable head, contrastive training."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sparse_engine.encoders.vdr import VDRStyleEncoder, _StateBank, caption_groups, info_nce, train_vdr
from sparse_engine.errors import SparseEngineError

pytestmark = pytest.mark.slow  # every test here loads the MiniLM transformer

TEXTS = ["a dog catching a frisbee", "", "two children playing in the snow", "dog"]


@pytest.fixture(scope="module")
def encoder() -> VDRStyleEncoder:
    return VDRStyleEncoder.untrained(top_k=64, device="cpu")


def test_vocabulary_sized_nonnegative_topk(encoder):
    out = encoder.encode_text(TEXTS)
    assert encoder.dim == 30522 == out.shape[1] and out.shape[0] == 4
    assert out.dtype == np.float32 and (out.data > 0).all()
    assert np.diff(out.indptr).max() <= 64
    assert out[1].nnz == 0  # empty text -> empty row
    np.testing.assert_allclose(np.linalg.norm(out[[0, 2, 3]].toarray(), axis=1), 1.0, rtol=1e-5)
    labels = encoder.dim_labels()
    assert len(labels) == 30522 and labels[1996:1999] == [["the"], ["of"], ["and"]]
    special = [i for i, (t,) in enumerate(labels) if t in {"[CLS]", "[SEP]", "[PAD]"} or t.startswith("[unused")]
    assert out[:, special].nnz == 0


def test_the_word_dog_activates_the_token_dog(encoder):
    labels = [t for (t,) in encoder.dim_labels()]
    dog = labels.index("dog")
    row = encoder.encode_text(["dog"])[0]
    top = row.indices[np.argsort(-row.data)[:3]]
    assert dog in top
    snow = encoder.encode_text(["two children playing in the snow"])[0]
    assert labels.index("snow") in snow.indices[np.argsort(-snow.data)[:5]]


def test_save_load_round_trip_is_identical(encoder, tmp_path):
    from sparse_engine.encoders import create_encoder

    encoder.save(tmp_path / "vdr")
    loaded = VDRStyleEncoder.load(tmp_path / "vdr", device="cpu")
    a, b = encoder.encode_text(TEXTS), loaded.encode_text(TEXTS)
    assert (a != b).nnz == 0
    assert loaded.checkpoint_hash == encoder.checkpoint_hash and loaded.top_k == 64
    via_registry = create_encoder(f"vdr:{tmp_path / 'vdr'}", device="cpu")
    assert via_registry.name == "vdr:vdr" and (via_registry.encode_text(TEXTS) != a).nnz == 0


def test_load_rejects_bad_directories(tmp_path):
    with pytest.raises(SparseEngineError, match="not a VDR-style model"):
        VDRStyleEncoder.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"type": "sr"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(SparseEngineError, match="config"):
        VDRStyleEncoder.load(tmp_path)


def test_a_tiny_training_run_lowers_the_contrastive_loss(encoder, shared_data):
    import torch

    groups = caption_groups(shared_data / "flickr8k" / "captions.csv")[:16]
    bank = _StateBank(encoder.base, [c for g in groups for c in g[:2]])
    a, b = np.arange(0, 32, 2), np.arange(1, 32, 2)
    head = type(encoder.head)(384, 30522, "cpu", {k: v.clone() for k, v in encoder.head.params.items()})
    with torch.no_grad():
        before = float(info_nce(head, encoder.base, bank, a, b, top_k=64))
    optimiser = torch.optim.Adam(head.trainable(), lr=2e-3)
    for _ in range(8):
        loss = info_nce(head, encoder.base, bank, a, b, top_k=64)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = float(info_nce(head, encoder.base, bank, a, b, top_k=64))
    assert after < before - 0.05, (before, after)
    # The encoder's own head was not touched by training a copy.
    assert torch.equal(encoder.head.params["proj.weight"], torch.eye(384))


def test_train_vdr_writes_a_loadable_model(shared_data, tmp_path):
    report = train_vdr(tmp_path / "m", shared_data / "flickr8k" / "captions.csv", n_images=24, val_images=8,
                       batch_size=8, max_steps=2, minutes=1.0, top_k=32, device="cpu")
    assert report["steps"] == 2 and np.isfinite(report["val_loss_after"])
    model = VDRStyleEncoder.load(tmp_path / "m", device="cpu")
    assert model.config["training"]["steps"] == 2 and model.top_k == 32
    assert np.diff(model.encode_text(["a dog runs"]).indptr)[0] == 32
