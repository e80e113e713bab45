/**
 * Block-sparse attention masks: which 128 x 128 tiles (query block x key block) attention visits.
 *
 * The layout is CSR per (batch, head): query block `i` of sequence `b`, head `h` visits the key
 * blocks `colIdx[rowPtr[r] .. rowPtr[r + 1])`, ascending, with `r = (b' * heads + h') * (numQBlocks + 1) + i`
 * (`b' = 0` when the mask has one batch entry, `h' = 0` when it has one head: it broadcasts).
 * Block coordinates are absolute: query block `i` covers query rows `[128 i, 128 i + 128)` of a
 * sequence and key block `c` covers keys `[128 c, 128 c + 128)`. The block size is fixed at 128, a
 * multiple of every CUDA tile, so an absent block skips whole tiles of work.
 */
import { checkDevice, Device } from './device';
import { allocateNamed, checkInteger, checkKeys, checkObject, describe } from './errors';
import type { NativeBlockMask } from './native';
import { Tensor } from './tensor';

/** Rows (queries) and columns (keys) of one mask block. */
export const SPARSE_BLOCK_SIZE = 128;

/** The grid of a mask: `batch x heads x numQBlocks x numKBlocks` blocks. */
export interface BlockMaskGrid {
  /** 1 (the default) broadcasts over the batch. */
  batch?: number;
  /** 1 (the default) broadcasts over the query heads. */
  heads?: number;
  /** Query blocks: `ceil(seqQ / 128)` of the attention that uses the mask. */
  numQBlocks: number;
  /** Key blocks: `ceil(seqK / 128)`. */
  numKBlocks: number;
}

/** Sequence lengths a builder derives the grid from, and where the mask lives. */
export interface BlockMaskShape {
  /** Query rows per sequence (the grid has `ceil(seqLenQ / 128)` query blocks). */
  seqLenQ: number;
  /** Keys per sequence (default `seqLenQ`). */
  seqLenK?: number;
  /** 1 (the default) broadcasts over the batch; the builders make every entry the same. */
  batch?: number;
  /** 1 (the default) broadcasts over the query heads. */
  heads?: number;
  /** Where the mask's tensors live: the device of the attention that uses it (default `'cpu'`). */
  device?: Device;
}

/** Options of {@link BlockSparseMask.slidingWindowWithSinks}. */
export interface SlidingWindowMaskOptions extends BlockMaskShape {
  /** Key blocks kept on each side of a query block's diagonal blocks (left only when causal). */
  windowBlocks: number;
  /** The first key blocks, kept by every query block (attention sinks, StreamingLLM); default 1. */
  sinkBlocks?: number;
  /** Drop key blocks wholly above the (bottom-right aligned) diagonal. */
  causal?: boolean;
}

/** Options of {@link BlockSparseMask.radial}. */
export interface RadialMaskOptions extends BlockMaskShape {
  /** Key blocks on each side of the diagonal kept densely (default 1). */
  bandBlocks?: number;
  /** The first key blocks, kept by every query block (default 0). */
  sinkBlocks?: number;
  /** Drop key blocks wholly above the (bottom-right aligned) diagonal. */
  causal?: boolean;
}

/** Options of {@link BlockSparseMask.fromDense} and {@link BlockSparseMask.fromCsr}. */
export interface BlockMaskOptions {
  /** Where the mask's tensors live (default `'cpu'`). */
  device?: Device;
}

interface Grid {
  batch: number;
  heads: number;
  numQBlocks: number;
  numKBlocks: number;
}

// The pattern loops call these per row and per run; under a vm context (Jest's), every `Math.x`
// is a slow global lookup that made those loops 5x slower than with module-level aliases.
const { ceil, floor, max, min } = Math;

const SHAPE_KEYS = ['seqLenQ', 'seqLenK', 'batch', 'heads', 'device'];

/** The most blocks (and row offsets) a mask holds: rowPtr holds int32 offsets, and the binding reads nnz as an int. */
const MAX_CSR_ENTRIES = 2 ** 31 - 1;

