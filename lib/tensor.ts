/** Tensors: n-d strided views of host or device memory. */
import { checkDevice, Device } from './device';
import { checkDType, DType, dtypeCode, dtypeSize } from './dtype';
import { checkFinite, checkInteger, checkKeys, checkObject, describe } from './errors';
import { native, StorageHandle, TensorDescriptor } from './native';

/** Data accepted by {@link Tensor.fromArray}. */
export type ArrayData = ArrayLike<number> & (number[] | Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array | Uint32Array);

/** Host data returned by {@link Tensor.toArray}: floats for every floating dtype. */
export type HostArray = Float32Array | Int32Array | Int8Array;

/** Options when creating a tensor. */
export interface TensorOptions {
  /** Element type (default `'f32'`). */
  dtype?: DType;
  /** Where the tensor lives (default `'cpu'`). */
  device?: Device;
}

const MAX_DIMS = 8;

function checkShape(value: unknown, name: string): number[] {
  if (!Array.isArray(value)) throw new TypeError(`${name} must be an array of dimension sizes, got ${describe(value)}`);
  if (value.length > MAX_DIMS) throw new RangeError(`${name} has ${value.length} dimensions; at most ${MAX_DIMS} are supported`);
  const dims = value.map((d, i) => checkInteger(d, `${name}[${i}]`, 0, 2 ** 40));
  // 2^48 elements (over a petabyte at one byte each) keeps every byte count and offset exact in a double.
  if (product(dims) > 2 ** 48) throw new RangeError(`${name} [${dims.join(', ')}] holds more than 2^48 elements`);
  return dims;
}

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function parseOptions(options: unknown, name: string): { dtype: DType; device: Device } {
  if (options === undefined) return { dtype: 'f32', device: 'cpu' };
  const o = checkObject(options, name);
  checkKeys(o, ['dtype', 'device'], name);
  return {
    dtype: o.dtype === undefined ? 'f32' : checkDType(o.dtype, `${name}.dtype`),
    device: o.device === undefined ? 'cpu' : checkDevice(o.device, `${name}.device`),
  };
}

// Tensors this module built. `instanceof` also accepts objects made by Object.create(Tensor.prototype),
// which have no storage: check() tells those apart with this brand instead of failing on undefined.
const constructed = new WeakSet<object>();

/**
 * An n-dimensional view (shape, strides, offset, in elements) of memory on one device.
 * Ops enqueue work and return at once; {@link Tensor.toArray} resolves when the data is ready.
 * Memory is freed by {@link Tensor.dispose} (or `using`), or by the garbage collector as a fallback.
 */
export class Tensor implements TensorDescriptor, Disposable {
  /** Where the data lives. */
  readonly device: Device;
  /** Element type. */
  readonly dtype: DType;
  /** Size of each dimension. */
  readonly shape: readonly number[];
  /** Element stride of each dimension. */
  readonly strides: readonly number[];
  /** Offset of the first element into the storage, in elements. */
  readonly offset: number;
  /** @internal */
  readonly storage: StorageHandle;
  /** @internal */
  readonly dtypeCode: number;
  /** @internal The binding's one-read form of dtype, offset, shape and strides (see TensorDescriptor). */
  readonly layout: Float64Array;

  /** @internal Use the static constructors. */
  constructor(storage: StorageHandle, device: Device, dtype: DType, shape: readonly number[], strides?: readonly number[], offset = 0) {
    this.storage = storage;
    this.device = device;
    this.dtype = dtype;
    this.dtypeCode = dtypeCode(dtype);
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze([...(strides ?? contiguousStrides(shape))]);
    this.offset = offset;
    this.layout = Float64Array.from([this.dtypeCode, offset, this.shape.length, ...this.shape, ...this.strides]);
    constructed.add(this);
  }

  /** Copies host numbers into a new tensor of the given shape, converting to `dtype` natively. */
  static fromArray(data: ArrayData, shape: readonly number[], options?: TensorOptions): Tensor {
    const dims = checkShape(shape, 'shape');
    const { dtype, device } = parseOptions(options, 'options');
    if (!(Array.isArray(data) || ArrayBuffer.isView(data))) throw new TypeError(`data must be an array or typed array, got ${describe(data)}`);
    if ((data as ArrayLike<number>).length !== product(dims))
      throw new RangeError(`data has ${(data as ArrayLike<number>).length} elements but shape [${dims.join(', ')}] needs ${product(dims)}`);
    return new Tensor(native.fromHost(device, dtypeCode(dtype), data), device, dtype, dims);
  }

