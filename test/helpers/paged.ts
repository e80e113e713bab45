/** Drives a PagedKVCache while keeping a host copy of every sequence's K/V (the oracle). */
import { Device, DType, PagedKVCache, pagedAttention, PagedAttentionOptions, Tensor } from '../../lib';
import { native } from '../../lib/native';
import { lseRelL2, referenceAttention, relL2 } from './reference';

export class ShadowCache {
  /** Host K/V per sequence per layer: arrays of [kvHeads*headDim] rows. */
  readonly k = new Map<number, number[][][]>();
  readonly v = new Map<number, number[][][]>();

  constructor(readonly cache: PagedKVCache) {}

  add(): number {
    const id = this.cache.addSequence();
    this.k.set(id, Array.from({ length: this.cache.layers }, () => []));
    this.v.set(id, Array.from({ length: this.cache.layers }, () => []));
    return id;
  }

  fork(seq: number): number {
    const id = this.cache.fork(seq);
    this.k.set(id, this.k.get(seq)!.map((l) => l.map((r) => [...r])));
    this.v.set(id, this.v.get(seq)!.map((l) => l.map((r) => [...r])));
    return id;
  }

  free(seq: number): void {
    this.cache.free(seq);
    this.k.delete(seq);
    this.v.delete(seq);
  }

  /** Appends random tokens (counts[i] to seqs[i]) in one batched call; records what the cache stored. */
  async append(seqs: number[], layer: number, counts: number[]): Promise<void> {
    const { kvHeads, headDim, computeDtype: dtype, device } = this.cache;
    const total = counts.reduce((a, b) => a + b, 0);
    const k = Tensor.randn([total, kvHeads, headDim], { dtype, device });
    const v = Tensor.randn([total, kvHeads, headDim], { dtype, device });
    this.cache.append(seqs, layer, k, v, counts);
    const [kh, vh] = await Promise.all([k.toArray(), v.toArray()]);
    k.dispose();
    v.dispose();
    const w = kvHeads * headDim;
    let row = 0;
    seqs.forEach((s, i) => {
      for (let t = 0; t < counts[i]; t++, row++) {
        this.k.get(s)![layer].push(Array.from(kh.subarray(row * w, (row + 1) * w)));
        this.v.get(s)![layer].push(Array.from(vh.subarray(row * w, (row + 1) * w)));
      }
    });
  }

  /** Runs pagedAttention and returns its relative L2 error against float64 on the host copy. */
  async check(seqs: number[], layer: number, heads: number, options: PagedAttentionOptions = {}): Promise<number> {
    const { headDim, computeDtype: dtype, device } = this.cache;
    const counts = options.queryCounts ?? seqs.map(() => 1);
    const total = counts.reduce((a, b) => a + b, 0);
    const q = Tensor.randn([total, heads, headDim], { dtype, device });
    const out = Tensor.full([total, heads, headDim], NaN, { dtype, device });
    const { lse } = pagedAttention(q, this.cache, layer, seqs, { ...options, out });
    const [qh, oh, lh] = await Promise.all([q.toArray(), out.toArray(), lse!.toArray()]);
    for (const t of [q, out, lse!]) t.dispose();
    const ref: number[] = [];
    const got: number[] = [];
    const refL: number[] = [];
    const gotL: number[] = [];
    let row = 0;
    seqs.forEach((s, i) => {
      const kRows = this.k.get(s)![layer];
      const vRows = this.v.get(s)![layer];
      const nq = counts[i];
      const r = referenceAttention(
        {
          q: Float64Array.from(qh.subarray(row * heads * headDim, (row + nq) * heads * headDim)),
          k: Float64Array.from(kRows.flat()),
          v: Float64Array.from(vRows.flat()),
          lenQ: nq,
          lenK: kRows.length,
        },
        {
          headsQ: heads, headsKv: this.cache.kvHeads, dim: headDim, scale: options.scale ?? 1 / Math.sqrt(headDim),
          causal: options.causal ?? true, windowLeft: options.window?.[0], windowRight: options.window?.[1],
          softcap: options.softcap, alibiSlopes: options.alibiSlopes,
        },
      );
      for (const x of r.out) ref.push(x);
      for (const x of oh.subarray(row * heads * headDim, (row + nq) * heads * headDim)) got.push(x);
      for (let t = 0; t < nq; t++)
        for (let h = 0; h < heads; h++) {
          const want = r.lse[h * nq + t];
          if (Number.isFinite(want)) {
            refL.push(want);
            gotL.push(lh[(row + t) * heads + h]);
          }
        }
      row += nq;
    });
    this.lastError = { out: relL2(got, ref), lse: lseRelL2(gotL, refL) };
    return Math.max(this.lastError.out, this.lastError.lse * 100);
  }

