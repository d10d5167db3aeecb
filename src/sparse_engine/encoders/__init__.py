"""Encoders: frozen dense models feeding small trained sparse disentangled models.

Public API (training code and the engine import only these names)::

    create_encoder(name) -> SparseEncoder       # "sr-minilm", a model dir, "splice:minilm", "vdr:DIR"
    create_dense_encoder(name) -> DenseEncoder  # "minilm", "openclip:ViT-B-32/...", "blip:..."
"""
from .base import DenseEncoder, EncodeReport, NoImageTowerError, SparseEncoder
from .cache import EmbeddingCache
from .registry import (
    DEFAULT_ENCODER,
    create_dense_encoder,
    create_encoder,
    list_dense_encoders,
    list_encoders,
)

__all__ = [
    "DEFAULT_ENCODER",
    "DenseEncoder",
    "EmbeddingCache",
    "EncodeReport",
    "NoImageTowerError",
    "SparseEncoder",
    "create_dense_encoder",
    "create_encoder",
    "list_dense_encoders",
    "list_encoders",
]
