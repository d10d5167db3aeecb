"""SR: sparse disentangled representations over a frozen dense encoder, dims aligned with SPINE.

Model (x: a frozen, L2-normalised dense embedding, k-dim; d = number of SPINE dims)::

    E_d  = ReLU(W x + b)                      d-dim; ReLU *before* masking, so every impact is ≥ 0
    mask = top_k(E_d)  OR  caption_mask       caption_mask: SPINE dims of the caption's words
    SR   = mask ⊙ E_d                         what the engine indexes (CSR, float32, non-negative)
    x̂    = W' SR + b'                         decoder d → k, used only by the training loss

Training loss (see ``train.py``): reconstruction ‖x̂ − x‖² + λ·InfoNCE(SR of two captions of
the same image, in-batch negatives, temperature τ) + λ_word·InfoNCE(SR of one word of a caption vs
the batch's captions, those containing the word being positives) + λ_align·(1 − cos(E_d, SPINE
caption vector)). The caption mask opens SPINE dim j for captions whose words fire j, so SR dim j
learns to carry what SPINE dim j means; the alignment term also pulls E_d's mass onto those dims,
so that without a caption, top-k lands on the same readable dims. The word and alignment terms
are our additions to the paper's loss (set λ_word = λ_align = 0 for the paper's loss alone): the
word term trains the one-word inputs that exclusion queries are ("dog", "frisbee").

At inference, masks follow the same rule as in training:
* ``encode_images`` (a base with an image tower): there is no caption, so mask = top_k(E_d) and
  the row is SR itself;
* ``encode_text``: the input *is* a caption, so mask = top_k(E_d) OR the caption mask of its own
  words (a text with no SPINE word gets top-k only), and the row is
  ``unit(SR) + γ · unit(SPINE caption vector)`` with γ = ``caption_spine_weight`` (config; 0 =
  SR alone, as in the paper). With a caption at hand, its words' own SPINE codes are direct
  evidence for the same dims; adding them keeps a word's query precise ("car" is not "truck")
  where the dense model blurs neighbours. Both parts are non-negative, so the row is too.
Dims inherit SPINE's labels: ``dim_labels()[j]`` are dim j's top caption words.

A model directory holds ``weights.safetensors`` (encoder/decoder; fp16 when shipped),
``config.json``, the SPINE table (``spine.safetensors`` + ``vocab.json``, see ``masks.py``),
``dim_labels.json`` and ``realizations.json`` (the words annotators use for the same thing,
mined from the training captions: ``realizations.py``; optional, older models lack it).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import SparseEngineError
from .base import DenseEncoder, EncodeReport, SparseEncoder, clean_texts, to_nonnegative_csr, unit_rows
from .masks import SpineTable
from .realizations import load_realizations

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
LABELS_FILE = "dim_labels.json"
MODEL_TYPE = "sr"
FORMAT_VERSION = 1
DEFAULT_TOP_K = 32


def _torch():
    from ..errors import require_module

    return require_module("torch", "the SR encoder", "train")


def build_net(dense_dim: int, dims: int, seed: int = 0):
    """The trainable part: encoder k → d and decoder d → k (a torch ModuleDict)."""
    torch = _torch()
    torch.manual_seed(seed)
    return torch.nn.ModuleDict({"enc": torch.nn.Linear(dense_dim, dims), "dec": torch.nn.Linear(dims, dense_dim)})


def activations(net, x):
    """E_d = ReLU(W x + b)."""
    return net["enc"](x).clamp(min=0.0)


def topk_mask(e, top_k: int):
    """Boolean mask of each row's ``top_k`` largest entries (zeros never count as active)."""
    torch = _torch()
    k = min(int(top_k), e.shape[1])
    mask = torch.zeros_like(e, dtype=torch.bool)
    if k > 0:
        mask.scatter_(1, torch.topk(e, k, dim=1).indices, True)
    return mask & (e > 0)


