/**
 * A strict, read-only zip reader for torch checkpoints: it only locates entries (no extraction to disk, so a
 * hostile name can never become a path). The central directory is cross-checked against every local header;
 * ZIP64, data descriptors, leading bytes before the archive and any entry prefix are understood; duplicate,
 * overlapping, out-of-bounds and path-traversing entries are refused.
 */
import { readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { crc32 } from './crc32.js';
import { ColdstartError } from '../core/errors.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate (only small metadata entries may be compressed). */
  method: number;
  /** Absolute file offset of the entry's data (after the local header). */
  dataOffset: number;
  compressedSize: number;
  size: number;
  crc32: number;
  /** Offset of the local header (the entry occupies [headerOffset, dataOffset + compressedSize (+ descriptor))). */
  headerOffset: number;
}

export interface ZipArchive {
  path: string;
  fileSize: number;
  entries: Map<string, ZipEntry>;
  /** Bytes before the archive proper (self-extracting stubs, prefixed files). */
  prefixBytes: number;
}

export const ZIP_LIMITS = { maxEntries: 1_000_000, maxCentralDirectory: 256 << 20 };

function bad(where: string, what: string): ColdstartError {
  return new ColdstartError('CORRUPT_FILE', `${where}: invalid zip archive: ${what}`, { hint: 'The checkpoint is truncated or damaged; re-download or re-save it.' });
}

export function preadFully(fd: number, buf: Buffer, position: number, where: string): void {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, position + got);
    if (n === 0) throw bad(where, `unexpected end of file at byte ${position + got}`);
    got += n;
  }
}

export function readAt(fd: number, position: number, length: number, where: string): Buffer {
  const b = Buffer.alloc(length);
  preadFully(fd, b, position, where);
  return b;
}

/** True when the file starts like a zip local header (or an empty archive). */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6));
}

