"""Exclusion-query benchmark of the seed paper (COCO val2017), every baseline, one command.

    python bench/exclusion.py --docs captions --out bench/results

Writes bench/results/exclusion_results.json, exclusion_results.md and exclusion_*.png.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench import exclusion_data as data
from bench.exclusion_metrics import Judged, per_query_metrics, summarize
from bench.exclusion_methods import DenseBench, keyword_reference, pool_dense
from sparse_engine.encoders.base import flatten_sets
from sparse_engine.errors import SparseEngineError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Bench:
    """Collects one row per method: timings, metrics on all and hard queries, per-query values."""

    def __init__(self, coll: data.CocoCollection, queries: list[data.ExclusionQuery]):
        self.coll, self.queries = coll, queries
        cats = set(coll.categories)
        self.judged = []
        for q in queries:
            known = all(t in cats for t in q.exclude)
            violating = {coll.doc_ids[i] for i, labs in enumerate(coll.labels) if labs & set(q.exclude)}
            self.judged.append(Judged(q.qid, q.relevant, violating if known else None))
        self.hard = np.array([q.hard for q in queries], dtype=bool)
        self.rows: list[dict] = []
        self.per_query: dict[str, dict[str, np.ndarray]] = {}

    def evaluate(self, rankings: np.ndarray) -> tuple[dict, dict, dict]:
        ids = self.coll.doc_ids
        lists = [[ids[i] for i in row if i >= 0] for row in rankings]
        pq = per_query_metrics(self.judged, lists)
        hard = summarize(pq, self.hard) if self.hard.any() else {}
        return summarize(pq), hard, pq

    def add(self, method: str, fn, note: str = "", record: bool = True) -> dict:
        t0 = time.perf_counter()
        rankings = fn()
        seconds = time.perf_counter() - t0
        all_m, hard_m, pq = self.evaluate(rankings)
        row = {"method": method, "seconds": round(seconds, 2), "all": all_m, "hard": hard_m, "note": note}
        if record:
            self.rows.append(row)
            self.per_query[method] = pq
        print(f"  {method:<44} AP@10 {all_m['AP@10']:.3f}  hard {hard_m.get('AP@10', float('nan')):.3f}  "
              f"viol@10 {all_m['violation@10']:.3f}/{hard_m.get('violation@10', float('nan')):.3f}  "
              f"({seconds:.1f}s)", flush=True)
        row["_rankings"] = rankings
        return row


def dense_docs(args, coll: data.CocoCollection):
    """The dense encoder and its document matrix for --docs captions|images."""
    from sparse_engine.encoders.registry import create_dense_encoder

    if args.docs == "images":
        return image_docs(args, coll)
    enc = create_dense_encoder(args.dense)
    flat, owner = flatten_sets(coll.captions)
    return enc, pool_dense(enc.embed_text(flat), owner, len(coll.doc_ids))


def image_docs(args, coll: data.CocoCollection):
    """Pixels through an open_clip image tower; needs the COCO val2017 JPEGs and real weights."""
    from sparse_engine.encoders.base import EncodeReport
    from sparse_engine.encoders.registry import create_dense_encoder

    if not args.images_dir or not Path(args.images_dir).is_dir():
        raise SparseEngineError("--docs images needs --images-dir DIR holding the COCO val2017 JPEGs "
                                "(000000000139.jpg, ...); none is on this machine")
    paths = [str(Path(args.images_dir) / f"{d}.jpg") for d in coll.doc_ids]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise SparseEngineError(f"{len(missing)} COCO images missing under {args.images_dir}, e.g. {missing[0]}")
    enc = create_dense_encoder(args.image_encoder)
    report = EncodeReport()
    docs = enc.embed_images(paths, report=report)
    if report.n_failed:
        print(f"  {report.n_failed} images could not be read (empty vectors)")
    return enc, docs


def run_dense(bench: Bench, enc, docs: np.ndarray, captions: bool = True) -> None:
    db = DenseBench(enc, docs, bench.queries)
    if captions:
        bench.add("keyword reference (A's word matched, captions naming B dropped)",
                  lambda: keyword_reference(bench.coll.captions, bench.queries),
                  note="not a method: reads the benchmark's own category words in the captions")
    bench.add("dense SLQ ('images of A without B')", db.slq)
    bench.add("dense AvgEmb (e(A) - e(B))", db.avg_emb)
    bench.add("dense A-only", db.a_only)
    bench.add("content-based exclusion (Yoshikawa & Tajima 2024)", lambda: db.content_exclusion(m=10, tau=0.6),
              note="drop A's top-300 results with cosine >= 0.6 to any of B's top-10 results")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", choices=("captions", "images"), default="captions")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--data", default=str(data.DEFAULT_DATA), help="folder with labels/captions_val2017.json")
    p.add_argument("--queries", help="JSON-lines query set {include, exclude, relevant} instead of label pairs")
    p.add_argument("--dense", default="minilm")
    p.add_argument("--image-encoder", default="openclip:ViT-B-32/laion2b_s34b_b79k")
    p.add_argument("--images-dir", help="COCO val2017 JPEG folder (for --docs images)")
    p.add_argument("--sr", default="sr-minilm", help="our SR encoder (name or model dir)")
    p.add_argument("--splice", default="splice:minilm")
    p.add_argument("--vdr", default="", help="VDR-style model dir (vdr:DIR); default: models/vdr-* if trained")
    p.add_argument("--ablation-models", default="", help="folder of trained SR variants for the dims/mask ablation")
    p.add_argument("--quick", action="store_true", help="skip grids, ablations and classic retrieval")
    p.add_argument("--no-lucene", action="store_true", help="skip the Numba-vs-Lucene agreement check")
    return p.parse_args(argv)


def run_all(args) -> None:
    from bench import exclusion_suite as suite

    command = "python bench/exclusion.py " + " ".join(sys.argv[1:] if argv_is_cli() else [])
    coll = data.load_coco(args.data)
    queries = suite.query_set(args, coll)
    bench = Bench(coll, queries)
    notes: list[str] = []
    extras: dict = {"notes": notes}
    print("dense baselines")
    enc, docs = dense_docs(args, coll)
    run_dense(bench, enc, docs, captions=args.docs == "captions")
    # The best dense baseline by AP@10 (the keyword reference reads the labels' words: not a method).
    extras["scatter_dense"] = max((r for r in bench.rows if not r["method"].startswith("keyword")),
                                  key=lambda r: r["all"]["AP@10"])["method"]  # fmt: skip
    sparse = [("SR", args.sr, True)]
    sparse += [("SpLiCE", args.splice, False)] if args.splice else []
    vdr = args.vdr or _trained_vdr()
    sparse += [("VDR-style", vdr, False)] if vdr else []
    if not vdr:
        notes.append("VDR-style not run: no trained model (scripts/train_vdr.sh, then --vdr vdr:DIR)")
    pooling = "mean"
    for label, name, main in sparse:
        print(f"{label} ({name})")
        if args.docs == "images":
            notes.append(f"{label}: skipped with --docs images (caption-space encoder, no image tower)")
            continue
        sparse_enc, why = suite.load_sparse(name)
        if sparse_enc is None:
            notes.append(f"{label} not run: {why}")
            print(f"  not available: {why}")
            continue
        sb, rows = suite.run_sparse_methods(bench, sparse_enc, label, pooling, main, notes)
        if main:
            best = max(rows.values(), key=lambda r: r["all"]["AP@10"])
            extras["scatter_ours"] = best["method"]
            if not args.quick:
                extras["grid"] = suite.grid_rows(bench, sb, label)
                dense_name = extras["scatter_dense"]
                reference = next(r for r in bench.rows if r["method"] == dense_name)
                reference = {**reference, "_per_query": bench.per_query[dense_name]}
                words = suite.word_grid(bench, sparse_enc, label, reference)
                extras["defaults"] = suite.pick_defaults(extras["grid"], words)
                extras["word_grid"] = [{k: v for k, v in r.items() if not k.startswith("_")} for r in words]
            if not args.no_lucene and not args.queries:
                extras["lucene_agreement"] = suite.lucene_agreement(bench, sb, notes)
    if not args.quick and not args.queries and args.docs == "captions":
        extras["classic"] = suite.classic_rows(args, coll, enc)
        if args.ablation_models:
            extras["ablation"] = suite.ablation_rows(bench, args.ablation_models, notes)
        else:
            notes.append("SR dims/SPINE-mask ablation not run: pass --ablation-models DIR of models trained with "
                         "`sparse-engine train` (Flickr8k captions)")
    suite.write_outputs(Path(args.out), bench, extras, command)


def _trained_vdr() -> str:
    root = Path(__file__).resolve().parent.parent
    found = sorted(p for pat in ("models/vdr*", "src/sparse_engine/models/vdr*") for p in root.glob(pat)
                   if (p / "config.json").exists())
    return f"vdr:{found[0]}" if found else ""


def argv_is_cli() -> bool:
    return Path(sys.argv[0]).name == "exclusion.py"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run_all(args)
    except SparseEngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
