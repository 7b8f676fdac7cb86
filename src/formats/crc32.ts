/**
 * CRC-32 (IEEE, as zip uses it): the one implementation the zip reader (zip.ts) and the torch zip writer
 * (torch-writer.ts) share. zlib.crc32 (Node >= 20.15, native) when present, else the table-driven crc32Portable.
 * `prev` continues a running CRC over several chunks.
 */
import * as zlib from 'node:zlib';

const native = (zlib as unknown as { crc32?: (d: Uint8Array, v?: number) => number }).crc32;
let table: Uint32Array | undefined;

/** Table-driven CRC-32 (exported so tests can check it against zlib's). */
export function crc32Portable(b: Uint8Array, prev = 0): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[i] = c >>> 0;
    }
  }
  let c = ~prev >>> 0;
  for (let i = 0; i < b.length; i++) c = table[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export function crc32(b: Uint8Array, prev = 0): number {
  return native ? native(b, prev) : crc32Portable(b, prev);
}
