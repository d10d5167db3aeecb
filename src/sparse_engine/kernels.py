"""Kernels over flat arrays: each body is written once as plain Python, compiled by ``jit``.

The plain functions run as-is (slowly) in tests; ``jit`` holds the ``numba.njit`` copies, made in
one place (``njit.compile_module``) by re-binding each function's globals to the compiled helpers,
so the compiled ``exhaustive_topk`` calls the compiled ``heap_push`` and the batch kernel uses
``numba.prange``. kernels_reference.py holds the numpy/scipy twins the tests compare against.

Layout (see store.py): postings per dim ``post_ptr`` (int64, dim+1), ``post_docs`` (int32),
``post_imps`` (uint8), impact-descending within a dim (ties by doc ascending); the forward
doc->dims CSR ``fwd_ptr``/``fwd_dims``/``fwd_w`` with dims ascending within a doc.

Impacts are upper bounds: ``post_imps = ceil(weight / scale)``; ``fwd_w`` holds the exact
``weight / scale`` (float32). The posting lists only *bound* scores (which documents can still
enter the top-k); every returned score is computed exactly from the forward row by ``doc_score``,
a float64 sum of ``query weight * fwd_w`` in ascending-dim order on every path. So the exhaustive
and early-termination kernels give bit-identical scores and the same tie order, and both are
exact on the unquantised vectors. Only documents with a score > 0 are returned.
"""
from __future__ import annotations

import numpy as np

from .njit import compile_module

prange = range  # the compiled copies see numba.prange instead

VETO, MUST = 1, 2  # bits of the per-dim flags
LIST_BITS = 30  # saat_topk mask: bit i = list i saw the doc, then SEEN and SCORED
SEEN, SCORED = 1 << 30, 1 << 31
RESCORE_COST = 32  # one exact forward-row score costs about this many posting reads
MARGIN = 1.0 + 1e-5  # float32 partial scores: a generous rounding margin on their bounds
TABLE_BITS = 12  # the open-bound lookup table covers the first 12 lists (4,096 masks)


def prefetch(arr, i):
    """Hint that ``arr[i]`` is read soon: nothing in plain Python, ``llvm.prefetch`` compiled."""
    return None


# -- top-k heap: root = the worst kept entry (lowest score, then highest doc) -----------------


def _worse(s1, d1, s2, d2):
    return s1 < s2 or (s1 == s2 and d1 > d2)


def heap_push(hs, hd, size, score, doc):
    """Offer (score, doc) to a heap of capacity ``len(hs)``; returns the new size."""
    k = hs.shape[0]
    if size < k:
        i = size
        hs[i] = score
        hd[i] = doc
        while i > 0:
            p = (i - 1) // 2
            if not _worse(hs[i], hd[i], hs[p], hd[p]):
                break
            hs[i], hs[p] = hs[p], hs[i]
            hd[i], hd[p] = hd[p], hd[i]
            i = p
        return size + 1
    if k == 0 or not _worse(hs[0], hd[0], score, doc):
        return size
    hs[0] = score
    hd[0] = doc
    _sift_down(hs, hd, 0, size)
    return size


def _sift_down(hs, hd, i, size):
    while True:
        m = i
        left = 2 * i + 1
        if left < size and _worse(hs[left], hd[left], hs[m], hd[m]):
            m = left
        if left + 1 < size and _worse(hs[left + 1], hd[left + 1], hs[m], hd[m]):
            m = left + 1
        if m == i:
            return
        hs[i], hs[m] = hs[m], hs[i]
        hd[i], hd[m] = hd[m], hd[i]
        i = m


def heap_finish(hs, hd, size, scale, out_docs, out_scores):
    """Heap-sort the kept entries best first into the outputs (scores times ``scale``)."""
    n = size
    while size > 0:
        size -= 1
        out_docs[size] = hd[0]
        out_scores[size] = hs[0] * scale
        hs[0] = hs[size]
        hd[0] = hd[size]
        _sift_down(hs, hd, 0, size)
    return n