function checkGrid(value: unknown, name: string): Grid {
  const o = checkObject(value, name);
  checkKeys(o, ['batch', 'heads', 'numQBlocks', 'numKBlocks'], name);
  return {
    batch: o.batch === undefined ? 1 : checkInteger(o.batch, `${name}.batch`, 1, 65535),
    heads: o.heads === undefined ? 1 : checkInteger(o.heads, `${name}.heads`, 1, 65535),
    numQBlocks: checkInteger(o.numQBlocks, `${name}.numQBlocks`, 1, 2 ** 24),
    numKBlocks: checkInteger(o.numKBlocks, `${name}.numKBlocks`, 1, 2 ** 24),
  };
}

function checkDeviceOption(o: Record<string, unknown>, name: string): Device {
  return o.device === undefined ? 'cpu' : checkDevice(o.device, `${name}.device`);
}

/** The options of fromDense / fromCsr (a misspelled `device` must not silently leave the mask on the CPU). */
function checkMaskOptions(options: unknown): Device {
  const o = checkObject(options, 'options');
  checkKeys(o, ['device'], 'options');
  return checkDeviceOption(o, 'options');
}

/** Reads a builder's shape options; returns the grid, the key offset of the diagonal and the device. */
function builderShape(o: Record<string, unknown>, name: string, extra: readonly string[]): { grid: Grid; offset: number; device: Device } {
  checkKeys(o, [...SHAPE_KEYS, ...extra], name);
  const seqLenQ = checkInteger(o.seqLenQ, `${name}.seqLenQ`, 1, 2 ** 31 - 1);
  const seqLenK = o.seqLenK === undefined ? seqLenQ : checkInteger(o.seqLenK, `${name}.seqLenK`, 1, 2 ** 31 - 1);
  return {
    grid: {
      batch: o.batch === undefined ? 1 : checkInteger(o.batch, `${name}.batch`, 1, 65535),
      heads: o.heads === undefined ? 1 : checkInteger(o.heads, `${name}.heads`, 1, 65535),
      numQBlocks: Math.ceil(seqLenQ / SPARSE_BLOCK_SIZE),
      numKBlocks: Math.ceil(seqLenK / SPARSE_BLOCK_SIZE),
    },
    offset: seqLenK - seqLenQ,
    device: checkDeviceOption(o, name),
  };
}

/**
 * The key blocks holding the diagonal of query block `i` (bottom-right aligned: query row r sits at
 * key r + offset), as an inclusive range; hi < 0 when every row of the block lies before key 0.
 */
function diagonalBlocks(i: number, offset: number, seqLenQ: number): [number, number] {
  const first = i * SPARSE_BLOCK_SIZE + offset;
  const last = min((i + 1) * SPARSE_BLOCK_SIZE, seqLenQ) - 1 + offset;
  return [floor(first / SPARSE_BLOCK_SIZE), floor(last / SPARSE_BLOCK_SIZE)];
}

/**
 * A block-sparse attention mask in CSR form (see the module comment), on one device.
 *
 * Pass it as `attention(q, k, v, { blockMask })`: each query block then visits only its listed key
 * blocks, and every other option (causal, window, ...) still applies inside them (the masks AND).
 * Absent blocks cost nothing, so time scales with {@link BlockSparseMask.density}.
 */
export class BlockSparseMask implements Disposable {
  /** Rows and columns of one block (128). */
  static readonly BLOCK_SIZE = SPARSE_BLOCK_SIZE;
  /** Batch entries (1 broadcasts). */
  readonly batch: number;
  /** Head entries (1 broadcasts over the query heads). */
  readonly heads: number;
  /** Query blocks (128 rows each). */
  readonly numQBlocks: number;
  /** Key blocks (128 keys each). */
  readonly numKBlocks: number;
  /** Listed blocks, summed over batch, heads and rows. */
  readonly nnz: number;
  /** Where rowPtr and colIdx live. */
  readonly device: Device;
  /** Row offsets, int32 `[batch * heads * (numQBlocks + 1)]`, absolute offsets into colIdx. Read only. */
  readonly rowPtr: Tensor;
  /** Key blocks, int32 `[max(nnz, 1)]`, ascending within each row. Read only. */
  readonly colIdx: Tensor;
  private readonly hostRowPtr: Int32Array;
  private readonly hostColIdx: Int32Array;

