/**
 * Seeded mutations of real torch.save outputs for the differential fuzzer: bit flips, opcode insertion and
 * deletion and FRAME-length edits inside the pickle (for zip inputs the archive is rebuilt around the mutated
 * data.pkl with correct CRCs, so the mutation reaches the unpickler), and raw zip-structure edits (header fields,
 * central directory, truncation, appended bytes).
 */
import { crc32 } from '../../src/formats/crc32.js';

/** mulberry32: small, seedable, deterministic. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Entry {
  name: string;
  data: Buffer;
}

/** Reads a stored/deflated zip's entries through its central directory (the seeds are torch.save outputs). */
export function unzip(b: Buffer): Entry[] {
  const eocd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const n = b.readUInt16LE(eocd + 10);
  let p = b.readUInt32LE(eocd + 16);
  const out: Entry[] = [];
  for (let i = 0; i < n; i++) {
    const nameLen = b.readUInt16LE(p + 28);
    const extraLen = b.readUInt16LE(p + 30);
    const commentLen = b.readUInt16LE(p + 32);
    const size = b.readUInt32LE(p + 24);
    const lho = b.readUInt32LE(p + 42);
    const name = b.subarray(p + 46, p + 46 + nameLen).toString('utf8');
    const start = lho + 30 + b.readUInt16LE(lho + 26) + b.readUInt16LE(lho + 28);
    out.push({ name, data: Buffer.from(b.subarray(start, start + size)) });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** A stored zip (no data descriptors, correct CRCs), entries in order, 64-byte aligned data like torch's writer. */
export function zip(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const pad = (64 - ((off + 30 + name.length + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0xfb5e, 0);
    extra.writeUInt16LE(pad, 2);
    const crc = crc32(e.data);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(e.data.length, 18);
    lh.writeUInt32LE(e.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(extra.length, 28);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(20, 4);
    ch.writeUInt16LE(20, 6);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(e.data.length, 20);
    ch.writeUInt32LE(e.data.length, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt32LE(off, 42);
    central.push(ch, name);
    parts.push(lh, name, extra, e.data);
    off += 30 + name.length + extra.length + e.data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(off, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** Opcodes (with a plausible argument) to insert: containers, memo, frames, globals, calls, the refused ones. */
const INSERTS: Buffer[] = [
  '}', ']', ')', '(', 't', 'u', 'e', 'a', 's', 'R', '\x81', 'b', '0', '1', '2', 'N', '\x88', '\x89', '.', 'Q',
  'q\x07', 'h\x00', 'h\x07', 'r\x00\x00\x00\x00', 'j\x00\x00\x00\x00', '\x94', 'K\x05', 'J\xff\xff\xff\x7f', 'M\x00\x01',
  '\x8a\x01\x01', '\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x80', 'G\x3f\xf0\x00\x00\x00\x00\x00\x00', 'X\x01\x00\x00\x00w', '\x8c\x01w',
  'C\x01x', '\x95\x05\x00\x00\x00\x00\x00\x00\x00', 'ctorch\nFloatStorage\n', 'cposix\nsystem\n', 'cbuiltins\ngetattr\n',
  'ccollections\nOrderedDict\n', 'ctorch._utils\n_rebuild_tensor_v2\n', '\x93', 'i', 'o', '\x92', '\x82\x01', '\x8f', '\x90', '\x91', 'd', 'l',
].map((s) => Buffer.from(s, 'latin1'));

export type MutationKind = 'bitflip' | 'insert' | 'delete' | 'frame' | 'zip';

function mutatePickle(p: Buffer, r: () => number, kind: MutationKind): Buffer {
  const at = Math.floor(r() * p.length);
  if (kind === 'bitflip') {
    const b = Buffer.from(p);
    const k = 1 + Math.floor(r() * 3);
    for (let i = 0; i < k; i++) {
      const j = Math.floor(r() * b.length);
      b[j]! ^= 1 << Math.floor(r() * 8);
    }
    return b;
  }
  if (kind === 'insert') return Buffer.concat([p.subarray(0, at), INSERTS[Math.floor(r() * INSERTS.length)]!, p.subarray(at)]);
  if (kind === 'delete') return Buffer.concat([p.subarray(0, at), p.subarray(Math.min(p.length, at + 1 + Math.floor(r() * 4)))]);
  // frame: change the first FRAME's length, or insert a new FRAME with a random length
  const b = Buffer.from(p);
  const f = b.indexOf(0x95);
  if (f >= 0 && f + 9 <= b.length && r() < 0.7) {
    const n = Number(b.readBigUInt64LE(f + 1));
    const d = Math.floor(r() * 40) - 20;
    b.writeBigUInt64LE(BigInt(Math.max(0, n + d)), f + 1);
    return b;
  }
  const len = Buffer.alloc(9);
  len[0] = 0x95;
  len.writeBigUInt64LE(BigInt(Math.floor(r() * 64)), 1);
  return Buffer.concat([b.subarray(0, at), len, b.subarray(at)]);
}

/** One mutant of `seed` (a whole checkpoint file). */
export function mutate(seed: Buffer, r: () => number): { kind: MutationKind; bytes: Buffer } {
  const kinds: MutationKind[] = ['bitflip', 'insert', 'delete', 'frame', 'zip'];
  const kind = kinds[Math.floor(r() * kinds.length)]!;
  const isZip = seed.readUInt32LE(0) === 0x04034b50;
  if (!isZip) {
    if (kind === 'zip') {
      // legacy: append or truncate bytes at the end (storage table edits)
      return { kind, bytes: r() < 0.5 ? seed.subarray(0, seed.length - 1 - Math.floor(r() * 8)) : Buffer.concat([seed, Buffer.from('PK\x05\x06'), Buffer.alloc(18)]) };
    }
    // the legacy pickles are the first ~hundreds of bytes: mutate there, keep the storages
    const head = Math.min(seed.length, 1024);
    return { kind, bytes: Buffer.concat([mutatePickle(seed.subarray(0, head), r, kind), seed.subarray(head)]) };
  }
  if (kind === 'zip') {
    const b = Buffer.from(seed);
    const cd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    const region = r() < 0.5 && cd > 0 ? [cd, b.length] : [0, 64];
    const j = region[0]! + Math.floor(r() * (region[1]! - region[0]!));
    b[j] = Math.floor(r() * 256);
    return { kind, bytes: r() < 0.1 ? b.subarray(0, Math.floor(r() * b.length)) : b };
  }
  const entries = unzip(seed);
  const pk = entries.find((e) => e.name.endsWith('/data.pkl'))!;
  pk.data = mutatePickle(pk.data, r, kind);
  return { kind, bytes: zip(entries) };
}