  /** The two parts of the last check's error (relative L2 of the output and of the lse). */
  lastError = { out: 0, lse: 0 };
}

/** Verifies the page accounting: reference counts equal references, free pages are exactly the unreferenced ones. */
/**
 * One lifecycle step of a fuzzed cache: with cumulative probabilities `add`, `fork` and `free`, adds,
 * forks or frees a sequence (adds and forks only while fewer than `maxSequences` live; always adds to
 * an empty cache) and returns true; otherwise returns false, and the caller appends this step.
 */
export function fuzzLifecycleStep(shadow: ShadowCache, maxSequences: number, p: { add: number; fork: number; free: number }): boolean {
  const live = shadow.cache.sequences();
  const r = Math.random();
  const anyLive = (): number => live[Math.floor(Math.random() * live.length)];
  if (live.length === 0 || (r < p.add && live.length < maxSequences)) shadow.add();
  else if (r < p.fork && live.length < maxSequences) shadow.fork(anyLive());
  else if (r < p.free) shadow.free(anyLive());
  else return false;
  return true;
}

export function checkAccounting(cache: Pick<PagedKVCache, 'debugState' | 'capacityPages' | 'pageSize' | 'usage'>): void {
  const st = cache.debugState();
  const refs = new Int32Array(cache.capacityPages);
  const rows = new Set<number>();
  for (const s of st.sequences.values()) {
    for (const p of s.pages) refs[p]++;
    expect(rows.has(s.row)).toBe(false);
    rows.add(s.row);
    expect(s.pages.length).toBe(Math.ceil(Math.max(...s.lengths) / cache.pageSize));
  }
  expect(Array.from(st.refCount)).toEqual(Array.from(refs));
  const free = [...st.freePages].sort((a, b) => a - b);
  expect(new Set(free).size).toBe(free.length);
  expect(free).toEqual(Array.from(refs.keys()).filter((p) => refs[p] === 0));
  const u = cache.usage();
  expect(u.freePages + u.usedPages).toBe(cache.capacityPages);
  // usage() keeps its counts as pages change hands; they must equal a count of the references.
  expect(u.usedPages).toBe(refs.filter((r) => r > 0).length);
  expect(u.sharedPages).toBe(refs.filter((r) => r > 1).length);
}

/** What the block-table checks read of a paged cache (PagedKVCache and PagedLatentCache alike). */
type TableOwner = Pick<PagedKVCache, 'blockTable' | 'debugState' | 'maxPagesPerSequence'>;

/** Verifies that the device block table names every page of every sequence, in order. */
export async function checkBlockTable(cache: TableOwner): Promise<void> {
  const table = await cache.blockTable.toArray();
  const width = cache.maxPagesPerSequence;
  for (const s of cache.debugState().sequences.values())
    expect(Array.from(table.subarray(s.row * width, s.row * width + s.pages.length))).toEqual(s.pages);
}

/** Host writes into the cache's block table (native.write on its storage) while fn runs. */
export async function tableWrites(cache: TableOwner, fn: () => unknown): Promise<number> {
  const spy = jest.spyOn(native, 'write');
  try {
    await fn();
    return spy.mock.calls.filter(([t]) => t.storage === cache.blockTable.storage).length;
  } finally {
    spy.mockRestore();
  }
}

export function makeCache(device: Device, dtype: DType, o: { layers?: number; kvHeads?: number; headDim?: number; pageSize?: number; capacityPages?: number; maxSequences?: number } = {}): PagedKVCache {
  return new PagedKVCache({
    layers: o.layers ?? 2, kvHeads: o.kvHeads ?? 2, headDim: o.headDim ?? 32, pageSize: o.pageSize ?? 8,
    capacityPages: o.capacityPages ?? 128, maxSequences: o.maxSequences ?? 16, dtype, device,
  });
}
