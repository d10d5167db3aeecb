"""Loss terms of SR training (train.py runs them): reconstruction, caption-pair InfoNCE, SPINE
alignment, word-to-caption InfoNCE and the optional dense-similarity distillation.

``opts`` is train.TrainOptions (the weights, ``tau``, ``top_k`` and ``caption_spine_weight``).
"""
from __future__ import annotations

from .sr_model import sparse_codes


def info_nce(a, b, tau: float):
    """Symmetric InfoNCE over cosine similarities; row i of ``a`` matches row i of ``b``."""
    import torch

    a = torch.nn.functional.normalize(a, dim=1, eps=1e-8)
    b = torch.nn.functional.normalize(b, dim=1, eps=1e-8)
    logits = a @ b.T / tau
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target))


def sr_batch_loss(net, xa, xb, mask_a, mask_b, vec_a, opts, word_terms=None,
                  distill_terms=None) -> dict:
    """Loss terms of one batch of caption pairs (a: anchors, b: their partners).

    ``word_terms``: (dense rows, masks, positives) of one word per anchor, or None.
    ``distill_terms``: (dense rows, masks, SPINE vectors) of the distillation words, or None.
    """
    import torch

    sr_a, e_a = sparse_codes(net, xa, opts.top_k, mask_a)
    sr_b, _ = sparse_codes(net, xb, opts.top_k, mask_b)
    recon = torch.mean(torch.sum((net["dec"](sr_a) - xa) ** 2, dim=1))
    contrast = info_nce(sr_a, sr_b, opts.tau)
    has_words = (vec_a.abs().sum(dim=1) > 0).float()
    cos = torch.nn.functional.cosine_similarity(e_a, vec_a, dim=1, eps=1e-8)
    align = torch.sum((1.0 - cos) * has_words) / has_words.sum().clamp(min=1.0)
    total = recon + opts.lambda_contrast * contrast + opts.lambda_align * align
    terms = {"reconstruction": recon, "contrast": contrast, "align": align}
    if word_terms is not None:
        terms["word"] = word_info_nce(net, sr_a, *word_terms, opts)
        total = total + opts.lambda_word * terms["word"]
    if distill_terms is not None:
        terms["distill"] = distill_loss(net, sr_a, vec_a, xa, *distill_terms, opts)
        total = total + opts.lambda_distill * terms["distill"]
    return {"loss": total, **terms}


def _final_rows(sr, spine_vecs, gamma: float):
    """What ``encode_text`` returns: unit(SR) + γ·unit(SPINE caption vector)."""
    import torch

    out = torch.nn.functional.normalize(sr, dim=1, eps=1e-8)
    if gamma > 0:
        out = out + gamma * torch.nn.functional.normalize(spine_vecs, dim=1, eps=1e-8)
    return torch.nn.functional.normalize(out, dim=1, eps=1e-8)


def _row_pearson(s, t):
    s = s - s.mean(dim=1, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    return (s * t).sum(dim=1) / (s.norm(dim=1) * t.norm(dim=1)).clamp(min=1e-8)


def distill_loss(net, sr_captions, caption_vecs, caption_x, word_x, word_masks, word_vecs, opts):
    """1 − Pearson correlation, per word, of its sparse and its dense similarities to the batch's captions.

    Exclusion ranks by e(A)·d − α·e(B)·d: what matters is how strongly a caption leans towards B
    even when it never names B ("a snowboarder" towards "person"). The dense model grades that;
    the sparse vectors, left alone, score such captions 0. Correlation, not MSE: the two spaces
    have different scales, and only the ranking and spacing of the similarities matter.
    """
    import torch

    sr_w, _ = sparse_codes(net, word_x, opts.top_k, word_masks)
    sparse_sim = _final_rows(sr_w, word_vecs, opts.caption_spine_weight) @ _final_rows(
        sr_captions, caption_vecs, opts.caption_spine_weight).T
    dense_sim = torch.nn.functional.normalize(word_x, dim=1) @ torch.nn.functional.normalize(caption_x, dim=1).T
    return torch.mean(1.0 - _row_pearson(sparse_sim, dense_sim))


def word_info_nce(net, sr_captions, word_x, word_masks, positives, opts):
    """Multi-positive InfoNCE: each word against the batch's captions (positives: those containing it)."""
    import torch

    sr_w, _ = sparse_codes(net, word_x, opts.top_k, word_masks)
    a = torch.nn.functional.normalize(sr_w, dim=1, eps=1e-8)
    b = torch.nn.functional.normalize(sr_captions, dim=1, eps=1e-8)
    log_p = (a @ b.T / opts.tau).log_softmax(dim=1)
    return torch.mean(-(log_p * positives).sum(dim=1) / positives.sum(dim=1))
