/**
 * THE dtype map: every dtype name, alias and element size coldstart knows, in one place. safetensors names
 * (`BF16`) are the canonical `Dtype`; torch names (`bfloat16`, `half`), torch's legacy storage classes
 * (`BFloat16Storage`), the short names users type (`bf16`, `fp16`) and `config.json`'s `torch_dtype` all map
 * here. Everything else imports this module instead of keeping its own table.
 */

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

/** The floating dtypes a `--dtype` cast converts between (float8 keeps its own scaling: never cast). */
export const CASTABLE_FLOAT_DTYPES: ReadonlySet<Dtype> = new Set(['F16', 'BF16', 'F32', 'F64']);

/**
 * Every dtype name the safetensors reference implementation accepts in a header (safetensors 0.5/0.6), including
 * the sub-byte and complex ones coldstart recognises but does not load (a header naming one is valid, not corrupt).
 */
export const SAFETENSORS_DTYPE_NAMES: ReadonlySet<string> = new Set(['BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ', 'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64']);

// ------------------------------------------------------------------------------------------------ torch

/** A lookup table without a prototype: a name read from an untrusted file (`constructor`, `__proto__`) is never found. */
function table<T>(entries: Record<string, T>): Readonly<Record<string, T>> {
  return Object.freeze(Object.assign(Object.create(null) as Record<string, T>, entries));
}

/** Each Dtype's canonical torch name (`str(torch.bfloat16)` without `torch.`; what `torch_dtype` in config.json holds). */
export const TORCH_DTYPE_NAMES: Readonly<Record<Dtype, string>> = {
  BOOL: 'bool',
  U8: 'uint8',
  I8: 'int8',
  F8_E4M3: 'float8_e4m3fn',
  F8_E5M2: 'float8_e5m2',
  I16: 'int16',
  U16: 'uint16',
  F16: 'float16',
  BF16: 'bfloat16',
  I32: 'int32',
  U32: 'uint32',
  F32: 'float32',
  I64: 'int64',
  U64: 'uint64',
  F64: 'float64',
};

/** torch dtype name (canonical and legacy aliases: `half`, `float`, `long`…) → Dtype, for those safetensors can hold. */
export const TORCH_TO_DTYPE: Readonly<Record<string, Dtype>> = table({
  ...Object.fromEntries(Object.entries(TORCH_DTYPE_NAMES).map(([d, n]) => [n, d as Dtype])),
  float: 'F32',
  double: 'F64',
  half: 'F16',
  long: 'I64',
  int: 'I32',
  short: 'I16',
});

/** torch dtypes that exist but safetensors cannot hold, with their element sizes (for size checks of a checkpoint). */
export const TORCH_OTHER_SIZES: Readonly<Record<string, number>> = table({
  complex64: 8,
  cfloat: 8,
  complex128: 16,
  cdouble: 16,
  complex32: 4,
  chalf: 4,
  quint8: 1,
  qint8: 1,
  qint32: 4,
  quint4x2: 1,
  quint2x4: 1,
  float8_e4m3fnuz: 1,
  float8_e5m2fnuz: 1,
  float8_e8m0fnu: 1,
  float4_e2m1fn_x2: 1,
  bits1x8: 1,
  bits2x4: 1,
  bits4x2: 1,
  bits8: 1,
  bits16: 2,
  ...Object.fromEntries([1, 2, 3, 4, 5, 6, 7].flatMap((i) => [[`uint${i}`, 1], [`int${i}`, 1]])),
});

/** Element size of a torch dtype name, or undefined when torch has no such dtype. */
export function torchElementSize(name: string): number | undefined {
  const d = TORCH_TO_DTYPE[name];
  return d ? DTYPE_SIZES[d] : TORCH_OTHER_SIZES[name];
}

/** torch's legacy typed storage classes (pickled by torch.save) → torch dtype name; UntypedStorage holds bytes. */
export const TORCH_STORAGE_CLASSES: Readonly<Record<string, string>> = table({
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  ComplexFloatStorage: 'complex64',
  ComplexDoubleStorage: 'complex128',
  QUInt8Storage: 'quint8',
  QInt8Storage: 'qint8',
  QInt32Storage: 'qint32',
  QUInt4x2Storage: 'quint4x2',
  QUInt2x4Storage: 'quint2x4',
  UntypedStorage: 'uint8',
});

/** The storage class torch.save writes for a Dtype (float8 and unsigned wide types have none torch.load accepts). */
export const TORCH_STORAGE_OF: Readonly<Partial<Record<Dtype, string>>> = Object.fromEntries(
  Object.entries(TORCH_STORAGE_CLASSES)
    .filter(([cls]) => cls !== 'UntypedStorage')
    .flatMap(([cls, name]) => (TORCH_TO_DTYPE[name] ? [[TORCH_TO_DTYPE[name], cls]] : [])),
);

// ------------------------------------------------------------------------------------------------ names users type

/** The short names users type for the three floating dtypes (`--dtype bf16`), beside the torch and safetensors names. */
const SHORT_NAMES: Readonly<Record<string, Dtype>> = table({ bf16: 'BF16', fp16: 'F16', f16: 'F16', fp32: 'F32', f32: 'F32', fp64: 'F64', f64: 'F64' });

/**
 * A dtype from any of its names, case-insensitive: the short names (`bf16`, `fp16`, `f32`), torch's
 * (`bfloat16`, `half`, `torch.float16` as config.json may hold it) and safetensors' (`BF16`, `I8`). Null when unknown.
 */
export function parseDtypeName(s: string | null | undefined): Dtype | null {
  if (typeof s !== 'string') return null;
  const k = s.trim().replace(/^torch\./, '');
  const lower = k.toLowerCase();
  const byName = SHORT_NAMES[lower] ?? TORCH_TO_DTYPE[lower];
  if (byName) return byName;
  const upper = k.toUpperCase();
  return isDtype(upper) ? upper : null;
}

/**
 * How far two results computed in a floating dtype may be apart and still count as the same answer: torch.testing's
 * assert_close defaults for that dtype (|a − b| ≤ atol + rtol·|b|). `optimize` judges a compiled start's first
 * answer against an uncompiled one's with it. float8 has no torch default: bf16's is used, and said so.
 */
export const DTYPE_TOLERANCE: Readonly<Partial<Record<Dtype, { rtol: number; atol: number }>>> = {
  F64: { rtol: 1e-7, atol: 1e-7 },
  F32: { rtol: 1.3e-6, atol: 1e-5 },
  F16: { rtol: 1e-3, atol: 1e-5 },
  BF16: { rtol: 1.6e-2, atol: 1e-5 },
};

/** The tolerance of a floating dtype (float8 and others: bf16's, the loosest torch default). */
export function dtypeTolerance(d: Dtype): { rtol: number; atol: number } {
  return DTYPE_TOLERANCE[d] ?? DTYPE_TOLERANCE.BF16!;
}
