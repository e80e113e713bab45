#!/usr/bin/env python3
"""Compares attn-cuda's CUDA output (written by scripts/cross-check.js) and torch SDPA's bf16
output with a float64 reference computed by torch on the same inputs. Exits 1 when attn-cuda's
relative L2 error exceeds 1e-2, or exceeds 2x SDPA's own error plus 1e-3.
   python3 scripts/cross_check_torch.py DIR"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

d = sys.argv[1] if len(sys.argv) > 1 else "xcheck"
cases = json.load(open(os.path.join(d, "manifest.json")))
dev = "cuda"
ok = True


def load(name, tag, shape):
    a = np.fromfile(os.path.join(d, f"{name}.{tag}.f32"), dtype=np.float32)
    return torch.from_numpy(a).reshape(shape).to(dev)


def mask(lq, lk, opts):
    """Visible keys: FlashAttention's bottom-right aligned causal / window rule."""
    i = torch.arange(lq, device=dev)[:, None] + (lk - lq)
    j = torch.arange(lk, device=dev)[None, :]
    left, right = (opts.get("window") or [-1, -1])
    if opts.get("causal"):
        right = 0 if right < 0 else min(right, 0)
    m = torch.ones(lq, lk, dtype=torch.bool, device=dev)
    if left >= 0:
        m &= j >= i - left
    if right >= 0:
        m &= j <= i + right
    return m


def rel(a, b):
    return (torch.linalg.vector_norm((a - b).double()) / torch.linalg.vector_norm(b.double())).item()


print("| case | attn-cuda vs f64 | SDPA bf16 vs f64 | attn-cuda vs SDPA | lse err |")
print("|---|---:|---:|---:|---:|")
for c in cases:
    n, B, lq, lk, hq, hkv, D = c["name"], c["batch"], c["lq"], c["lk"], c["hq"], c["hkv"], c["dim"]
    q, k, v = (load(n, t, (B, l, h, D)).transpose(1, 2) for t, l, h in [("q", lq, hq), ("k", lk, hkv), ("v", lk, hkv)])
    ours = load(n, "out", (B, lq, hq, D)).transpose(1, 2)
    lse = load(n, "lse", (B, hq, lq))
    m = mask(lq, lk, c["options"])
    rep = hq // hkv
    k64, v64 = k.double().repeat_interleave(rep, 1), v.double().repeat_interleave(rep, 1)
    s = (q.double() @ k64.transpose(-1, -2)) / D ** 0.5
    s = s.masked_fill(~m, float("-inf"))
    ref_lse = torch.logsumexp(s, -1)
    ref = torch.softmax(s, -1).nan_to_num(0.0) @ v64
    sdpa = F.scaled_dot_product_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), attn_mask=m, enable_gqa=True).float()
    e_ours, e_sdpa, e_x = rel(ours, ref), rel(sdpa, ref), rel(ours, sdpa)
    fin = torch.isfinite(ref_lse)
    e_lse = rel(lse[fin], ref_lse[fin]) if fin.any() else 0.0
    bad = not (e_ours < 1e-2 and e_ours < 2 * e_sdpa + 1e-3 and e_lse < 1e-4) or bool(torch.isnan(ours).any())
    ok &= not bad
    print(f"| {n} | {e_ours:.2e} | {e_sdpa:.2e} | {e_x:.2e} | {e_lse:.1e} |{' FAIL' if bad else ''}")
sys.exit(0 if ok else 1)
