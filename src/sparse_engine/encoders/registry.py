"""One registry of named models and the factories that build them (open_clip style).

Dense names:  ``minilm``, ``openclip:<arch>/<pretrained-or-checkpoint>``, ``blip:<name-or-dir>``.
Sparse names: ``sr-minilm`` (shipped default), a path to a trained SR model directory,
``splice:<dense name>``, ``vdr:<model dir>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..errors import SparseEngineError
from .base import DenseEncoder, SparseEncoder
from .cache import EmbeddingCache

DenseFactory = Callable[[str, dict], DenseEncoder]
SparseFactory = Callable[[str, dict], SparseEncoder]

_DENSE: dict[str, DenseFactory] = {}
_SPARSE: dict[str, SparseFactory] = {}

SHIPPED_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_ENCODER = "sr-minilm"


def register_dense(prefix: str, factory: DenseFactory) -> None:
    _DENSE[prefix] = factory


def register_sparse(prefix: str, factory: SparseFactory) -> None:
    _SPARSE[prefix] = factory


def _split(name: str) -> tuple[str, str]:
    prefix, _, rest = name.partition(":")
    return prefix, rest


def list_dense_encoders() -> list[str]:
    _load_builtin()
    return sorted(_DENSE)


def list_encoders() -> list[str]:
    _load_builtin()
    shipped = sorted(p.name for p in SHIPPED_MODELS_DIR.glob("*") if (p / "config.json").exists())
    return shipped + sorted(f"{p}:" for p in _SPARSE)


def create_dense_encoder(name: str, **kwargs) -> DenseEncoder:
    """Build a dense encoder by name, e.g. ``minilm`` or ``openclip:ViT-B-32/laion2b_s34b_b79k``."""
    _load_builtin()
    prefix, rest = _split(name)
    if prefix not in _DENSE:
        raise SparseEngineError(
            f"unknown dense encoder '{name}': choose one of {', '.join(list_dense_encoders())}"
        )
    if kwargs.pop("use_cache", True):
        kwargs.setdefault("cache", EmbeddingCache())
    return _DENSE[prefix](rest, kwargs)


def create_encoder(name: str = DEFAULT_ENCODER, **kwargs) -> SparseEncoder:
    """Build a sparse encoder by name: a shipped model, a model directory, or ``prefix:arg``."""
    _load_builtin()
    shipped = SHIPPED_MODELS_DIR / name
    if (shipped / "config.json").exists():
        return _SPARSE["sr"](str(shipped), kwargs)
    if Path(name).is_dir():
        if (Path(name) / "config.json").exists():
            return _SPARSE["sr"](name, kwargs)
        raise SparseEngineError(f"'{name}' is a directory but has no config.json: not an encoder model")
    prefix, rest = _split(name)
    if prefix in _SPARSE and rest:
        return _SPARSE[prefix](rest, kwargs)
    raise SparseEngineError(f"unknown encoder '{name}': choose one of {', '.join(list_encoders())}")


_loaded = False


def _load_builtin() -> None:
    """Register built-in factories lazily so that importing the registry stays cheap."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import builtin  # noqa: F401  (registers factories on import)
