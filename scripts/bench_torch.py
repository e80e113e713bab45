#!/usr/bin/env python3
"""The peer side of the GPU benchmark: PyTorch SDPA (flash and cuDNN backends) on the same shapes
as scripts/bench-gpu.js, in the same run.   python3 scripts/bench_torch.py OUT.json [--quick]"""
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

quick = "--quick" in sys.argv
out_path = next((a for a in sys.argv[1:] if not a.startswith("--")), "bench-torch.json")


def arg_list(name):
    """--dims 128,256 style filters, shared with scripts/bench-gpu.js."""
    return [int(x) for x in sys.argv[sys.argv.index(name) + 1].split(",")] if name in sys.argv else None


dims_only, seqs_only = arg_list("--dims"), arg_list("--seqs")
dev = "cuda"


def time_ms(fn, reps=7, inner=None):
    fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); fn(); e.record(); torch.cuda.synchronize()
    once = max(s.elapsed_time(e), 1e-3)
    inner = inner or max(1, min(200, round(50 / once)))
    ts = []
    for _ in range(reps):
        s.record()
        for _ in range(inner):
            fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / inner)
    return sorted(ts)[len(ts) // 2]


def graph_ms(fn, reps=5, inner=20):
    """Device time of fn via CUDA graph replay (no Python launch overhead), like our event timing."""
    fn()
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        fn()
        torch.cuda.synchronize()
        with torch.cuda.graph(g, stream=stream):
            for _ in range(inner):
                fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(reps):
        s.record(); g.replay(); e.record(); torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / inner)
    return sorted(ts)[len(ts) // 2]


BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION}


