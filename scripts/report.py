#!/usr/bin/env python3
"""Joins bench-gpu.js and bench_torch.py results (same run) into tables with ratios.
   python3 scripts/report.py ours.json torch.json > report.md"""
import json
import sys

ours, peer = (json.load(open(p)) for p in sys.argv[1:3])
print(f"GPU: {peer.get('gpu')} · torch {peer.get('torch')} · {ours.get('date', '')[:10]}\n")
if ours.get("dense") and peer.get("dense"):
    key = lambda r: (r["headDim"], r["seqLen"], r["causal"])
    pm = {key(r): r for r in peer["dense"]}
    print("| hdim | seq | batch | causal | attn-cuda TFLOP/s | SDPA-flash | SDPA-cuDNN | vs flash | vs cuDNN |")
    print("|---:|---:|---:|:---:|---:|---:|---:|---:|---:|")
    for r in ours["dense"]:
        p = pm.get(key(r), {})
        f, c = p.get("flash", {}).get("tflops"), p.get("cudnn", {}).get("tflops")
        fmt = lambda x: f"{x:.0f}" if x else "n/a"
        ratio = lambda x: f"{r['tflops'] / x:.2f}x" if x else "n/a"
        print(f"| {r['headDim']} | {r['seqLen']} | {r['batch']} | {'yes' if r['causal'] else 'no'} | {r['tflops']:.0f} | {fmt(f)} | {fmt(c)} | {ratio(f)} | {ratio(c)} |")
    print()
if ours.get("decode") and peer.get("decode"):
    pm = {(r["batch"], r["context"]): r for r in peer["decode"]}
    mine = {}
    for r in ours["decode"]:
        mine.setdefault((r["batch"], r["context"]), {})[str(r["pageSize"])] = r
    print("Decode: 32 q heads / 8 kv heads, d128, bf16; TB/s = K+V bytes read once / kernel time.\n")
    print("| batch | context | page 16 µs | page 16 TB/s | page 256 TB/s | contiguous TB/s | SDPA-flash | SDPA-cuDNN | SDPA-eff | p16 vs cuDNN | p16 vs flash | p16 cost vs contiguous |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (b, ctx), m in mine.items():
        p = pm.get((b, ctx), {})
        g = lambda n: p.get(n, {}).get("tbps")
        fmt = lambda x: f"{x:.2f}" if x else "n/a"
        p16, p256, cont = (m.get(k, {}).get("tbps") for k in ["16", "256", "contiguous"])
        ratio = lambda x: f"{p16 / x:.2f}x" if x and p16 else "n/a"
        cost = f"{(cont / p16 - 1) * 100:+.1f}%" if p16 and cont else "n/a"
        us = m.get("16", {}).get("ms", 0) * 1000
        print(f"| {b} | {ctx} | {us:.1f} | {fmt(p16)} | {fmt(p256)} | {fmt(cont)} | {fmt(g('flash'))} | {fmt(g('cudnn'))} | {fmt(g('efficient'))} | {ratio(g('cudnn'))} | {ratio(g('flash'))} | {cost} |")

if ours.get("quant") and peer.get("quant"):
    fmt = lambda x: f"{x:.0f}" if x else "n/a"
    pm = {(r["headDim"], r["seqLen"], r["causal"]): r for r in peer["quant"]["forward"]}
    modes = [m for m in ["int8-fp8", "int8"] if any(m in r["modes"] for r in ours["quant"]["forward"])]
    print("\nQuantized forward (bf16 in/out; TFLOP/s count the bf16 FLOPs). 'all' = preprocessing (K mean, "
          "Q/K/V quantization) + attention kernel, 'kernel' = attention kernel alone; both CUDA-event timed.\n")
    head = "| hdim | seq | causal | ours bf16 | " + " | ".join(f"{m} all | {m} kernel" for m in modes) + " | SDPA-flash | SDPA-cuDNN | "
    head += " | ".join(f"{m} all vs bf16 | {m} all vs cuDNN" for m in modes) + " |"
    print(head)
    print("|" + "---:|" * (head.count("|") - 1))
    for r in ours["quant"]["forward"]:
        p = pm.get((r["headDim"], r["seqLen"], r["causal"]), {})
        f, c = p.get("flash", {}).get("tflops"), p.get("cudnn", {}).get("tflops")
        cells = [str(r["headDim"]), str(r["seqLen"]), "yes" if r["causal"] else "no", fmt(r["bf16"]["tflops"])]
        for m in modes:
            x = r["modes"].get(m, {})
            cells += [fmt(x.get("tflopsAll")), fmt(x.get("tflopsKernel"))]
        cells += [fmt(f), fmt(c)]
        for m in modes:
            a = r["modes"].get(m, {}).get("tflopsAll")
            cells += [f"{a / r['bf16']['tflops']:.2f}x" if a else "n/a", f"{a / c:.2f}x" if a and c else "n/a"]
        print("| " + " | ".join(cells) + " |")
    dm = {(r["batch"], r["context"]): r for r in peer["quant"]["decode"]}
    print("\nQuantized KV-cache decode: 32 q heads / 8 kv heads, d128, page 16, bf16 queries; µs per call "
          "(CUDA events); TB/s = bytes actually read (8-bit K/V + f32 per-token scales).\n")
    print("| batch | context | bf16 µs | fp8 µs | int8 µs | fp8 TB/s | int8 TB/s | fp8 vs bf16 | int8 vs bf16 | SDPA-cuDNN bf16 µs | SDPA-flash bf16 µs |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in ours["quant"]["decode"]:
        p = dm.get((r["batch"], r["context"]), {})
        us = lambda x: f"{x * 1000:.1f}" if x else "n/a"
        b, f8, i8 = r["bf16"]["ms"], r["fp8"]["ms"], r["int8"]["ms"]
        print(f"| {r['batch']} | {r['context']} | {us(b)} | {us(f8)} | {us(i8)} | {r['fp8']['tbps']:.2f} | {r['int8']['tbps']:.2f} | "
              f"{b / f8:.2f}x | {b / i8:.2f}x | {us(p.get('cudnn', {}).get('ms'))} | {us(p.get('flash', {}).get('ms'))} |")
