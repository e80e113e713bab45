/**
 * Page allocation for paged caches: per-sequence page lists with reference counts (fork shares
 * pages, a write into a shared page copies it first), free lists, and the device block table.
 * It knows nothing about what a page holds; the cache that owns it moves the data.
 * @internal
 */
import { checkDevice, defaultDevice, Device } from './device';
import { allocateNamed, checkInteger, describe } from './errors';
import { native } from './native';
import { Tensor } from './tensor';

/** Geometry of a {@link PageTable}. @internal */
export interface PageTableOptions {
  /** Class name used in error messages. */
  owner: string;
  layers: number;
  pageSize: number;
  capacityPages: number;
  maxSequences: number;
  /** Tokens per sequence at most, enforced as given (the block table rounds it up to whole pages). */
  maxSequenceLength: number;
  maxPagesPerSequence: number;
  device: Device;
}

/** One sequence's pages and per-layer lengths. @internal */
export interface SequenceState {
  row: number;
  pages: number[];
  /** Tokens written per layer. */
  lengths: number[];
  /** The append call that last listed this sequence (appendStates' duplicate check). */
  listedBy: number;
}

/**
 * What an append needs from the allocator: the kernel's arguments, the pages to copy first and the
 * block-table entries to store. @internal
 */
export interface AppendPlan {
  states: SequenceState[];
  counts: number[];
  rows: Int32Array;
  cuNew: Int32Array;
  startPos: Int32Array;
  /** Copy-on-write pairs: page copySrc[i] must be copied to copyDst[i] before the write. */
  copySrc: Int32Array;
  copyDst: Int32Array;
  /**
   * Block-table entries the append stores on the device before its tokens (its own upload carries
   * them, so a decode step whose sequences all cross a page boundary costs no extra host copy):
   * element `tableIdx[i]` of the flat `[maxSequences * maxPagesPerSequence]` table (row *
   * maxPagesPerSequence + page index) becomes page `tablePages[i]`. The plan's pages are already in
   * the host page lists.
   */
  tableIdx: Int32Array;
  tablePages: Int32Array;
}

/** @internal */
export class PageTable {
  readonly owner: string;
  readonly layers: number;
  readonly pageSize: number;
  readonly capacityPages: number;
  readonly maxSequences: number;
  readonly maxSequenceLength: number;
  readonly maxPagesPerSequence: number;
  /** Block tables `[maxSequences, maxPagesPerSequence]` int32 on the device. */
  readonly blockTable: Tensor;

  private readonly seqs = new Map<number, SequenceState>();
  // Nothing here grows with capacityPages until pages are used: a pool of 2^31 pages must not cost
  // gigabytes of host bookkeeping (or minutes of building it) before the pool is even allocated.
  // refCount covers pages [0, unused) and grows with it; pages from `unused` up were never handed
  // out. A freed page goes on the `freed` stack and is taken before any unused one, which hands
  // pages out in the order of one stack of all free pages, low page numbers first.
  private refCount: Int32Array;
  // Pages with a reference count above 1, kept as the counts change so that usage() does not scan
  // every page handed out (pages in use are `unused - freed.length`: a page's count reaches 0 only
  // in free(), which stacks it on `freed`).
  private sharedPages = 0;
  private unused = 0;
  private readonly freed: number[] = [];
  private readonly freeRows: number[];
  private nextId = 0;
  private appendCalls = 0;  // stamps SequenceState.listedBy

  constructor(o: PageTableOptions) {
    this.owner = o.owner;
    this.layers = o.layers;
    this.pageSize = o.pageSize;
    this.capacityPages = o.capacityPages;
    this.maxSequences = o.maxSequences;
    this.maxSequenceLength = o.maxSequenceLength;
    this.maxPagesPerSequence = o.maxPagesPerSequence;
    this.blockTable = allocateNamed(`${o.maxSequences} rows (options.maxSequences) of ${o.maxPagesPerSequence} pages (options.maxSequenceLength / options.pageSize)`,
      () => Tensor.full([this.maxSequences, this.maxPagesPerSequence], 0, { dtype: 'int32', device: o.device }));
    this.refCount = new Int32Array(Math.min(this.capacityPages, 1024));
    // A stack, popped from the end: low rows first.
    this.freeRows = Array.from({ length: this.maxSequences }, (_, i) => this.maxSequences - 1 - i);
  }

  get disposed(): boolean {
    return this.blockTable.disposed;
  }

  addSequence(): number {
    this.checkLive();
    const row = this.freeRows.pop();
    if (row === undefined) throw new RangeError(`${this.owner} holds ${this.maxSequences} sequences already (options.maxSequences)`);
    const id = this.nextId++;
    this.seqs.set(id, { row, pages: [], lengths: Array.from({ length: this.layers }, () => 0), listedBy: 0 });
    return id;
  }

