"""Train an SR model directory: SPINE over the captions' words, then SR over frozen dense embeddings.

Stages (each a function, so tests and the CLI can run them apart):
``load_training_captions`` → ``fit_spine`` (vocabulary, SPINE codes, dim labels) → ``embed_captions``
(dense rows from the shared cache) → ``train_sr`` (reconstruction + InfoNCE + word InfoNCE +
alignment, optionally distillation: losses.py) → ``write_model_dir``. ``train_model`` chains them.
Runs on CUDA when present, else CPU.
Progress goes to stderr through rich.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from ..errors import SparseEngineError
from . import spine as spine_mod
from .base import DenseEncoder, to_nonnegative_csr, unit_rows
from .captions_io import Captions, flatten, read_captions
from .masks import SpineTable
from .losses import sr_batch_loss
from .realizations import mine_realizations, related_only, save_realizations
from .sr_model import (CONFIG_FILE, DEFAULT_TOP_K, FORMAT_VERSION, LABELS_FILE, MODEL_TYPE, build_net,
                       save_net, sparse_codes)

EpochHook = Callable[[int, dict], None]
WORD_SCOPES = ("caption", "image")


@dataclass
class TrainOptions:
    captions: str
    out: str
    base: str = "minilm"
    dims: int = 1000
    top_k: int = DEFAULT_TOP_K
    epochs: int = 10
    batch_size: int = 256
    lr: float = 2e-3
    lambda_contrast: float = 1.0
    tau: float = 0.05
    lambda_align: float = 1.0
    lambda_word: float = 1.0  # word -> caption InfoNCE (0 = off)
    word_scope: str = "caption"  # a word's positives: captions using it ("caption") or whose image does ("image")
    lambda_distill: float = 0.0  # listwise KL to the dense model's word/caption similarities (0 = off)
    distill_words: int = 512  # random vocabulary words per batch for the distillation term
    caption_spine_weight: float = 1.0  # γ of encode_text (see sr_model); 0 = SR alone
    extend_vocab: int = 50_000  # GloVe words coded beyond the captions' own (0 = none)
    caption_masks: bool = True
    seed: int = 0
    device: str | None = None
    min_count: int = 2
    max_images: int | None = None  # first N images only (tests, quick runs)
    fp16: bool = True
    label_words: int = 8
    spine: spine_mod.SpineConfig = field(default_factory=spine_mod.SpineConfig)

    @property
    def uses_words(self) -> bool:
        """Whether a loss term trains on one-word queries (WordQueries)."""
        return self.lambda_word > 0 or self.lambda_distill > 0

    def check(self) -> "TrainOptions":
        for name in ("dims", "epochs", "batch_size", "top_k"):
            if int(getattr(self, name)) <= 0:
                raise SparseEngineError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.tau <= 0:
            raise SparseEngineError(f"--tau must be positive, got {self.tau}")
        for name in ("lambda_contrast", "lambda_align", "lambda_word", "lambda_distill", "caption_spine_weight",
                     "extend_vocab"):
            if getattr(self, name) < 0:
                raise SparseEngineError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.word_scope not in WORD_SCOPES:
            raise SparseEngineError(f"--word-scope must be one of {', '.join(WORD_SCOPES)}, got '{self.word_scope}'")
        if self.spine.epochs <= 0:
            raise SparseEngineError(f"--spine-epochs must be positive, got {self.spine.epochs}")
        self.spine.dims = self.dims
        self.spine.seed = self.seed
        return self


def load_training_captions(path: str | Path, max_images: int | None = None) -> Captions:
    captions = read_captions(path)
    if max_images:
        captions = dict(list(captions.items())[:max_images])
    if not any(len(c) >= 2 for c in captions.values()):
        raise SparseEngineError(f"'{path}' has no image with two captions: SR training needs caption pairs")
    return captions


def fit_spine(texts: list[str], opts: TrainOptions, device: str,
              on_epoch: EpochHook | None = None) -> tuple[SpineTable, list[list[str]], dict]:
    """SPINE over the captions' vocabulary → (table, dim labels, report with losses and sparsity).

    The table lists the training vocabulary first, then ``opts.extend_vocab`` more GloVe words
    coded by the same trained encoder (centred by the training vocabulary's mean).
    """
    glove_index, _ = spine_mod.load_glove()
    vocab = spine_mod.build_vocabulary(texts, glove_index, min_count=opts.min_count)
    centre = spine_mod.glove_rows(vocab).mean(axis=0)
    x = spine_mod.glove_matrix(vocab, centre)
    model, history = spine_mod.train_spine(x, opts.spine, device, on_epoch)
    model.net.to("cpu")
    cfg = opts.spine
    codes = spine_mod.spine_codes(model, x, cfg.code_threshold, cfg.max_dims_per_word)
    labels = spine_mod.top_words(codes, vocab, opts.label_words, label_scores(model, x, vocab, texts))
    extra = spine_mod.extension_vocabulary(opts.extend_vocab, exclude=vocab) if opts.extend_vocab else []
    if extra:
        extra_codes = spine_mod.spine_codes(model, spine_mod.glove_matrix(extra, centre), cfg.code_threshold,
                                            cfg.max_dims_per_word)
        codes = sp.vstack([codes, extra_codes], format="csr")
    report = {"vocab_size": len(vocab), "extension_size": len(extra), "first_loss": history[0],
              "last_loss": history[-1], "sparsity": spine_mod.sparsity_report(codes[: len(vocab)])}
    return SpineTable(vocab + extra, codes), labels, report


def label_scores(model, x: np.ndarray, vocab: list[str], texts: list[str]) -> np.ndarray:
    """How well each word labels each dim: capped activation × log caption frequency.

    Most activations saturate at 1.0, and ranking by the raw pre-activation favours rare, extreme
    GloVe words ("starring", "nadal"); among the words a dim fires for, the frequent caption words
    are the readable ones ("dog" rather than "doberman"). The pre-activation relative to the
    word's strongest one keeps a frequent word ("man") from labelling every dim it touches.
    """
    from collections import Counter

    counts = Counter(tok for text in texts for tok in spine_mod.tokenize(text))
    freq = np.log1p(np.array([counts[w] for w in vocab], dtype=np.float32))
    pre = spine_mod.pre_activations(model, x)
    strongest = np.maximum(pre.max(axis=1, keepdims=True), 1e-6)
    return np.clip(pre / strongest, 0.0, 1.0) * freq[:, None]


def embed_captions(base: str, texts: list[str], device: str) -> tuple[np.ndarray, DenseEncoder]:
    """Frozen dense rows of the captions (through the on-disk embedding cache) and the encoder."""
    from . import create_dense_encoder

    dense = create_dense_encoder(base, device=device)
    return dense.embed_text(texts), dense


def positive_partners(owner: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, partners): every caption of an image with 2+ captions, and a different caption of it."""
    order = np.argsort(owner, kind="stable")
    starts = np.flatnonzero(np.r_[True, owner[order][1:] != owner[order][:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    anchors, partners = [], []
    for start, size in zip(starts, sizes):
        if size < 2:
            continue
        group = order[start : start + size]
        shift = rng.integers(1, size, size=size)  # never 0: the partner is another caption
        anchors.append(group)
        partners.append(group[(np.arange(size) + shift) % size])
    return np.concatenate(anchors), np.concatenate(partners)


@dataclass
class WordQueries:
    """The training vocabulary as one-word queries: what the word InfoNCE term trains on.

    Exclusion queries are single words ("dog -frisbee") scored against captions; caption pairs
    alone never show the model a one-word input. Each caption is paired with one of its words
    (drawn anew every epoch); the captions of the batch that use the word are its positives, the
    others its negatives. "Use" is per caption, or, with ``owner`` given to ``build``, per image:
    a caption then uses every word of its image's captions. The image scope is what exclusion
    needs: "a woman riding a horse" shows a person when another caption of the image says
    "person", so the word "person" learns to score it (its own words never say so).
    """

    x: np.ndarray  # (n_words, k) dense rows of the words
    masks: sp.csr_matrix | None  # (n_words, d) the words' caption masks (None without masks)
    uses: sp.csr_matrix  # (n_captions, n_words) 1 where the caption (or its image) uses the word
    vecs: sp.csr_matrix | None = None  # (n_words, d) the words' SPINE vectors

    @classmethod
    def build(cls, words: list[str], texts: list[str], table: SpineTable, x: np.ndarray,
              caption_masks: bool = True, owner: np.ndarray | None = None) -> "WordQueries":
        index = {w: i for i, w in enumerate(words)}
        rows, cols = [], []
        for i, text in enumerate(texts):
            for j in {index[t] for t in spine_mod.tokenize(text) if t in index}:
                rows.append(i)
                cols.append(j)
        uses = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), len(words)))
        if owner is not None:
            owner = np.asarray(owner)
            of_image = sp.csr_matrix((np.ones(len(owner), np.float32), (owner, np.arange(len(owner)))))
            uses = (of_image.T @ ((of_image @ uses) > 0)).astype(np.float32).tocsr()
            uses.sort_indices()
        masks = table.caption_masks(words) if caption_masks else None
        return cls(np.ascontiguousarray(x, dtype=np.float32), masks, uses, table.caption_vectors(words))

    def pick(self, captions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random word of each caption, -1 for a caption with none."""
        lo, hi = self.uses.indptr[captions], self.uses.indptr[captions + 1]
        offset = np.floor(rng.random(len(captions)) * (hi - lo)).astype(np.int64)
        return np.where(hi > lo, self.uses.indices[np.minimum(lo + offset, max(len(self.uses.indices) - 1, 0))], -1)


def _rows(matrix: sp.csr_matrix | None, idx: np.ndarray, device: str, dtype):
    import torch

    if matrix is None:
        return None
    return torch.from_numpy(matrix[idx].toarray()).to(device=device, dtype=dtype)


def _word_terms(words: WordQueries | None, opts: TrainOptions, anchors: np.ndarray, rng, device: str):
    """(dense rows, masks, positives) for one word per anchor caption, or None."""
    import torch

    if words is None or opts.lambda_word <= 0:
        return None
    picked = words.pick(anchors, rng)
    has = picked >= 0
    if has.sum() < 2:
        return None
    chosen = picked[has]
    positives = words.uses[anchors][:, chosen].T.toarray() > 0  # (words, captions of the batch)
    return (torch.from_numpy(words.x[chosen]).to(device), _rows(words.masks, chosen, device, torch.bool),
            torch.from_numpy(positives.astype(np.float32)).to(device))


def _distill_terms(words: WordQueries | None, opts: TrainOptions, rng, device: str):
    """(dense rows, masks, SPINE vectors) of ``opts.distill_words`` random vocabulary words, or None."""
    import torch

    if words is None or opts.lambda_distill <= 0:
        return None
    chosen = rng.choice(len(words.x), size=min(opts.distill_words, len(words.x)), replace=False)
    return (torch.from_numpy(words.x[chosen]).to(device), _rows(words.masks, chosen, device, torch.bool),
            _rows(words.vecs, chosen, device, torch.float32))


def train_sr(x: np.ndarray, owner: np.ndarray, table: SpineTable, texts: list[str], opts: TrainOptions,
             device: str, on_epoch: EpochHook | None = None, words: WordQueries | None = None):
    """Train the SR encoder/decoder; returns (net, per-epoch mean losses, seconds per epoch)."""
    import torch

    rng = np.random.default_rng(opts.seed)
    net = build_net(x.shape[1], opts.dims, opts.seed).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=opts.lr)
    vecs = table.caption_vectors(texts)
    masks = table.caption_masks(texts) if opts.caption_masks else None
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    history, seconds = [], []
    for epoch in range(opts.epochs):
        started = time.perf_counter()
        anchors, partners = positive_partners(owner, rng)
        perm = rng.permutation(len(anchors))
        anchors, partners = anchors[perm], partners[perm]
        sums: dict[str, float] = {}
        for start in range(0, len(anchors), opts.batch_size):
            a, b = anchors[start : start + opts.batch_size], partners[start : start + opts.batch_size]
            if len(a) < 2:
                continue  # InfoNCE needs an in-batch negative
            terms = sr_batch_loss(net, data[a], data[b], _rows(masks, a, device, torch.bool),
                                  _rows(masks, b, device, torch.bool), _rows(vecs, a, device, torch.float32), opts,
                                  _word_terms(words, opts, a, rng, device),
                                  _distill_terms(words, opts, rng, device))  # fmt: skip
            opt.zero_grad()
            terms["loss"].backward()
            opt.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(a)
        history.append({k: v / len(anchors) for k, v in sums.items()})
        seconds.append(time.perf_counter() - started)
        if on_epoch is not None:
            on_epoch(epoch, history[-1])
    return net.eval(), history, seconds


def sr_sparsity(net, x: np.ndarray, table: SpineTable, texts: list[str], opts: TrainOptions, device: str) -> dict:
    """Mean non-zeros per caption SR vector (with caption masks, as ``encode_text`` does)."""
    import torch

    masks = table.caption_masks(texts) if opts.caption_masks else None
    nnz, from_mask = [], []
    with torch.no_grad():
        for start in range(0, len(x), 2048):
            idx = np.arange(start, min(start + 2048, len(x)))
            xb = torch.from_numpy(x[idx]).to(device)
            sr, _ = sparse_codes(net, xb, opts.top_k, _rows(masks, idx, device, torch.bool))
            nnz.append((sr > 0).sum(dim=1).cpu().numpy())
            if masks is not None:
                from_mask.append(np.diff(masks[idx].indptr))
    nnz = np.concatenate(nnz)
    out = {"sr_nnz_mean": float(nnz.mean()), "sr_nnz_p95": float(np.percentile(nnz, 95))}
    if from_mask:
        out["caption_mask_dims_mean"] = float(np.concatenate(from_mask).mean())
    return out


def sr_dim_labels(net, table: SpineTable, words: list[str], word_x: np.ndarray, texts: list[str],
                  opts: TrainOptions, device: str, spine_labels: list[list[str]]) -> list[list[str]]:
    """Each SR dim's top caption words, read off the trained model.

    A word is encoded as ``encode_text`` encodes a one-word query (SR, plus γ · its SPINE code);
    dim j's labels are the words putting the largest share of their length on j, times their log
    caption frequency (frequent words are the readable ones: "bottle" rather than "syrup"). SR
    dims drift from the SPINE dims they were masked to, and a dim SPINE left dead still carries
    SR weight: SPINE's own labels named them worse. A dim no word reaches keeps SPINE's label.
    """
    import torch
    from collections import Counter

    masks = table.caption_masks(words) if opts.caption_masks else None
    with torch.no_grad():
        sr, _ = sparse_codes(net, torch.from_numpy(np.ascontiguousarray(word_x, dtype=np.float32)).to(device),
                             opts.top_k, _rows(masks, np.arange(len(words)), device, torch.bool))  # fmt: skip
    rows = unit_rows(to_nonnegative_csr(sr.cpu().numpy()))
    if opts.caption_spine_weight > 0:
        rows = unit_rows(rows + opts.caption_spine_weight * table.caption_vectors(words))
    counts = Counter(tok for text in texts for tok in spine_mod.tokenize(text))
    freq = np.log1p(np.array([counts[w] for w in words], dtype=np.float32))
    labels = spine_mod.top_words(rows, words, opts.label_words, rows.toarray() * freq[:, None])
    return [own or spine for own, spine in zip(labels, spine_labels)]


def write_model_dir(out: str | Path, net, table: SpineTable, labels: list[list[str]], opts: TrainOptions,
                    dense_dim: int, summary: dict, realizations: dict | None = None) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SparseEngineError(f"--out '{out}' exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    save_net(net.to("cpu"), out, opts.fp16)
    table.save(out)
    (out / LABELS_FILE).write_text(json.dumps(labels), encoding="utf-8")
    if realizations is not None:
        save_realizations(out, realizations)
    options = {k: v for k, v in asdict(opts).items() if k not in ("out", "device", "spine")}
    config = {
        "type": MODEL_TYPE, "format_version": FORMAT_VERSION, "base": opts.base, "dense_dim": int(dense_dim),
        "dims": opts.dims, "top_k": opts.top_k, "caption_masks": opts.caption_masks,
        "lambda_contrast": opts.lambda_contrast, "tau": opts.tau, "lambda_align": opts.lambda_align,
        "lambda_word": opts.lambda_word, "caption_spine_weight": opts.caption_spine_weight,
        "lambda1_asl": opts.spine.lambda_asl, "lambda2_psl": opts.spine.lambda_psl, "seed": opts.seed,
        "epochs": opts.epochs, "vocab_hash": table.vocab_hash, "vocab_size": len(table.vocab),
        "weights_dtype": "float16" if opts.fp16 else "float32", "spine": opts.spine.to_dict(),
        "options": options, "training": summary,
    }
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    for path in out.iterdir():  # safetensors writes 0600; a shipped model must be readable by all
        path.chmod(0o644)
    return out


def train_model(opts: TrainOptions, progress=None) -> dict:
    """Run every stage and write the model dir; returns the training summary (also in config.json).

    ``progress``: an optional rich ``Progress``; the stages report epochs to it.
    """
    from .dense_text import pick_device

    opts.check()
    device = pick_device(opts.device)
    import torch

    torch.manual_seed(opts.seed)
    captions = load_training_captions(opts.captions, opts.max_images)
    texts, owner = flatten(captions)

    t0 = time.perf_counter()
    hook = _hook(progress, "SPINE", opts.spine.epochs)
    table, labels, spine_report = fit_spine(texts, opts, device, hook)
    spine_seconds = time.perf_counter() - t0

    x, dense = embed_captions(opts.base, texts, device)
    vocab = table.vocab[: spine_report["vocab_size"]]  # the captions' own words, not the extension
    vocab_x = dense.embed_text(vocab)
    scope = np.asarray(owner) if opts.word_scope == "image" else None
    words = WordQueries.build(vocab, texts, table, vocab_x, opts.caption_masks, scope) if opts.uses_words else None
    hook = _hook(progress, "SR", opts.epochs)
    net, history, seconds = train_sr(x, np.asarray(owner), table, texts, opts, device, hook, words)
    labels = sr_dim_labels(net, table, vocab, vocab_x, texts, opts, device, labels)
    summary = {
        "data": {"captions_file": Path(opts.captions).name, "images": len(captions), "captions": len(texts)},
        "device": device, "spine": {**spine_report, "seconds": round(spine_seconds, 2)},
        "sr": {"first": history[0], "last": history[-1], "seconds_per_epoch": round(float(np.mean(seconds)), 3),
               **sr_sparsity(net, x, table, texts, opts, device)},
    }
    realizations = related_only(mine_realizations(captions), dense)
    summary["realizations"] = {"words": len(realizations), "pairs": sum(len(r) for r in realizations.values())}
    write_model_dir(opts.out, net, table, labels, opts, dense.dim, summary, realizations)
    return summary


def _hook(progress, label: str, total: int) -> EpochHook | None:
    if progress is None:
        return None
    task = progress.add_task(label, total=total)

    def update(epoch: int, losses: dict) -> None:
        shown = " ".join(f"{k}={v:.4f}" for k, v in losses.items())
        progress.update(task, completed=epoch + 1, description=f"{label} {shown}")

    return update
