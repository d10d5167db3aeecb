"""Dense image-text encoders: open_clip models and BLIP (image-text retrieval, ITC features).

Weights load lazily, on the first row the embedding cache does not already hold, so a fully
cached collection never touches the model. No pretrained weights ship with the project: on a
machine without internet pass a local checkpoint (see the error message).
"""
from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import SparseEngineError, require_module
from .base import DenseEncoder, EncodeReport, clean_texts
from .cache import EmbeddingCache, cached_embed, file_key, text_key
from .dense_text import hub_offline, offline_requested, pick_device
from .images import one_line, open_image

log = logging.getLogger(__name__)

_SCHEMAS = ("hf-hub:", "local-dir:")


def _default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class _ImageTextEncoder(DenseEncoder):
    """Shared batching, caching and bad-image handling; subclasses supply the model calls."""

    has_images = True

    def __init__(self, device: str | None, batch_size: int, cache: EmbeddingCache | None,
                 threads: int | None):
        if batch_size < 1:
            raise SparseEngineError(f"batch_size must be >= 1, got {batch_size}")
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.cache = cache
        self.threads = threads or _default_threads()
        self._identity: str | None = None

    # -- subclass hooks -------------------------------------------------------------------
    def _load(self) -> None: ...

    def _checkpoint_identity(self) -> str:
        raise NotImplementedError

    def _preprocess(self, image):
        """PIL RGB image -> CHW float tensor."""
        raise NotImplementedError

    def _text_features(self, texts: list[str]):
        """Unnormalised text features (torch tensor, n x dim)."""
        raise NotImplementedError

    def _image_features(self, pixels):
        """Unnormalised image features (torch tensor, n x dim) for an NCHW batch."""
        raise NotImplementedError

    # -- shared machinery ------------------------------------------------------------------
    @property
    def cache_model(self) -> str:
        """Cache namespace: the architecture plus the weights' identity (not the file's path)."""
        if self._identity is None:
            self._identity = self._checkpoint_identity()
        return self._identity

    def _run(self, fn, *args) -> np.ndarray:
        import torch

        with torch.inference_mode():
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.float16):
                    feats = fn(*args)
            else:
                feats = fn(*args)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        texts, empty = clean_texts(texts)

        def compute(indices: list[int]) -> np.ndarray:
            self._load()
            out = np.zeros((len(indices), self.dim), dtype=np.float32)
            for start in range(0, len(indices), self.batch_size):
                batch = [texts[i] for i in indices[start : start + self.batch_size]]
                out[start : start + len(batch)] = self._run(self._text_features, batch)
            return out

        keys = [text_key(t) for t in texts]
        out = cached_embed(self.cache, self.cache_model + "|text", keys, self.dim, compute)
        out[empty] = 0.0
        return out

    def _prepare(self, path: str):
        img, reason = open_image(path)
        if img is None:
            return None, reason
        try:
            return self._preprocess(img), None
        except Exception as exc:  # a decodable but unusable image (odd mode, 1-pixel, ...)
            return None, f"cannot preprocess image: {one_line(exc)}"

    def embed_images(self, paths: Sequence[str | os.PathLike], report: EncodeReport | None = None) -> np.ndarray:
        """One L2-normalised row per path; a bad file gets a zero row and a ``report.failed`` entry."""
        report = report if report is not None else EncodeReport()
        already_failed = report.n_failed
        paths = [str(p) for p in paths]
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        readable, keys = [], []
        for i, path in enumerate(paths):
            try:
                keys.append(file_key(path))
                readable.append(i)
            except OSError as exc:
                reason = "file not found" if isinstance(exc, FileNotFoundError) else one_line(exc)
                report.failed.append((path, f"cannot read file: {reason}"))
        if readable:
            good_paths = [paths[i] for i in readable]
            out[readable] = cached_embed(
                self.cache, self.cache_model + "|image", keys, self.dim,
                lambda idx: self._compute_images([good_paths[i] for i in idx], report),
            )
        if report.n_failed > already_failed:
            path, reason = report.failed[already_failed]
            log.warning("%d image(s) skipped (zero rows), e.g. %s: %s",
                        report.n_failed - already_failed, path, reason)
        return out

    def _compute_images(self, paths: list[str], report: EncodeReport) -> np.ndarray:
        import torch

        self._load()
        out = np.zeros((len(paths), self.dim), dtype=np.float32)
        starts = list(range(0, len(paths), self.batch_size))
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            # Decode the next batch on worker threads while the model runs on this one.
            def submit(start: int) -> list[Future]:
                return [pool.submit(self._prepare, p) for p in paths[start : start + self.batch_size]]

            pending = submit(starts[0])
            for n, start in enumerate(starts):
                prepared = [f.result() for f in pending]
                if n + 1 < len(starts):
                    pending = submit(starts[n + 1])
                ok = []
                for offset, (tensor, reason) in enumerate(prepared):
                    if tensor is None:
                        report.failed.append((paths[start + offset], reason))
                    else:
                        ok.append(offset)
                if ok:
                    pixels = torch.stack([prepared[o][0] for o in ok]).to(self.device)
                    out[[start + o for o in ok]] = self._run(self._image_features, pixels)
        return out