  private constructor(grid: Grid, rowPtr: Int32Array, colIdx: Int32Array, device: Device) {
    this.batch = grid.batch;
    this.heads = grid.heads;
    this.numQBlocks = grid.numQBlocks;
    this.numKBlocks = grid.numKBlocks;
    this.nnz = colIdx.length;
    this.device = device;
    this.hostRowPtr = rowPtr;
    this.hostColIdx = colIdx;
    this.rowPtr = Tensor.fromArray(rowPtr, [rowPtr.length], { dtype: 'int32', device });
    // One spare entry keeps the tensor non-empty for a mask that lists nothing.
    this.colIdx = Tensor.fromArray(colIdx.length ? colIdx : new Int32Array(1), [Math.max(colIdx.length, 1)], { dtype: 'int32', device });
  }

  /**
   * From a dense block grid `[batch][heads][numQBlocks][numKBlocks]` (row-major, truthy = visit).
   * @example
   * // 2 x 2 blocks, lower triangle: 256 causal queries over 256 keys
   * const m = BlockSparseMask.fromDense([1, 0, 1, 1], { numQBlocks: 2, numKBlocks: 2 }, { device: 'cuda:0' });
   */
  static fromDense(blocks: ArrayLike<number | boolean>, grid: BlockMaskGrid, options: BlockMaskOptions = {}): BlockSparseMask {
    const g = checkGrid(grid, 'grid');
    const device = checkMaskOptions(options);
    if (!(Array.isArray(blocks) || ArrayBuffer.isView(blocks))) throw new TypeError(`blocks must be an array, got ${describe(blocks)}`);
    const cells = g.batch * g.heads * g.numQBlocks * g.numKBlocks;
    if (blocks.length !== cells)
      throw new RangeError(`blocks has ${blocks.length} entries but the grid [${g.batch}, ${g.heads}, ${g.numQBlocks}, ${g.numKBlocks}] needs ${cells}`);
    const rows = g.batch * g.heads * g.numQBlocks;
    const rowPtr = new Int32Array(g.batch * g.heads * (g.numQBlocks + 1));
    const cols: number[] = [];
    for (let r = 0; r < rows; r++) {
      const bh = Math.floor(r / g.numQBlocks);
      const i = r % g.numQBlocks;
      const base = bh * (g.numQBlocks + 1);
      rowPtr[base + i] = cols.length;
      for (let c = 0; c < g.numKBlocks; c++) if (blocks[r * g.numKBlocks + c]) cols.push(c);
      rowPtr[base + i + 1] = cols.length;
    }
    return new BlockSparseMask(g, rowPtr, Int32Array.from(cols), device);
  }

  /** From CSR arrays in the layout of the module comment (validated: monotone offsets, ascending blocks in range). */
  static fromCsr(rowPtr: ArrayLike<number>, colIdx: ArrayLike<number>, grid: BlockMaskGrid, options: BlockMaskOptions = {}): BlockSparseMask {
    const g = checkGrid(grid, 'grid');
    const device = checkMaskOptions(options);
    for (const [a, name] of [[rowPtr, 'rowPtr'], [colIdx, 'colIdx']] as const)
      if (!(Array.isArray(a) || ArrayBuffer.isView(a))) throw new TypeError(`${name} must be an array of integers, got ${describe(a)}`);
    const want = g.batch * g.heads * (g.numQBlocks + 1);
    if (rowPtr.length !== want) throw new RangeError(`rowPtr must have batch * heads * (numQBlocks + 1) = ${want} entries, got ${rowPtr.length}`);
    const rp = Int32Array.from(rowPtr, (x, i) => checkInteger(x, `rowPtr[${i}]`, 0, colIdx.length));
    const ci = Int32Array.from(colIdx, (x, i) => checkInteger(x, `colIdx[${i}]`, 0, g.numKBlocks - 1));
    for (let bh = 0; bh < g.batch * g.heads; bh++) {
      const base = bh * (g.numQBlocks + 1);
      if (bh > 0 && rp[base] !== rp[base - 1]) throw new RangeError(`rowPtr[${base}] must equal rowPtr[${base - 1}] (segments are contiguous)`);
      for (let i = 0; i < g.numQBlocks; i++) {
        if (rp[base + i + 1] < rp[base + i]) throw new RangeError(`rowPtr must be non-decreasing within a segment (entry ${base + i + 1})`);
        for (let e = rp[base + i] + 1; e < rp[base + i + 1]; e++)
          if (ci[e] <= ci[e - 1]) throw new RangeError(`colIdx must be strictly ascending within a row (entry ${e})`);
      }
    }
    if (rp[0] !== 0) throw new RangeError(`rowPtr[0] must be 0, got ${rp[0]}`);
    if (rp[want - 1] !== ci.length) throw new RangeError(`rowPtr must end at colIdx.length (${ci.length}), got ${rp[want - 1]}`);
    return new BlockSparseMask(g, rp, ci, device);
  }

