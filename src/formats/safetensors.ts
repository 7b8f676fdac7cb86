/**
 * safetensors headers: strict parsing (every hostile case refused before a byte of data is trusted) and exact
 * building (8-byte little-endian length, JSON padded with spaces to a multiple of 8, `__metadata__` strings only).
 */
import { closeSync } from 'node:fs';
import { ColdstartError } from '../core/errors.js';
import { openInput, readUpTo } from '../core/files.js';
import { DTYPE_SIZES, SAFETENSORS_DTYPE_NAMES, isDtype, type Dtype } from './dtypes.js';

/** Larger headers are refused (the reference implementation's limit is 100 MB too). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Offsets relative to the start of the data section (after the 8-byte length and the header). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** Size of the JSON header in bytes (without the 8-byte length prefix). */
  headerSize: number;
  /** Absolute file offset where the data section starts: 8 + headerSize. */
  dataOffset: number;
  /** Tensors sorted by `begin`. */
  tensors: TensorEntry[];
  metadata: Record<string, string>;
  /** End of the last tensor's data (relative to the data section). */
  dataSize: number;
}

function bad(where: string, what: string): ColdstartError {
  return new ColdstartError('CORRUPT_FILE', `${where}: not a valid safetensors file: ${what}`, {
    hint: 'The file is truncated or was not written by a safetensors writer; re-download or re-convert it.',
  });
}

// ------------------------------------------------------------------------------------------------ the JSON
// The header is read as the reference reader (the `safetensors` Rust crate: serde_json into
// `HashMetadata { __metadata__: Option<HashMap<String, String>>, #[flatten] tensors: HashMap<String, TensorInfo> }`)
// reads it, so the same bytes get the same verdict: strict UTF-8, serde_json's grammar (lone surrogate escapes,
// numbers out of f64 range and nesting deeper than 127 refused), integers only where it wants a usize (`4.0`, `4e0`
// and `-0` are floats to it), duplicate `__metadata__` or duplicate fields of one tensor refused, a duplicated
// tensor name or metadata key kept last (a HashMap insert), unknown tensor fields ignored, `__metadata__: null`
// allowed. test/formats/safetensors-differential.test.ts holds us to it against the real reader.

type JsonValue =
  | { t: 'object'; entries: Array<[string, JsonValue]> }
  | { t: 'array'; items: JsonValue[] }
  | { t: 'string'; v: string }
  | { t: 'number'; raw: string }
  | { t: 'bool' }
  | { t: 'null' };

/** serde_json's recursion limit (128, decremented before it is checked): 127 nested arrays/objects at most. */
const JSON_MAX_DEPTH = 127;
const U64_MAX = (1n << 64n) - 1n;

class HeaderSyntax extends Error {}
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/** A strict JSON reader with serde_json's rules (see above); throws HeaderSyntax naming the offset. */
function parseStrictJson(text: string): JsonValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new HeaderSyntax(`${what} at character ${i}`);
  };
  const ws = () => {
    for (;;) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else return;
    }
  };
  const hex4 = (): number => {
    const h = text.slice(i, i + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) fail('invalid \\u escape');
    i += 4;
    return parseInt(h, 16);
  };
  const str = (): string => {
    i++; // the opening quote
    let out = '';
    let from = i;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        out += text.slice(from, i);
        i++;
        return out;
      }
      if (c < 0x20) fail('control character in a string');
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(from, i);
      const e = text[i + 1];
      i += 2;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const n = hex4();
          if (n >= 0xdc00 && n <= 0xdfff) fail('lone low surrogate in a \\u escape');
          if (n >= 0xd800 && n <= 0xdbff) {
            if (text[i] !== '\\' || text[i + 1] !== 'u') fail('lone high surrogate in a \\u escape');
            i += 2;
            const lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail('lone high surrogate in a \\u escape');
            out += String.fromCharCode(n, lo);
          } else out += String.fromCharCode(n);
          break;
        }
        default:
          fail('invalid escape');
      }
      from = i;
    }
  };
  const value = (depth: number): JsonValue => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      if (depth >= JSON_MAX_DEPTH) fail(`nesting deeper than ${JSON_MAX_DEPTH}`);
      i++;
      ws();
      if (c === '[') {
        const items: JsonValue[] = [];
        if (text[i] === ']') {
          i++;
          return { t: 'array', items };
        }
        for (;;) {
          items.push(value(depth + 1));
          ws();
          if (text[i] === ',') i++;
          else if (text[i] === ']') {
            i++;
            return { t: 'array', items };
          } else fail('expected , or ]');
        }
      }
      const entries: Array<[string, JsonValue]> = [];
      if (text[i] === '}') {
        i++;
        return { t: 'object', entries };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail('expected a string key');
        const k = str();
        ws();
        if (text[i] !== ':') fail('expected :');
        i++;
        entries.push([k, value(depth + 1)]);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return { t: 'object', entries };
        } else fail('expected , or }');
      }
    }
    if (c === '"') return { t: 'string', v: str() };
    for (const [lit, v] of [['true', { t: 'bool' }], ['false', { t: 'bool' }], ['null', { t: 'null' }]] as const) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) fail('expected a value');
    const raw = m![0];
    const next = text[i + raw.length];
    if (next !== undefined && /[0-9.eE+-]/.test(next)) fail('invalid number');
    if (!Number.isFinite(Number(raw))) fail('number out of range');
    i += raw.length;
    return { t: 'number', raw };
  };
  const v = value(0);
  ws();
  if (i < text.length) fail('trailing characters');
  return v;
}