/** Finds and validates the end-of-central-directory; returns the archive or null when there is none. */
export function openZip(fd: number, fileSize: number, where: string): ZipArchive | null {
  const tailLen = Math.min(fileSize, 65535 + 22);
  if (tailLen < 22) return null;
  const tail = readAt(fd, fileSize - tailLen, tailLen, where);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === 0x06054b50 && i + 22 + tail.readUInt16LE(i + 20) === tail.length) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) return null;
  const eocdAbs = fileSize - tailLen + eocd;
  let diskNo = tail.readUInt16LE(eocd + 4);
  let cdDisk = tail.readUInt16LE(eocd + 6);
  let count = tail.readUInt16LE(eocd + 10);
  let total = tail.readUInt16LE(eocd + 8);
  let cdSize = tail.readUInt32LE(eocd + 12);
  let cdOffset = tail.readUInt32LE(eocd + 16);
  let cdEndAbs = eocdAbs;
  // ZIP64: a locator right before the EOCD points at the ZIP64 end record.
  if (eocdAbs >= 20) {
    const loc = readAt(fd, eocdAbs - 20, 20, where);
    if (loc.readUInt32LE(0) === 0x07064b50) {
      // miniz (torch's reader) refuses a locator that counts more or fewer than one disk in total
      if (loc.readUInt32LE(16) !== 1) throw bad(where, 'multi-disk archives are not supported (ZIP64 locator)');
      const recClaimed = Number(loc.readBigUInt64LE(8));
      // The record sits just before the locator; its claimed offset may be shifted by leading bytes.
      const recAbs = eocdAbs - 20 - 56;
      if (recAbs < 0) throw bad(where, 'ZIP64 locator without a ZIP64 end record');
      const rec = readAt(fd, recAbs, 56, where);
      if (rec.readUInt32LE(0) !== 0x06064b50) throw bad(where, 'ZIP64 end record signature missing');
      // its size field counts the bytes after itself: at least 44, as miniz requires
      if (rec.readBigUInt64LE(4) < 44n) throw bad(where, 'ZIP64 end record declares a size below its 44-byte minimum');
      if (recClaimed > recAbs) throw bad(where, 'ZIP64 end record offset points past its position');
      diskNo = rec.readUInt32LE(16);
      cdDisk = rec.readUInt32LE(20);
      count = Number(rec.readBigUInt64LE(24));
      total = Number(rec.readBigUInt64LE(32));
      cdSize = Number(rec.readBigUInt64LE(40));
      cdOffset = Number(rec.readBigUInt64LE(48));
      cdEndAbs = recAbs;
    }
  }
  if (diskNo !== 0 || cdDisk !== 0 || count !== total) throw bad(where, 'multi-disk archives are not supported');
  if (count > ZIP_LIMITS.maxEntries) throw bad(where, `${count} entries exceed the ${ZIP_LIMITS.maxEntries}-entry limit`);
  if (cdSize > ZIP_LIMITS.maxCentralDirectory) throw bad(where, 'central directory is too large');
  const cdAbs = cdEndAbs - cdSize;
  if (cdAbs < 0) throw bad(where, 'central directory larger than the file');
  const prefixBytes = cdAbs - cdOffset;
  if (prefixBytes < 0) throw bad(where, 'central directory offset points past its real position (truncated archive?)');
  const cd = readAt(fd, cdAbs, cdSize, where);

  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== 0x02014b50) throw bad(where, `central directory entry ${i} is damaged`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    let csize = cd.readUInt32LE(p + 20);
    let usize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const disk = cd.readUInt16LE(p + 34);
    let lho = cd.readUInt32LE(p + 42);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cd.length) throw bad(where, `central directory entry ${i} runs past the directory`);
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLen);
    let name: string;
    try {
      name = strictUtf8.decode(nameBytes); // torch decodes record names as strict UTF-8
    } catch {
      throw bad(where, `central directory entry ${i} has a name that is not valid UTF-8`);
    }
    if (flags & 0x2061) throw bad(where, `entry "${name}" is encrypted, patch data or has a masked local header (flags 0x${flags.toString(16)}), which torch's reader refuses`);
    // ZIP64 extra field: the 0xFFFFFFFF fields follow in order usize, csize, lho.
    const extra = cd.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen);
    let q = 0;
    while (q + 4 <= extra.length) {
      const id = extra.readUInt16LE(q);
      const len = extra.readUInt16LE(q + 2);
      if (q + 4 + len > extra.length) throw bad(where, `entry "${name}" has a damaged extra field`);
      if (id === 0x0001) {
        let r = q + 4;
        const take = () => {
          if (r + 8 > q + 4 + len) throw bad(where, `entry "${name}" has a short ZIP64 extra field`);
          const v = Number(extra.readBigUInt64LE(r));
          r += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = take();
        if (csize === 0xffffffff) csize = take();
        if (lho === 0xffffffff) lho = take();
      }
      q += 4 + len;
    }
    if (disk !== 0 && disk !== 0xffff) throw bad(where, 'multi-disk archives are not supported');
    checkName(name, nameBytes, where);
    if (entries.has(name)) throw new ColdstartError('HOSTILE_FILE', `${where}: refused: the archive has two entries named "${name}"`, { hint: 'A duplicate entry makes the content ambiguous; re-save the checkpoint.' });
    entries.set(name, { name, method, dataOffset: -1, compressedSize: csize, size: usize, crc32, headerOffset: lho + prefixBytes });
    p = end;
  }
  if (p !== cd.length) throw bad(where, 'central directory size does not match its entries');

  // Local headers: same name, method, sizes (unless a data descriptor follows); entries must not overlap.
  const sorted = [...entries.values()].sort((a, b) => a.headerOffset - b.headerOffset);
  let cursor = prefixBytes;
  for (const e of sorted) {
    if (e.headerOffset < cursor) throw new ColdstartError('HOSTILE_FILE', `${where}: refused: zip entry "${e.name}" overlaps the previous entry`, { hint: 'Overlapping entries are a zip-bomb/ambiguity trick; re-save the checkpoint.' });
    if (e.headerOffset + 30 > cdAbs) throw bad(where, `entry "${e.name}" starts past the end of the data area`);
    const lh = readAt(fd, e.headerOffset, 30, where);
    if (lh.readUInt32LE(0) !== 0x04034b50) throw bad(where, `local header of "${e.name}" is missing`);
    const lflags = lh.readUInt16LE(6);
    if (lflags & 0x61) throw bad(where, `entry "${e.name}" is encrypted or patch data (local header flags 0x${lflags.toString(16)})`);
    const lmethod = lh.readUInt16LE(8);
    let lcsize = lh.readUInt32LE(18);
    let lusize = lh.readUInt32LE(22);
    const lnameLen = lh.readUInt16LE(26);
    const lextraLen = lh.readUInt16LE(28);
    const lname = readAt(fd, e.headerOffset + 30, lnameLen + lextraLen, where);
    if (lname.subarray(0, lnameLen).toString('utf8') !== e.name) throw new ColdstartError('HOSTILE_FILE', `${where}: refused: the local header of "${e.name}" names a different file than the central directory`);
    if (lmethod !== e.method) throw bad(where, `entry "${e.name}": compression method differs between local header and central directory`);
    const lextra = lname.subarray(lnameLen);
    let q = 0;
    while (q + 4 <= lextra.length) {
      const id = lextra.readUInt16LE(q);
      const len = lextra.readUInt16LE(q + 2);
      if (id === 0x0001 && len >= 16 && q + 4 + 16 <= lextra.length) {
        if (lusize === 0xffffffff) lusize = Number(lextra.readBigUInt64LE(q + 4));
        if (lcsize === 0xffffffff) lcsize = Number(lextra.readBigUInt64LE(q + 12));
      }
      q += 4 + len;
    }
    const hasDescriptor = (lflags & 0x8) !== 0;
    if (!hasDescriptor && (lcsize !== e.compressedSize || lusize !== e.size)) {
      throw bad(where, `entry "${e.name}": sizes differ between local header (${lusize}) and central directory (${e.size})`);
    }
    e.dataOffset = e.headerOffset + 30 + lnameLen + lextraLen;
    let endOfEntry = e.dataOffset + e.compressedSize;
    if (e.method === 0 && e.compressedSize !== e.size) throw bad(where, `stored entry "${e.name}" has different compressed and uncompressed sizes`);
    if (e.method !== 0 && e.method !== 8) throw new ColdstartError('UNSUPPORTED', `${where}: entry "${e.name}" uses zip compression method ${e.method}; only stored and deflate are supported`);
    if (hasDescriptor) endOfEntry += descriptorLength(fd, endOfEntry, e, cdAbs, where);
    if (endOfEntry > cdAbs) throw bad(where, `entry "${e.name}" runs past the start of the central directory (truncated?)`);
    cursor = endOfEntry;
  }
  return { path: where, fileSize, entries, prefixBytes };
}