def parse_openclip_spec(spec: str) -> tuple[str, str | None]:
    """``ARCH/PRETRAINED`` -> (arch, pretrained); split at the first '/' so that
    ``ViT-B-32//abs/path.pt`` keeps its absolute path. ``hf-hub:``/``local-dir:`` specs pass whole."""
    if spec.startswith(_SCHEMAS):
        return spec, None
    arch, sep, pretrained = spec.partition("/")
    if not arch or not sep or not pretrained:
        raise SparseEngineError(
            f"openclip spec '{spec}' must be ARCH/PRETRAINED, e.g. openclip:ViT-B-32/laion2b_s34b_b79k "
            "or openclip:ViT-B-32//path/to/checkpoint.pt"
        )
    return arch, pretrained


class OpenClipEncoder(_ImageTextEncoder):
    """An open_clip model from a pretrained tag (downloaded on first use) or a local checkpoint."""

    def __init__(self, spec: str, device: str | None = None, batch_size: int = 64,
                 cache: EmbeddingCache | None = None, threads: int | None = None):
        super().__init__(device, batch_size, cache, threads)
        self._oc = require_module("open_clip", "open_clip image encoding", "clip")
        self.arch, pretrained = parse_openclip_spec(spec)
        self.name = f"openclip:{spec}"
        self.checkpoint: Path | None = None
        self.tag: str | None = None
        self._model = self._tokenizer = self._transform = None
        if self.arch.startswith(_SCHEMAS):
            self._load()  # the config lives with the weights: load to learn the dimension
            return
        config = self._oc.get_model_config(self.arch)
        if config is None:
            raise SparseEngineError(
                f"unknown open_clip architecture '{self.arch}' in '{spec}' (see open_clip.list_models())"
            )
        self.dim = int(config["embed_dim"])
        if self._oc.get_pretrained_cfg(self.arch, pretrained):
            self.tag = pretrained
        elif Path(pretrained).expanduser().is_file():
            self.checkpoint = Path(pretrained).expanduser().resolve()
        else:
            tags = ", ".join(self._oc.list_pretrained_tags_by_model(self.arch)) or "none"
            raise SparseEngineError(
                f"'{pretrained}' is neither an open_clip pretrained tag for {self.arch} (known: {tags}) "
                "nor an existing checkpoint file"
            )

    def _checkpoint_identity(self) -> str:
        if self.checkpoint is not None:
            return f"openclip:{self.arch}@sha256:{file_key(self.checkpoint)[:32]}"
        return f"openclip:{self.arch}/{self.tag}" if self.tag else f"openclip:{self.arch}"

    def _load(self) -> None:
        if self._model is not None:
            return
        pretrained = str(self.checkpoint) if self.checkpoint is not None else self.tag
        with hub_offline(offline_requested()):
            try:
                model, _, transform = self._oc.create_model_and_transforms(
                    self.arch, pretrained=pretrained, device=self.device
                )
                tokenizer = self._oc.get_tokenizer(self.arch)
            except Exception as exc:
                raise self._load_error(exc) from exc
        self._model, self._transform, self._tokenizer = model.eval(), transform, tokenizer
        if self.arch.startswith(_SCHEMAS):
            self.dim = int(self._run(self._text_features, ["a"]).shape[1])

    def _load_error(self, exc: BaseException) -> SparseEngineError:
        if self.checkpoint is not None:
            return SparseEngineError(
                f"cannot load checkpoint '{self.checkpoint}' into open_clip {self.arch}: {one_line(exc)}"
            )
        return SparseEngineError(
            f"cannot get weights for open_clip model {self.name}: {one_line(exc)}; without internet, "
            f"download them elsewhere and pass the file: openclip:{self.arch}//path/to/checkpoint.pt"
        )

    def _preprocess(self, image):
        return self._transform(image)

    def _text_features(self, texts: list[str]):
        tokens = self._tokenizer(texts).to(self.device)
        return self._model.encode_text(tokens)

    def _image_features(self, pixels):
        return self._model.encode_image(pixels)