  fork(seq: number): number {
    const src = this.state(seq, 'seq');
    const id = this.addSequence();
    const dst = this.seqs.get(id)!;
    dst.pages = [...src.pages];
    dst.lengths = [...src.lengths];
    for (const p of dst.pages) if (++this.refCount[p] === 2) this.sharedPages++;
    this.writeTableRow(dst, 0, dst.pages.length);
    return id;
  }

  free(seq: number): void {
    const s = this.state(seq, 'seq');
    for (const p of s.pages) {
      const left = --this.refCount[p];
      if (left === 1) this.sharedPages--;
      else if (left === 0) this.freed.push(p);
    }
    this.freeRows.push(s.row);
    this.seqs.delete(seq);
  }

  length(seq: number, layer?: number): number {
    const s = this.state(seq, 'seq');
    if (layer === undefined) return Math.max(...s.lengths);
    return s.lengths[checkInteger(layer, 'layer', 0, this.layers - 1)];
  }

  sequences(): number[] {
    return [...this.seqs.keys()];
  }

  /** Validates the sequence argument of an append: one id or a non-empty array of distinct ids. */
  appendStates(seq: unknown): SequenceState[] {
    this.checkLive();
    const ids = typeof seq === 'number' ? [seq] : Array.isArray(seq) ? (seq as unknown[]) : undefined;
    if (ids === undefined || ids.length === 0) throw new TypeError(`seq must be a sequence id or a non-empty array of ids, got ${describe(seq)}`);
    const states = new Array<SequenceState>(ids.length);
    // Duplicates by a stamp per call, not a Set: this runs per layer per decode step.
    const call = ++this.appendCalls;
    for (let i = 0; i < ids.length; i++) {
      const s = this.entryState(ids[i], 'seq', typeof seq === 'number' ? -1 : i);
      if (s.listedBy === call) throw new RangeError('seq lists a sequence twice');
      s.listedBy = call;
      states[i] = s;
    }
    return states;
  }

  /**
   * Plans an append of `counts[i]` tokens to `states[i]` in `layer`: allocates the pages (fresh
   * ones, and copies of shared pages about to be written) and lists the block-table entries that
   * name them, which the caller's native append stores (see {@link PageTable.enqueueAppend}).
   * Throws a RangeError before changing anything when the pool runs out. The caller copies the
   * pages, writes the tokens with the table entries, then calls {@link PageTable.commit}.
   */
  planAppend(states: SequenceState[], layer: number, counts: number[]): AppendPlan {
    const ps = this.pageSize;
    let needed = 0;
    // The allocation below copies a shared page for each writer but the last: once the others have
    // their copies, the last one owns the page alone and writes in place. So count against the
    // reference counts as that pass leaves them (created only when a shared page is written).
    let copied: Map<number, number> | undefined;
    for (let i = 0; i < states.length; i++) {
      const s = states[i];
      const start = s.lengths[layer];
      const end = start + counts[i];
      if (end > this.maxSequenceLength)
        throw new RangeError(`sequence ${this.idOf(s)} would hold ${end} tokens, more than options.maxSequenceLength (${this.maxSequenceLength})`);
      if (counts[i] === 0) continue;
      const last = Math.ceil(end / ps);
      needed += Math.max(0, last - s.pages.length);
      for (let p = Math.floor(start / ps); p < Math.min(last, s.pages.length); p++) {
        const page = s.pages[p];
        const refs = copied?.get(page) ?? this.refCount[page];
        if (refs <= 1) continue;
        needed++;
        (copied ??= new Map()).set(page, refs - 1);
      }
    }
    const free = this.freePageCount();
    if (needed > free) throw new RangeError(`${this.owner} is out of pages: this append needs ${needed}, ${free} of ${this.capacityPages} are free`);
    // Grown before any change, so that a failing allocation leaves the table as it was.
    this.reserveUnused(needed - this.freed.length);

    const copySrc: number[] = [];
    const copyDst: number[] = [];
    const tableIdx: number[] = [];
    const tablePages: number[] = [];
    for (let i = 0; i < states.length; i++) {
      const s = states[i];
      if (counts[i] === 0) continue;
      const start = s.lengths[layer];
      const last = Math.ceil((start + counts[i]) / ps);
      for (let p = Math.floor(start / ps); p < last; p++) {
        if (p < s.pages.length && this.refCount[s.pages[p]] <= 1) continue;
        const fresh = this.freed.pop() ?? this.unused++;
        this.refCount[fresh] = 1;
        if (p < s.pages.length) {
          // Copy-on-write: this sequence writes into a page another one still reads.
          copySrc.push(s.pages[p]);
          copyDst.push(fresh);
          if (--this.refCount[s.pages[p]] === 1) this.sharedPages--;
          s.pages[p] = fresh;
        } else {
          s.pages.push(fresh);
        }
        tableIdx.push(s.row * this.maxPagesPerSequence + p);
        tablePages.push(fresh);
      }
    }
    const cuNew = new Int32Array(states.length + 1);
    const rows = new Int32Array(states.length);
    const startPos = new Int32Array(states.length);
    for (let i = 0; i < states.length; i++) {
      cuNew[i + 1] = cuNew[i] + counts[i];
      rows[i] = states[i].row;
      startPos[i] = states[i].lengths[layer];
    }
    return {
      states, counts, cuNew, rows, startPos, copySrc: Int32Array.from(copySrc), copyDst: Int32Array.from(copyDst),
      tableIdx: Int32Array.from(tableIdx), tablePages: Int32Array.from(tablePages),
    };
  }

