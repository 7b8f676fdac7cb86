/**
 * What a CRIU image's bytes are made of, read from CRIU's own images (no `crit` needed): each process's
 * pagemap-PID.img says which of its pages sit where in a pages-N.img, its mm-PID.img lists its mappings (VMAs) with
 * CRIU's own kind of each; a page counts as the kind of the mapping that holds it. Pages files only shared memory
 * refers to (pagemap-shmem-*.img) are shared memory; page data nothing here accounts for is `other`, never guessed;
 * every other image file (ghost files, descriptors, registers, metadata) is `files`. The GPU's part is not visible in
 * the mappings (the driver keeps it in anonymous memory): it is the tree's resident growth across the CUDA checkpoint,
 * measured by snapshot and subtracted from the anonymous bytes.
 *
 * Formats (CRIU images/*.proto, criu/include/{magic,image,pagemap}.h): an image starts with IMG_COMMON_MAGIC (or
 * IMG_SERVICE_MAGIC) and its own magic, then entries of a 32-bit little-endian length and a protobuf message.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { ImageKinds } from './manifest.js';

const IMG_COMMON_MAGIC = 0x54564319;
const IMG_SERVICE_MAGIC = 0x55105940;
const PAGEMAP_MAGIC = 0x56084025;
const MM_MAGIC = 0x57492820;
const PAGE = 4096;
const PE_PARENT = 1 << 0;
const PE_PRESENT = 1 << 2;
// vma_entry.status bits (criu/include/image.h).
const VMA_FILE_PRIVATE = 1 << 6;
const VMA_FILE_SHARED = 1 << 7;
const VMA_ANON_SHARED = 1 << 8;
const VMA_ANON_PRIVATE = 1 << 9;
const VMA_AREA_SYSVIPC = 1 << 10;
const VMA_AREA_MEMFD = 1 << 14;
/** The most of one image file parsed (mm/pagemap images are KiB to a few MiB); past it the file counts as unread. */
const MAX_META_BYTES = 64 << 20;

type Fields = Map<number, Array<number | Buffer>>;

/** One protobuf message's fields (varints as numbers — CRIU's addresses stay below 2^53 — and length-delimited as Buffers). */
export function protoFields(b: Buffer): Fields {
  const out: Fields = new Map();
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let k = 0; k < 10; k++) {
      if (i >= b.length) throw new Error('truncated varint');
      const byte = b[i++]!;
      v += (byte & 0x7f) * mul;
      if (!(byte & 0x80)) return v;
      mul *= 128;
    }
    throw new Error('varint too long');
  };
  while (i < b.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    let val: number | Buffer;
    if (wire === 0) val = varint();
    else if (wire === 2) {
      const len = varint();
      if (i + len > b.length) throw new Error('truncated field');
      val = b.subarray(i, i + len);
      i += len;
    } else if (wire === 1) {
      if (i + 8 > b.length) throw new Error('truncated field');
      val = Number(b.readBigUInt64LE(i));
      i += 8;
    } else if (wire === 5) {
      if (i + 4 > b.length) throw new Error('truncated field');
      val = b.readUInt32LE(i);
      i += 4;
    } else throw new Error(`wire type ${wire}`);
    const list = out.get(field);
    if (list) list.push(val);
    else out.set(field, [val]);
  }
  return out;
}

const num = (f: Fields, n: number): number | undefined => {
  const v = f.get(n)?.[0];
  return typeof v === 'number' ? v : undefined;
};

/** The entries of a CRIU image with magic `magic` (each a protobuf message), or null when it is not one. */
export function imageEntries(path: string, magic: number): Buffer[] | null {
  const fd = openSync(path, 'r');
  let b: Buffer;
  try {
    const buf = Buffer.allocUnsafe(MAX_META_BYTES + 1);
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, n);
      if (r <= 0) break;
      n += r;
      if (n > MAX_META_BYTES) return null;
    }
    b = buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
  if (b.length < 8) return null;
  const first = b.readUInt32LE(0);
  if ((first !== IMG_COMMON_MAGIC && first !== IMG_SERVICE_MAGIC) || b.readUInt32LE(4) !== magic) return null;
  const out: Buffer[] = [];
  let i = 8;
  while (i + 4 <= b.length) {
    const len = b.readUInt32LE(i);
    if (i + 4 + len > b.length) return null;
    out.push(b.subarray(i + 4, i + 4 + len));
    i += 4 + len;
  }
  return i === b.length ? out : null;
}

interface Vma {
  start: number;
  end: number;
  status: number;
}

type Kind = 'anonymous' | 'fileMapped' | 'shared' | 'other';

function kindOf(status: number): Kind {
  if (status & (VMA_ANON_SHARED | VMA_AREA_SYSVIPC | VMA_AREA_MEMFD)) return 'shared';
  if (status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED)) return 'fileMapped';
  if (status & VMA_ANON_PRIVATE) return 'anonymous';
  return 'other';
}

