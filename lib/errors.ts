/** Argument checks shared by the public API: each throws TypeError/RangeError naming the argument. */

/** @internal */
export function checkInteger(value: unknown, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${describe(value)}`);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${value}`);
  return value;
}

/** @internal */
export function checkFinite(value: unknown, name: string): number {
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${describe(value)}`);
  if (!Number.isFinite(value)) throw new RangeError(`${name} must be finite, got ${value}`);
  return value;
}

/** Largest finite float32: the kernels take scales, softcaps and slopes as float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

/** A number the kernels receive as float32: finite there too, not only as a double. @internal */
export function checkFloat32(value: unknown, name: string): number {
  const x = checkFinite(value, name);
  if (Math.abs(x) > FLOAT32_MAX) throw new RangeError(`${name} must be finite in float32 (|x| <= ${FLOAT32_MAX}), got ${x}`);
  return x;
}

/**
 * Runs `allocate`, rethrowing a RangeError it throws (too many elements, out of memory, an engine's
 * array limit) as one that names `what`: the options that set the size, which the caller passed,
 * not the shape or byte count the allocator names. @internal
 */
export function allocateNamed<T>(what: string, allocate: () => T): T {
  try {
    return allocate();
  } catch (e) {
    // By name, not instanceof: the native allocator's errors may come from another realm.
    const err = e as { name?: unknown; message?: unknown } | null;
    if (err?.name === 'RangeError') throw new RangeError(`cannot allocate ${what}: ${String(err.message)}`);
    throw e;
  }
}

/** @internal */
export function checkBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${name} must be a boolean, got ${describe(value)}`);
  return value;
}

/** @internal */
export function checkObject(value: unknown, name: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new TypeError(`${name} must be an object, got ${describe(value)}`);
  return value as Record<string, unknown>;
}

/** Rejects option keys the function does not know (a typo must not be silently ignored). @internal */
export function checkKeys(options: Record<string, unknown>, allowed: readonly string[], name: string): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw new TypeError(`${name}.${key} is not a known option (known: ${allowed.join(', ')})`);
  }
}

/** Reads an array of integers (Array or typed array) into an Int32Array. @internal */
export function toInt32Array(value: unknown, name: string): Int32Array {
  if (!(Array.isArray(value) || ArrayBuffer.isView(value)))
    throw new TypeError(`${name} must be an array of integers, got ${describe(value)}`);
  const src = value as ArrayLike<unknown>;
  const out = new Int32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = checkInteger(src[i], `${name}[${i}]`, -2147483648, 2147483647);
  return out;
}

/** @internal */
export function toFloat32Array(value: unknown, name: string): Float32Array {
  if (!(Array.isArray(value) || ArrayBuffer.isView(value)))
    throw new TypeError(`${name} must be an array of numbers, got ${describe(value)}`);
  const src = value as ArrayLike<unknown>;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = checkFloat32(src[i], `${name}[${i}]`);
  return out;
}

/** @internal */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object';
  if (typeof value === 'string') return `'${value}'`;
  return String(value);
}
