import { PagedKVCache, PagedLatentCache, Tensor } from '../lib';
import { checkAccounting, checkBlockTable, fuzzLifecycleStep, makeCache, ShadowCache } from './helpers/paged';
import { expectThrows } from './helpers/throws';

const TOL = 2e-5;

function randInt(lo: number, hi: number): number {
  return lo + Math.floor(Math.random() * (hi - lo + 1));
}

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

/** Reads the K and V rows of `seq` in `layer` straight out of an f32 pool, through its host page list. */
async function storedRows(cache: PagedKVCache, seq: number, layer: number): Promise<{ k: number[][]; v: number[][] }> {
  const pool = await cache.pool.toArray();
  const { kvHeads, headDim, pageSize: ps, capacityPages: cap } = cache;
  const pages = cache.debugState().sequences.get(seq)!.pages;
  const rows = { k: [] as number[][], v: [] as number[][] };
  for (let t = 0; t < cache.length(seq, layer); t++) {
    for (const [kv, out] of [[0, rows.k], [1, rows.v]] as const) {
      const row: number[] = [];
      for (let h = 0; h < kvHeads; h++) {
        const base = (((layer * 2 + kv) * cap + pages[Math.floor(t / ps)]) * kvHeads + h) * ps * headDim + (t % ps) * headDim;
        for (let d = 0; d < headDim; d++) row.push(pool[base + d]);
      }
      out.push(row);
    }
  }
  return rows;
}

/** Every live sequence's stored K/V equals, bit for bit, what the shadow appended to it. */
async function checkStored(shadow: ShadowCache): Promise<void> {
  for (const s of shadow.cache.sequences())
    for (let layer = 0; layer < shadow.cache.layers; layer++) {
      const got = await storedRows(shadow.cache, s, layer);
      expect(got.k).toEqual(shadow.k.get(s)![layer]);
      expect(got.v).toEqual(shadow.v.get(s)![layer]);
    }
}

/**
 * Pages an append of counts[i] tokens to seqs[i] must take, from the page lists alone: one per page
 * past a sequence's end, and per shared page one copy for each writer, but one fewer when every
 * sharer writes (the last then owns it alone). The same as appending to each sequence in turn.
 */
function pagesNeeded(cache: PagedKVCache, seqs: number[], layer: number, counts: number[]): { needed: number; allSharersWrite: boolean } {
  const st = cache.debugState();
  const ps = cache.pageSize;
  const writers = new Map<number, number>();
  let needed = 0;
  seqs.forEach((id, i) => {
    if (counts[i] === 0) return;
    const s = st.sequences.get(id)!;
    const start = s.lengths[layer];
    const last = Math.ceil((start + counts[i]) / ps);
    needed += Math.max(0, last - s.pages.length);
    for (let p = Math.floor(start / ps); p < Math.min(last, s.pages.length); p++) writers.set(s.pages[p], (writers.get(s.pages[p]) ?? 0) + 1);
  });
  let allSharersWrite = false;
  for (const [page, w] of writers) {
    const refs = st.refCount[page];
    if (refs > 1) needed += w === refs ? w - 1 : w;
    if (refs > 1 && w === refs) allSharersWrite = true;
  }
  return { needed, allSharersWrite };
}

