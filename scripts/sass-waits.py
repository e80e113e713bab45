#!/usr/bin/env python3
"""Where each sm_90a forward kernel's main loop waits for its P V, against its exp2s.

    cuobjdump -sass build/Release/attn_cuda.node > sass.txt && python3 scripts/sass-waits.py sass.txt

Per kernel, the SASS order as runs of G (wgmma), E (MUFU.EX2) and W (WARPGROUP.DEPBAR.LE gsb0, 0x0,
the wait for every wgmma in flight). "G16 E64 W E66" means half the block's exp2s ran before the
P V wait and half after: ptxas places that wait at the top of the softmax's basic block unless
registers force otherwise (docs/perf.md runs 39-40), so this is how to see what overlaps.
"""
import re
import sys


def runs(seq):
    out = []
    for m in re.finditer(r"(G+|E+|W)", seq):
        s = m.group(1)
        out.append(s if s == "W" else f"{s[0]}{len(s)}")
    return " ".join(out)


def main(paths):
    for path in paths:
        text = open(path).read()
        for fn in re.split(r"\n\s+Function : ", text)[1:]:
            name = fn.split("\n", 1)[0]
            if "Sm90" not in name:
                continue
            ins = re.findall(r"/\*[0-9a-f]{4,}\*/\s+(.*?);", fn)
            seq = "".join("W" if "DEPBAR.LE gsb0, 0x0" in t else "E" if "MUFU.EX2" in t else "G" if "GMMA" in t else "" for t in ins)
            if seq:
                print(f"{re.sub(r'^_ZN4attn4cuda[0-9a-z]*?[0-9]+', '', name)[:80]}: {runs(seq)[:200]}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
