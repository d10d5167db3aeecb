"""Built-in encoder factories. Heavy modules are imported inside each factory."""
from __future__ import annotations

from .registry import register_dense, register_sparse


def _minilm(spec: str, kwargs: dict):
    from .dense_text import MiniLMEncoder

    return MiniLMEncoder(**kwargs)


def _openclip(spec: str, kwargs: dict):
    from .dense_image import OpenClipEncoder

    return OpenClipEncoder(spec, **kwargs)


def _blip(spec: str, kwargs: dict):
    from .dense_image import BlipEncoder

    return BlipEncoder(spec, **kwargs)


def _sr(model_dir: str, kwargs: dict):
    from .sr_model import SREncoder

    return SREncoder.load(model_dir, **kwargs)


def _splice(dense_name: str, kwargs: dict):
    from .splice import SpliceEncoder

    return SpliceEncoder(dense_name, **kwargs)


def _vdr(model_dir: str, kwargs: dict):
    from .vdr import VDRStyleEncoder

    return VDRStyleEncoder.load(model_dir, **kwargs)


register_dense("minilm", _minilm)
register_dense("openclip", _openclip)
register_dense("blip", _blip)
register_sparse("sr", _sr)
register_sparse("splice", _splice)
register_sparse("vdr", _vdr)