describe('page pool of any accepted capacity', () => {
  test('a huge capacityPages constructs without building per-page host state (or throws a RangeError naming it)', () => {
    for (const capacityPages of [1e8, 2 ** 31 - 1]) {
      let cache: PagedKVCache;
      try {
        cache = new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 1, pageSize: 1, capacityPages, maxSequenceLength: 64, device: 'cpu' });
      } catch (e) {
        // A host that cannot reserve the pool says which option asked for it.
        expect((e as Error).name).toBe('RangeError');
        expect((e as Error).message).toMatch(/options\.capacityPages/);
        continue;
      }
      // The accounting is exact without ever listing the pool's pages.
      expect(cache.usage()).toMatchObject({ capacityPages, usedPages: 0, freePages: capacityPages, sharedPages: 0 });
      const a = cache.addSequence();
      const n = randInt(2, 40);
      cache.append(a, 0, Tensor.randn([n, 1, 1]), Tensor.randn([n, 1, 1]));
      const b = cache.fork(a);
      cache.append([a, b], 0, Tensor.randn([2, 1, 1]), Tensor.randn([2, 1, 1]), [1, 1]);
      // Pages of one token: the fork shares the n pages, each side adds one.
      expect(cache.usage()).toMatchObject({ usedPages: n + 2, freePages: capacityPages - n - 2, sharedPages: n, tokens: 2 * n + 2 });
      cache.free(a);
      cache.free(b);
      expect(cache.usage()).toMatchObject({ usedPages: 0, freePages: capacityPages, sharedPages: 0, tokens: 0 });
      cache.dispose();
    }
  });

  test('a pool or block table past what can be allocated: a RangeError naming the options', () => {
    expectThrows(() => new PagedKVCache({ layers: 4096, kvHeads: 4096, headDim: 1024, pageSize: 256, capacityPages: 2 ** 31 - 1, device: 'cpu' }),
      'RangeError', /options\.capacityPages/);
    expectThrows(() => new PagedLatentCache({ layers: 4096, pageSize: 256, capacityPages: 2 ** 31 - 1, device: 'cpu' }), 'RangeError', /options\.capacityPages/);
    expectThrows(() => new PagedKVCache({ layers: 1, kvHeads: 1, headDim: 8, pageSize: 1, capacityPages: 4, maxSequences: 1 << 20, maxSequenceLength: 2 ** 31 - 1, device: 'cpu' }),
      'RangeError', /options\.maxSequences.*options\.maxSequenceLength/);
  });

  test('pages are handed out low numbers first, the last freed first', () => {
    const cache = makeCache('cpu', 'f32', { pageSize: 4, capacityPages: 12, layers: 1, kvHeads: 1, headDim: 4 });
    const append = (s: number, n: number) => cache.append(s, 0, Tensor.randn([n, 1, 4]), Tensor.randn([n, 1, 4]));
    const pages = (s: number) => cache.debugState().sequences.get(s)!.pages;
    const [a, b, c, d] = [cache.addSequence(), cache.addSequence(), cache.addSequence(), cache.addSequence()];
    append(a, 9);
    append(b, 8);
    expect([pages(a), pages(b)]).toEqual([[0, 1, 2], [3, 4]]);
    cache.free(a); // 0, 1, 2 go back; 2 is taken first
    append(c, 5);
    expect(pages(c)).toEqual([2, 1]);
    append(d, 12);
    expect(pages(d)).toEqual([0, 5, 6]);
    checkAccounting(cache);
  });
});