def sparse_codes(net, x, top_k: int, caption_mask=None):
    """(SR, E_d): SR = (top_k(E_d) OR caption_mask) ⊙ E_d."""
    e = activations(net, x)
    mask = topk_mask(e, top_k)
    if caption_mask is not None:
        mask = mask | caption_mask
    return e * mask, e


def weights_hash(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_net(net, directory: Path, fp16: bool) -> Path:
    from safetensors.torch import save_file

    dtype = _torch().float16 if fp16 else _torch().float32
    tensors = {name.replace(".", "_"): p.detach().to("cpu", dtype).contiguous() for name, p in net.state_dict().items()}
    path = directory / WEIGHTS_FILE
    save_file(tensors, str(path))
    return path


def load_net(directory: Path, config: dict, device: str = "cpu"):
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    net = build_net(int(config["dense_dim"]), int(config["dims"]))
    try:
        tensors = load_file(str(directory / WEIGHTS_FILE))
    except (OSError, SafetensorError) as exc:
        raise SparseEngineError(f"cannot read SR weights '{directory / WEIGHTS_FILE}': {exc}") from exc
    state = {name: tensors.get(name.replace(".", "_")) for name in net.state_dict()}
    for name, param in net.state_dict().items():
        got = state[name]
        if got is None or tuple(got.shape) != tuple(param.shape):
            shape = None if got is None else tuple(got.shape)
            raise SparseEngineError(
                f"SR weights in '{directory}' do not match config.json: {name} is {shape}, expected {tuple(param.shape)}"
            )
    net.load_state_dict({k: v.float() for k, v in state.items()})
    return net.to(device).eval()


def read_config(directory: Path) -> dict:
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SparseEngineError(f"cannot read '{directory / CONFIG_FILE}': {exc}") from exc
    missing = [k for k in ("type", "base", "dense_dim", "dims", "top_k") if k not in config]
    if config.get("type", MODEL_TYPE) != MODEL_TYPE:
        raise SparseEngineError(f"'{directory}' holds a '{config.get('type')}' model, not an SR model")
    if missing:
        raise SparseEngineError(f"'{directory / CONFIG_FILE}' lacks {', '.join(missing)}: not an SR model config")
    return config


class SREncoder(SparseEncoder):
    """The engine's default sparse encoder: SR over a frozen dense encoder (see module docstring)."""

    def __init__(self, net, config: dict, spine: SpineTable, labels: list[list[str]], dense: DenseEncoder,
                 checkpoint_hash: str = "", name: str = "sr", spec: str = "", device: str = "cpu",
                 realizations: dict[str, list[tuple[str, float]]] | None = None):  # fmt: skip
        self.net, self.config, self.spine, self.labels = net, config, spine, labels
        self._realizations = realizations or {}
        self.dense, self.device = dense, device
        self.dim = int(config["dims"])
        self.top_k = int(config["top_k"])
        self.use_caption_masks = bool(config.get("caption_masks", True))
        self.caption_spine_weight = float(config.get("caption_spine_weight", 0.0))
        self.checkpoint_hash = checkpoint_hash
        self.name, self.spec = name, spec or name
        self.batch_size = 1024
        check_compatible(config, dense, spine, len(labels))

    @classmethod
    def load(cls, model_dir: str | Path, base: str | None = None, dense: DenseEncoder | None = None,
             device: str | None = None, **dense_kwargs) -> "SREncoder":
        """Load a model dir. ``base`` (a dense encoder name) or ``dense`` must agree with the checkpoint."""
        from . import create_dense_encoder
        from .dense_text import pick_device

        directory = Path(model_dir)
        config = read_config(directory)
        if base is not None and base != config["base"]:
            raise SparseEngineError(
                f"SR model '{directory.name}' was trained on dense encoder '{config['base']}', not '{base}'"
            )
        device = pick_device(device)
        if dense is None:
            dense = create_dense_encoder(config["base"], device=device, **dense_kwargs)
        net = load_net(directory, config, device)
        spine = SpineTable.load(directory)
        try:
            labels = json.loads((directory / LABELS_FILE).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise SparseEngineError(f"cannot read '{directory / LABELS_FILE}': {exc}") from exc
        from .registry import SHIPPED_MODELS_DIR

        shipped = directory.resolve().parent == SHIPPED_MODELS_DIR.resolve()
        name = directory.name if shipped else f"sr:{directory.name}"
        spec = directory.name if shipped else str(directory.resolve())
        return cls(net, config, spine, labels, dense, weights_hash(directory / WEIGHTS_FILE), name, spec, device,
                   load_realizations(directory))

    @property
    def has_images(self) -> bool:
        return bool(self.dense.has_images)

    def dim_labels(self) -> list[list[str]]:
        return [list(words) for words in self.labels]

    def realizations(self, term: str) -> list[str]:
        return [w for w, _ in self._realizations.get(term.strip().lower(), [])]

    def encode_dense(self, x: np.ndarray, caption_masks: sp.csr_matrix | None = None) -> sp.csr_matrix:
        """SR rows for dense embeddings ``x`` (n × k), optionally OR-ing boolean caption masks."""
        torch = _torch()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != int(self.config["dense_dim"]):
            raise SparseEngineError(f"SR model expects {self.config['dense_dim']}-d dense rows, got shape {x.shape}")
        parts = []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                xb = torch.from_numpy(x[start : start + self.batch_size]).to(self.device)
                cm = None
                if caption_masks is not None:
                    cm = torch.from_numpy(caption_masks[start : start + self.batch_size].toarray()).to(self.device)
                sr, _ = sparse_codes(self.net, xb, self.top_k, cm)
                parts.append(to_nonnegative_csr(sr.cpu().numpy()))
        if not parts:
            return sp.csr_matrix((0, self.dim), dtype=np.float32)
        return sp.vstack(parts, format="csr").astype(np.float32)

    def encode_text(self, texts: Sequence[str]) -> sp.csr_matrix:
        texts, empty = clean_texts(texts)
        x = self.dense.embed_text(texts)
        masks = self.spine.caption_masks(texts) if self.use_caption_masks else None
        out = self.encode_dense(x, masks)
        if self.caption_spine_weight > 0:
            out = unit_rows(out) + self.caption_spine_weight * unit_rows(self.spine.caption_vectors(texts))
            out = sp.csr_matrix(out, dtype=np.float32)
        return _clear_rows(out, empty)

    def encode_images(self, paths: Sequence[str], report: EncodeReport | None = None) -> sp.csr_matrix:
        report = report if report is not None else EncodeReport()
        x = self.dense.embed_images(paths, report)  # raises NoImageTowerError for a text-only base
        failed = report.failed_rows([str(p) for p in paths])
        empty = np.array([i in failed or not x[i].any() for i in range(len(paths))], dtype=bool)
        return _clear_rows(self.encode_dense(x), empty)


def _clear_rows(out: sp.csr_matrix, empty: np.ndarray) -> sp.csr_matrix:
    if empty.any():
        keep = sp.diags((~empty).astype(np.float32))
        out = sp.csr_matrix(keep @ out, dtype=np.float32)
        out.eliminate_zeros()
    return out


def check_compatible(config: dict, dense: DenseEncoder, spine: SpineTable, n_labels: int) -> None:
    """Refuse a checkpoint whose base encoder or dims do not match what it is used with."""
    name = getattr(dense, "name", "?")
    base = str(config["base"])
    if name != base.split(":", 1)[0] and name != base:
        raise SparseEngineError(f"SR checkpoint was trained on dense encoder '{base}', but got '{name}'")
    if int(dense.dim) != int(config["dense_dim"]):
        raise SparseEngineError(
            f"SR checkpoint expects {config['dense_dim']}-d dense vectors, but '{name}' gives {dense.dim}-d"
        )
    dims = int(config["dims"])
    if spine.dim != dims or n_labels != dims:
        raise SparseEngineError(
            f"SR model files disagree: config has {dims} dims, SPINE table {spine.dim}, labels {n_labels}"
        )
    if config.get("vocab_hash") and config["vocab_hash"] != spine.vocab_hash:
        raise SparseEngineError("SR model's vocab.json does not match the vocabulary hash in config.json")
