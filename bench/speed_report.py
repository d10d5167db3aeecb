"""Speed report: markdown table + latency-vs-N plot from ``bench/results/speed_*.json``.

    python bench/speed_report.py report [--results bench/results] [--ours numba]
    python bench/speed_report.py measure --n-docs 100000 [--engines torch-sparse,seismic,lucene]

``report`` reads every ``speed_*.json`` (one run per file) and writes ``speed_report.md`` and
``speed_latency.png`` next to them. A run file holds ``{"n_docs", ..., "engines": [row, ...]}``
(or ``"results"``, or ``{"engines": {name: row}}``); a row names its engine (``engine``/``name``)
and carries any of the metric keys in ``COLUMNS``. Ratios are engine / ours (latency: > 1 means
slower than our store; QPS: < 1 means fewer queries per second), our store's row comes last.

``measure`` runs only the external engines (and exact scipy as reference for recall) on a
synthetic collection, for use when ``bench/speed.py`` is not there: it writes
``speed_external_<N>.json`` in the same format.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# (key, header, format); the first matching key of a row is used
COLUMNS = [
    ("build_s", "build s", "{:.1f}"),
    ("index_bytes", "index MB", "{:.1f}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p95_ms", "p95 ms", "{:.2f}"),
    ("qps_batch", "batch QPS", "{:.0f}"),
    ("recall@10", "recall@10", "{:.3f}"),
    ("p50_ms_excl", "p50 ms (excl.)", "{:.2f}"),
    ("qps_batch_excl", "batch QPS (excl.)", "{:.0f}"),
    ("recall@10_excl", "recall@10 (excl.)", "{:.3f}"),
]
RATIOS = [("p50_ms", "p50 / ours"), ("qps_batch", "QPS / ours"), ("p50_ms_excl", "p50 excl. / ours")]


def load_runs(results: Path) -> list[dict]:
    """All rows of all ``speed_*.json`` files, each with ``engine``, ``n_docs`` and ``source``."""
    rows = []
    for path in sorted(results.glob("speed_*.json")):
        run = json.loads(path.read_text())
        engines = run.get("engines", run.get("results", run)) if isinstance(run, dict) else run
        if isinstance(engines, dict):
            engines = [dict(v, engine=k) for k, v in engines.items() if isinstance(v, dict)]
        for row in engines:
            if not isinstance(row, dict):
                continue
            row = dict(row)
            row["engine"] = str(row.get("engine", row.get("name", "?")))
            row["n_docs"] = int(row.get("n_docs", run.get("n_docs", 0) if isinstance(run, dict) else 0))
            row["source"] = path.name
            rows.append(row)
    return rows


def _is_ours(engine: str, ours: str) -> bool:
    return engine == ours or engine.startswith(ours + "-") or engine.startswith(ours + ":")


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "–"
    if key == "index_bytes":
        value = value / 1e6
    return fmt.format(value)


def markdown(rows: list[dict], ours: str) -> str:
    lines = ["# Speed benchmark", ""]
    for n_docs in sorted({r["n_docs"] for r in rows}):
        group = [r for r in rows if r["n_docs"] == n_docs]
        base = next((r for r in group if _is_ours(r["engine"], ours)), None)
        group.sort(key=lambda r: (_is_ours(r["engine"], ours), r["engine"]))
        cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in group)]
        ratios = [c for c in RATIOS if base is not None and base.get(c[0])]
        lines += [f"## N = {n_docs:,} documents", ""]
        header = ["engine"] + [c[1] for c in cols] + [c[1] for c in ratios]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in group:
            cells = [f"**{r['engine']}**" if r is base else r["engine"]]
            cells += [_cell(r, key, fmt) for key, fmt in ((c[0], c[2]) for c in cols)]
            for key, _ in ratios:
                value = r.get(key)
                cells.append("–" if value is None else f"{value / base[key]:.2f}×")
            lines.append("| " + " | ".join(cells) + " |")
        sources = sorted({r["source"] for r in group})
        lines += ["", f"Source: {', '.join(sources)}.", ""]
    if not any(_is_ours(r["engine"], ours) for r in rows):
        lines.append(f"(No row for our store '{ours}' yet: ratios left out.)")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], out: Path, ours: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "p50_ms", "single query, no exclusion"),
                           (axes[1], "p50_ms_excl", "single query, with exclusion")):  # fmt: skip
        for engine in sorted({r["engine"] for r in rows}):
            pts = sorted((r["n_docs"], r[key]) for r in rows if r["engine"] == engine and r.get(key))
            if pts:
                style = dict(lw=2.5, color="black") if _is_ours(engine, ours) else {}
                ax.plot(*zip(*pts), marker="o", label=engine, **style)
        ax.set(xscale="log", yscale="log", xlabel="documents (N)", ylabel="p50 latency (ms)",
               title=title)  # fmt: skip
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# standalone measurement of the external engines


def synthetic(n_docs: int, dim: int, nnz: int, n_queries: int, seed: int = 0):
    """Docs with ~nnz of dim dims (Zipf-like popularity), queries of 5-30 dims, one or two
    popular exclusion dims each."""
    import scipy.sparse as sp

    from sparse_engine.query_spec import QuerySpec

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, dim + 1) ** 0.8
    p /= p.sum()
    cols = rng.choice(dim, n_docs * nnz, p=p)
    rows = np.repeat(np.arange(n_docs), nnz)
    docs = sp.csr_matrix((rng.random(n_docs * nnz, dtype=np.float32), (rows, cols)),
                         shape=(n_docs, dim))  # fmt: skip
    docs.sum_duplicates()
    plain, excl = [], []
    for _ in range(n_queries):
        dims = np.unique(rng.choice(dim, int(rng.integers(5, 31)), p=p))
        weights = rng.random(len(dims), dtype=np.float32)
        plain.append(QuerySpec(dims, weights))
        veto = rng.choice(dim, int(rng.integers(1, 3)), p=p)
        excl.append(QuerySpec(dims, weights, veto_dims=veto, veto_threshold=0.0))
    return docs, plain, excl


def _external():
    """bench/engines_external, imported as ``bench.engines_external`` or as a script neighbour."""
    try:
        from bench import engines_external
    except ImportError:
        sys.path.insert(0, str(HERE))
        import engines_external
    return engines_external


def exact(docs, specs, k: int) -> list[np.ndarray]:
    """Exact top-k (scipy) with the specs' veto/must filters: the recall reference."""
    filt = _external().DocFilter(docs)
    out = []
    for s in specs:
        q = np.zeros(docs.shape[1], dtype=np.float32)
        np.add.at(q, s.dims, s.weights)
        scores = docs @ q
        mask = filt.dropped_mask(s)
        if mask is not None:
            scores[mask] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        out.append(top[scores[top] > 0])
    return out