  /** A new tensor with unspecified contents. */
  static empty(shape: readonly number[], options?: TensorOptions): Tensor {
    const dims = checkShape(shape, 'shape');
    const { dtype, device } = parseOptions(options, 'options');
    const bytes = product(dims) * dtypeSize(dtype);
    // The allocator refuses sizes past 1e15 bytes with a message that names no argument.
    if (bytes > 2 ** 49) throw new RangeError(`shape [${dims.join(', ')}] of ${dtype} needs ${bytes} bytes, more than the 2^49 a tensor may hold`);
    return new Tensor(native.empty(device, bytes), device, dtype, dims);
  }

  /** A new tensor with every element set to `value` (NaN works as poison for floating dtypes). */
  static full(shape: readonly number[], value: number, options?: TensorOptions): Tensor {
    if (typeof value !== 'number') throw new TypeError(`value must be a number, got ${describe(value)}`);
    const t = Tensor.empty(shape, options);
    native.fill(t, native.encodeScalar(t.dtypeCode, value));
    return t;
  }

  /**
   * Random values from N(mean, std²) (float dtypes), generated on the tensor's device. Each call
   * draws a fresh seed unless `seed` is given (then the values are reproducible on any device).
   */
  static randn(shape: readonly number[], options?: TensorOptions & { std?: number; mean?: number; seed?: number }): Tensor {
    if (options !== undefined) checkKeys(checkObject(options, 'options'), ['dtype', 'device', 'std', 'mean', 'seed'], 'options');
    const std = options?.std === undefined ? 1 : checkFinite(options.std, 'options.std');
    const mean = options?.mean === undefined ? 0 : checkFinite(options.mean, 'options.mean');
    const seed = options?.seed === undefined ? Math.floor(Math.random() * 2 ** 53) : checkInteger(options.seed, 'options.seed');
    const t = Tensor.empty(shape, { dtype: options?.dtype, device: options?.device });
    if (!['f32', 'f16', 'bf16'].includes(t.dtype)) throw new TypeError(`options.dtype must be f32, f16 or bf16 for randn, got ${t.dtype}`);
    native.randomNormal(t, Math.floor(seed / 2 ** 32), seed % 2 ** 32, mean, std);
    return t;
  }

  /** Number of elements. */
  get numel(): number {
    return product(this.shape);
  }

  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Whether dispose() has run (on this tensor or another view of its storage). */
  get disposed(): boolean {
    return this.made('tensor').storage.released;
  }