  /**
   * Runs `append`, the native append that stores the plan's table entries before its tokens. If it
   * throws, they are stored from the host before the error goes on: the plan's pages stay in the
   * host page lists (a retry writes into them without allocating again), so the device table must
   * name them even though the append that carried the entries never ran.
   */
  enqueueAppend(plan: AppendPlan, append: () => void): void {
    try {
      append();
    } catch (e) {
      this.writeTableEntries(plan);
      throw e;
    }
  }

  /** Records the tokens of a planned append as written. */
  commit(plan: AppendPlan, layer: number): void {
    for (let i = 0; i < plan.states.length; i++) plan.states[i].lengths[layer] += plan.counts[i];
  }

  /** Pages in use, pages referenced more than once, and tokens summed over sequences. */
  counts(): { used: number; shared: number; free: number; sequences: number; tokens: number } {
    this.checkLive();
    let tokens = 0;
    for (const s of this.seqs.values()) tokens += Math.max(...s.lengths);
    return { used: this.unused - this.freed.length, shared: this.sharedPages, free: this.freePageCount(), sequences: this.seqs.size, tokens };
  }

  /**
   * Reference counts of every page and the free pages as one stack (the next page handed out
   * last), built in full: O(capacityPages), for tests only.
   */
  debugState(): { refCount: Int32Array; freePages: number[]; sequences: Map<number, { row: number; pages: number[]; lengths: number[] }> } {
    const sequences = new Map<number, { row: number; pages: number[]; lengths: number[] }>();
    for (const [id, s] of this.seqs) sequences.set(id, { row: s.row, pages: [...s.pages], lengths: [...s.lengths] });
    const refCount = new Int32Array(this.capacityPages);
    refCount.set(this.refCount.subarray(0, this.unused));
    const freePages = Array.from({ length: this.capacityPages - this.unused }, (_, i) => this.capacityPages - 1 - i);
    return { refCount, freePages: freePages.concat(this.freed), sequences };
  }

  batchInfo(ids: readonly number[], layer: number, name: string): { rows: Int32Array; seqLens: Int32Array } {
    this.checkLive();
    const rows = new Int32Array(ids.length), seqLens = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const s = this.entryState(ids[i], name, i);
      rows[i] = s.row;
      seqLens[i] = s.lengths[layer];
    }
    return { rows, seqLens };
  }

  dispose(): void {
    this.blockTable.dispose();
    this.seqs.clear();
  }

  checkLive(): void {
    if (this.blockTable.disposed) throw new TypeError(`the ${this.owner} has been disposed`);
  }

  private freePageCount(): number {
    return this.freed.length + this.capacityPages - this.unused;
  }

  // Makes refCount cover `count` more never-used pages (doubling, so appends stay amortized O(1)).
  private reserveUnused(count: number): void {
    const want = this.unused + Math.max(0, count);
    if (want <= this.refCount.length) return;
    const grown = new Int32Array(Math.min(this.capacityPages, Math.max(want, 2 * this.refCount.length)));
    grown.set(this.refCount);
    this.refCount = grown;
  }

  private idOf(s: SequenceState): number {
    for (const [id, t] of this.seqs) if (t === s) return id;
    return -1;
  }

  // state() of entry i of a list argument, its name (`name[i]`, or `name` when i < 0) built only
  // for the error: decode steps look their sequences up per layer.
  private entryState(seq: unknown, name: string, i: number): SequenceState {
    return this.seqs.get(seq as number) ?? this.state(seq, i < 0 ? name : `${name}[${i}]`);
  }

  private state(seq: unknown, name: string): SequenceState {
    this.checkLive();
    if (typeof seq !== 'number') throw new TypeError(`${name} must be a sequence id, got ${describe(seq)}`);
    const s = this.seqs.get(seq);
    if (!s) throw new RangeError(`${name} ${seq} is not a live sequence of this cache`);
    return s;
  }

  // One host write per entry: only for the failure path of enqueueAppend, never per decode step.
  private writeTableEntries(plan: AppendPlan): void {
    const width = this.maxPagesPerSequence;
    for (let i = 0; i < plan.tableIdx.length; i++) {
      const idx = plan.tableIdx[i];
      const view = this.blockTable.narrow(0, Math.floor(idx / width), 1).narrow(1, idx % width, 1);
      native.write(view, Int32Array.of(plan.tablePages[i]));
    }
  }

  private writeTableRow(s: SequenceState, from: number, to: number): void {
    if (to <= from) return;
    const view = this.blockTable.narrow(0, s.row, 1).narrow(1, from, to - from);
    native.write(view, Int32Array.from(s.pages.slice(from, to)));
  }
}