  /**
   * Sliding window with attention sinks (StreamingLLM): query block `i` keeps the key blocks that
   * hold its diagonal (bottom-right aligned, as causal attention), `windowBlocks` blocks to their
   * left and, unless `causal`, to their right, and the first `sinkBlocks` key blocks. The causal
   * variant drops blocks wholly above the diagonal; pass `causal: true` to attention as well for
   * the element-level triangle inside the diagonal blocks.
   */
  static slidingWindowWithSinks(options: SlidingWindowMaskOptions): BlockSparseMask {
    const o = checkObject(options, 'options');
    const { grid, offset, device } = builderShape(o, 'options', ['windowBlocks', 'sinkBlocks', 'causal']);
    const window = checkInteger(o.windowBlocks, 'options.windowBlocks', 0, 2 ** 24);
    const sinks = o.sinkBlocks === undefined ? 1 : checkInteger(o.sinkBlocks, 'options.sinkBlocks', 0, 2 ** 24);
    const causal = o.causal === undefined ? false : checkCausal(o.causal);
    return BlockSparseMask.fromPattern(grid, device, { seqLenQ: o.seqLenQ as number, offset, sinks, causal }, (dlo, dhi, lo, hi, out, n) =>
      emitRun(out, n, dlo - window, dhi + window, 1, lo, hi));
  }

  /**
   * Radial (energy-decay) pattern, as Radial Attention: dense within `bandBlocks` blocks of the
   * diagonal; beyond, at block distance `dist` in `(band * 2^(s-1), band * 2^s]` only key blocks
   * with `c % 2^s == 0` are kept, so the density halves each time the distance doubles and a query
   * block keeps O(log n) key blocks. Plus the first `sinkBlocks` blocks; `causal` as in
   * {@link BlockSparseMask.slidingWindowWithSinks}.
   */
  static radial(options: RadialMaskOptions): BlockSparseMask {
    const o = checkObject(options, 'options');
    const { grid, offset, device } = builderShape(o, 'options', ['bandBlocks', 'sinkBlocks', 'causal']);
    const band = o.bandBlocks === undefined ? 1 : checkInteger(o.bandBlocks, 'options.bandBlocks', 1, 2 ** 24);
    const sinks = o.sinkBlocks === undefined ? 0 : checkInteger(o.sinkBlocks, 'options.sinkBlocks', 0, 2 ** 24);
    const causal = o.causal === undefined ? false : checkCausal(o.causal);
    return BlockSparseMask.fromPattern(grid, device, { seqLenQ: o.seqLenQ as number, offset, sinks, causal }, (dlo, dhi, lo, hi, out, n) => {
      // Ring s (distances (band * step / 2, band * step], step = 2^s) keeps every step-th block. The
      // left rings go farthest first so that the blocks ascend; rings wholly outside [0, hi] are not
      // visited. Steps double rather than computing 2 ** s: a variable power costs ~80 ns in V8 and
      // a row has ~2 log2(numKBlocks) rings.
      let step = 1;
      while (dlo - band * step > 0) step *= 2;
      for (; step > 1; step /= 2) n = emitRun(out, n, dlo - band * step, dlo - (band * step) / 2 - 1, step, lo, hi);
      n = emitRun(out, n, dlo - band, dhi + band, 1, lo, hi);
      for (step = 2; dhi + (band * step) / 2 < hi; step *= 2) n = emitRun(out, n, dhi + (band * step) / 2 + 1, dhi + band * step, step, lo, hi);
      return n;
    });
  }