/** A JSON number serde_json gives a usize: a non-negative integer literal (no fraction, exponent or minus) ≤ 2^64−1. */
function usize(v: JsonValue | undefined): bigint | null {
  if (!v || v.t !== 'number' || !/^(?:0|[1-9][0-9]*)$/.test(v.raw)) return null;
  const n = BigInt(v.raw);
  return n <= U64_MAX ? n : null;
}


/**
 * Parses and validates a header. `fileSize` (when known) is checked against the data the header claims:
 * offsets must be contiguous from 0, non-overlapping, match dtype × shape, and end within the file.
 */
export function parseHeader(headerJson: Buffer, where: string, fileSize?: number): SafetensorsHeader {
  const headerSize = headerJson.length;
  let text: string;
  try {
    // fatal: invalid UTF-8 is refused, not replaced; ignoreBOM: a BOM stays a character (and is then not JSON)
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerJson);
  } catch {
    throw bad(where, 'header is not valid UTF-8');
  }
  let raw: JsonValue;
  try {
    raw = parseStrictJson(text);
  } catch (e) {
    if (e instanceof HeaderSyntax) throw bad(where, `header is not JSON (${e.message})`);
    throw e;
  }
  if (raw.t !== 'object') throw bad(where, 'header is not a JSON object');
  let metadata = new Map<string, string>();
  let sawMetadata = false;
  const byName = new Map<string, { name: string; dtype: string; dims: bigint[]; begin: bigint; end: bigint }>();
  for (const [name, v] of raw.entries) {
    if (name === '__metadata__') {
      if (sawMetadata) throw bad(where, '__metadata__ appears twice');
      sawMetadata = true;
      if (v.t === 'null') continue;
      if (v.t !== 'object') throw bad(where, '__metadata__ must be an object of strings');
      metadata = new Map();
      for (const [k, s] of v.entries) {
        if (s.t !== 'string') throw bad(where, `__metadata__.${k} is not a string`);
        metadata.set(k, s.v); // a repeated key keeps the last value, as the reference's HashMap does
      }
      continue;
    }
    if (v.t !== 'object') throw bad(where, `entry "${name}" is not an object`);
    const fields = new Map<string, JsonValue>();
    for (const [k, fv] of v.entries) {
      if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') continue; // unknown fields are ignored, as serde does
      if (fields.has(k)) throw bad(where, `tensor "${name}" has "${k}" twice`);
      fields.set(k, fv);
    }
    const dt = fields.get('dtype');
    if (dt?.t !== 'string' || !SAFETENSORS_DTYPE_NAMES.has(dt.v)) throw bad(where, `tensor "${name}" has unsupported dtype ${dt?.t === 'string' ? JSON.stringify(dt.v) : 'that is not a string'}`);
    const sh = fields.get('shape');
    if (sh?.t !== 'array') throw bad(where, `tensor "${name}" has an invalid shape`);
    const dims = sh.items.map(usize);
    if (dims.some((d) => d === null)) throw bad(where, `tensor "${name}" has an invalid shape (dimensions are non-negative integers)`);
    const off = fields.get('data_offsets');
    const offs = off?.t === 'array' && off.items.length === 2 ? off.items.map(usize) : null;
    if (!offs || offs.some((d) => d === null)) throw bad(where, `tensor "${name}" has invalid data_offsets`);
    // a repeated name replaces the earlier entry, as the reference's HashMap does (its sizes are then never checked)
    byName.set(name, { name, dtype: dt.v, dims: dims as bigint[], begin: offs[0]!, end: offs[1]! });
  }
  // Sizes as the reference computes them: the running product of the dimensions, and the bits (× element size
  // × 8), must each stay within 64 bits.
  const tensors: TensorEntry[] = [];
  for (const r of byName.values()) {
    if (!isDtype(r.dtype)) {
      throw new ColdstartError('UNSUPPORTED', `${where}: tensor "${r.name}" has dtype ${r.dtype}, which coldstart does not load`, { hint: 'Only byte-sized dtypes are loaded (F32, F16, BF16, F8_E4M3, F8_E5M2, integers, BOOL).' });
    }
    const dtype: Dtype = r.dtype;
    let numel = 1n;
    for (const d of r.dims) {
      numel *= d;
      if (numel > U64_MAX) throw bad(where, `tensor "${r.name}" is impossibly large`);
    }
    const bytes = numel * BigInt(DTYPE_SIZES[dtype]);
    if (bytes * 8n > U64_MAX) throw bad(where, `tensor "${r.name}" is impossibly large`);
    if (r.end < r.begin) throw bad(where, `tensor "${r.name}" ends before it begins`);
    if (r.end - r.begin !== bytes) throw bad(where, `tensor "${r.name}" claims ${r.end - r.begin} bytes but ${r.dtype}[${r.dims.join(',')}] needs ${bytes}`);
    const unsafe = (x: bigint) => x > BigInt(Number.MAX_SAFE_INTEGER);
    if (unsafe(r.end) || r.dims.some(unsafe)) {
      throw new ColdstartError('UNSUPPORTED', `${where}: tensor "${r.name}" has a dimension or offset above 2^53, which coldstart cannot hold exactly`);
    }
    tensors.push({ name: r.name, dtype, shape: r.dims.map(Number), begin: Number(r.begin), end: Number(r.end) });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const t of tensors) {
    if (t.begin < cursor) throw bad(where, `tensor "${t.name}" overlaps the previous tensor`);
    if (t.begin > cursor) throw bad(where, `gap before tensor "${t.name}" (offsets must be contiguous)`);
    cursor = t.end;
  }
  const dataOffset = 8 + headerSize;
  if (fileSize !== undefined) {
    if (dataOffset + cursor > fileSize) throw bad(where, `tensor data ends at byte ${dataOffset + cursor} but the file has ${fileSize} bytes (truncated?)`);
    if (dataOffset + cursor < fileSize) throw bad(where, `${fileSize - dataOffset - cursor} trailing bytes after the last tensor`);
  }
  return { headerSize, dataOffset, tensors, metadata: Object.fromEntries(metadata), dataSize: cursor };
}

