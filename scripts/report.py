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
    floors = [(b, ctx, m) for (b, ctx), m in mine.items() if m.get("16", {}).get("readFloor")]
    if floors:
        print("\nRead floor: the same K/V bytes only read (16-byte loads, best of 11 grid shapes), timed like the decode; "
              "'warm' re-reads the same bytes each launch as the decode timing does, 'cold' a fresh window each launch. "
              "'2x flash' = half SDPA-flash's time.\n")
        print("| batch | context | page 16 µs | contiguous µs | read floor warm µs | read floor cold µs | warm TB/s | cold TB/s | cuDNN µs | flash µs | 2x flash µs |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for b, ctx, m in floors:
            f = m["16"]["readFloor"]
            p = pm.get((b, ctx), {})
            us = lambda n: p.get(n, {}).get("ms", 0) * 1000
            print(f"| {b} | {ctx} | {m['16']['ms'] * 1000:.1f} | {m.get('contiguous', {}).get('ms', 0) * 1000:.1f} | {f['warmMs'] * 1000:.1f} | "
                  f"{f['coldMs'] * 1000:.1f} | {f['warmTbps']:.2f} | {f['coldTbps']:.2f} | {us('cudnn'):.1f} | {us('flash'):.1f} | {us('flash') / 2:.1f} |")
if ours.get("mla") and peer.get("mla"):
    pm = {(r["heads"], r["context"]): r for r in peer["mla"]}
    mine = {}
    for r in ours["mla"]:
        key = r["dtype"] if r.get("kernel", "auto") == "auto" else f"{r['dtype']}-{r['kernel']}"
        mine.setdefault((r["heads"], r["context"]), {})[key] = r
    print("\nMLA decode (absorbed weights), batch 64, page 64; TB/s = 576-wide latent rows read once / kernel time;")
    print("TFLOP/s = 2 * (576 + 512) per head per token; torch runs the same computation on a contiguous bf16 latent tensor.\n")
    print("'mma' = the mma.sync kernel (forceMma hook) where the default is the sm_90a wgmma one.\n")
    print("| heads | context | bf16 µs | bf16 TB/s | bf16 TFLOP/s | mma µs | mma TFLOP/s | fp8 µs | fp8 TB/s | fp8 mma µs | bf16 / fp8 time | torch eager TB/s | SDPA-eff TB/s | bf16 vs eager | bf16 vs SDPA-eff |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (h, ctx), m in mine.items():
        p = pm.get((h, ctx), {})
        b, f, mm, fm = m.get("bf16", {}), m.get("fp8e4m3", {}), m.get("bf16-mma", {}), m.get("fp8e4m3-mma", {})
        e, s = p.get("eager", {}).get("tbps"), p.get("sdpa-efficient", {}).get("tbps")
        fmt = lambda x, d=2: f"{x:.{d}f}" if x else "n/a"
        ratio = lambda x: f"{b['tbps'] / x:.2f}x" if x and b.get("tbps") else "n/a"
        us_of = lambda r: f"{r['ms'] * 1000:.1f}" if r.get("ms") else "n/a"
        print(f"| {h} | {ctx} | {b.get('ms', 0) * 1000:.1f} | {fmt(b.get('tbps'))} | {fmt(b.get('tflops'), 0)} | {us_of(mm)} | {fmt(mm.get('tflops'), 0)} | {f.get('ms', 0) * 1000:.1f} | {fmt(f.get('tbps'))} | {us_of(fm)} | {b['ms'] / f['ms'] if b.get('ms') and f.get('ms') else 0:.2f}x | {fmt(e)} | {fmt(s)} | {ratio(e)} | {ratio(s)} |")
if ours.get("sparse") and peer.get("sparse") and ours["sparse"].get("forward") and peer["sparse"].get("forward"):
    of, pf = ours["sparse"]["forward"], peer["sparse"]["forward"]
    pm = {r["mask"]: r for r in pf.get("rows", [])}
    fmt = lambda x, d=3: f"{x:.{d}f}" if isinstance(x, (int, float)) else "n/a"
    print(f"Block-sparse forward: seq {of['seqLen']}, {of['heads']} heads, d{of['headDim']}, bf16, batch 1, non-causal; "
          f"128x128 blocks. Target: ms <= 1.15 x density x dense (dense: the mean of its timings just before and after "
          f"the mask; the dense row: their median). SDPA-flash dense: {fmt(pf.get('sdpaFlashMs'))} ms"
          f"{'; FlexAttention: ' + pf['flexError'] if pf.get('flexError') else ''}.\n")
    print("| mask | density | attn-cuda ms | ms / (density x dense) | Flex ms | Flex / attn-cuda |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in of["rows"]:
        p = pm.get(r["mask"], {})
        flex = p.get("flexMs")
        print(f"| {r['mask']} | {r['density']:.3f} | {r['ms']:.3f} | {fmt(r.get('vsDenseScaled'), 2)} | "
              f"{fmt(flex) if flex else p.get('flexError', 'n/a')[:60]} | {fmt(flex / r['ms'], 2) if flex else 'n/a'} |")
    print()
if ours.get("sparse") and ours["sparse"].get("decode"):
    fmt = lambda x, d=3: f"{x:.{d}f}" if isinstance(x, (int, float)) else "n/a"
    pd = {r["batch"]: r for r in (peer.get("sparse") or {}).get("decode", [])}
    print("Top-k decode: context 32k, 32 q / 8 kv heads, d128, bf16; top-k keeps round(pages / 8) pages (the first and last among them), "
          "time includes scoring, selection and the decode; 'select' = the scoring + selection kernel alone, 'decode' = the decode "
          "alone over the compacted table; 'channels' = pageSummaryChannels. Target: speedup >= 5x. SDPA columns: dense decode at 32k and at 4k (1/8).\n")
    print("| batch | page | channels | pages | kept | full µs | top-k µs | select µs | decode µs | speedup | SDPA-flash 32k µs | SDPA-flash 4k µs | SDPA-cuDNN 32k µs | SDPA-cuDNN 4k µs |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in ours["sparse"]["decode"]:
        p = pd.get(r["batch"], {})
        us = lambda k: fmt(p[k] * 1000, 1) if k in p else "n/a"
        ms = lambda k: fmt(r[k] * 1000, 1) if isinstance(r.get(k), (int, float)) else "n/a"
        print(f"| {r['batch']} | {r['pageSize']} | {r.get('channels', 'all')} | {r['pages']} | {r['topKPages']} | {r['fullMs'] * 1000:.1f} | {r['topKMs'] * 1000:.1f} | "
              f"{ms('selectMs')} | {ms('decodeMs')} | {r['speedup']:.2f}x | {us('flash_fullMs')} | {us('flash_eighthMs')} | {us('cudnn_fullMs')} | {us('cudnn_eighthMs')} |")
if ours.get("quant", {}).get("forward") and peer.get("quant", {}).get("forward"):
    fmt = lambda x: f"{x:.0f}" if x else "n/a"
    pm = {(r["headDim"], r["seqLen"], r["causal"]): r for r in peer["quant"]["forward"]}
    order = ["int8-fp8", "fp8", "int8", "int8-fp8@sm80", "fp8@sm80", "int8@sm80"]
    modes = [m for m in order if any(m in r["modes"] for r in ours["quant"]["forward"])]
    print("\nQuantized forward (bf16 in/out; TFLOP/s count the bf16 FLOPs). 'all' = preprocessing (K mean, "
          "Q/K/V quantization) + attention kernel, 'kernel' = attention kernel alone; both CUDA-event timed. "
          "On sm_90 a plain mode runs the sm_90a kernel, 'MODE@sm80' the sm_80 kernel on the same GPU.\n")
    head = "| hdim | seq | causal | ours bf16 | " + " | ".join(f"{m} all | {m} kernel" for m in modes) + " | SDPA-flash | SDPA-cuDNN | "
    head += " | ".join(f"{m} all vs bf16 | {m} kernel vs bf16 | {m} all vs cuDNN" for m in modes) + " |"
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
            kt = r["modes"].get(m, {}).get("tflopsKernel")
            cells += [f"{a / r['bf16']['tflops']:.2f}x" if a else "n/a", f"{kt / r['bf16']['tflops']:.2f}x" if kt else "n/a",
                      f"{a / c:.2f}x" if a and c else "n/a"]
        print("| " + " | ".join(cells) + " |")
if ours.get("quant", {}).get("decode") and peer.get("quant", {}).get("decode"):
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
if ours.get("prefill"):
    pf = ours["prefill"]
    fmt = lambda x, d=3: f"{x:.{d}f}" if isinstance(x, (int, float)) else "n/a"
    xfmt = lambda x, d=2: f"{x:.{d}f}x" if isinstance(x, (int, float)) else "n/a"
    print(f"\nPaged prefill: one sequence of {pf['context']} cached tokens whose last `rows` are the queries, {pf['heads']} q / "
          f"{pf['kvHeads']} kv heads, d{pf['headDim']}, {pf['dtype']}, causal. TFLOP/s count the visible (query, key) pairs in the "
          f"listed blocks; 'causal work' is their share of the dense causal call's. Contiguous = our attention() on the same K/V "
          f"and mask ({pf['contiguousKernel']} kernel); 'x' columns = other time / paged time (above 1: paged faster).\n")
    print("| rows | page | mask | causal work | paged ms | paged TFLOP/s | contiguous ms | contiguous TFLOP/s | contiguous / paged | "
          "sm80 contiguous / paged | decode kernel ms | decode kernel / paged |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in pf["rows"]:
        print(f"| {r['queryRows']} | {r['pageSize']} | {r['mask']} | {r['causalFraction']:.2f} | {fmt(r['ms'])} | {fmt(r['tflops'], 0)} | "
              f"{fmt(r.get('contiguousMs'))} | {fmt(r.get('contiguousTflops'), 0)} | {xfmt(r.get('pagedVsContiguous'))} | "
              f"{xfmt(r.get('pagedVsContiguousSm80'))} | {fmt(r.get('decodeKernelMs'), 2)} | {xfmt(r.get('prefillVsDecodeKernel'), 1)} |")
    print("\nKernel crossover: short prefills (every sequence `rows` queries over 16k cached tokens, page 16), CUDA-event time; "
          "'chosen' is pagedAttention's default pick, told by its own timing (prefill kernel from 64 rows per sequence on average when the query tiles x heads fill a quarter of the SMs).\n")
    print("| batch | rows | decode kernel µs | prefill kernel µs | faster | chosen |")
    print("|---:|---:|---:|---:|---|---|")
    for r in pf["crossover"]:
        d, p = r["decodeMs"] * 1000, r["prefillMs"] * 1000
        print(f"| {r['batch']} | {r['queryRows']} | {d:.1f} | {p:.1f} | {'prefill' if p < d else 'decode'} | {r['chosen']} |")