describe('maxSequenceLength is enforced as given, not rounded up to a page', () => {
  test('PagedKVCache: appends reach the limit exactly; one token past it throws and changes nothing', async () => {
    for (let trial = 0; trial < 8; trial++) {
      const pageSize = 2 ** randInt(1, 3);
      // Every other trial a limit off the page grid (what rounding up would miss), else any.
      let max = randInt(1, 3 * pageSize);
      if (trial % 2 === 0 && max % pageSize === 0) max--;
      const cache = new PagedKVCache({ layers: 2, kvHeads: 1, headDim: 16, capacityPages: 32, pageSize, maxSequenceLength: max, device: 'cpu' });
      expect(cache.maxSequenceLength).toBe(max);
      expect(cache.maxPagesPerSequence).toBe(Math.ceil(max / pageSize));
      const shadow = new ShadowCache(cache);
      const [a, b] = [shadow.add(), shadow.add()];
      while (cache.length(a, 0) < max)
        await shadow.append([a, b], 0, [randInt(1, max - cache.length(a, 0)), randInt(0, max - cache.length(b, 0))]);
      expect(cache.length(a, 0)).toBe(max);
      const before = cache.debugState();
      const usage = cache.usage();
      const over = randInt(1, 2 * pageSize);
      const msg = new RegExp(`sequence ${a} would hold ${max + over} tokens, more than options\\.maxSequenceLength \\(${max}\\)`);
      expectThrows(() => cache.append(a, 0, Tensor.randn([over, 1, 16]), Tensor.randn([over, 1, 16])), 'RangeError', msg);
      // In a batch: the sequence with room (if any) gets nothing either.
      const room = Math.min(1, max - cache.length(b, 0));
      expectThrows(() => cache.append([b, a], 0, Tensor.randn([room + over, 1, 16]), Tensor.randn([room + over, 1, 16]), [room, over]), 'RangeError', msg);
      // A fresh sequence asked for more than the limit in one append.
      const c = shadow.add();
      const cBefore = cache.debugState();
      expectThrows(() => cache.append(c, 1, Tensor.randn([max + 1, 1, 16]), Tensor.randn([max + 1, 1, 16])), 'RangeError', /options\.maxSequenceLength/);
      expect(cache.debugState()).toEqual(cBefore);
      shadow.free(c);
      expect(cache.debugState()).toEqual(before);
      expect(cache.usage()).toEqual(usage);
      await checkStored(shadow);
      expect(await shadow.check([a], 0, 2)).toBeLessThan(TOL);
      await checkBlockTable(cache);
      cache.dispose();
    }
  });

  test('PagedLatentCache: a limit of 1 in pages of 64 takes one token, not 64', async () => {
    const cache = new PagedLatentCache({ layers: 1, pageSize: 64, capacityPages: 4, maxSequenceLength: 1, device: 'cpu' });
    expect([cache.maxSequenceLength, cache.maxPagesPerSequence]).toEqual([1, 1]);
    const s = cache.addSequence();
    const before = cache.debugState();
    expectThrows(() => cache.append(s, 0, Tensor.randn([64, 576])), 'RangeError', /would hold 64 tokens, more than options\.maxSequenceLength \(1\)/);
    expect(cache.debugState()).toEqual(before);
    expect(cache.usage().usedPages).toBe(0);
    const row = Tensor.randn([1, 576]);
    cache.append(s, 0, row);
    expectThrows(() => cache.append(s, 0, Tensor.randn([1, 576])), 'RangeError', /would hold 2 tokens, more than options\.maxSequenceLength \(1\)/);
    expect(cache.length(s)).toBe(1);
    const page = cache.debugState().sequences.get(s)!.pages[0];
    const pool = await cache.pool.toArray();
    expect(Array.from(pool.subarray(page * 64 * 576, page * 64 * 576 + 576))).toEqual(Array.from(await row.toArray()));
  });
});

