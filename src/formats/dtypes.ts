/** safetensors dtype names and their element sizes in bytes (sub-byte types are refused here on purpose). */
export const DTYPE_SIZES = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
} as const;
export type Dtype = keyof typeof DTYPE_SIZES;

export function isDtype(s: string): s is Dtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_SIZES, s);
}

export function dtypeSize(d: Dtype): number {
  return DTYPE_SIZES[d];
}

export const FLOAT_DTYPES: ReadonlySet<Dtype> = new Set(['F16', 'BF16', 'F32', 'F64', 'F8_E4M3', 'F8_E5M2']);
