/**
 * safetensors headers: strict parsing (every hostile case refused before a byte of data is trusted) and exact
 * building (8-byte little-endian length, JSON padded with spaces to a multiple of 8, `__metadata__` strings only).
 */
import { closeSync } from 'node:fs';
import { ColdstartError } from '../core/errors.js';
import { openInput, readUpTo } from '../core/files.js';
import { DTYPE_SIZES, isDtype, type Dtype } from './dtypes.js';

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

/**
 * Parses and validates a header. `fileSize` (when known) is checked against the data the header claims:
 * offsets must be contiguous from 0, non-overlapping, match dtype × shape, and end within the file.
 */
export function parseHeader(headerJson: Buffer, where: string, fileSize?: number): SafetensorsHeader {
  const headerSize = headerJson.length;
  let raw: unknown;
  try {
    raw = JSON.parse(headerJson.toString('utf8'));
  } catch (e) {
    throw bad(where, `header is not JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad(where, 'header is not a JSON object');
  const metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(where, '__metadata__ must be an object of strings');
      for (const [k, s] of Object.entries(v as Record<string, unknown>)) {
        if (typeof s !== 'string') throw bad(where, `__metadata__.${k} is not a string`);
        metadata[k] = s;
      }
      continue;
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(where, `entry "${name}" is not an object`);
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e.dtype !== 'string' || !isDtype(e.dtype)) throw bad(where, `tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(where, `tensor "${name}" has an invalid shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(where, `tensor "${name}" has invalid data_offsets`);
    const [begin, end] = off as [number, number];
    if (end < begin) throw bad(where, `tensor "${name}" ends before it begins`);
    const shape = e.shape as number[];
    let numel = 1;
    for (const d of shape) {
      numel *= d;
      if (!Number.isSafeInteger(numel)) throw bad(where, `tensor "${name}" is impossibly large`);
    }
    const expected = numel * DTYPE_SIZES[e.dtype];
    if (end - begin !== expected) throw bad(where, `tensor "${name}" claims ${end - begin} bytes but ${e.dtype}${JSON.stringify(shape)} needs ${expected}`);
    tensors.push({ name, dtype: e.dtype, shape, begin, end });
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
  return { headerSize, dataOffset, tensors, metadata, dataSize: cursor };
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
