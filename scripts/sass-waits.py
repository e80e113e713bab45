#!/usr/bin/env python3
"""Where the sm_90a kernels wait for their wgmmas, against their exp2s, in SASS order.

    cuobjdump -sass build/Release/attn_cuda.node > sass.txt && python3 scripts/sass-waits.py sass.txt
    nvcc ... -gencode arch=compute_90a,code=sm_90a -cubin -o k.cubin && python3 scripts/sass-waits.py k.cubin

The second form needs no cuobjdump (the development machine has nvcc and ptxas only): it reads the
cubin's 128-bit instruction words and knows the few sm_90 opcodes below. Per kernel it prints runs
of G (HGMMA, IGMMA, QGMMA), W<n> (WARPGROUP.DEPBAR.LE gsb0, n: wait until at most n wgmma groups are in flight),
E (MUFU.EX2) and, with --branches, J (BRA), B (BAR) and L/S (local loads/stores: spills).

Read it as linear code, not as one path: the kernels' score transform (softcap) and masking paths
sit between the waits too. In the d128 dense kernel `G16 W1 ... E64 ... W0 E66` the E64 are the
softcap path's tanh; the plain path's 66 exp2 come after W0, so its softmax does not overlap P V
inside a warpgroup (ptxas hoists that wait; docs/perf.md run 56).
"""
import re
import signal
import struct
import sys


def cubin_kernels(path):
    """(name, [(word0, word1)]) for every .text.<kernel> section of an ELF cubin."""
    d = open(path, "rb").read()
    shoff, = struct.unpack_from("<Q", d, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
    hdr = [struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize) for i in range(shnum)]
    names = hdr[shstrndx][4]
    for h in hdr:
        name = d[names + h[0]: d.index(b"\0", names + h[0])].decode()
        if name.startswith(".text."):
            code = d[h[4]: h[4] + h[5]]
            yield name[6:], [struct.unpack_from("<QQ", code, i) for i in range(0, len(code) - 15, 16)]


def classify_words(w0, w1):
    """sm_90 encodings, learned from cuobjdump output: the opcode is in word 0's low 12 bits."""
    op = w0 & 0xFFF
    if op & 0x1FC == 0x1F0:  # HGMMA 0x1f0, IGMMA 0x1f1, QGMMA 0x1f3 (bits 9-11: operand sources)
        return "G"
    if op == 0x9C5 and w0 & (1 << 47):
        return f"W{(w1 >> 8) & 0xFF}"
    if op == 0x308 and (w1 & 0x3C00) == 0x0800:
        return "E"
    if op == 0x947:
        return "J"
    if op in (0x51D, 0xB1D):
        return "B"
    if op == 0x983:
        return "L"
    if op == 0x387:
        return "S"
    return None


def classify_text(ins):
    if "GMMA" in ins:
        return "G"
    m = re.search(r"DEPBAR\.LE gsb0, 0x([0-9a-f]+)", ins)
    if m:
        return f"W{int(m.group(1), 16)}"
    if "MUFU.EX2" in ins:
        return "E"
    if re.search(r"\bBRA\b", ins):
        return "J"
    if re.search(r"\bBAR\.", ins):
        return "B"
    if re.search(r"\bLDL\b", ins):
        return "L"
    if re.search(r"\bSTL\b", ins):
        return "S"
    return None


def text_kernels(path):
    text = open(path).read()
    for fn in re.split(r"\n\s+Function : ", text)[1:]:
        name = fn.split("\n", 1)[0]
        yield name, [classify_text(t) for t in re.findall(r"/\*[0-9a-f]{4,}\*/\s+(.*?);", fn)]


def runs(seq, keep):
    out = []
    for c in seq:
        if c is None or c[0] not in keep:
            continue
        if out and c in ("G", "E") and out[-1][0] == c:
            out[-1] = (c, out[-1][1] + 1)
        else:
            out.append((c, 1))
    return " ".join(f"{c}{n}" if c in ("G", "E") else c for c, n in out)


def main(args):
    keep = "GWEJBLS" if "--branches" in args else "GWE"
    for path in (a for a in args if not a.startswith("--")):
        with open(path, "rb") as f:
            elf = f.read(4) == b"\x7fELF"
        kernels = ((n, [classify_words(*w) for w in ws]) for n, ws in cubin_kernels(path)) if elf else text_kernels(path)
        for name, seq in kernels:
            if "G" not in seq:  # no wgmma (or an image without the sm_90a body)
                continue
            print(f"{re.sub(r'^_ZN4attn4cuda[0-9a-z]*?[0-9]+', '', name)[:80]}: {runs(seq, keep)[:300]}")


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under | head
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
