"""``sparse-engine train``: train an SR model directory (SPINE + SR) from a captions file."""
from __future__ import annotations

import json
import time

import click


@click.command("train")
@click.option("--base", default="minilm", show_default=True, help="Frozen dense encoder the SR model sits on.")
@click.option("--captions", "captions", required=True, type=click.Path(dir_okay=False),
              help="Training captions: captions.csv (image,caption), COCO captions JSON or metadata.jsonl.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--dims", default=1000, show_default=True, help="Sparse dims d (= SPINE hidden size).")
@click.option("--top-k", default=32, show_default=True, help="Dims kept by the top-k mask.")
@click.option("--epochs", default=10, show_default=True, help="SR training epochs.")
@click.option("--lambda-contrast", default=1.0, show_default=True, help="Weight of the InfoNCE term.")
@click.option("--lambda-align", default=1.0, show_default=True,
              help="Weight of the SPINE alignment term (0 = the paper's loss alone).")
@click.option("--lambda-word", default=1.0, show_default=True,
              help="Weight of the word-to-caption InfoNCE term (0 = off).")
@click.option("--word-scope", default="caption", show_default=True, type=click.Choice(["caption", "image"]),
              help="A word's positives in the word term: captions that use it, or captions whose image's captions do.")
@click.option("--lambda-distill", default=0.0, show_default=True,
              help="Weight of the listwise distillation of the dense model's word-caption and caption-caption "
                   "similarities (0 = off).")
@click.option("--caption-spine-weight", default=1.0, show_default=True,
              help="γ: a caption's row is unit(SR) + γ·unit(its SPINE vector) (0 = SR alone, as in the paper).")
@click.option("--tau", default=0.05, show_default=True, help="InfoNCE temperature.")
@click.option("--seed", default=0, show_default=True)
@click.option("--spine-epochs", default=200, show_default=True, help="SPINE autoencoder epochs.")
@click.option("--spine-rho", default=0.02, show_default=True, help="SPINE target sparsity ρ (ASL).")
@click.option("--spine-dims-per-word", default=6, show_default=True,
              help="SPINE units kept per word, in training and in the codes (0 = all active units).")
@click.option("--extend-vocab", default=50_000, show_default=True,
              help="Also code GloVe's N most frequent other words, so masks cover words the captions lack.")
@click.option("--min-count", default=2, show_default=True, help="Minimum caption-word count for the vocabulary.")
@click.option("--no-caption-masks", is_flag=True, help="Train and encode with the top-k mask only (ablation).")
@click.option("--max-images", default=None, type=int, help="Use only the first N images' captions.")
@click.option("--fp32", is_flag=True, help="Store float32 weights (default: float16).")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when present).")
def command(base, captions, out, dims, top_k, epochs, lambda_contrast, lambda_align, lambda_word, word_scope, lambda_distill,
            caption_spine_weight, tau, seed, spine_epochs, spine_rho, spine_dims_per_word, extend_vocab, min_count,
            no_caption_masks, max_images, fp32, device) -> None:
    """Train SPINE over the captions' words, then an SR model over BASE's frozen embeddings."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..encoders.spine import SpineConfig
    from ..encoders.train import TrainOptions, train_model

    spine = SpineConfig(epochs=spine_epochs, rho=spine_rho, max_dims_per_word=spine_dims_per_word)
    opts = TrainOptions(
        captions=captions, out=out, base=base, dims=dims, top_k=top_k, epochs=epochs,
        lambda_contrast=lambda_contrast, lambda_align=lambda_align, lambda_word=lambda_word, word_scope=word_scope,
        lambda_distill=lambda_distill, caption_spine_weight=caption_spine_weight, extend_vocab=extend_vocab, tau=tau,
        seed=seed, device=device,
        min_count=min_count, caption_masks=not no_caption_masks, max_images=max_images, fp16=not fp32, spine=spine,
    )
    console = Console(stderr=True)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                  transient=False) as progress:
        summary = train_model(opts, progress)
    summary["total_seconds"] = round(time.perf_counter() - started, 1)
    click.echo(json.dumps({"out": out, **summary}, indent=2))