def sdpa_grid(dims, seqs, label):
    """SDPA flash and cuDNN over head dims x seqs x causal, 16k tokens per batch, 2048 / d heads."""
    res = []
    for d in dims:
        for S in seqs:
            for causal in [False, True]:
                B, H = max(1, 16384 // S), 2048 // d
                q, k, v = (torch.randn(B, H, S, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
                flops = 4 * B * H * S * S * d / (2 if causal else 1)
                row = {"headDim": d, "seqLen": S, "batch": B, "heads": H, "causal": causal}
                for name in ["flash", "cudnn"]:
                    try:
                        with sdpa_kernel([BACKENDS[name]]):
                            ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                        row[name] = {"ms": ms, "tflops": flops / (ms * 1e-3) / 1e12}
                    except Exception as ex:  # backend unavailable for this shape
                        row[name] = {"error": str(ex)[:120]}
                print(f"torch {label} d{d} S{S} causal={causal}: " + ", ".join(f"{n} {row[n].get('tflops', float('nan')):.0f}" for n in ["flash", "cudnn"]), file=sys.stderr)
                res.append(row)
                del q, k, v
    return res


def dense():
    seqs = [1024, 4096] if quick else [512, 1024, 2048, 4096, 8192, 16384]
    return sdpa_grid(dims_only or [64, 128, 256], seqs_only or seqs, "dense")


def decode():
    """SDPA decode on contiguous K/V. --cold: each launch of the timed graph reads the next of R copies
    of K/V (together over 200 MB, 4x the L2), as scripts/decode-latency.js --cold does for ours."""
    res = []
    cold = "--cold" in sys.argv
    batches = arg_list("--batches") or ([1, 64] if quick else [1, 16, 64, 128])
    contexts = arg_list("--contexts") or ([8192] if quick else [2048, 8192, 32768])
    for B in batches:
        for L in contexts:
            nbytes = B * L * 8 * 128 * 2 * 2
            copies = -(-200_000_000 // nbytes) if cold else 1  # one copy past 200 MB is cold by itself
            q = torch.randn(B, 32, 1, 128, device=dev, dtype=torch.bfloat16)
            ks = [torch.randn(B, 8, L, 128, device=dev, dtype=torch.bfloat16) for _ in range(copies)]
            vs = [torch.randn(B, 8, L, 128, device=dev, dtype=torch.bfloat16) for _ in range(copies)]
            row = {"batch": B, "context": L, "copies": copies}
            for name in ["flash", "cudnn", "efficient"]:
                try:
                    with sdpa_kernel([BACKENDS[name]]):
                        turn = [0]

                        def fn():
                            i = turn[0] % copies
                            turn[0] += 1
                            return F.scaled_dot_product_attention(q, ks[i], vs[i], enable_gqa=True)

                        ms = graph_ms(fn, inner=20 * copies)
                    row[name] = {"ms": ms, "tbps": nbytes / (ms * 1e-3) / 1e12}
                except Exception as ex:
                    row[name] = {"error": str(ex)[:120]}
            print(f"torch decode{' cold' if cold else ''} B{B} L{L}: " + ", ".join(f"{n} {row[n].get('tbps', float('nan')):.2f} TB/s {row[n].get('ms', float('nan')) * 1000:.1f} us" for n in ["flash", "cudnn", "efficient"]), file=sys.stderr)
            res.append(row)
            del q, ks, vs
    return res


def mla():
    """MLA decode with absorbed weights, the same computation as bench-gpu.js --only mla, over a
    contiguous latent tensor kv [B, L, 576] (no paging): eager = bmm(q, kv^T) -> softmax (fp32) ->
    bmm(p, kv[..., :512]), what a torch MLA implementation runs; sdpa-efficient = SDPA's
    memory-efficient kernel with the heads as query rows, k = kv (576) and v = kv[..., :512]."""
    res = []
    B, scale = 64, 192 ** -0.5
    for H in [16, 128]:
        for L in [8192] if quick else [4096, 8192, 16384, 32768]:
            q = torch.randn(B, H, 576, device=dev, dtype=torch.bfloat16) * 0.5
            kv = torch.randn(B, L, 576, device=dev, dtype=torch.bfloat16)
            nbytes, flops = B * L * 576 * 2, 2 * (576 + 512) * H * L * B
            row = {"batch": B, "heads": H, "context": L}

            def eager():
                s = torch.bmm(q, kv.transpose(1, 2)).float() * scale
                return torch.bmm(torch.softmax(s, dim=-1).to(torch.bfloat16), kv[..., :512])

            def sdpa():
                return F.scaled_dot_product_attention(q.unsqueeze(1), kv.unsqueeze(1), kv[..., :512].unsqueeze(1), scale=scale)

            for name, fn, backend in [("eager", eager, None), ("sdpa-efficient", sdpa, SDPBackend.EFFICIENT_ATTENTION)]:
                try:
                    if backend is None:
                        ms = graph_ms(fn)
                    else:
                        with sdpa_kernel([backend]):
                            ms = graph_ms(fn)
                    row[name] = {"ms": ms, "tbps": nbytes / (ms * 1e-3) / 1e12, "tflops": flops / (ms * 1e-3) / 1e12}
                except Exception as ex:  # shape unsupported by the backend, or out of memory
                    row[name] = {"error": str(ex)[:120]}
                torch.cuda.empty_cache()
            print(f"torch mla H{H} L{L}: " + ", ".join(f"{n} {row[n].get('tbps', float('nan')):.2f} TB/s" for n in ["eager", "sdpa-efficient"]), file=sys.stderr)
            res.append(row)
            del q, kv
    return res


def hashed_grid(nq, nk, count):
    """The block mask of scripts/hashed-grid.js (bench-gpu.js, profile-case.js): row i keeps key block j iff (37 j + 11 i) mod nk < count."""
    i = torch.arange(nq, device=dev)[:, None]
    j = torch.arange(nk, device=dev)[None, :]
    return (37 * j + 11 * i) % nk < count


def radial_grid(n, band):
    """BlockSparseMask.radial({ bandBlocks: band }) for n x n blocks (non-causal, no sinks)."""
    i = torch.arange(n, device=dev)[:, None]
    j = torch.arange(n, device=dev)[None, :]
    dist = (i - j).abs()
    s = torch.ceil(torch.log2(dist.clamp(min=1).float() / band)).clamp(min=1).long()
    return (dist <= band) | (j % (2 ** s) == 0)


def flex_block_mask(grid):
    """A FlexAttention BlockMask listing grid's blocks as full blocks (no mask_mod evaluation)."""
    from torch.nn.attention.flex_attention import BlockMask, create_block_mask
    nq, nk = grid.shape
    try:
        num = grid.sum(-1).int()[None, None]
        idx = torch.argsort((~grid).int(), dim=-1, stable=True).int()[None, None]
        return BlockMask.from_kv_blocks(torch.zeros_like(num), idx, num, idx, BLOCK_SIZE=128)
    except Exception:  # older signatures: build it from a mask_mod over the same grid
        return create_block_mask(lambda b, h, q, kv: grid[q // 128, kv // 128], 1, 1, nq * 128, nk * 128, device=dev)


def sparse():
    """Peers of bench-gpu.js --only sparse: FlexAttention with the same block masks at 16k, SDPA
    dense, and SDPA decode at the full (32k) and the top-k (4k) context."""
    S, H, D = 16384, 16, 128
    nb = S // 128
    q, k, v = (torch.randn(1, H, S, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
    fwd = {"seqLen": S, "heads": H, "headDim": D}
    try:
        with sdpa_kernel([BACKENDS["flash"]]):
            fwd["sdpaFlashMs"] = time_ms(lambda: F.scaled_dot_product_attention(q, k, v))
    except Exception as ex:
        fwd["sdpaFlashError"] = str(ex)[:200]
    rows = []
    try:
        from torch.nn.attention.flex_attention import flex_attention
        flex = torch.compile(flex_attention, dynamic=False)
        masks = [("all blocks", hashed_grid(nb, nb, nb)), ("hashed 50%", hashed_grid(nb, nb, nb // 2)),
                 ("hashed 25%", hashed_grid(nb, nb, nb // 4)), ("hashed 10%", hashed_grid(nb, nb, round(nb / 10))),
                 ("radial band 2", radial_grid(nb, 2))]
        for name, grid in masks:
            row = {"mask": name, "density": grid.float().mean().item()}
            try:
                bm = flex_block_mask(grid)
                row["flexMs"] = time_ms(lambda: flex(q, k, v, block_mask=bm))
            except Exception as ex:
                row["flexError"] = str(ex)[:200]
            print(f"torch sparse {name}: flex {row.get('flexMs', float('nan')):.3f} ms", file=sys.stderr)
            rows.append(row)
    except Exception as ex:  # no FlexAttention in this torch
        fwd["flexError"] = str(ex)[:200]
    fwd["rows"] = rows
    del q, k, v
    dec = []
    for B in ([16] if quick else [1, 16]):
        row = {"batch": B}
        for name, L in [("full", 32768), ("eighth", 4096)]:
            qd = torch.randn(B, 32, 1, 128, device=dev, dtype=torch.bfloat16)
            kd, vd = (torch.randn(B, 8, L, 128, device=dev, dtype=torch.bfloat16) for _ in range(2))
            for backend in ["flash", "cudnn"]:
                try:
                    with sdpa_kernel([BACKENDS[backend]]):
                        row[f"{backend}_{name}Ms"] = graph_ms(lambda: F.scaled_dot_product_attention(qd, kd, vd, enable_gqa=True))
                except Exception as ex:
                    row[f"{backend}_{name}Error"] = str(ex)[:120]
            del qd, kd, vd
        dec.append(row)
    return {"forward": fwd, "decode": dec}


def quant_forward():
    """SDPA peers of bench-gpu.js --only quant: bf16 flash and cuDNN on the quantized forward's shapes."""
    return sdpa_grid(dims_only or [128, 64], seqs_only or ([4096] if quick else [4096, 8192, 16384]), "quant-peer")


def quant_decode():
    """bf16 SDPA decode on the quantized-decode grid of bench-gpu.js --only quant."""
    res = []
    grid = [(64, 8192)] if quick else [(64, 8192), (1, 2048), (1, 8192), (1, 32768), (16, 8192), (64, 2048), (64, 32768), (128, 8192)]
    for B, L in grid:
        q = torch.randn(B, 32, 1, 128, device=dev, dtype=torch.bfloat16)
        k = torch.randn(B, 8, L, 128, device=dev, dtype=torch.bfloat16)
        v = torch.randn(B, 8, L, 128, device=dev, dtype=torch.bfloat16)
        row = {"batch": B, "context": L}
        for name in ["flash", "cudnn"]:
            try:
                with sdpa_kernel([BACKENDS[name]]):
                    row[name] = {"ms": graph_ms(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))}
            except Exception as ex:
                row[name] = {"error": str(ex)[:120]}
        res.append(row)
        del q, k, v
    return res

only = set(sys.argv[sys.argv.index("--only") + 1].split(",")) if "--only" in sys.argv else None


def want(name, by_default):
    return name in only if only is not None else by_default


result = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name()}
if want("dense", True):
    result["dense"] = dense()
if want("decode", True):
    result["decode"] = decode()
if want("mla", False):
    result["mla"] = mla()
if want("sparse", False):
    result["sparse"] = sparse()
if want("quant", False):
    result["quant"] = {"forward": quant_forward(), "decode": quant_decode()}
elif want("quantkv", False):
    result["quant"] = {"decode": quant_decode()}
elif want("quantfwd", False):
    result["quant"] = {"forward": quant_forward()}
json.dump(result, open(out_path, "w"), indent=2)
