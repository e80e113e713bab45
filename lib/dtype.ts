/** Element types. Numeric codes mirror csrc/common/dtype.h. */

/** A tensor element type. `fp8e4m3` and `int8` are storage types for quantized data. */
export type DType = 'f32' | 'f16' | 'bf16' | 'fp8e4m3' | 'int8' | 'int32';

const CODES: Record<DType, number> = { f32: 0, f16: 1, bf16: 2, fp8e4m3: 3, int8: 4, int32: 5 };
const SIZES: Record<DType, number> = { f32: 4, f16: 2, bf16: 2, fp8e4m3: 1, int8: 1, int32: 4 };

/** Every dtype name. */
export const DTYPES: readonly DType[] = Object.keys(CODES) as DType[];

/** @internal */
export function dtypeCode(d: DType): number {
  return CODES[d];
}

/** Bytes per element of `d`. */
export function dtypeSize(d: DType): number {
  return SIZES[d];
}

/** Validates a dtype argument. @internal */
export function checkDType(value: unknown, name: string): DType {
  if (typeof value !== 'string') throw new TypeError(`${name} must be a dtype string (${DTYPES.join(', ')})`);
  if (!(value in CODES)) throw new RangeError(`${name} must be one of ${DTYPES.join(', ')}, got '${value}'`);
  return value as DType;
}
