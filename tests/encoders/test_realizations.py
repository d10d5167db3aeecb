"""Realizations mined from parallel captions: replacements across an image's captions, not context."""
import numpy as np
import pytest

from sparse_engine.encoders.realizations import (load_realizations, mine_realizations, related_only,
                                                 save_realizations)  # fmt: skip
from sparse_engine.errors import SparseEngineError


def parallel_captions() -> dict[str, list[str]]:
    caps = {}
    for i in range(12):  # "person" and "man" name one rider; "riding" and "bike" stand beside both
        caps[f"p{i}"] = ["a person riding a bike", "a man riding a bike", "a man on a red bike"]
    for i in range(12):  # "puppy" / "dog", and "grass" as context
        caps[f"d{i}"] = ["a dog on the grass", "a puppy on the grass", "a dog running"]
    caps["x"] = ["a bird in the sky", "a person flying a kite"]  # one confused pair: no realization
    return caps


def test_replacements_are_realizations_and_context_is_not():
    table = mine_realizations(parallel_captions(), min_pairs=5)
    person = dict(table["person"])
    assert "man" in person and "riding" not in person and "bike" not in person
    # 25 ordered caption pairs have "person" on one side only (2 per rider image, 1 in "x"); in 24
    # of them the other caption says "man"
    assert person["man"] == pytest.approx(24 / 25)
    assert "puppy" in dict(table["dog"]) and "grass" not in dict(table["dog"])
    assert "man" in dict(table) and "person" in dict(table["man"])
    assert "bird" not in table and all(v != "kite" for v, _ in table.get("bird", []))


def test_thresholds_are_applied():
    assert mine_realizations(parallel_captions(), min_pairs=100) == {}
    strict = mine_realizations(parallel_captions(), min_pairs=5, min_share=0.97)
    assert "person" not in strict  # 24/25 of its replacements say "man": under 0.97
    assert dict(strict["man"]) == {"person": 1.0}  # every replacement of "man" says "person"


class FakeDense:
    VECS = {"person": [1, 0, 0], "man": [0.9, 0.1, 0], "dog": [0, 1, 0], "puppy": [0, 0, 1]}

    def embed_text(self, texts):
        return np.array([self.VECS.get(t, [0.1, 0.1, 0.1]) for t in texts], dtype=np.float32)


def test_related_only_keeps_pairs_the_dense_encoder_relates():
    table = {"person": [("man", 0.6)], "dog": [("puppy", 0.5)]}
    kept = related_only(table, FakeDense(), min_cosine=0.5)
    assert kept == {"person": [("man", 0.6)]}  # dog and puppy are orthogonal here
    assert related_only({}, FakeDense()) == {}


def test_save_load(tmp_path):
    table = {"person": [("man", 0.31), ("woman", 0.1)]}
    save_realizations(tmp_path, table)
    assert load_realizations(tmp_path) == table
    assert load_realizations(tmp_path / "missing") == {}
    (tmp_path / "realizations.json").write_text("{not json")
    with pytest.raises(SparseEngineError, match="cannot read"):
        load_realizations(tmp_path)


def test_shipped_model_knows_people():
    from sparse_engine.encoders.registry import SHIPPED_MODELS_DIR

    table = load_realizations(SHIPPED_MODELS_DIR / "sr-minilm")
    person = [v for v, _ in table["person"]]
    assert {"man", "woman", "boy", "girl"} <= set(person) and "bike" not in person