  /**
   * Builds a built-in pattern row by row, so the work is proportional to the listed blocks:
   * visiting every cell of the grid takes minutes for long sequences (2^24 x 2^24 blocks). Each
   * query block keeps the first `sinks` key blocks and what `row` lists past them, up to the last
   * key block or, when causal, its diagonal. Every (batch, head) entry is the same: one segment is
   * built and repeated.
   */
  private static fromPattern(g: Grid, device: Device, p: PatternShape, row: PatternRow): BlockSparseMask {
    const copies = g.batch * g.heads;
    const tooMany = (count: number, what: string): RangeError =>
      new RangeError(`options.batch * options.heads (${g.batch} * ${g.heads}) copies of the pattern need ${count} ${what}, more than the ${MAX_CSR_ENTRIES} ` +
        'a mask holds; every entry is the same, so pass batch and heads 1 to broadcast it');
    if (copies * (g.numQBlocks + 1) > MAX_CSR_ENTRIES) throw tooMany(copies * (g.numQBlocks + 1), 'row offsets');
    const segPtr = new Int32Array(g.numQBlocks + 1);
    let seg: Int32Array | undefined;
    let n = 0;
    // Two passes: the first only counts, so an absurd pattern fails before anything is allocated.
    for (const fill of [false, true]) {
      if (fill) {
        if (copies * n > MAX_CSR_ENTRIES) throw tooMany(copies * n, 'blocks');
        seg = allocInt32(n, p, g);
      }
      n = 0;
      for (let i = 0; i < g.numQBlocks; i++) {
        const [dlo, dhi] = diagonalBlocks(i, p.offset, p.seqLenQ);
        const end = max(0, p.causal ? min(g.numKBlocks, dhi + 1) : g.numKBlocks);
        const sinks = min(p.sinks, end);
        n = emitRun(seg, n, 0, sinks - 1, 1, 0, sinks - 1);
        n = row(dlo, dhi, sinks, end - 1, seg, n);
        if (n > MAX_CSR_ENTRIES)
          throw new RangeError(`options.seqLenQ (${p.seqLenQ}) and options.seqLenK (${p.seqLenQ + p.offset}) give a pattern of more than the ${MAX_CSR_ENTRIES} ` +
            'blocks a mask holds; shorten the sequences or keep fewer blocks per row');
        segPtr[i + 1] = n;
      }
    }
    const one = seg as Int32Array;
    if (copies === 1) return new BlockSparseMask(g, segPtr, one, device);
    const rowPtr = allocInt32(copies * (g.numQBlocks + 1), p, g);
    const colIdx = allocInt32(copies * n, p, g);
    for (let bh = 0; bh < copies; bh++) {
      for (let i = 0; i <= g.numQBlocks; i++) rowPtr[bh * (g.numQBlocks + 1) + i] = bh * n + segPtr[i];
      colIdx.set(one, bh * n);
    }
    return new BlockSparseMask(g, rowPtr, colIdx, device);
  }

  /** Fraction of the block grid that is listed (1 = dense); causal patterns count against the full grid. */
  density(): number {
    return this.nnz / (this.batch * this.heads * this.numQBlocks * this.numKBlocks);
  }

  /** The key blocks query block `qBlock` of (batch entry `b`, head entry `h`) visits (a host copy). */
  blocks(b: number, h: number, qBlock: number): Int32Array {
    checkInteger(b, 'b', 0, this.batch - 1);
    checkInteger(h, 'h', 0, this.heads - 1);
    checkInteger(qBlock, 'qBlock', 0, this.numQBlocks - 1);
    const r = (b * this.heads + h) * (this.numQBlocks + 1) + qBlock;
    return this.hostColIdx.slice(this.hostRowPtr[r], this.hostRowPtr[r + 1]);
  }

  /** The dense block grid `[batch][heads][numQBlocks][numKBlocks]`, 1 = listed (a host copy). */
  toDense(): Uint8Array {
    const out = new Uint8Array(this.batch * this.heads * this.numQBlocks * this.numKBlocks);
    for (let bh = 0; bh < this.batch * this.heads; bh++)
      for (let i = 0; i < this.numQBlocks; i++) {
        const r = bh * (this.numQBlocks + 1) + i;
        for (let e = this.hostRowPtr[r]; e < this.hostRowPtr[r + 1]; e++) out[(bh * this.numQBlocks + i) * this.numKBlocks + this.hostColIdx[e]] = 1;
      }
    return out;
  }

  /** Whether {@link BlockSparseMask.dispose} has run. */
  get disposed(): boolean {
    return this.rowPtr.disposed || this.colIdx.disposed;
  }