  /** Whether the elements are laid out densely in row-major order. */
  get isContiguous(): boolean {
    let expect = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== expect) return false;
      expect *= this.shape[i];
    }
    return true;
  }

  /** Throws if disposed. @internal */
  check(name: string): this {
    if (this.made(name).storage.released) throw new TypeError(`${name} has been disposed`);
    return this;
  }

  /** Throws unless a Tensor constructor built this object. @internal */
  private made(name: string): this {
    if (!constructed.has(this))
      throw new TypeError(`${name} is not a tensor built by attn-cuda (Tensor.fromArray, empty, full, randn or a view of one); it has no storage`);
    return this;
  }

  /** Reads the elements back to the host in row-major order (floats for f16/bf16/fp8). */
  async toArray(): Promise<HostArray> {
    this.check('tensor');
    const src = this.isContiguous ? this : this.contiguous();
    try {
      return await native.read(src);
    } finally {
      if (src !== this) src.dispose();
    }
  }

  /** A dense row-major copy (or this tensor when already contiguous). */
  contiguous(): Tensor {
    this.check('tensor');
    if (this.isContiguous) return this;
    const out = Tensor.empty(this.shape, { dtype: this.dtype, device: this.device });
    native.copy(out, this);
    return out;
  }

  /** Copies `src` (same shape and dtype, same device) into this tensor's elements. */
  copyFrom(src: Tensor): this {
    this.check('tensor');
    if (!(src instanceof Tensor)) throw new TypeError(`src must be a Tensor, got ${describe(src)}`);
    src.check('src');
    if (src.device !== this.device) throw new RangeError(`src is on ${src.device}, the tensor on ${this.device}`);
    if (src.dtype !== this.dtype) throw new TypeError(`src has dtype ${src.dtype}, the tensor ${this.dtype}`);
    if (src.shape.join() !== this.shape.join()) throw new RangeError(`src has shape [${src.shape}], the tensor [${this.shape}]`);
    if (src.storage === this.storage && overlaps(src, this)) {
      // The copy kernels read and write element by element: a source that the destination
      // overwrites as it goes would be read half-updated. Go through a fresh buffer instead.
      const staged = Tensor.empty(src.shape, { dtype: src.dtype, device: src.device });
      native.copy(staged, src);
      native.copy(this, staged);
      staged.dispose();
      return this;
    }
    native.copy(this, src);
    return this;
  }

  /** A copy on another device (resolves when the copy is done). */
  async to(device: Device): Promise<Tensor> {
    const dev = checkDevice(device, 'device');
    this.check('tensor');
    const src = this.isContiguous ? this : this.contiguous();
    try {
      if (dev === this.device) {
        const out = Tensor.empty(this.shape, { dtype: this.dtype, device: dev });
        native.copy(out, src);
        return out;
      }
      const handle = await native.transfer(src, dev);
      return new Tensor(handle, dev, this.dtype, this.shape);
    } finally {
      if (src !== this) src.dispose();
    }
  }

  /** A view with the same elements in a new shape (contiguous tensors only; one dimension may be -1). */
  reshape(shape: readonly number[]): Tensor {
    this.check('tensor');
    if (!Array.isArray(shape)) throw new TypeError(`shape must be an array, got ${describe(shape)}`);
    if (shape.length > MAX_DIMS) throw new RangeError(`shape has ${shape.length} dimensions; at most ${MAX_DIMS} are supported`);
    const inferred = shape.filter((d) => d === -1).length;
    if (inferred > 1) throw new RangeError('shape may contain -1 at most once');
    shape.forEach((d, i) => d === -1 || checkInteger(d, `shape[${i}]`, 0, 2 ** 40));  // index into the caller's array
    const known = product(shape.filter((d) => d !== -1));
    const dims = shape.map((d) => (d === -1 ? (known === 0 ? 0 : this.numel / known) : d));
    if (product(dims) !== this.numel || dims.some((d) => !Number.isInteger(d)))
      throw new RangeError(`cannot reshape [${this.shape}] (${this.numel} elements) to [${shape}]`);
    if (!this.isContiguous) throw new RangeError('reshape needs a contiguous tensor; call contiguous() first');
    return new Tensor(this.storage, this.device, this.dtype, dims, undefined, this.offset);
  }

  /** A view with dimensions reordered. */
  permute(dims: readonly number[]): Tensor {
    this.check('tensor');
    if (!Array.isArray(dims) || dims.length !== this.ndim) throw new RangeError(`dims must list all ${this.ndim} dimensions`);
    const seen = new Set<number>();
    for (let i = 0; i < dims.length; i++) {
      checkInteger(dims[i], `dims[${i}]`, 0, this.ndim - 1);
      if (seen.has(dims[i])) throw new RangeError(`dims repeats dimension ${dims[i]}`);
      seen.add(dims[i]);
    }
    return new Tensor(this.storage, this.device, this.dtype, dims.map((d) => this.shape[d]), dims.map((d) => this.strides[d]), this.offset);
  }

  /** A view of `length` entries of dimension `dim` starting at `start`. */
  narrow(dim: number, start: number, length: number): Tensor {
    this.check('tensor');
    checkInteger(dim, 'dim', 0, this.ndim - 1);
    checkInteger(start, 'start', 0, this.shape[dim]);
    checkInteger(length, 'length', 0, this.shape[dim] - start);
    const shape = [...this.shape];
    shape[dim] = length;
    return new Tensor(this.storage, this.device, this.dtype, shape, this.strides, this.offset + start * this.strides[dim]);
  }

  /** Frees the memory now. Every view sharing the storage becomes unusable. Idempotent. */
  dispose(): void {
    this.made('tensor').storage.release();
  }

  /** Same as {@link Tensor.dispose}, for `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** A short description: `Tensor(bf16, [2, 128, 8, 64], cuda:0)`. */
  toString(): string {
    if (!constructed.has(this)) return 'Tensor(not built by attn-cuda)';
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}], ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}

/** Validates a tensor argument (a live Tensor). @internal */
export function checkTensor(value: unknown, name: string): Tensor {
  if (!(value instanceof Tensor)) throw new TypeError(`${name} must be a Tensor, got ${describe(value)}`);
  return value.check(name);
}

/** Whether two views' element ranges in their storage intersect (conservative: spans, not elements). */
function overlaps(a: Tensor, b: Tensor): boolean {
  const span = (t: Tensor): [number, number] => {
    let lo = t.offset, hi = t.offset;
    for (let d = 0; d < t.shape.length; d++) {
      if (t.shape[d] === 0) return [0, -1];
      const reach = (t.shape[d] - 1) * t.strides[d];
      if (reach < 0) lo += reach;
      else hi += reach;
    }
    return [lo, hi];
  };
  const [alo, ahi] = span(a);
  const [blo, bhi] = span(b);
  return alo <= bhi && blo <= ahi;
}
