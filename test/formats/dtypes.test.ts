import { describe, expect, it } from 'vitest';
import { DTYPE_SIZES, TORCH_DTYPE_NAMES, TORCH_STORAGE_CLASSES, TORCH_STORAGE_OF, TORCH_TO_DTYPE, parseDtypeName, torchElementSize } from '../../src/formats/dtypes.js';
import { targetDtype } from '../../src/convert/convert.js';
import { findModel } from '../../src/models/table.js';
import { hfConfig } from '../../src/models/synthetic.js';

describe('the one dtype map', () => {
  it('reads every name users, torch and safetensors give a dtype, case-insensitively', () => {
    for (const [names, d] of [
      [['bf16', 'BF16', 'bfloat16', 'torch.bfloat16'], 'BF16'],
      [['fp16', 'f16', 'F16', 'float16', 'half', 'torch.float16'], 'F16'],
      [['fp32', 'f32', 'float32', 'float', 'F32'], 'F32'],
      [['float64', 'double', 'F64'], 'F64'],
      [['int8', 'I8'], 'I8'],
      [['float8_e4m3fn', 'F8_E4M3'], 'F8_E4M3'],
    ] as const) {
      for (const n of names) expect(parseDtypeName(n), n).toBe(d);
    }
  });

  it('finds nothing for unknown names, prototype keys or non-strings (names come from untrusted files)', () => {
    for (const n of ['auto', '', 'F4', 'complex64', 'constructor', '__proto__', 'toString', 'hasOwnProperty']) expect(parseDtypeName(n), n).toBeNull();
    expect(parseDtypeName(undefined)).toBeNull();
    expect(parseDtypeName(null)).toBeNull();
    expect(TORCH_TO_DTYPE.constructor).toBeUndefined();
    expect('constructor' in TORCH_STORAGE_CLASSES).toBe(false);
    expect(torchElementSize('constructor')).toBeUndefined();
  });

  it('torch names round-trip and every storage torch.save writes maps back to its dtype', () => {
    for (const [d, n] of Object.entries(TORCH_DTYPE_NAMES)) expect(TORCH_TO_DTYPE[n]).toBe(d);
    expect(TORCH_STORAGE_OF).toEqual({ BF16: 'BFloat16Storage', F16: 'HalfStorage', F32: 'FloatStorage', F64: 'DoubleStorage', I64: 'LongStorage', I32: 'IntStorage', I16: 'ShortStorage', I8: 'CharStorage', U8: 'ByteStorage', BOOL: 'BoolStorage' });
    for (const [d, cls] of Object.entries(TORCH_STORAGE_OF)) expect(TORCH_TO_DTYPE[TORCH_STORAGE_CLASSES[cls!]!]).toBe(d);
    expect(torchElementSize('bfloat16')).toBe(2);
    expect(torchElementSize('complex128')).toBe(16);
    expect(torchElementSize('uint3')).toBe(1);
    expect(torchElementSize('nope')).toBeUndefined();
  });

  it('convert --dtype and the synthetic config.json use the same names', () => {
    expect(targetDtype('half')).toBe('F16');
    expect(targetDtype('bfloat16')).toBe('BF16');
    expect(targetDtype('F64')).toBeNull();
    expect(targetDtype('i8')).toBeNull();
    const demo = findModel('demo')!;
    expect(hfConfig(demo, 'F16').torch_dtype).toBe('float16');
    expect(hfConfig(demo).torch_dtype).toBe(TORCH_DTYPE_NAMES[demo.dtype]);
    expect(parseDtypeName(hfConfig(demo, 'F32').torch_dtype as string)).toBe('F32');
    expect(DTYPE_SIZES[parseDtypeName('bf16')!]).toBe(2);
  });
});
