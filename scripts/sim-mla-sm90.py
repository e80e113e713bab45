#!/usr/bin/env python3
"""Numpy emulation of csrc/cuda/mla/decode_sm90.cuh's index math (no GPU needed), against float64.
Emulates per CTA: the producer's page pieces (block table, out-of-map pieces read as zeros), the
128-byte-swizzled chunk layout TMA writes, wgmma operand reads through the kernel's descriptors
(K-major Q / K / P, MN-major V; the start / LBO / SBO model of flash_fwd_sm90.cuh), the two
consumers' key halves, the max exchange, bf16 P through shared memory, the tail zeroing, lse and
the split combine. Unwritten page slots hold NaN, as uninitialized pool memory may.
   python3 scripts/sim-mla-sm90.py"""
import numpy as np

R, LAT, TILE, CH = 576, 512, 64, 9
rng = np.random.default_rng(1)


def bf16(x):
    x = np.asarray(x, np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def swz(addr):  # byte address -> swizzled (128B: bits [4,7) ^= bits [7,10))
    return addr ^ (((addr >> 7) & 7) << 4)


def rd_kmajor(mem, start, rows, k16):
    """wgmma K-major operand, 128B swizzle, sbo 1024: element (row, k) of one k16 step at start."""
    r = np.arange(rows)[:, None]
    k = np.arange(k16)[None, :]
    addr = start + (r // 8) * 1024 + (r % 8) * 128 + k * 2
    return mem[swz(addr) // 2]


def rd_mnmajor(mem, start, lbo, n, k16=16):
    """wgmma MN-major B, 128B swizzle: element (k, n) = start + (n/64) lbo + (k/8) 1024 + (k%8) 128 + (n%64) 2."""
    k = np.arange(k16)[:, None]
    nn = np.arange(n)[None, :]
    addr = start + (nn // 64) * lbo + (k // 8) * 1024 + (k % 8) * 128 + (nn % 64) * 2
    return mem[swz(addr) // 2]


def cta(q, pool, bt_row, page, len_k, nq, heads, mb, split, splits, causal, scale, softcap):
    """One CTA: returns (o [rows, 512] unnormalized/L, lse, rows) exactly as the kernel's epilogue."""
    rows_total = nq * heads
    m0 = mb * 64
    mrows = min(64, rows_total - m0)
    offset = len_k - nq
    row_hi_f = lambda r: max(0, min(len_k, offset + (m0 + r) // heads + 1)) if causal else len_k
    hi_all = row_hi_f(mrows - 1)
    chunk = ((hi_all + splits - 1) // splits + TILE - 1) // TILE * TILE
    kbeg = split * chunk
    kend = min(hi_all, kbeg + chunk)
    ntiles = (kend - kbeg + TILE - 1) // TILE if kend > kbeg else 0
    kv_rows = pool.shape[0]
    # shared memory as bf16 element arrays (byte address / 2)
    smq = np.zeros(CH * 4096, np.float32)
    for r in range(mrows):
        m = m0 + r
        qi, h = divmod(m, heads)
        for c16 in range(72):
            for e in range(8):
                col = c16 * 8 + e
                smq[((c16 >> 3) * 8192 + r * 128 + (((c16 & 7) ^ (r & 7)) << 4) + 2 * e) // 2] = q[qi, h, col]
    stages = [np.full(CH * 4096, np.nan, np.float32) for _ in range(2)]  # never-written smem: NaN
    sp = np.full(4096, np.nan, np.float32)
    rows_r = np.arange(64)
    row_hi = np.array([min(row_hi_f(r), kend) if r < mrows else 0 for r in rows_r])
    m_run = np.full(64, -np.inf)
    l_run = np.zeros((2, 64))
    o = np.zeros((64, LAT))
    box = min(page, 64)
    for it in range(ntiles):
        st = stages[it & 1]
        # producer
        for p in range(TILE // box):
            key = kbeg + it * TILE + p * box
            row = bt_row[key // page] * page + key % page if key < kend else kv_rows
            for c in range(CH):
                for rr in range(box):
                    g = row + rr
                    vals = pool[g, c * 64:(c + 1) * 64] if g < kv_rows else np.zeros(64, np.float32)
                    base = c * 8192 + (p * box + rr) * 128
                    addr = base + np.arange(64) * 2
                    st[swz(addr) // 2] = vals
        ts = kbeg + it * TILE
        s_w, mx_w = [], []
        for cw in range(2):
            kb = (it & 1) * 0 + cw * 32 * 128
            acc = np.zeros((64, 32))
            for c in range(CH):
                for k in range(4):
                    A = rd_kmajor(smq, c * 8192 + k * 32, 64, 16).astype(np.float64)
                    B = rd_kmajor(st, kb + c * 8192 + k * 32, 32, 16).astype(np.float64)
                    with np.errstate(invalid='ignore'):
                        acc += A @ B.T
            kl = cw * 32 + np.arange(32)
            x = softcap * np.log2(np.e) * np.tanh(acc * (scale / softcap)) if softcap > 0 else acc * scale * np.log2(np.e)
            x = np.where(ts + kl[None, :] >= row_hi[:, None], -np.inf, x)
            s_w.append(x)
            mx_w.append(x.max(axis=1))
        m_new = np.maximum(m_run, np.maximum(mx_w[0], mx_w[1]))
        m_use = np.where(m_new == -np.inf, 0.0, m_new)
        alpha = np.exp2(m_run - m_use)
        m_run = m_new
        for cw in range(2):
            pr = np.exp2(s_w[cw] - m_use[:, None])
            l_run[cw] = l_run[cw] * alpha + pr.sum(axis=1)
            pb = bf16(pr)
            for r in range(64):
                for j in range(4):
                    for t in range(4):
                        a0 = r * 128 + (((4 * cw + j) ^ (r & 7)) << 4) + 4 * t
                        sp[a0 // 2] = pb[r, 8 * j + 2 * t]
                        sp[a0 // 2 + 1] = pb[r, 8 * j + 2 * t + 1]
        nvalid = kend - ts
        if nvalid < TILE:
            for cw in range(2):
                for r in range(nvalid, 64):
                    for c in range(4 * cw, 4 * cw + 4):
                        st[(c * 8192 + r * 128) // 2:(c * 8192 + r * 128 + 128) // 2] = 0.0
        o *= alpha[:, None]
        for cw in range(2):
            vb = 4 * cw * 8192
            for kk in range(4):
                A = rd_kmajor(sp, kk * 32, 64, 16).astype(np.float64)
                B = rd_mnmajor(st, vb + kk * 2048, 8192, 256).astype(np.float64)
                o[:, 256 * cw:256 * cw + 256] += A @ B
    L = l_run[0] + l_run[1]
    inv = np.where(L > 0, 1 / np.where(L > 0, L, 1), 0)
    lse = np.where(L > 0, m_run * np.log(2) + np.log(np.where(L > 0, L, 1)), -np.inf)
    return o * inv[:, None], lse, m0, mrows


def run(heads, page, lens, nqs, splits, causal=True, scale=0.1, softcap=0.0):
    B = len(lens)
    pages_per = [(l + page - 1) // page for l in lens]
    npages = sum(pages_per) + 3
    pool = np.full((npages * page, R), np.nan, np.float32)  # unwritten slots: NaN
    perm = rng.permutation(npages)
    bts, used = [], 0
    for b in range(B):
        bts.append(perm[used:used + pages_per[b]])
        used += pages_per[b]
        for t in range(lens[b]):
            pool[bts[b][t // page] * page + t % page] = bf16(rng.standard_normal(R))
    qs = [bf16(rng.standard_normal((nqs[b], heads, R)) * 0.5) for b in range(B)]
    worst = 0.0
    for b in range(B):
        rows_total = nqs[b] * heads
        o_parts, lse_parts = [], []
        for split in range(splits):
            o_full = np.zeros((rows_total, LAT))
            lse_full = np.full(rows_total, -np.inf)
            for mb in range((rows_total + 63) // 64):
                o, lse, m0, mrows = cta(qs[b], pool, bts[b], page, lens[b], nqs[b], heads, mb, split, splits, causal, scale, softcap)
                o_full[m0:m0 + mrows] = o[:mrows]
                lse_full[m0:m0 + mrows] = lse[:mrows]
            o_parts.append(o_full)
            lse_parts.append(lse_full)
        lp = np.array(lse_parts)
        mx = lp.max(axis=0)
        mxs = np.where(mx == -np.inf, 0, mx)
        w = np.exp(lp - mxs)
        out = (w[:, :, None] * np.array(o_parts)).sum(0) / np.maximum(w.sum(0), 1e-300)[:, None] if splits > 1 else o_parts[0]
        # float64 reference
        keys = np.stack([pool[bts[b][t // page] * page + t % page] for t in range(lens[b])]).astype(np.float64)
        qf = qs[b].reshape(rows_total, R).astype(np.float64)
        sc = qf @ keys.T * scale
        if softcap > 0:
            sc = softcap * np.tanh(sc / softcap)
        qi = np.arange(rows_total) // heads
        hi = (lens[b] - nqs[b] + qi + 1) if causal else np.full(rows_total, lens[b])
        sc = np.where(np.arange(lens[b])[None, :] < hi[:, None], sc, -np.inf)
        m = sc.max(axis=1)
        p = np.exp(sc - m[:, None])
        ref = p @ keys[:, :LAT] / p.sum(axis=1)[:, None]
        assert np.all(np.isfinite(out)), "non-finite output"
        err = np.linalg.norm(out - ref) / np.linalg.norm(ref)
        worst = max(worst, err)
    print(f"heads {heads:3d} page {page:3d} lens {lens} nq {nqs} splits {splits} causal {causal} softcap {softcap}: rel err {worst:.2e}")
    assert worst < 1e-2, worst


if __name__ == "__main__":
    run(128, 64, [1, 70], [1, 1], 1)
    run(128, 16, [33, 150], [1, 1], 3)
    run(64, 32, [200], [1], 2, softcap=2.0)
    run(16, 16, [40, 90], [5, 9], 1)                 # prefill: CTAs span query rows, causal per row
    run(16, 64, [90], [17], 4, causal=False)
    run(20, 128, [130], [4], 1)                       # heads not a divisor of 64, page > tile
    print("ok")
