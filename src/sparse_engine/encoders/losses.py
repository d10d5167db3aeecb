"""Loss terms of SR training (train.py runs them): reconstruction, caption-pair InfoNCE, SPINE
alignment, word-to-caption InfoNCE and the dense-similarity distillation (listwise KL).

``opts`` is train.TrainOptions (the weights, ``tau``, ``top_k`` and ``caption_spine_weight``).
"""
from __future__ import annotations

from .sr_model import sparse_codes

DISTILL_TEMPERATURE = 0.05


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


def _soft_kl(teacher, student, temperature: float):
    """Mean over rows of KL(softmax(teacher / T) || softmax(student / T))."""
    import torch

    log_t = torch.log_softmax(teacher / temperature, dim=1)
    log_s = torch.log_softmax(student / temperature, dim=1)
    return torch.mean(torch.sum(log_t.exp() * (log_t - log_s), dim=1))


def distill_loss(net, sr_captions, caption_vecs, caption_x, word_x, word_masks, word_vecs, opts):
    """Listwise distillation of the dense model's similarities into the rows ``encode_text`` returns.

    For each sampled word, the softmax over the batch's captions of its sparse cosines should
    match the softmax of its dense cosines (temperature ``DISTILL_TEMPERATURE``); likewise for each
    caption against the batch's other captions. Exclusion ranks by e(A)·d − α·e(B)·d, so what
    counts is how strongly a caption leans towards B even when it never names B ("a snowboarder"
    towards "person"): the dense model grades that, the word InfoNCE term treats it as a plain
    negative. (A scale-free Pearson form of this term was measured first and not adopted:
    bench/README.md.)
    """
    import torch

    sr_w, _ = sparse_codes(net, word_x, opts.top_k, word_masks)
    words = _final_rows(sr_w, word_vecs, opts.caption_spine_weight)
    captions = _final_rows(sr_captions, caption_vecs, opts.caption_spine_weight)
    dense_w = torch.nn.functional.normalize(word_x, dim=1)
    dense_c = torch.nn.functional.normalize(caption_x, dim=1)
    loss = _soft_kl(dense_w @ dense_c.T, words @ captions.T, DISTILL_TEMPERATURE)
    eye = torch.eye(len(captions), dtype=torch.bool, device=captions.device)
    off = -1e4  # a caption is not its own neighbour
    loss = loss + _soft_kl((dense_c @ dense_c.T).masked_fill(eye, off), (captions @ captions.T).masked_fill(eye, off),
                           DISTILL_TEMPERATURE)  # fmt: skip
    return loss


def word_info_nce(net, sr_captions, word_x, word_masks, positives, opts):
    """Multi-positive InfoNCE: each word against the batch's captions (positives: those containing it)."""
    import torch

    sr_w, _ = sparse_codes(net, word_x, opts.top_k, word_masks)
    a = torch.nn.functional.normalize(sr_w, dim=1, eps=1e-8)
    b = torch.nn.functional.normalize(sr_captions, dim=1, eps=1e-8)
    log_p = (a @ b.T / opts.tau).log_softmax(dim=1)
    return torch.mean(-(log_p * positives).sum(dim=1) / positives.sum(dim=1))
