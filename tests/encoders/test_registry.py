import pytest

from sparse_engine.encoders import (
    create_dense_encoder,
    create_encoder,
    list_dense_encoders,
    list_encoders,
)
from sparse_engine.encoders.dense_text import MiniLMEncoder
from sparse_engine.errors import SparseEngineError


def test_list_functions():
    assert {"minilm", "openclip", "blip"} <= set(list_dense_encoders())
    names = list_encoders()
    assert {"splice:", "vdr:", "sr:"} <= set(names)
    assert names == sorted(n for n in names if not n.endswith(":")) + sorted(n for n in names if n.endswith(":"))


def test_create_minilm_is_lazy():
    enc = create_dense_encoder("minilm", use_cache=False)
    assert isinstance(enc, MiniLMEncoder) and enc.dim == 384 and enc.cache is None
    assert enc._model is None  # nothing loaded until the first text


def test_create_dense_uses_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSE_ENGINE_CACHE", str(tmp_path))
    enc = create_dense_encoder("minilm")
    assert enc.cache is not None and enc.cache.root == tmp_path


@pytest.mark.parametrize(
    "name, message",
    [
        ("nosuch", "unknown dense encoder 'nosuch': choose one of .*minilm"),
        ("clip:ViT-B-32/openai", "unknown dense encoder"),
        ("openclip:ViT-B-32", "ARCH/PRETRAINED"),
        ("openclip:", "ARCH/PRETRAINED"),
        ("openclip:NoSuchArch/openai", "unknown open_clip architecture"),
        ("openclip:ViT-B-32/not-a-tag-or-file", "neither an open_clip pretrained tag"),
        ("blip:", "blip needs a model"),
    ],
)
def test_unknown_dense_names_are_clear(name, message):
    with pytest.raises(SparseEngineError, match=message) as err:
        create_dense_encoder(name, use_cache=False)
    assert "\n" not in str(err.value)


def test_dense_factories_reach_image_encoders(tmp_path):
    from sparse_engine.encoders.dense_image import BlipEncoder

    with pytest.raises(SparseEngineError, match="no config.json"):
        create_dense_encoder(f"blip:{tmp_path}", use_cache=False)
    assert BlipEncoder  # the factory module imports


@pytest.mark.parametrize("name", ["nosuch", "splice", "notaprefix:x"])
def test_unknown_sparse_names_are_clear(name):
    with pytest.raises(SparseEngineError, match="unknown encoder") as err:
        create_encoder(name)
    assert "\n" not in str(err.value)


def test_directory_without_config_is_not_an_encoder(tmp_path):
    with pytest.raises(SparseEngineError, match="no config.json"):
        create_encoder(str(tmp_path))
