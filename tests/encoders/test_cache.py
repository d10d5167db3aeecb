import numpy as np
import pytest

from sparse_engine.encoders.cache import EmbeddingCache, cached_embed, default_cache_dir, file_key, text_key


class Counting:
    """A deterministic fake-free compute: rows derived from the keys, calls recorded."""

    def __init__(self, keys, dim=8):
        self.keys, self.dim, self.calls = keys, dim, []

    def __call__(self, indices):
        self.calls.append(list(indices))
        rows = np.stack([np.frombuffer(bytes.fromhex(self.keys[i])[: self.dim * 4], dtype=np.float32)
                         for i in indices]).copy()
        rows[~np.isfinite(rows)] = 1.0
        return rows


def test_second_call_computes_nothing(tmp_path):
    cache = EmbeddingCache(tmp_path)
    texts = ["a dog", "a cat", "a dog", "a bus"]
    keys = [text_key(t) for t in texts]
    compute = Counting(keys)
    first = cached_embed(cache, "m1", keys, 8, compute)
    assert compute.calls == [[0, 1, 2, 3]]
    np.testing.assert_array_equal(first[0], first[2])
    second = cached_embed(cache, "m1", keys, 8, compute)
    assert compute.calls == [[0, 1, 2, 3]]
    np.testing.assert_array_equal(first, second)
    # A partly new batch computes only the new rows.
    compute.keys = keys + [text_key("a train")]
    cached_embed(cache, "m1", compute.keys, 8, compute)
    assert compute.calls[-1] == [4]


def test_other_model_misses_and_cache_persists(tmp_path):
    keys = [text_key("x"), text_key("y")]
    compute = Counting(keys)
    cached_embed(EmbeddingCache(tmp_path), "model-a", keys, 8, compute)
    cached_embed(EmbeddingCache(tmp_path), "model-b", keys, 8, compute)
    assert compute.calls == [[0, 1], [0, 1]]
    reopened = EmbeddingCache(tmp_path)  # a new connection (another process) sees the rows
    assert set(reopened.get_many("model-a", keys)) == set(keys)
    assert reopened.get_many("model-c", keys) == {}


def test_zero_rows_are_not_cached(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = ["k1", "k2"]
    calls = []

    def compute(indices):
        calls.append(list(indices))
        return np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32)[indices]

    cached_embed(cache, "m", keys, 2, compute)
    cached_embed(cache, "m", keys, 2, compute)
    assert calls == [[0, 1], [1]]


def test_no_cache_always_computes():
    keys = [text_key("x")]
    compute = Counting(keys)
    cached_embed(None, "m", keys, 8, compute)
    cached_embed(None, "m", keys, 8, compute)
    assert len(compute.calls) == 2


def test_file_key_follows_content_not_name(tmp_path):
    a, b, c = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    assert file_key(a) == file_key(b) != file_key(c)
    assert text_key("a") != text_key("b")


def test_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_ENGINE_CACHE", str(tmp_path / "here"))
    assert default_cache_dir() == tmp_path / "here"
    assert EmbeddingCache().root == tmp_path / "here"
    assert (tmp_path / "here" / "embeddings.sqlite").exists()


@pytest.mark.slow
def test_minilm_through_cache(tmp_path):
    from sparse_engine.encoders.dense_text import MiniLMEncoder

    enc = MiniLMEncoder(device="cpu", cache=EmbeddingCache(tmp_path))
    first = enc.embed_text(["a dog runs", "a cat sleeps"])
    # A cache hit must not need the model at all: point it at a folder that does not exist.
    enc._model, enc._model_path = None, str(tmp_path / "does-not-exist")
    np.testing.assert_array_equal(enc.embed_text(["a cat sleeps", "a dog runs"]), first[::-1])
    assert enc._model is None