  /** Frees the device tensors. */
  dispose(): void {
    this.rowPtr.dispose();
    this.colIdx.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Where a built-in pattern's diagonal lies, which blocks every row keeps and whether it is causal. */
interface PatternShape {
  seqLenQ: number;
  /** seqLenK - seqLenQ: query row r sits at key r + offset (bottom-right aligned). */
  offset: number;
  sinks: number;
  causal: boolean;
}

/**
 * Lists one query block's kept key blocks past the sinks, those in `[lo, hi]` only, ascending: writes
 * them to `out` from entry `n` (only counts them when `out` is undefined) and returns the new `n`.
 * `dlo..dhi` are its diagonal blocks.
 */
type PatternRow = (dlo: number, dhi: number, lo: number, hi: number, out: Int32Array | undefined, n: number) => number;

/**
 * Writes the multiples of `step` in `[first, last]` and `[lo, hi]` to `out` from entry `n` (only
 * counts them when `out` is undefined); returns the new `n`. One plain function, not a closure per
 * row, so V8 inlines it into the pattern loops (2x faster than collecting runs in an array).
 */
function emitRun(out: Int32Array | undefined, n: number, first: number, last: number, step: number, lo: number, hi: number): number {
  const a = ceil(max(first, lo) / step) * step;
  const b = min(last, hi);
  if (a > b) return n;
  if (out === undefined) return n + floor((b - a) / step) + 1;
  for (let c = a; c <= b; c += step) out[n++] = c;
  return n;
}

/** A typed array whose allocation failure names the options that asked for it, not just the engine's limit. */
function allocInt32(length: number, p: PatternShape, g: Grid): Int32Array {
  return allocateNamed(`a mask of ${length} int32 entries (options.seqLenQ ${p.seqLenQ}, options.batch ${g.batch}, options.heads ${g.heads})`,
    () => new Int32Array(length));
}

function checkCausal(value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`options.causal must be a boolean, got ${describe(value)}`);
  return value;
}

/** What an attention call holds a mask against. @internal */
export interface MaskTarget {
  /** The call's device (q's). */
  device: Device;
  /** Sequences of the call, and how errors name that count (e.g. "q's batch"). */
  batch: number;
  batchName: string;
  /** Query heads. */
  heads: number;
  /** Query rows and keys the grid must cover (the longest sequence's), and how errors name them. */
  rowsQ: number;
  rowsK: number;
  rowsName: (q: number, k: number) => string;
}

/**
 * Validates `options.blockMask` of an attention call: a live {@link BlockSparseMask} on the call's
 * device whose grid is exactly `ceil(rowsQ / 128) x ceil(rowsK / 128)` (at least 1 x 1), with batch
 * and heads 1 or the call's. @internal
 */
export function checkBlockMask(value: unknown, t: MaskTarget): NativeBlockMask {
  if (!(value instanceof BlockSparseMask)) throw new TypeError(`options.blockMask must be a BlockSparseMask, got ${describe(value)}`);
  if (value.disposed) throw new TypeError('options.blockMask has been disposed');
  if (value.device !== t.device) throw new RangeError(`options.blockMask is on ${value.device} but q is on ${t.device}`);
  if (value.batch !== 1 && value.batch !== t.batch) throw new RangeError(`options.blockMask has batch ${value.batch}; it must be 1 or ${t.batchName} (${t.batch})`);
  if (value.heads !== 1 && value.heads !== t.heads) throw new RangeError(`options.blockMask has ${value.heads} heads; it must be 1 or q's heads (${t.heads})`);
  const wantQ = Math.max(1, Math.ceil(t.rowsQ / SPARSE_BLOCK_SIZE));
  const wantK = Math.max(1, Math.ceil(t.rowsK / SPARSE_BLOCK_SIZE));
  if (value.numQBlocks !== wantQ || value.numKBlocks !== wantK)
    throw new RangeError(`options.blockMask is ${value.numQBlocks} x ${value.numKBlocks} blocks but ${t.rowsName(t.rowsQ, t.rowsK)} need ${wantQ} x ${wantK} (128 per block)`);
  return { rowPtr: value.rowPtr, colIdx: value.colIdx, batch: value.batch, heads: value.heads, numQBlocks: value.numQBlocks, numKBlocks: value.numKBlocks, nnz: value.nnz };
}