/** Length of the data descriptor after an entry (optionally signed, 32- or 64-bit sizes), checked against the directory. */
function descriptorLength(fd: number, at: number, e: ZipEntry, limit: number, where: string): number {
  const avail = Math.min(24, limit - at);
  if (avail < 12) throw bad(where, `entry "${e.name}": data descriptor missing`);
  const d = readAt(fd, at, avail, where);
  const signed = d.readUInt32LE(0) === 0x08074b50 ? 4 : 0;
  const crc = d.readUInt32LE(signed);
  if (crc !== e.crc32) throw bad(where, `entry "${e.name}": data descriptor CRC differs from the central directory`);
  // 32-bit sizes first, then 64-bit.
  if (signed + 12 <= avail && d.readUInt32LE(signed + 4) === e.compressedSize && d.readUInt32LE(signed + 8) === e.size) return signed + 12;
  if (signed + 20 <= avail && Number(d.readBigUInt64LE(signed + 4)) === e.compressedSize && Number(d.readBigUInt64LE(signed + 12)) === e.size) return signed + 20;
  throw bad(where, `entry "${e.name}": data descriptor sizes differ from the central directory`);
}

function checkName(name: string, raw: Buffer, where: string): void {
  const hostile = (why: string) =>
    new ColdstartError('HOSTILE_FILE', `${where}: refused: zip entry ${JSON.stringify(name)} ${why}`, { hint: 'torch checkpoints only hold relative entries like archive/data/0; this archive was crafted or damaged.' });
  if (raw.includes(0)) throw hostile('contains a NUL byte');
  if (name.length === 0) throw hostile('has an empty name');
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw hostile('is an absolute path');
  if (name.includes('\\')) throw hostile('contains a backslash');
  if (name.split('/').some((c) => c === '..')) throw hostile('escapes the archive (path traversal)');
}

/** Reads a small entry completely (stored or deflate), checking its CRC. */
export function readEntry(fd: number, e: ZipEntry, where: string, maxBytes: number): Buffer {
  if (e.size > maxBytes || e.compressedSize > maxBytes) throw new ColdstartError('HOSTILE_FILE', `${where}: refused: entry "${e.name}" is ${e.size} bytes, over the ${maxBytes}-byte limit for metadata`);
  const raw = readAt(fd, e.dataOffset, e.compressedSize, where);
  let data: Buffer;
  if (e.method === 0) data = raw;
  else {
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      throw bad(where, `entry "${e.name}" does not inflate (${(err as Error).message})`);
    }
  }
  if (data.length !== e.size) throw bad(where, `entry "${e.name}" inflates to ${data.length} bytes, not ${e.size}`);
  if (crc32(data) !== e.crc32) throw bad(where, `entry "${e.name}" fails its CRC check`);
  return data;
}