/** Reads and validates the header of a safetensors file without reading its data. */
export function readHeader(path: string): SafetensorsHeader {
  const { fd, size } = openInput(path, 'is a directory, expected a .safetensors file');
  try {
    if (size < 8) throw bad(path, `file has ${size} bytes, fewer than the 8-byte header length`);
    const len = readUpTo(fd, 0, 8).readBigUInt64LE(0);
    if (len > BigInt(MAX_HEADER_BYTES)) throw bad(path, `header length ${len} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const n = Number(len);
    if (8 + n > size) throw bad(path, `header length ${n} runs past the end of the ${size}-byte file`);
    const hdr = readUpTo(fd, 8, n);
    if (hdr.length < n) throw bad(path, `the file shrank while its header was read`);
    return parseHeader(hdr, path, size);
  } finally {
    closeSync(fd);
  }
}

export interface HeaderTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
}

/**
 * Builds the 8-byte length + JSON header for tensors laid out contiguously in the given order, padded with
 * spaces so the data section starts 8-byte aligned. Returns the bytes and each tensor's data offsets.
 */
export function buildHeader(tensors: readonly HeaderTensor[], metadata?: Record<string, string>): { bytes: Buffer; offsets: Array<[number, number]>; dataSize: number } {
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw new TypeError(`__metadata__.${k} must be a string`);
    obj.__metadata__ = metadata;
  }
  const offsets: Array<[number, number]> = [];
  let cursor = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__' || seen.has(t.name)) throw new TypeError(`duplicate or reserved tensor name "${t.name}"`);
    seen.add(t.name);
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const size = numel * DTYPE_SIZES[t.dtype];
    offsets.push([cursor, cursor + size]);
    obj[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [cursor, cursor + size] };
    cursor += size;
  }
  let json = Buffer.from(JSON.stringify(obj), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const bytes = Buffer.alloc(8 + json.length);
  bytes.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(bytes, 8);
  return { bytes, offsets, dataSize: cursor };
}