/**
 * The image in `dir` (its files with sizes) by kind. `gpuStateBytes`: the host memory the GPU state took (null: no
 * GPU state, or not measured). Never throws for a file it cannot read: that file's bytes count as other, with a note.
 */
export function imageKinds(dir: string, files: ReadonlyArray<{ name: string; bytes: number }>, gpuStateBytes: number | null): ImageKinds {
  const sizes = new Map(files.map((f) => [f.name, f.bytes]));
  const notes: string[] = [];
  const by: Record<Kind, number> = { anonymous: 0, fileMapped: 0, shared: 0, other: 0 };
  const pagesAccounted = new Map<string, number>();
  const account = (pagesFile: string, bytes: number) => pagesAccounted.set(pagesFile, (pagesAccounted.get(pagesFile) ?? 0) + bytes);
  const unread: string[] = [];
  for (const f of files) {
    const m = /^pagemap-(\d+)\.img$/.exec(f.name);
    if (!m) continue;
    const pid = m[1]!;
    try {
      const pm = imageEntries(join(dir, f.name), PAGEMAP_MAGIC);
      const mm = sizes.has(`mm-${pid}.img`) ? imageEntries(join(dir, `mm-${pid}.img`), MM_MAGIC) : null;
      if (!pm || !pm.length || !mm || mm.length !== 1) {
        unread.push(f.name);
        continue;
      }
      const vmas: Vma[] = (protoFields(mm[0]!).get(14) ?? [])
        .filter((v): v is Buffer => Buffer.isBuffer(v))
        .map((v) => {
          const e = protoFields(v);
          return { start: num(e, 1) ?? 0, end: num(e, 2) ?? 0, status: num(e, 7) ?? 0 };
        })
        .sort((a, b) => a.start - b.start);
      const pagesFile = `pages-${num(protoFields(pm[0]!), 1)}.img`;
      for (const entry of pm.slice(1)) {
        const e = protoFields(entry);
        const flags = num(e, 4);
        const present = flags === undefined ? !num(e, 3) : (flags & PE_PRESENT) !== 0 && (flags & PE_PARENT) === 0;
        if (!present) continue;
        const vaddr = num(e, 1) ?? 0;
        const pages = num(e, 5) ?? num(e, 2) ?? 0;
        account(pagesFile, pages * PAGE);
        // Split the run over the mappings it covers (one run never spans two in CRIU's dump, but do not rely on it).
        let at = vaddr;
        const end = vaddr + pages * PAGE;
        for (const v of vmas) {
          if (v.end <= at) continue;
          if (v.start >= end) break;
          const from = Math.max(at, v.start);
          const to = Math.min(end, v.end);
          if (from > at) by.other += from - at;
          by[kindOf(v.status)] += to - from;
          at = to;
        }
        if (at < end) by.other += end - at;
      }
    } catch (e) {
      unread.push(`${f.name} (${(e as Error).message})`);
    }
  }
  if (unread.length) notes.push(`not parsed, counted as other: ${unread.slice(0, 5).join(', ')}${unread.length > 5 ? ` (+${unread.length - 5})` : ''}`);
  const shmemPages = new Set<string>();
  for (const f of files) {
    if (!/^pagemap-shmem-\d+\.img$/.test(f.name)) continue;
    try {
      const pm = imageEntries(join(dir, f.name), PAGEMAP_MAGIC);
      const id = pm?.length ? num(protoFields(pm[0]!), 1) : undefined;
      if (id !== undefined) shmemPages.add(`pages-${id}.img`);
    } catch {
      /* counted below as other */
    }
  }
  let filesBytes = 0;
  for (const f of files) {
    if (!/^pages-\d+\.img$/.test(f.name)) {
      filesBytes += f.bytes;
      continue;
    }
    const accounted = pagesAccounted.get(f.name) ?? 0;
    if (shmemPages.has(f.name)) by.shared += f.bytes;
    else if (accounted !== f.bytes) {
      // The pagemaps say a different size than the file holds: count what they explain, the rest as other.
      by.other += Math.max(0, f.bytes - accounted);
      if (accounted > f.bytes) notes.push(`${f.name}: the pagemaps list ${accounted} bytes, the file holds ${f.bytes}`);
    }
  }
  let anonymousBytes = by.anonymous;
  let gpu = gpuStateBytes;
  if (gpu !== null) {
    if (gpu <= anonymousBytes) anonymousBytes -= gpu;
    else {
      notes.push(`the GPU state measured (${gpu} bytes of resident growth) is more than the anonymous pages (${anonymousBytes}); not subtracted`);
      gpu = null;
    }
  }
  return { gpuStateBytes: gpu, anonymousBytes, fileMappedBytes: by.fileMapped, sharedBytes: by.shared, filesBytes, otherBytes: by.other, notes };
}
