"""On-disk embedding cache keyed by (model name, sha256 of the input).

Re-encoding the same collection is free: texts are keyed by their UTF-8 bytes, images by
their file bytes, so a renamed file is still a hit and an edited one is not.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Callable, Sequence

import numpy as np


def default_cache_dir() -> Path:
    return Path(os.environ.get("SPARSE_ENGINE_CACHE", Path.home() / ".cache" / "sparse-engine"))


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_key(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class EmbeddingCache:
    """A sqlite table per cache directory: (model, key) -> float32 bytes."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / "embeddings.sqlite", timeout=60)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS emb (model TEXT, key TEXT, vec BLOB, PRIMARY KEY (model, key))"
        )

    def get_many(self, model: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT key, vec FROM emb WHERE model=? AND key IN ({marks})", [model, *chunk]
            )
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(model, k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in zip(keys, vectors)]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?, ?)", rows)

    def close(self) -> None:
        self._db.close()


def cached_embed(
    cache: EmbeddingCache | None,
    model: str,
    keys: Sequence[str],
    dim: int,
    compute: Callable[[list[int]], np.ndarray],
) -> np.ndarray:
    """Fill an (n, dim) array from the cache, computing only the missing rows.

    ``compute(indices)`` returns the embeddings of those input indices, in order; it may
    return an all-zero row for an input it could not encode (that row is not cached).
    """
    out = np.zeros((len(keys), dim), dtype=np.float32)
    found = cache.get_many(model, keys) if cache is not None else {}
    missing = [i for i, k in enumerate(keys) if k not in found]
    for i, k in enumerate(keys):
        if k in found:
            out[i] = found[k]
    if missing:
        computed = np.asarray(compute(missing), dtype=np.float32)
        out[missing] = computed
        if cache is not None:
            first = {}
            for i, row in zip(missing, computed):
                # An all-zero row marks an input that failed (e.g. a corrupt image): never
                # cache it, so the failure is seen and reported again next time.
                if row.any():
                    first.setdefault(keys[i], row)
            if first:
                cache.put_many(model, list(first), np.stack(list(first.values())))
    return out
