"""Small deterministic encoders and collections for the engine's tests (no model weights).

``ToyEncoder`` maps known words to fixed concept weights (unknown words → nothing), and images to
their dominant colour concept (decoded with Pillow, so a corrupt file really fails). It is
registered as ``toy:<variant>`` so ``create_encoder("toy:v1")`` works (CLI and subprocess tests).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from sparse_engine.encoders.base import EncodeReport, SparseEncoder
from sparse_engine.encoders.registry import register_sparse

CONCEPTS = ["dog", "cat", "animal", "frisbee", "toy", "ball", "person", "pizza", "food", "grass",
            "red", "green", "blue", "car", "street", "basketball", "sport", "bun"]  # fmt: skip
# word -> {concept: weight}; a word can light several concepts (dog → dog + animal)
WORDS = {
    "dog": {"dog": 1.0, "animal": 0.4}, "dogs": {"dog": 1.0, "animal": 0.4}, "puppy": {"dog": 0.8, "animal": 0.4},
    "cat": {"cat": 1.0, "animal": 0.4}, "frisbee": {"frisbee": 1.0, "toy": 0.5},
    "ball": {"ball": 1.0, "toy": 0.4, "sport": 0.2}, "person": {"person": 1.0}, "man": {"person": 0.9},
    "woman": {"person": 0.9}, "pizza": {"pizza": 1.0, "food": 0.5}, "grass": {"grass": 1.0, "green": 0.2},
    "red": {"red": 1.0}, "green": {"green": 1.0}, "blue": {"blue": 1.0}, "car": {"car": 1.0, "street": 0.3},
    "street": {"street": 1.0}, "basketball": {"basketball": 1.0, "ball": 0.5, "sport": 0.6},
    "sports": {"sport": 1.0}, "hot dog": {"food": 1.0, "bun": 0.6}, "bun": {"bun": 1.0, "food": 0.4},
}  # fmt: skip
# term -> other words annotators use for it (what an SR model mines from its training captions)
REALIZATIONS = {"person": ["man", "woman"], "dog": ["puppy"]}


class ToyEncoder(SparseEncoder):
    def __init__(self, variant: str = "v1", concepts: Sequence[str] = CONCEPTS, sleep: float = 0.0):
        self.name = f"toy:{variant}"
        self.concepts = list(concepts)
        self.dim = len(self.concepts)
        self.sleep = sleep
        self.checkpoint_hash = hashlib.sha256(json.dumps([variant, self.concepts, WORDS]).encode()).hexdigest()
        self._index = {c: i for i, c in enumerate(self.concepts)}

    @property
    def has_images(self) -> bool:
        return True

    def _row(self, text: str) -> dict[int, float]:
        out: dict[int, float] = {}
        lowered = text.lower()
        for phrase, concepts in WORDS.items():
            if " " in phrase and phrase in lowered:
                lowered = lowered.replace(phrase, " ")
                self._add(out, concepts)
        for word in re.findall(r"[a-z]+", lowered):
            self._add(out, WORDS.get(word, {}))
        return out

    def _add(self, out: dict[int, float], concepts: dict[str, float]) -> None:
        for concept, w in concepts.items():
            if concept in self._index:
                d = self._index[concept]
                out[d] = max(out.get(d, 0.0), w)

    def _csr(self, rows: list[dict[int, float]]) -> sp.csr_matrix:
        data, cols, indptr = [], [], [0]
        for row in rows:
            for d in sorted(row):
                cols.append(d)
                data.append(row[d])
            indptr.append(len(cols))
        return sp.csr_matrix((np.array(data, np.float32), np.array(cols, np.int32), indptr), shape=(len(rows), self.dim))

    def encode_text(self, texts: Sequence[str]) -> sp.csr_matrix:
        if self.sleep:
            time.sleep(self.sleep)
        return self._csr([self._row(t) for t in texts])

    def encode_images(self, paths: Sequence[str], report: EncodeReport | None = None) -> sp.csr_matrix:
        from sparse_engine.encoders.images import load_images

        if self.sleep:
            time.sleep(self.sleep)
        rows = []
        for img in load_images(paths, report):
            if img is None:
                rows.append({})
                continue
            mean = np.asarray(img, dtype=np.float32).reshape(-1, 3).mean(axis=0)
            colour = ["red", "green", "blue"][int(np.argmax(mean))]
            rows.append({self._index[colour]: 1.0} if colour in self._index else {})
        return self._csr(rows)

    def dim_labels(self) -> list[list[str]]:
        return [[c, f"{c}s"] for c in self.concepts]

    def realizations(self, term: str) -> list[str]:
        return list(REALIZATIONS.get(term, []))


def _factory(variant: str, kwargs: dict) -> ToyEncoder:
    if variant == "small":
        return ToyEncoder("small", CONCEPTS[:10])
    if variant == "slow":
        return ToyEncoder("slow", sleep=float(os.environ.get("TOY_SLEEP", "30")))
    return ToyEncoder(variant)


register_sparse("toy", _factory)

# A tiny captioned collection: (file stem, colour, captions)
TOY_DOCS = [
    ("d00", "green", ["a dog catches a frisbee on the grass", "dog with a frisbee"]),
    ("d01", "green", ["a dog runs on the grass", "a puppy in a park"]),
    ("d02", "blue", ["a dog sleeping", "a dog on a blue blanket"]),
    ("d03", "red", ["a cat with a ball", "a cat playing"]),
    ("d04", "red", ["a man eating pizza", "pizza on a table with a person"]),
    ("d05", "blue", ["a pizza", "a pizza with cheese"]),
    ("d06", "green", ["a man throws a frisbee", "person playing frisbee"]),
    ("d07", "red", ["a red car on the street", "a car"]),
    ("d08", "blue", ["a basketball game", "basketball sports"]),
    ("d09", "green", ["sports on the grass", "a ball on the grass"]),
    ("d10", "red", ["a hot dog with a bun", "hot dog"]),
    ("d11", "blue", ["a dog and a cat", "a dog with a ball"]),
]
COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def make_collection(root: Path, docs=TOY_DOCS, bad_image: bool = False, sidecar: str = "jsonl") -> Path:
    """Write small real JPEGs under root/images/ (+ subfolder) and a captions sidecar."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (stem, colour, captions) in enumerate(docs):
        rel = f"images/{'sub/' if i % 3 == 0 else ''}{stem}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), COLOURS[colour]).save(root / rel)
        rows.append((rel, captions))
    if bad_image:
        (root / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    if sidecar == "jsonl":
        with open(root / "metadata.jsonl", "w") as f:
            for rel, captions in rows:
                f.write(json.dumps({"file": rel, "captions": captions}) + "\n")
    elif sidecar == "csv":
        with open(root / "captions.csv", "w") as f:
            f.write("image,caption\n")
            for rel, captions in rows:
                for c in captions:
                    f.write(f"{Path(rel).name},{c}\n")
    return root


def captions_of(doc_id: str) -> list[str]:
    return next(c for s, _, c in TOY_DOCS if s == doc_id)


def toy_store(encoder: ToyEncoder | None = None, docs=TOY_DOCS):
    """A real PostingStore over the toy documents' captions (and the float matrix it came from)."""
    from sparse_engine.store import PostingStore

    encoder = encoder or ToyEncoder()
    vectors = encoder.encode_caption_sets([c for _, _, c in docs]).tocsr()
    return PostingStore.build(vectors), vectors


def toy_word_store(encoder: ToyEncoder | None = None, docs=TOY_DOCS, weight: float = 0.6):
    """(store, word channel) as ``sparse-engine index`` builds them: unit concept rows + caption words."""
    from sparse_engine.encoders.base import unit_rows
    from sparse_engine.store import PostingStore
    from sparse_engine.words import WordChannel

    encoder = encoder or ToyEncoder()
    captions = [c for _, _, c in docs]
    words = WordChannel.build(captions, encoder.dim, weight)
    return PostingStore.build(words.attach(unit_rows(encoder.encode_caption_sets(captions)), captions)), words


def build_toy_index(tmp_path: Path, name: str = "index", **kwargs) -> Path:
    from sparse_engine.indexer import build_index

    collection = tmp_path / "collection"
    if not collection.exists():
        make_collection(collection)
    out = tmp_path / name
    build_index(collection, out, encoder=kwargs.pop("encoder", "toy:v1"), **kwargs)
    return out


# A tiny open_clip architecture (random weights: no pretrained CLIP can be had offline); the
# tiny_clip_checkpoint fixture (conftest.py) registers it and saves a checkpoint.
TINY_ARCH = "SETiny-ViT-test"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
