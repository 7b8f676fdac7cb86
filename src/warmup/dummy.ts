import { ColdstartError } from '../core/errors.js';

/**
 * Dummy inputs for a warmup run, shared by the ONNX back-end and KServe v2 servers: shapes resolved from
 * the model's metadata (fixed dims as they are, symbolic ones from `--shape` or defaults by name) and
 * deterministic contents (ids 1, masks 1, token types 0, floats from a fixed LCG in [-1, 1)).
 */
export type Shapes = Record<string, number[]>;

/** A symbolic dimension's default when `--shape` does not set it: batch-like 1, sequence-like 16, else 1. */
export function defaultDim(name: string): number {
  const n = name.toLowerCase();
  if (/batch|^n$|^b$|num_images/.test(n)) return 1;
  if (/seq|len|token|time|step|frame|sample|position|past|total/.test(n)) return 16;
  if (/height|width|^h$|^w$/.test(n)) return 224;
  return 1;
}

export const MAX_DUMMY_ELEMENTS = 1 << 28;

/**
 * Resolves a shape: `--shape INPUT=1x128` replaces an input's whole shape; `--shape DIM=128` sets a symbolic
 * dimension by name everywhere; otherwise defaults. Returns the shape and, for the report, where each came from.
 */
export function resolveShape(input: string, dims: ReadonlyArray<number | string | null>, shapes: Shapes): { shape: number[]; source: string } {
  const whole = shapes[input];
  if (whole) {
    if (whole.length !== dims.length) {
      throw new ColdstartError('BAD_FLAG', `--shape ${input}=${whole.join('x')}: the model's input "${input}" has rank ${dims.length} (${dims.map((d) => d ?? '?').join('x') || 'scalar'}), got rank ${whole.length}`);
    }
    dims.forEach((d, i) => {
      if (typeof d === 'number' && d >= 0 && d !== whole[i]) {
        throw new ColdstartError('BAD_FLAG', `--shape ${input}=${whole.join('x')}: dimension ${i} of "${input}" is fixed at ${d}, got ${whole[i]}`);
      }
    });
    return { shape: [...whole], source: '--shape' };
  }
  let source = 'model';
  const shape = dims.map((d) => {
    if (typeof d === 'number' && d >= 0) return d;
    const name = typeof d === 'string' ? d : '';
    const byName = name ? shapes[name] : undefined;
    if (byName) {
      if (byName.length !== 1) throw new ColdstartError('BAD_FLAG', `--shape ${name}=${byName.join('x')}: "${name}" is a dimension name, give one size (e.g. ${name}=128)`);
      source = '--shape';
      return byName[0]!;
    }
    if (source === 'model') source = 'defaults';
    return defaultDim(name);
  });
  const elements = shape.reduce((a, b) => a * b, 1);
  if (elements > MAX_DUMMY_ELEMENTS) {
    throw new ColdstartError('BAD_FLAG', `--shape: input "${input}" would have ${elements} elements (${shape.join('x')}); more than ${MAX_DUMMY_ELEMENTS} is refused`);
  }
  return { shape, source };
}

/** Parses repeated `--shape name=1x128` flags (also `name=1,128`; `name=` alone means a scalar). */
export function parseShapeFlags(specs: readonly string[]): Shapes {
  const out: Shapes = {};
  for (const spec of specs) {
    for (const part of spec.split(/\s+/).filter(Boolean)) {
      const eq = part.indexOf('=');
      if (eq <= 0) throw new ColdstartError('BAD_FLAG', `--shape: expected NAME=DIMS like input_ids=1x128, got ${JSON.stringify(part)}`);
      const name = part.slice(0, eq);
      const text = part.slice(eq + 1);
      const dims = text === '' ? [] : text.split(/[x,×]/).map((d) => Number(d));
      if (dims.some((d) => !Number.isInteger(d) || d < 1 || d > 1 << 24)) {
        throw new ColdstartError('BAD_FLAG', `--shape ${name}: expected positive integer dimensions like 1x128, got ${JSON.stringify(text)}`);
      }
      out[name] = dims;
    }
  }
  return out;
}

/** The integer every element of an integer input gets (ids 1, masks 1, token types 0, else 1). */
export function intFill(input: string): number {
  const n = input.toLowerCase();
  if (/token_type|segment/.test(n)) return 0;
  return 1;
}

/** Deterministic floats in [-1, 1) (a 32-bit LCG), so repeated warmups feed identical inputs. */
export function fillFloats(out: { length: number; [i: number]: number }, seed = 12345): void {
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
}

/** float32 → IEEE half bits (round to nearest even), for float16 inputs. */
export function toHalf(f: number): number {
  const buf = new DataView(new ArrayBuffer(4));
  buf.setFloat32(0, f);
  const x = buf.getUint32(0);
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  const mant = x & 0x7fffff;
  if (exp <= 0) return sign;
  if (exp >= 31) return sign | 0x7c00;
  let h = sign | (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return h;
}
