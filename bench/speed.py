"""Speed benchmark: one synthetic collection, every engine, the same queries.

    python bench/speed.py --n 100000            # or --n 1000000; --engines, --queries, --threads
    python bench/speed.py --collection coco     # real SR vectors: COCO val2017 captions, sr-minilm

Adapter protocol (what an engine in ``ENGINES`` is): ``ENGINES`` maps a name to a zero-argument
factory returning an object with

    name: str                                   # the row's name in the results
    info: dict                                  # optional: engine settings, copied into the row
    build(csr) -> None                          # csr: float32 scipy CSR (n_docs x dim); afterwards
                                                #   build_seconds (float) and index_bytes (int) are set
    search(spec: QuerySpec, k: int) -> np.ndarray               # doc indices, best first
    batch_search(specs, k: int, threads: int) -> list[np.ndarray]

``spec`` carries include dims/weights plus ``veto_dims``/``veto_threshold`` (drop a document whose
weight on a veto dim exceeds the threshold) and ``must_dims``. Engines here: our Numba store
("numba" = exact early termination, "numba-exhaustive", "numba-approx") and scipy brute force.
``bench/engines_external.py`` adds its engines through ``external_engines(threads)`` (torch
sparse, Seismic, Lucene): ``engines()`` merges them in, and they run when named in ``--engines``.

``--collection coco`` replaces the synthetic vectors by real ones: the 5,000 COCO val2017 images
as documents (their captions encoded by the shipped ``sr-minilm``, pooled and L2-normalised, plus
the caption-word dims, as ``sparse-engine index`` stores them) and ``--queries`` of the exclusion
benchmark's "A -B" label pairs, planned by the engine's planner with the ``veto`` strategy (plain:
A alone; excl: the word veto, which Seismic and Lucene apply by over-fetching and filtering).

Per engine and query set (plain: include dims only; excl: plus a veto on 2-4 popular dims):
build time, index bytes on disk (or in memory where an engine keeps none), single-query latency
(p50/p95/p99, one thread), batch QPS with ``--threads``, recall@10 against the exact answer on the
unquantised vectors (scipy). Results: ``bench/results/speed_<n>.json`` (read by
bench/speed_report.py) and ``speed_<n>.md``, each with the command that reproduces it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `python bench/speed.py` from the repository root

from bench.synthetic import Collection, synthetic  # noqa: E402
from sparse_engine import traverse  # noqa: E402
from sparse_engine.query_spec import QuerySpec  # noqa: E402
from sparse_engine.store import PostingStore  # noqa: E402

RESULTS = HERE / "results"


class NumbaEngine:
    """Our PostingStore: built, saved to .npy, loaded back memory-mapped, searched with traverse."""

    def __init__(self, mode: str = "exact"):
        self.mode = mode
        self.name = "numba" if mode == "exact" else f"numba-{mode}"
        self.info = {"mode": mode}

    def build(self, csr: sp.csr_matrix) -> None:
        PostingStore.build(csr[:100])  # load the compiled kernels before timing
        start = time.perf_counter()
        store = PostingStore.build(csr)
        self.build_seconds = time.perf_counter() - start
        self.dir = tempfile.mkdtemp(prefix="speed-store-")
        start = time.perf_counter()
        fragment = store.save(self.dir)
        self.info = dict(self.info, save_s=time.perf_counter() - start, scale=store.scale)
        self.index_bytes = sum(f.stat().st_size for f in Path(self.dir).iterdir())
        start = time.perf_counter()
        self.store = PostingStore.load(self.dir, fragment)  # search the memory-mapped store
        self.store.warm()  # as a running server would be: pages resident
        self.info["load_warm_s"] = time.perf_counter() - start

    def search(self, spec: QuerySpec, k: int) -> np.ndarray:
        return traverse.search(self.store, spec, k=k, mode=self.mode)[0]

    def batch_search(self, specs, k: int, threads: int = 2) -> list[np.ndarray]:
        return [d for d, _ in traverse.batch_search(self.store, specs, k, threads, mode=self.mode)]

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


class ScipyEngine:
    """Brute force: scores = X[:, dims] @ w over a CSC copy, veto/must masks, argpartition."""

    name = "scipy"

    def __init__(self):
        self.info = {"layout": "csc"}

    def build(self, csr: sp.csr_matrix) -> None:
        start = time.perf_counter()
        self.csc = sp.csc_matrix(csr, dtype=np.float32)
        self.build_seconds = time.perf_counter() - start
        c = self.csc
        self.index_bytes = int(c.data.nbytes + c.indices.nbytes + c.indptr.nbytes)  # in memory

    def scores(self, spec: QuerySpec) -> np.ndarray:
        scores = self.csc[:, spec.dims] @ spec.weights.astype(np.float64)
        if spec.veto_dims.size and np.isfinite(spec.veto_threshold):
            sub = self.csc[:, spec.veto_dims]
            scores[sub.indices[sub.data > spec.veto_threshold]] = -np.inf
        if spec.must_dims.size:
            ok = np.zeros(len(scores), bool)
            ok[self.csc[:, spec.must_dims].indices] = True
            scores[~ok] = -np.inf
        return scores

    def search(self, spec: QuerySpec, k: int) -> np.ndarray:
        scores = self.scores(spec)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        cut = scores[top].min()
        cand = np.flatnonzero(scores >= cut)  # every doc tied at the cut, for doc-index ties
        cand = cand[scores[cand] > 0]
        return cand[np.lexsort((cand, -scores[cand]))][:k]

    def batch_search(self, specs, k: int, threads: int = 2) -> list[np.ndarray]:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(lambda s: self.search(s, k), specs))


ENGINES = {"numba": lambda: NumbaEngine("exact"), "numba-exhaustive": lambda: NumbaEngine("exhaustive"),
           "numba-approx": lambda: NumbaEngine("approx"), "scipy": ScipyEngine}  # fmt: skip


def engines(threads: int, names: list[str] | None = None) -> dict:
    """``ENGINES`` plus, when a name is not among them, the external adapters (imported lazily:
    torch, the JVM)."""
    if names is not None and all(n in ENGINES for n in names):
        return dict(ENGINES)
    try:
        from bench.engines_external import external_engines
    except ImportError:
        return dict(ENGINES)
    return {**ENGINES, **external_engines(threads)}


DEFAULT = "numba,numba-exhaustive,numba-approx,scipy"


def recall(got: list[np.ndarray], ref: list[np.ndarray]) -> float:
    return float(np.mean([len(set(g.tolist()) & set(r.tolist())) / max(1, len(r)) for g, r in zip(got, ref)]))


def measure(engine, docs, sets: dict, truth: dict, k: int, threads: int) -> dict:
    engine.build(docs)
    row = {"engine": engine.name, "n_docs": docs.shape[0], "build_s": engine.build_seconds,
           "build_docs_per_min": docs.shape[0] / engine.build_seconds * 60,
           "index_bytes": engine.index_bytes, **getattr(engine, "info", {})}  # fmt: skip
    for suffix, specs in sets.items():
        for s in specs[:10]:  # warm-up: JIT, JVM, caches
            engine.search(s, k)
        times, cpu, got = [], [], []
        traverse.STATS[:] = 0
        for s in specs:
            start, start_cpu = time.perf_counter(), time.thread_time()
            got.append(engine.search(s, k))
            times.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
        if engine.name.startswith("numba") and traverse.STATS[0]:
            total = sum(int(engine.store.list_lengths()[s.dims[s.weights > 0]].sum()) for s in specs)
            row[f"postings_read_frac{suffix}"] = float(traverse.STATS[0] / total)
        engine.batch_search(specs[:10], k, threads)
        start = time.perf_counter()
        batch = engine.batch_search(specs, k, threads)
        row[f"qps_batch{suffix}"] = len(specs) / (time.perf_counter() - start)
        ms = np.array(times) * 1e3
        row.update({f"p50_ms{suffix}": float(np.median(ms)), f"p95_ms{suffix}": float(np.percentile(ms, 95)),
                    f"p99_ms{suffix}": float(np.percentile(ms, 99)), f"mean_ms{suffix}": float(ms.mean()),
                    f"p50_cpu_ms{suffix}": float(np.median(cpu) * 1e3),
                    f"recall@10{suffix}": recall(got, truth[suffix]),
                    f"batch_recall@10{suffix}": recall(batch, truth[suffix])})  # fmt: skip
        row[f"_got{suffix}"] = got
    if hasattr(engine, "close"):
        engine.close()
    return row


def agreement(rows: list[dict]) -> None:
    """numba exact vs numba-exhaustive: the share of queries with the identical top-k list."""
    by_name = {r["engine"]: r for r in rows}
    for suffix in ("", "_excl"):
        a, b = by_name.get("numba", {}).get(f"_got{suffix}"), by_name.get("numba-exhaustive", {}).get(f"_got{suffix}")
        if a is not None and b is not None:
            by_name["numba"][f"same_as_exhaustive{suffix}"] = float(np.mean([np.array_equal(x, y) for x, y in zip(a, b)]))
    for r in rows:
        for suffix in ("", "_excl"):
            r.pop(f"_got{suffix}", None)


COLUMNS = [("build_s", "build s", "{:.2f}"), ("build_docs_per_min", "build docs/min", "{:,.0f}"),
           ("index_bytes", "index MB", "{:.0f}"), ("p50_ms", "p50 ms", "{:.3f}"), ("p99_ms", "p99 ms", "{:.2f}"),
           ("qps_batch", "QPS", "{:,.0f}"), ("recall@10", "recall@10", "{:.3f}"),
           ("p50_ms_excl", "p50 ms excl", "{:.3f}"), ("p99_ms_excl", "p99 ms excl", "{:.2f}"),
           ("qps_batch_excl", "QPS excl", "{:,.0f}"), ("recall@10_excl", "recall@10 excl", "{:.3f}"),
           ("p50_cpu_ms_excl", "p50 CPU ms excl", "{:.3f}"), ("postings_read_frac_excl", "postings read excl", "{:.3f}"),
           ("same_as_exhaustive_excl", "= exhaustive excl", "{:.3f}")]  # fmt: skip


def markdown(run: dict) -> str:
    rows = run["engines"]
    kind = ("real SR vectors (sr-minilm) of the COCO val2017 caption documents, planned label-pair "
            "queries" if run.get("collection") == "coco" else "synthetic, Zipf-like dims")
    lines = [f"# Speed, N = {run['n_docs']:,} documents", "", f"Command: `{run['command']}`", "",
             f"Collection: {run['dim']} dims, {run['nnz_per_doc']:.1f} non-zeros/doc ({kind}), "
             f"{run['queries']} queries, k = {run['k']}; latency single-threaded, QPS = batch on "
             f"{run['threads']} threads. Machine: {run['machine']}; load average {run['load_before']} "
             f"before, {run['load_after']} after (shared and noisy). Index MB: on disk for numba, in "
             "memory for scipy. recall@10 against the exact answer on the unquantised vectors (scipy; "
             "numba's uint8 impacts only bound scores, its scores are exact). CPU ms: thread CPU time (less sensitive to other load). "
             "postings read: share of the query lists' postings the early termination read. "
             "= exhaustive: share of queries where numba exact returned numba-exhaustive's list.", "",
             "| engine | " + " | ".join(c[1] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]  # fmt: skip
    for r in rows:
        cells = [("{:.1f}".format(r[key] / 1e6) if key == "index_bytes" else fmt.format(r[key])) if key in r else "–"
                 for key, _, fmt in COLUMNS]  # fmt: skip
        lines.append(f"| {r['engine']} | " + " | ".join(cells) + " |")
    lines += ["", ratios(rows)]
    return "\n".join(lines) + "\n"


def ratios(rows: list[dict]) -> str:
    ours = next((r for r in rows if r["engine"] == "numba"), None)
    if ours is None:
        return "(no numba row: no ratios)"
    lines = ["Against our store (numba, exact): latency = engine p50 / ours (> 1: ours is faster), "
             "QPS = ours / engine.", "", "| engine | p50 × | p50 excl × | QPS × | QPS excl × |", "|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if r is ours:
            continue
        cells = [r[f"p50_ms{s}"] / ours[f"p50_ms{s}"] for s in ("", "_excl")]
        cells += [ours[f"qps_batch{s}"] / r[f"qps_batch{s}"] for s in ("", "_excl")]
        lines.append(f"| {r['engine']} | " + " | ".join(f"{c:.1f}×" for c in cells) + " |")
    return "\n".join(lines)


def coco_collection(n_queries: int, seed: int) -> Collection:
    """Real SR vectors: COCO val2017 caption documents and planned "A -B" label-pair queries."""
    from bench.exclusion_data import DEFAULT_DATA, label_pair_queries, load_coco
    from sparse_engine.encoders import create_encoder
    from sparse_engine.encoders.base import unit_rows
    from sparse_engine.planner import PlanOptions, plan_query
    from sparse_engine.query_parser import ParsedQuery
    from sparse_engine.words import WordChannel

    coll = load_coco(DEFAULT_DATA)
    encoder = create_encoder("sr-minilm")
    words = WordChannel.build(coll.captions, encoder.dim)  # as `sparse-engine index` stores them
    docs = words.attach(unit_rows(encoder.encode_caption_sets(coll.captions)), coll.captions)
    store = PostingStore.build(docs)
    pairs = label_pair_queries(coll)
    pick = np.random.default_rng(seed).choice(len(pairs), min(n_queries, len(pairs)), replace=False)
    plain, excl = [], []
    for i in sorted(pick.tolist()):
        q = pairs[i]
        plain.append(plan_query(ParsedQuery(include=q.include), encoder, store, PlanOptions(), words=words))
        excl.append(plan_query(ParsedQuery(include=q.include, exclude=q.exclude), encoder, store,
                               PlanOptions(strategy="veto"), words=words))  # fmt: skip
    return Collection(docs, plain, excl, np.zeros(docs.shape[1]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", choices=("synthetic", "coco"), default="synthetic")
    parser.add_argument("--n", type=int, default=100_000, help="documents (synthetic)")
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--nnz", type=int, default=50, help="non-zeros per document")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engines", default=DEFAULT, help=f"comma list; default {DEFAULT}")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = [n for n in args.engines.split(",") if n]
    registry = engines(args.threads, names)
    unknown = [n for n in names if n not in registry]
    if unknown:
        sys.exit(f"unknown engine(s) {', '.join(unknown)}: choose from {', '.join(registry)}")
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    if args.collection == "coco":
        coll = coco_collection(args.queries, args.seed)
        args.n, args.dim = coll.docs.shape
    else:
        coll = synthetic(args.n, args.dim, args.nnz, args.queries, args.seed)
    print(f"collection: {args.n:,} docs, nnz {coll.docs.nnz:,}, {time.perf_counter() - start:.1f} s", flush=True)
    sets = {"": coll.plain, "_excl": coll.excl}
    exact = ScipyEngine()
    exact.build(coll.docs)
    truth = {key: [exact.search(s, args.k) for s in specs] for key, specs in sets.items()}
    rows = []
    for name in names:
        rows.append(measure(registry[name](), coll.docs, sets, truth, args.k, args.threads))
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in rows[-1].items() if k[0] != "_"}
        print(json.dumps(shown), flush=True)
    agreement(rows)
    command = "python bench/speed.py " + " ".join(sys.argv[1:] if argv is None else argv)
    run = {"collection": args.collection, "n_docs": args.n, "dim": args.dim, "nnz_per_doc": coll.docs.nnz / args.n, "queries": args.queries,
           "k": args.k, "threads": args.threads, "seed": args.seed, "command": command.strip(),
           "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_before": round(load_before, 2),
           "load_after": round(os.getloadavg()[0], 2), "engines": rows}  # fmt: skip
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"speed_{args.n}" if args.collection == "synthetic" else f"speed_{args.collection}"
    (args.results / f"{stem}.json").write_text(json.dumps(run, indent=1))
    (args.results / f"{stem}.md").write_text(markdown(run))
    print(markdown(run))


if __name__ == "__main__":
    main()