describe('one append to forks sharing a partial page', () => {
  test('every sharer writes in one call: the last writes in place, so the pages that suffice in separate calls suffice', async () => {
    for (const order of ['ab', 'ba'] as const) {
      const shadow = new ShadowCache(makeCache('cpu', 'f32', { layers: 1, kvHeads: 1, headDim: 16, capacityPages: 4, pageSize: 4 }));
      const a = shadow.add();
      await shadow.append([a], 0, [10]); // pages 0, 1 full, page 2 holds 2 of 4
      const b = shadow.fork(a);
      await shadow.append(order === 'ab' ? [a, b] : [b, a], 0, [1, 1]);
      expect(shadow.cache.usage()).toMatchObject({ usedPages: 4, freePages: 0, sharedPages: 2, tokens: 22 });
      // Each sees its own 11th token and not the other's.
      await checkStored(shadow);
      expect(shadow.k.get(a)![0][10]).not.toEqual(shadow.k.get(b)![0][10]);
      expect(await shadow.check([a, b], 0, 4)).toBeLessThan(TOL);
      checkAccounting(shadow.cache);
      await checkBlockTable(shadow.cache);
    }
  });

  test('three sharers of a partial page and two free pages: fits, unless a fourth still reads it', async () => {
    const shadow = new ShadowCache(makeCache('cpu', 'f32', { layers: 2, kvHeads: 1, headDim: 16, capacityPages: 4, pageSize: 4 }));
    const a = shadow.add();
    await shadow.append([a], 0, [6]);
    await shadow.append([a], 1, [5]); // pages 0 (full) and 1 (partial in both layers)
    const [b, c] = [shadow.fork(a), shadow.fork(a)];
    // With d reading page 1 too, each of the three writers needs a copy.
    const d = shadow.fork(a);
    const before = shadow.cache.debugState();
    expectThrows(() => shadow.cache.append([c, a, b], 1, Tensor.randn([5, 1, 16]), Tensor.randn([5, 1, 16]), [2, 1, 2]), 'RangeError',
      /out of pages: this append needs 3, 2 of 4 are free/);
    expect(shadow.cache.debugState()).toEqual(before);
    shadow.free(d);
    // Now two copies, and the last writer (b) keeps page 1.
    await shadow.append([c, a, b], 1, [2, 1, 2]);
    expect(shadow.cache.usage()).toMatchObject({ usedPages: 4, freePages: 0, sharedPages: 1 });
    expect(shadow.cache.debugState().sequences.get(b)!.pages).toEqual(before.sequences.get(b)!.pages);
    // Each owns its page 1 alone now: writing it in layer 0 takes no page, even from a full pool.
    await shadow.append([a, b, c], 0, [1, 2, 1]);
    expect(shadow.cache.usage()).toMatchObject({ usedPages: 4, freePages: 0, sharedPages: 1 });
    await checkStored(shadow);
    for (const layer of [0, 1]) expect(await shadow.check([a, b, c], layer, 2)).toBeLessThan(TOL);
    checkAccounting(shadow.cache);
    await checkBlockTable(shadow.cache);
  });

  test('fuzz near a full pool: an append fails exactly when its pages do not fit, and takes exactly those it needs', async () => {
    const capacityPages = 20;
    const shadow = new ShadowCache(makeCache('cpu', 'f32', { pageSize: 4, capacityPages, maxSequences: 8, headDim: 16, kvHeads: 1, layers: 2 }));
    let outOfPages = 0;
    let allSharersWrote = 0;
    let filled = 0;
    for (let step = 0; step < 400; step++) {
      if (!fuzzLifecycleStep(shadow, 8, { add: 0.1, fork: 0.35, free: 0.45 })) {
        const live = shadow.cache.sequences();
        // Mostly many sequences at once, in any order, so that forks often all write together.
        const pick = shuffle(live.filter(() => Math.random() < 0.75));
        if (pick.length === 0) pick.push(live[0]);
        const counts = pick.map(() => randInt(0, 5));
        const layer = randInt(0, 1);
        const { needed, allSharersWrite } = pagesNeeded(shadow.cache, pick, layer, counts);
        const st = shadow.cache.debugState();
        const before = shadow.cache.usage();
        if (needed <= before.freePages) {
          await shadow.append(pick, layer, counts);
          const after = shadow.cache.usage();
          expect(after.usedPages).toBe(before.usedPages + needed);
          expect(after.freePages).toBe(before.freePages - needed);
          if (allSharersWrite) allSharersWrote++;
          if (after.freePages === 0) filled++;
        } else {
          const total = counts.reduce((x, y) => x + y, 0);
          expectThrows(() => shadow.cache.append(pick, layer, Tensor.randn([total, 1, 16]), Tensor.randn([total, 1, 16]), counts), 'RangeError',
            new RegExp(`out of pages: this append needs ${needed}, ${before.freePages} of ${capacityPages} are free`));
          expect(shadow.cache.debugState()).toEqual(st);
          outOfPages++;
        }
      }
      checkAccounting(shadow.cache);
      await checkBlockTable(shadow.cache);
      if (step % 10 === 0) await checkStored(shadow);
    }
    // The run did what it is for: appends into shared pages, a full pool, and refusals.
    expect(allSharersWrote).toBeGreaterThan(0);
    expect(filled).toBeGreaterThan(0);
    expect(outOfPages).toBeGreaterThan(0);
    await checkStored(shadow);
    for (const s of shadow.cache.sequences()) shadow.free(s);
    expect(shadow.cache.usage().freePages).toBe(capacityPages);
  });
});