def _weights_identity(directory: Path) -> str:
    """sha256 over a saved model directory's config and weight files."""
    digest = hashlib.sha256()
    files = sorted(p for p in directory.iterdir()
                   if p.is_file() and (p.suffix in {".safetensors", ".bin", ".pt", ".pth"} or p.name == "config.json"))
    for p in files:
        digest.update(p.name.encode() + b"\0" + file_key(p).encode())
    return digest.hexdigest()[:32]


class BlipEncoder(_ImageTextEncoder):
    """BLIP image-text retrieval (``BlipForImageTextRetrieval``): the ITC projections, normalised.

    ``spec`` is a Hugging Face model name (downloaded on first use) or a local directory written
    by ``save_pretrained`` holding the model and its processor (or an image processor + tokenizer).
    """

    def __init__(self, spec: str, device: str | None = None, batch_size: int = 64,
                 cache: EmbeddingCache | None = None, threads: int | None = None):
        super().__init__(device, batch_size, cache, threads)
        self._tf = require_module("transformers", "BLIP image encoding", "clip")
        if not spec:
            raise SparseEngineError("blip needs a model: blip:Salesforce/blip-itm-base-coco or blip:/path/to/dir")
        self.spec = spec
        self.name = f"blip:{spec}"
        self.local_dir = Path(spec).expanduser() if Path(spec).expanduser().is_dir() else None
        self._model = self._processor = None
        if self.local_dir is not None and not (self.local_dir / "config.json").is_file():
            raise SparseEngineError(
                f"'{self.local_dir}' has no config.json: not a BLIP model saved with save_pretrained"
            )
        with hub_offline(offline_requested() or self.local_dir is not None):
            try:
                config = self._tf.AutoConfig.from_pretrained(str(self.local_dir or spec))
            except Exception as exc:
                raise self._load_error(exc) from exc
        if not isinstance(config, self._tf.BlipConfig):
            raise SparseEngineError(
                f"'{spec}' is a {getattr(config, 'model_type', 'unknown')} model, not BLIP"
            )
        self.dim = int(config.image_text_hidden_size)
        self._max_length = int(config.text_config.max_position_embeddings)

    def _checkpoint_identity(self) -> str:
        if self.local_dir is not None:
            return f"blip@sha256:{_weights_identity(self.local_dir)}"
        return f"blip:{self.spec}"

    def _load_error(self, exc: BaseException) -> SparseEngineError:
        if self.local_dir is not None:
            return SparseEngineError(f"cannot load BLIP model from '{self.local_dir}': {one_line(exc)}")
        return SparseEngineError(
            f"cannot get weights for BLIP model '{self.spec}': {one_line(exc)}; without internet, save "
            "the model and processor with save_pretrained elsewhere and pass the folder: blip:/path/to/dir"
        )

    def _load(self) -> None:
        if self._model is not None:
            return
        source = str(self.local_dir or self.spec)
        with hub_offline(offline_requested() or self.local_dir is not None):
            try:
                model = self._tf.BlipForImageTextRetrieval.from_pretrained(source)
                processor = self._load_processor(source)
            except SparseEngineError:
                raise
            except Exception as exc:
                raise self._load_error(exc) from exc
        self._model, self._processor = model.to(self.device).eval(), processor

    def _load_processor(self, source: str):
        try:
            return self._tf.BlipProcessor.from_pretrained(source)
        except Exception:
            # A folder with an image processor and a tokenizer saved side by side also works.
            image_processor = self._tf.BlipImageProcessor.from_pretrained(source)
            tokenizer = self._tf.AutoTokenizer.from_pretrained(source)
            return self._tf.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)

    def _preprocess(self, image):
        return self._processor.image_processor(images=image, return_tensors="pt")["pixel_values"][0]

    def _text_features(self, texts: list[str]):
        limit = min(self._max_length, int(getattr(self._processor.tokenizer, "model_max_length", 512)))
        enc = self._processor.tokenizer(texts, padding=True, truncation=True, max_length=limit,
                                        return_tensors="pt").to(self.device)
        hidden = self._model.text_encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return self._model.text_proj(hidden.last_hidden_state[:, 0, :])

    def _image_features(self, pixels):
        hidden = self._model.vision_model(pixel_values=pixels).last_hidden_state
        return self._model.vision_proj(hidden[:, 0, :])