/**
 * Validates the page geometry options every paged cache takes (`layers`, `capacityPages`,
 * `pageSize` (a power of two), `maxSequences`, `maxSequenceLength`, `device`). @internal
 */
export function checkPageGeometry(o: Record<string, unknown>, owner: string, defaultPageSize: number): PageTableOptions {
  const layers = checkInteger(o.layers, 'options.layers', 1, 4096);
  const capacityPages = checkInteger(o.capacityPages, 'options.capacityPages', 1, 2 ** 31 - 1);
  const pageSize = o.pageSize === undefined ? defaultPageSize : checkInteger(o.pageSize, 'options.pageSize', 1, 256);
  if ((pageSize & (pageSize - 1)) !== 0) throw new RangeError(`options.pageSize must be a power of two, got ${pageSize}`);
  const maxSequences = o.maxSequences === undefined ? 256 : checkInteger(o.maxSequences, 'options.maxSequences', 1, 1 << 20);
  const maxLen = o.maxSequenceLength === undefined
    ? Math.min(capacityPages * pageSize, 131072)
    : checkInteger(o.maxSequenceLength, 'options.maxSequenceLength', 1, 2 ** 31 - 1);
  const device = o.device === undefined ? defaultDevice() : checkDevice(o.device, 'options.device');
  return { owner, layers, pageSize, capacityPages, maxSequences, maxSequenceLength: maxLen, maxPagesPerSequence: Math.ceil(maxLen / pageSize), device };
}

/**
 * What every paged cache does with its sequences and pages, through one {@link PageTable}: the
 * caches add only what their pages hold. @internal
 */
export abstract class PagedSequences {
  readonly layers: number;
  readonly pageSize: number;
  readonly capacityPages: number;
  readonly maxSequences: number;
  /** Tokens per sequence at most (an append past it throws a RangeError). */
  readonly maxSequenceLength: number;
  readonly maxPagesPerSequence: number;
  readonly device: Device;
  protected readonly table: PageTable;

  protected constructor(geometry: PageTableOptions) {
    this.layers = geometry.layers;
    this.pageSize = geometry.pageSize;
    this.capacityPages = geometry.capacityPages;
    this.maxSequences = geometry.maxSequences;
    this.maxSequenceLength = geometry.maxSequenceLength;
    this.maxPagesPerSequence = geometry.maxPagesPerSequence;
    this.device = geometry.device;
    this.table = new PageTable(geometry);
  }

  /**
   * Allocates a tensor with one slice per page (the pool): a size that cannot be allocated throws a
   * RangeError naming options.capacityPages.
   */
  protected allocatePages(allocate: () => Tensor): Tensor {
    return allocateNamed(`${this.capacityPages} pages (options.capacityPages)`, allocate);
  }

  /** Block tables `[maxSequences, maxPagesPerSequence]` int32 on the device. @internal */
  get blockTable(): Tensor {
    return this.table.blockTable;
  }

  /** Starts an empty sequence and returns its id. */
  addSequence(): number {
    this.checkLive();
    return this.table.addSequence();
  }

  /** A new sequence with the same tokens, sharing every page until either side writes into one. */
  fork(seq: number): number {
    this.checkLive();
    return this.table.fork(seq);
  }

  /** Ends a sequence; pages nobody else references return to the pool. */
  free(seq: number): void {
    this.checkLive();
    this.table.free(seq);
  }

  /** Tokens of `seq` in `layer` (omitted: the most over layers). */
  length(seq: number, layer?: number): number {
    this.checkLive();
    return this.table.length(seq, layer);
  }

  /** Live sequence ids. */
  sequences(): number[] {
    return this.table.sequences();
  }

  /** Pages and reference counts, for tests of the accounting. @internal */
  debugState(): ReturnType<PageTable['debugState']> {
    return this.table.debugState();
  }

  /** Block-table row and lengths of sequences for a kernel call. @internal */
  batchInfo(ids: readonly number[], layer: number, name: string): { rows: Int32Array; seqLens: Int32Array } {
    this.checkLive();
    return this.table.batchInfo(ids, layer, name);
  }

  /** Throws a TypeError once the cache is disposed. */
  protected abstract checkLive(): void;
}