# -- exhaustive term-at-a-time ------------------------------------------------------------------


def accumulate_bounds(post_ptr, post_docs, post_imps, dims, weights, acc, seen):
    """acc[doc] += weight * impact over every posting of the positive-weight ``dims``: an upper
    bound of each document's score. Each document touched is appended once to ``seen``; returns
    how many."""
    n = 0
    for i in range(dims.shape[0]):
        w = weights[i]
        if w <= 0:
            continue  # a negative weight only lowers a score: no bound needs it
        d = dims[i]
        for j in range(post_ptr[d], post_ptr[d + 1]):
            doc = post_docs[j]
            if acc[doc] == 0.0:
                seen[n] = doc
                n += 1
            acc[doc] += w * post_imps[j]
    return n


def exhaustive_topk(post_ptr, post_docs, post_imps, fwd_ptr, fwd_dims, fwd_w, scale, dims, weights,
                    veto_dims, veto_thr, must_dims, qvec, dflag, acc, seen, out_docs, out_scores):  # fmt: skip
    """Exact top-k reading every posting of the query dims; returns the number of hits.

    Term-at-a-time bounds for every document the positive lists hold, then an exact forward-row
    score for each document whose bound still reaches the k-th exact score so far.
    ``qvec``/``dflag`` (n_dims), ``acc`` (float64, n_docs) are zeroed workspaces left zeroed;
    ``seen`` (int32, n_docs) is scratch.
    """
    _flag_query(dims, weights, veto_dims, veto_thr < np.inf, must_dims, qvec, dflag, True)
    has_must = must_dims.shape[0] > 0
    n = accumulate_bounds(post_ptr, post_docs, post_imps, dims, weights, acc, seen)
    k = out_docs.shape[0]
    hs = np.empty(k, np.float64)
    hd = np.empty(k, np.int64)
    size = 0
    for t in range(n):
        doc = seen[t]
        bound = acc[doc]
        acc[doc] = 0.0
        if size < k or bound * MARGIN >= hs[0]:
            size = _score_one(fwd_ptr, fwd_dims, fwd_w, scale, doc, qvec, dflag, veto_thr, has_must, hs, hd, size)
    _flag_query(dims, weights, veto_dims, True, must_dims, qvec, dflag, False)
    return heap_finish(hs, hd, size, scale, out_docs, out_scores)


# -- early termination: score-at-a-time over impact-ordered lists ------------------------------


def doc_score(fwd_ptr, fwd_dims, fwd_w, scale, doc, qvec, dflag, veto_thr, has_must):
    """Exact score (in units of ``scale``) of one doc from its forward row; -inf when vetoed or
    missing a must dim."""
    s = 0.0
    ok = not has_must
    for t in range(fwd_ptr[doc], fwd_ptr[doc + 1]):
        d = fwd_dims[t]
        f = dflag[d]
        if f:
            if (f & VETO) and fwd_w[t] * scale > veto_thr:
                return -np.inf
            if f & MUST:
                ok = True
        w = qvec[d]
        if w != 0.0:
            s += w * fwd_w[t]
    return s if ok else -np.inf


def _score_one(fwd_ptr, fwd_dims, fwd_w, scale, doc, qvec, dflag, veto_thr, has_must, hs, hd, size):
    """Score ``doc`` exactly and offer it to the heap; returns the heap size."""
    s = doc_score(fwd_ptr, fwd_dims, fwd_w, scale, doc, qvec, dflag, veto_thr, has_must)
    return heap_push(hs, hd, size, s, doc) if s > 0 else size


def _heads(pw, cur, end, post_imps, npos, heads):
    """Per-list bound on what an unread posting adds: weight * head impact (0 when exhausted)."""
    tau = 0.0
    for i in range(npos):
        heads[i] = pw[i] * post_imps[cur[i]] if cur[i] < end[i] else 0.0
        tau += heads[i]
    return tau


