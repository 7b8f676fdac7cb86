import { closeSync } from 'node:fs';
import { ColdstartError } from '../core/errors.js';
import { openInput, readUpTo } from '../core/files.js';

/**
 * What a top-level walk of an ONNX ModelProto tells before onnxruntime sees the file: enough to refuse
 * a non-ONNX or truncated file with a precise message, and to name the opsets it needs. The walk reads
 * only field tags and lengths (the graph, field 7, is skipped by its length), so it costs a few reads
 * whatever the model size, and it never allocates more than the small fields it decodes.
 */
export interface OnnxHeader {
  format: 'onnx' | 'ort';
  irVersion: number | null;
  producerName: string | null;
  producerVersion: string | null;
  /** domain ('' = ai.onnx) → opset version. */
  opsets: Record<string, number>;
  sizeBytes: number;
}

const MAX_SMALL_FIELD = 1 << 20;
/** ModelProto's field numbers (onnx.proto3): anything else at the top level means this is not an ONNX model. */
const MODEL_FIELDS = new Set([1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25, 26]);

/** Decodes a base-128 varint from `buf` at `off`; null if it runs off the end or is longer than 10 bytes. */
export function readVarint(buf: Uint8Array, off: number): { value: number; next: number } | null {
  let value = 0;
  let mul = 1;
  for (let i = 0; i < 10; i++) {
    if (off + i >= buf.length) return null;
    const b = buf[off + i]!;
    value += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) return { value, next: off + i + 1 };
  }
  return null;
}

/** Parses an OperatorSetIdProto (domain = 1, version = 2). */
function parseOpset(buf: Buffer): { domain: string; version: number } {
  let domain = '';
  let version = 0;
  let off = 0;
  while (off < buf.length) {
    const t = readVarint(buf, off);
    if (!t) break;
    const field = Math.floor(t.value / 8);
    const wire = t.value & 7;
    off = t.next;
    if (wire === 0) {
      const v = readVarint(buf, off);
      if (!v) break;
      if (field === 2) version = v.value;
      off = v.next;
    } else if (wire === 2) {
      const l = readVarint(buf, off);
      if (!l) break;
      if (field === 1) domain = buf.subarray(l.next, l.next + l.value).toString('utf8');
      off = l.next + l.value;
    } else if (wire === 1) off += 8;
    else if (wire === 5) off += 4;
    else break;
  }
  return { domain, version };
}

/**
 * Walks the top level of an ONNX protobuf file. Throws CORRUPT_FILE naming the byte offset when the file is
 * empty, is not a protobuf message, or is truncated (a field claims more bytes than remain).
 */
export function readOnnxHeader(path: string): OnnxHeader {
  const { fd, size } = openInput(path, 'is a directory, expected an .onnx file');
  try {
    const notOnnx = (why: string) =>
      new ColdstartError('CORRUPT_FILE', `${path}: not an ONNX model (${why})`, { hint: 'Pass an .onnx file written by an exporter (torch.onnx.export, tf2onnx, optimum…).' });
    if (size === 0) throw notOnnx('empty file');
    const head = readUpTo(fd, 0, Math.min(size, 16));
    // ORT's own flatbuffer format: 4-byte root offset, then the file identifier "ORTM".
    if (head.length >= 8 && head.subarray(4, 8).toString('latin1') === 'ORTM') {
      return { format: 'ort', irVersion: null, producerName: null, producerVersion: null, opsets: {}, sizeBytes: size };
    }
    const out: OnnxHeader = { format: 'onnx', irVersion: null, producerName: null, producerVersion: null, opsets: {}, sizeBytes: size };
    let pos = 0;
    let fields = 0;
    let sawGraph = false;
    while (pos < size) {
      const win = readUpTo(fd, pos, Math.min(24, size - pos));
      const tag = readVarint(win, 0);
      const at = `at byte ${pos}`;
      if (!tag) throw !sawGraph && out.irVersion === null ? notOnnx('no protobuf field at the start') : new ColdstartError('CORRUPT_FILE', `${path}: truncated ONNX model (field header cut off ${at} of ${size})`);
      const field = Math.floor(tag.value / 8);
      const wire = tag.value & 7;
      if (field === 0 || wire === 3 || wire === 4 || wire === 6 || wire === 7 || !MODEL_FIELDS.has(field)) {
        throw !sawGraph && out.irVersion === null
          ? notOnnx(`bytes ${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')} do not start an ONNX ModelProto`)
          : new ColdstartError('CORRUPT_FILE', `${path}: corrupt ONNX model (invalid protobuf field ${field}/${wire} ${at})`);
      }
      let next: number;
      if (wire === 0) {
        const v = readVarint(win, tag.next);
        if (!v) throw new ColdstartError('CORRUPT_FILE', `${path}: truncated ONNX model (value cut off ${at})`);
        if (field === 1) out.irVersion = v.value;
        next = pos + v.next;
      } else if (wire === 1 || wire === 5) {
        next = pos + tag.next + (wire === 1 ? 8 : 4);
      } else {
        const l = readVarint(win, tag.next);
        if (!l) throw new ColdstartError('CORRUPT_FILE', `${path}: truncated ONNX model (length cut off ${at})`);
        const start = pos + l.next;
        next = start + l.value;
        if (next > size) {
          const what = field === 7 ? 'graph' : `field ${field}`;
          throw new ColdstartError('CORRUPT_FILE', `${path}: truncated ONNX model (${what} ${at} needs ${l.value} bytes, only ${size - start} remain)`, {
            hint: 'The file was cut short (interrupted download or copy?); fetch or export it again.',
          });
        }
        if (field === 7) sawGraph = true;
        if ((field === 2 || field === 3 || field === 8) && l.value <= MAX_SMALL_FIELD) {
          const body = readUpTo(fd, start, l.value);
          if (field === 2) out.producerName = body.toString('utf8');
          else if (field === 3) out.producerVersion = body.toString('utf8');
          else {
            const o = parseOpset(body);
            out.opsets[o.domain] = o.version;
          }
        }
      }
      if (next > size) throw new ColdstartError('CORRUPT_FILE', `${path}: truncated ONNX model (fixed-size field cut off ${at})`);
      pos = next;
      fields++;
    }
    if (!sawGraph) throw notOnnx('no graph field; is this an ONNX model?');
    if (out.irVersion === null) throw notOnnx('no ir_version field');
    return out;
  } finally {
    closeSync(fd);
  }
}