def _recall(got: list[np.ndarray], ref: list[np.ndarray]) -> float:
    return float(np.mean([len(set(g.tolist()) & set(r.tolist())) / max(1, len(r))
                          for g, r in zip(got, ref)]))  # fmt: skip


def measure(engine, docs, plain, excl, k: int, threads: int) -> dict:
    engine.build(docs)
    row = {"engine": engine.name, "n_docs": docs.shape[0], "build_s": engine.build_seconds,
           "index_bytes": engine.index_bytes, **getattr(engine, "info", {})}  # fmt: skip
    for suffix, specs in (("", plain), ("_excl", excl)):
        for s in specs[:20]:  # warm-up: JIT (JVM, numba), caches
            engine.search(s, k)
        times, got = [], []
        for s in specs:
            t = time.perf_counter()
            got.append(engine.search(s, k))
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        batch = engine.batch_search(specs, k, threads)
        row[f"qps_batch{suffix}"] = len(specs) / (time.perf_counter() - t)
        row[f"p50_ms{suffix}"] = float(np.median(times) * 1e3)
        row[f"p95_ms{suffix}"] = float(np.percentile(times, 95) * 1e3)
        ref = exact(docs, specs, k)
        row[f"recall@10{suffix}"] = _recall(got, ref)
        row[f"batch_recall@10{suffix}"] = _recall(batch, ref)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report")
    rep.add_argument("--results", type=Path, default=RESULTS)
    rep.add_argument("--ours", default="numba")
    mea = sub.add_parser("measure")
    mea.add_argument("--n-docs", type=int, default=100_000)
    mea.add_argument("--dim", type=int, default=1000)
    mea.add_argument("--nnz", type=int, default=40)
    mea.add_argument("--queries", type=int, default=200)
    mea.add_argument("--k", type=int, default=10)
    mea.add_argument("--threads", type=int, default=2)
    mea.add_argument("--engines", default="")
    mea.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.command == "report":
        rows = load_runs(args.results)
        if not rows:
            sys.exit(f"no speed_*.json in {args.results}")
        (args.results / "speed_report.md").write_text(markdown(rows, args.ours))
        plot(rows, args.results / "speed_latency.png", args.ours)
        print(markdown(rows, args.ours))
        return
    factories = _external().external_engines(args.threads)
    names = [n for n in args.engines.split(",") if n] or list(factories)
    docs, plain, excl = synthetic(args.n_docs, args.dim, args.nnz, args.queries)
    rows = []
    for name in names:
        rows.append(measure(factories[name](), docs, plain, excl, args.k, args.threads))
        print(json.dumps(rows[-1]), flush=True)
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"speed_external_{args.n_docs}.json"
    out.write_text(json.dumps({
        "n_docs": args.n_docs, "dim": args.dim, "nnz_per_doc": docs.nnz / args.n_docs,
        "queries": args.queries, "k": args.k, "threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, 2 shared cores, no GPU",
        "command": "python bench/speed_report.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "engines": rows,
    }, indent=1))  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