def _rest_table(heads, npos, table):
    """table[m] = sum of the heads of the lists whose bit is not in mask ``m`` (lists past
    the table width always count); returns the mask of the bits the table covers."""
    width = min(npos, TABLE_BITS)
    total = 0.0
    for i in range(npos):
        total += heads[i]
    table[0] = total
    size = 1
    for i in range(width):
        for m in range(size):
            table[m + size] = table[m] - heads[i]
        size *= 2
    return size - 1


def partial_workspace(n_docs):
    """(partial scores float32, list masks uint32) interleaved in one buffer: one cache line
    per posting read instead of two."""
    buf = np.zeros(2 * n_docs, np.uint32)
    return buf.view(np.float32)[1::2], buf[0::2]


def saat_topk(post_ptr, post_docs, post_imps, fwd_ptr, fwd_dims, fwd_w, scale, dims, weights,
              veto_dims, veto_thr, must_dims, factor, qvec, dflag, acc, mask, seen, out_docs,
              out_scores, stats):  # fmt: skip
    """Top-k with early termination; exact when ``factor`` is 1, else approximate: stop reading
    once the k-th score beats ``factor`` times the bound, keeping the docs scored by then.

    Postings of the positive dims are read in decreasing ``weight * impact`` order, adding into
    partial scores ``acc``; ``mask`` records which lists saw a doc. A doc whose partial beats the
    k-th exact score so far is scored exactly from its forward row (negative dims, veto and must
    checked there) into the top-k heap. An unseen doc scores at most tau = sum of weight * head
    impact over the lists, so once the k-th exact score beats tau no new doc can enter ("closed").
    Reading then goes on for seen docs only, tightening their bounds (partial + heads of the lists
    that have not seen them) until scoring the docs whose bound still reaches the k-th score
    costs less than reading on; those are scored exactly. ``qvec``/``dflag`` (n_dims) and
    ``acc``/``mask`` (n_docs) are zeroed workspaces left zeroed; ``seen`` (int32, n_docs + 1: one
    spare slot for the branch-free append) is scratch.
    ``stats`` (int64[4]) accumulates postings read, docs seen, docs scored exactly, bound checks.
    """
    n = dims.shape[0]
    _flag_query(dims, weights, veto_dims, veto_thr < np.inf, must_dims, qvec, dflag, True)
    has_must = must_dims.shape[0] > 0
    pw = np.empty(n, np.float64)
    heads = np.empty(n, np.float64)
    table = np.empty(1 << min(n, TABLE_BITS), np.float64)
    cur = np.empty(n, np.int64)
    end = np.empty(n, np.int64)
    bits = np.zeros(n, np.int64)
    npos = 0
    for i in range(n):
        if weights[i] > 0:
            pw[npos] = weights[i]
            cur[npos] = post_ptr[dims[i]]
            end[npos] = post_ptr[dims[i] + 1]
            if npos < LIST_BITS:  # lists past the mask width always count as unseen
                bits[npos] = 1 << npos
            npos += 1
    k = out_docs.shape[0]
    hs = np.empty(k, np.float64)
    hd = np.empty(k, np.int64)
    size = 0
    n_seen = 0
    n_new = 0
    closed = False
    n_read = 0
    next_check = 0
    while True:
        tau = _heads(pw, cur, end, post_imps, npos, heads)
        best = -1
        top = 0.0
        for i in range(npos):
            if heads[i] > top:
                top = heads[i]
                best = i
        if best < 0:
            break
        # 1e-9 guards against rounding in tau vs. the forward-row sums.
        if not closed and size == k and tau * factor * (1.0 + 1e-9) < hs[0]:
            closed = True
            next_check = n_read
            if factor < 1.0:
                break  # approximate: keep the docs scored so far, skip the bounded ones
        if closed and n_read >= next_check:
            # Bounds only fall and the k-th score only rises: a doc scored or bounded below it
            # is done for good, so it leaves ``seen`` (reset now; unseen to the closed phase).
            low = _rest_table(heads, npos, table)
            n_seen = _prune(seen, n_seen, acc, mask, table, low, hs[0], False)
            stats[3] += 1
            if n_seen * RESCORE_COST <= n_read:  # scoring them costs less than reading on
                break
            next_check = n_read + n_read // 2
        w = pw[best]
        flag = bits[best] | SEEN
        # Postings read before the next bound check: a block grows with the reading so far (an
        # overshoot of at most ~1/8), as every new block starts with cold misses on its list.
        stop = min(end[best], cur[best] + 32 + n_read // 8)
        n_read += stop - cur[best]
        if closed:  # only seen docs count now: an unseen one scores at most a past tau
            for j in range(cur[best], stop):
                doc = post_docs[j]
                m = mask[doc]
                if m == 0:
                    continue
                a = acc[doc] + w * post_imps[j]
                acc[doc] = a
                if not (m & SCORED) and a > hs[0]:
                    m |= SCORED
                    stats[2] += 1
                    size = _score_one(fwd_ptr, fwd_dims, fwd_w, scale, doc, qvec, dflag, veto_thr, has_must, hs, hd, size)
                mask[doc] = m | flag
        else:  # branch-free seen-list append, so the random reads of consecutive postings overlap
            for j in range(cur[best], stop):
                doc = post_docs[j]
                m = mask[doc]
                seen[n_seen] = doc
                n_seen += m == 0
                n_new += m == 0
                a = acc[doc] + w * post_imps[j]
                acc[doc] = a
                if not (m & SCORED) and (size < k or a > hs[0]):
                    m |= SCORED
                    stats[2] += 1
                    size = _score_one(fwd_ptr, fwd_dims, fwd_w, scale, doc, qvec, dflag, veto_thr, has_must, hs, hd, size)
                mask[doc] = m | flag
        cur[best] = stop
    _heads(pw, cur, end, post_imps, npos, heads)
    low = _rest_table(heads, npos, table)
    theta = hs[0] if size == k else -np.inf
    n_open = _prune(seen, n_seen, acc, mask, table, low, np.inf if closed and factor < 1.0 else theta, True)
    size = _score_docs(seen, n_open, fwd_ptr, fwd_dims, fwd_w, scale, qvec, dflag, veto_thr,
                       has_must, hs, hd, size)  # fmt: skip
    stats[0] += n_read
    stats[1] += n_new
    stats[2] += n_open
    _flag_query(dims, weights, veto_dims, True, must_dims, qvec, dflag, False)
    return heap_finish(hs, hd, size, scale, out_docs, out_scores)


def _flag_query(dims, weights, veto_dims, veto_on, must_dims, qvec, dflag, on):
    """Write (``on``) or clear the dense query vector and the per-dim veto / must flags."""
    for i in range(dims.shape[0]):
        qvec[dims[i]] = weights[i] if on else 0.0
    for i in range(veto_dims.shape[0]):
        dflag[veto_dims[i]] = (dflag[veto_dims[i]] | VETO) if on and veto_on else 0
    for i in range(must_dims.shape[0]):
        dflag[must_dims[i]] = (dflag[must_dims[i]] | MUST) if on else 0


def _prune(seen, n_seen, acc, mask, table, low, theta, reset_all):
    """Keep at the front of ``seen`` the unscored docs whose bound reaches ``theta``; reset the
    others (bounds only fall and theta only rises: they are done for good), or all docs."""
    n_open = 0
    for t in range(n_seen):
        doc = seen[t]
        m = mask[doc]
        keep = not (m & SCORED) and (acc[doc] + table[m & low]) * MARGIN >= theta
        if keep:
            seen[n_open] = doc
            n_open += 1
        if reset_all or not keep:
            acc[doc] = 0.0
            mask[doc] = 0
    return n_open


def _score_docs(docs, n, fwd_ptr, fwd_dims, fwd_w, scale, qvec, dflag, veto_thr, has_must, hs,
                hd, size):  # fmt: skip
    """Score ``docs[:n]`` exactly into the heap, in groups whose rows are prefetched first, so
    their cache and TLB misses overlap instead of queueing one doc after the other."""
    for lo in range(0, n, 16):
        hi = min(n, lo + 16)
        for t in range(lo, hi):
            prefetch(fwd_ptr, docs[t])
        for t in range(lo, hi):
            row = fwd_ptr[docs[t]]
            prefetch(fwd_w, row)
            for off in range(0, 48, 16):  # ~50 int32 dims: four cache lines
                prefetch(fwd_dims, row + off)
        for t in range(lo, hi):
            s = doc_score(fwd_ptr, fwd_dims, fwd_w, scale, docs[t], qvec, dflag, veto_thr, has_must)
            if s > 0:
                size = heap_push(hs, hd, size, s, docs[t])
    return size


# -- batches: flat id arrays + pointer arrays, parallel over chunks of queries ------------------


def batch_topk(post_ptr, post_docs, post_imps, fwd_ptr, fwd_dims, fwd_w, scale, q_ptr, q_dims,
               q_w, v_ptr, v_dims, v_thr, m_ptr, m_dims, factor, exhaustive, n_chunks, out_docs,
               out_scores, out_n, stats):  # fmt: skip
    """Query q uses ``q_dims[q_ptr[q]:q_ptr[q+1]]`` etc.; results go to row q of the outputs.

    Each chunk of queries gets its own workspace, so chunks run in parallel (prange);
    ``stats`` is (n_chunks, 4) int64, the early-termination counters of each chunk.
    """
    nq = q_ptr.shape[0] - 1
    n_docs = fwd_ptr.shape[0] - 1
    n_dims = post_ptr.shape[0] - 1
    for c in prange(n_chunks):
        lo = c * nq // n_chunks
        hi = (c + 1) * nq // n_chunks
        big = n_docs if exhaustive else 0  # only the workspace the mode uses is full size
        acc = np.zeros(big, np.float64)
        qvec = np.zeros(n_dims, np.float64)
        dflag = np.zeros(n_dims, np.uint8)
        part, seen_by = partial_workspace(n_docs - big)
        seen = np.zeros(n_docs + 1, np.int32)
        for q in range(lo, hi):
            dims = q_dims[q_ptr[q] : q_ptr[q + 1]]
            w = q_w[q_ptr[q] : q_ptr[q + 1]]
            veto = v_dims[v_ptr[q] : v_ptr[q + 1]]
            must = m_dims[m_ptr[q] : m_ptr[q + 1]]
            if exhaustive:
                out_n[q] = exhaustive_topk(post_ptr, post_docs, post_imps, fwd_ptr, fwd_dims, fwd_w, scale,
                                           dims, w, veto, v_thr[q], must, qvec, dflag, acc, seen,
                                           out_docs[q], out_scores[q])  # fmt: skip
            else:
                out_n[q] = saat_topk(post_ptr, post_docs, post_imps, fwd_ptr, fwd_dims, fwd_w,
                                     scale, dims, w, veto, v_thr[q], must, factor, qvec, dflag,
                                     part, seen_by, seen, out_docs[q], out_scores[q], stats[c])  # fmt: skip


# -- building the store ---------------------------------------------------------------------------


def build_postings(indptr, indices, imps, n_dims, post_ptr, post_docs, post_imps):
    """Invert a forward CSR into impact-descending posting lists (counting sort, stable by doc)."""
    counts = np.zeros(n_dims * 256 + 1, np.int64)
    for t in range(indices.shape[0]):
        counts[np.int64(indices[t]) * 256 + 256 - np.int64(imps[t])] += 1
    for b in range(n_dims * 256):
        counts[b + 1] += counts[b]
    for d in range(n_dims + 1):
        post_ptr[d] = counts[d * 256]
    for doc in range(indptr.shape[0] - 1):
        for t in range(indptr[doc], indptr[doc + 1]):
            b = np.int64(indices[t]) * 256 + 255 - np.int64(imps[t])
            p = counts[b]
            counts[b] = p + 1
            post_docs[p] = doc
            post_imps[p] = imps[t]


jit = compile_module(globals(), parallel=frozenset({"batch_topk"}))  # compiled lazily by numba on first call
