/**
 * Streaming writer for PyTorch's zip checkpoint format (what `torch.save` writes since 1.6): an uncompressed
 * zip whose entries live under one top-level folder, `<archive>/data.pkl` (a protocol-2 pickle of an
 * OrderedDict name → `torch._utils._rebuild_tensor_v2(persistent storage, offset, size, stride, False,
 * OrderedDict())`), `<archive>/byteorder`, one `<archive>/data/<key>` record per storage, `<archive>/version`
 * and `<archive>/.data/serialization_id`. Record data starts 64-byte aligned (like torch's writer, so
 * `mmap=True` works), ZIP64 is used for records or offsets past 4 GiB, and the pickle uses only globals that
 * `torch.load(weights_only=True)` allows. Tensor bytes are streamed from a caller's source in bounded
 * chunks; each record's CRC-32 is patched into its local header after the data is written.
 */
import { writeSync, write as fsWrite } from 'node:fs';
import { crc32 } from './crc32.js';
import { randomBytes } from 'node:crypto';
import { ColdstartError } from '../core/errors.js';
import { DTYPE_SIZES, TORCH_STORAGE_OF, type Dtype } from './dtypes.js';

export interface TorchTensor {
  name: string;
  dtype: Dtype;
  shape: number[];
}

/** Fills `chunk` with the bytes of tensor `index` starting at byte `offset` of that tensor. */
export type TensorSource = (index: number, chunk: Buffer, offset: number) => Promise<void> | void;

// ------------------------------------------------------------------------------------------------ pickle
class PickleBuilder {
  private parts: Buffer[] = [];
  op(...bytes: number[]): this {
    this.parts.push(Buffer.from(bytes));
    return this;
  }
  global(module: string, name: string): this {
    this.parts.push(Buffer.from(`c${module}\n${name}\n`, 'utf8'));
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    const h = Buffer.alloc(5);
    h[0] = 0x58; // BINUNICODE
    h.writeUInt32LE(b.length, 1);
    this.parts.push(h, b);
    return this;
  }
  int(n: number): this {
    if (!Number.isSafeInteger(n)) throw new RangeError(`pickle int out of range: ${n}`);
    if (n >= 0 && n < 0x100) return this.op(0x4b, n); // BININT1
    if (n >= 0 && n < 0x10000) return this.op(0x4d, n & 0xff, n >> 8); // BININT2
    if (n >= -0x80000000 && n < 0x80000000) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // BININT
      b.writeInt32LE(n, 1);
      this.parts.push(b);
      return this;
    }
    // LONG1: little-endian two's complement, shortest form.
    let v = BigInt(n);
    const bytes: number[] = [];
    for (;;) {
      const byte = Number(v & 0xffn);
      bytes.push(byte);
      v >>= 8n;
      if ((v === 0n && (byte & 0x80) === 0) || (v === -1n && (byte & 0x80) !== 0)) break;
    }
    return this.op(0x8a, bytes.length, ...bytes);
  }
  tuple(items: number[]): this {
    if (items.length === 0) return this.op(0x29); // EMPTY_TUPLE
    this.op(0x28); // MARK
    for (const i of items) this.int(i);
    return this.op(0x74); // TUPLE
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** The data.pkl bytes for tensors stored one per storage, keys "0", "1", …. */
export function buildStateDictPickle(tensors: readonly TorchTensor[]): Buffer {
  const p = new PickleBuilder();
  p.op(0x80, 2); // PROTO 2
  p.global('collections', 'OrderedDict').op(0x29, 0x52); // OrderedDict()
  for (let start = 0; start < tensors.length; start += 1000) {
    p.op(0x28); // MARK
    tensors.slice(start, start + 1000).forEach((t, j) => {
      const key = start + j;
      const storage = TORCH_STORAGE_OF[t.dtype];
      if (!storage) throw new ColdstartError('UNSUPPORTED', `tensor "${t.name}": dtype ${t.dtype} cannot be written to a torch checkpoint`);
      const numel = t.shape.reduce((a, b) => a * b, 1);
      const stride: number[] = [];
      let acc = 1;
      for (let d = t.shape.length - 1; d >= 0; d--) {
        stride.unshift(acc);
        acc *= t.shape[d]!;
      }
      p.str(t.name);
      p.global('torch._utils', '_rebuild_tensor_v2');
      p.op(0x28); // MARK (args)
      p.op(0x28).str('storage').global('torch', storage).str(String(key)).str('cpu').int(numel).op(0x74, 0x51); // (…) TUPLE BINPERSID
      p.int(0);
      p.tuple(t.shape);
      p.tuple(stride);
      p.op(0x89); // NEWFALSE (requires_grad)
      p.global('collections', 'OrderedDict').op(0x29, 0x52); // backward hooks: OrderedDict()
      p.op(0x74, 0x52); // TUPLE REDUCE
    });
    p.op(0x75); // SETITEMS
  }
  p.op(0x2e); // STOP
  return p.build();
}

// ------------------------------------------------------------------------------------------------ zip
const U32_MAX = 0xffffffff;
const ALIGN = 64;
const DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01, as torch writes

interface CentralEntry {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}


function writeAt(fd: number, buf: Buffer, pos: number): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off, pos + off);
}

function writeAtAsync(fd: number, buf: Buffer, len: number, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number) => {
      if (off >= len) return resolve();
      fsWrite(fd, buf, off, len - off, pos + off, (err, n) => (err ? reject(err) : step(off + n)));
    };
    step(0);
  });
}

export interface TorchWriteOptions {
  /** Top-level folder name inside the zip (torch uses the file's stem); default "archive". */
  archiveName?: string;
  /** Streaming chunk size; memory stays at about two chunks. Default 16 MiB. */
  chunkBytes?: number;
  signal?: AbortSignal;
  onBytes?: (n: number) => void;
}

/**
 * Writes a complete torch zip checkpoint to `fd` (a fresh, empty file the caller renames into place).
 * Returns the file size. Memory use is bounded by `chunkBytes`, whatever the tensor sizes.
 */
export async function writeTorchCheckpoint(fd: number, tensors: readonly TorchTensor[], source: TensorSource, opts: TorchWriteOptions = {}): Promise<number> {
  const archive = opts.archiveName ?? 'archive';
  if (!/^[\w.-]+$/.test(archive)) throw new TypeError(`invalid archive name ${JSON.stringify(archive)}`);
  const chunkBytes = opts.chunkBytes ?? 16 << 20;
  const entries: CentralEntry[] = [];
  let pos = 0;

  const header = (name: Buffer, size: number, crc: number): Buffer => {
    const zip64 = size >= U32_MAX;
    const z64 = zip64 ? 20 : 0;
    const base = 30 + name.length + z64;
    // Pad with an extra field ("FB", as torch does) so the data starts on a 64-byte boundary.
    let pad = (ALIGN - ((pos + base) % ALIGN)) % ALIGN;
    if (pad > 0 && pad < 4) pad += ALIGN;
    const h = Buffer.alloc(base + pad);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(zip64 ? 45 : 20, 4);
    h.writeUInt16LE(0, 6);
    h.writeUInt16LE(0, 8);
    h.writeUInt16LE(0, 10);
    h.writeUInt16LE(DOS_DATE, 12);
    h.writeUInt32LE(crc >>> 0, 14);
    h.writeUInt32LE(zip64 ? U32_MAX : size, 18);
    h.writeUInt32LE(zip64 ? U32_MAX : size, 22);
    h.writeUInt16LE(name.length, 26);
    h.writeUInt16LE(z64 + pad, 28);
    name.copy(h, 30);
    let e = 30 + name.length;
    if (zip64) {
      h.writeUInt16LE(0x0001, e);
      h.writeUInt16LE(16, e + 2);
      h.writeBigUInt64LE(BigInt(size), e + 4);
      h.writeBigUInt64LE(BigInt(size), e + 12);
      e += 20;
    }
    if (pad > 0) {
      h.writeUInt16LE(0x4246, e);
      h.writeUInt16LE(pad - 4, e + 2);
    }
    return h;
  };

  const addSmall = (rel: string, data: Buffer) => {
    const name = Buffer.from(`${archive}/${rel}`);
    const crc = crc32(data);
    const offset = pos;
    const h = header(name, data.length, crc);
    writeAt(fd, h, pos);
    pos += h.length;
    writeAt(fd, data, pos);
    pos += data.length;
    entries.push({ name, crc, size: data.length, offset });
  };

  addSmall('data.pkl', buildStateDictPickle(tensors));
  addSmall('byteorder', Buffer.from('little'));

  const bufs = [Buffer.allocUnsafe(chunkBytes), Buffer.allocUnsafe(chunkBytes)];
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i]!;
    const size = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZES[t.dtype];
    const name = Buffer.from(`${archive}/data/${i}`);
    const offset = pos;
    const h = header(name, size, 0);
    writeAt(fd, h, pos);
    pos += h.length;
    let crc = 0;
    let pending: Promise<void> = Promise.resolve();
    let k = 0;
    for (let done = 0; done < size; k++) {
      opts.signal?.throwIfAborted();
      const n = Math.min(chunkBytes, size - done);
      const buf = bufs[k & 1]!.subarray(0, n);
      await source(i, buf, done);
      crc = crc32(buf, crc);
      await pending; // at most one write in flight while the next chunk is produced
      pending = writeAtAsync(fd, buf, n, pos + done);
      done += n;
      opts.onBytes?.(n);
    }
    await pending;
    const c = Buffer.alloc(4);
    c.writeUInt32LE(crc >>> 0, 0);
    writeAt(fd, c, offset + 14);
    pos += size;
    entries.push({ name, crc, size, offset });
  }

  addSmall('version', Buffer.from('3\n'));
  addSmall('.data/serialization_id', Buffer.from(randomBytes(20).toString('hex').slice(0, 40)));

  // Central directory.
  const cdStart = pos;
  for (const e of entries) {
    const needSize = e.size >= U32_MAX;
    const needOff = e.offset >= U32_MAX;
    const extraLen = needSize || needOff ? 4 + (needSize ? 16 : 0) + (needOff ? 8 : 0) : 0;
    const c = Buffer.alloc(46 + e.name.length + extraLen);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(45, 4);
    c.writeUInt16LE(extraLen ? 45 : 20, 6);
    c.writeUInt16LE(0, 8);
    c.writeUInt16LE(0, 10);
    c.writeUInt16LE(0, 12);
    c.writeUInt16LE(DOS_DATE, 14);
    c.writeUInt32LE(e.crc >>> 0, 16);
    c.writeUInt32LE(needSize ? U32_MAX : e.size, 20);
    c.writeUInt32LE(needSize ? U32_MAX : e.size, 24);
    c.writeUInt16LE(e.name.length, 28);
    c.writeUInt16LE(extraLen, 30);
    c.writeUInt16LE(0, 32);
    c.writeUInt16LE(0, 34);
    c.writeUInt16LE(0, 36);
    c.writeUInt32LE(0, 38);
    c.writeUInt32LE(needOff ? U32_MAX : e.offset, 42);
    e.name.copy(c, 46);
    if (extraLen) {
      let x = 46 + e.name.length;
      c.writeUInt16LE(0x0001, x);
      c.writeUInt16LE(extraLen - 4, x + 2);
      x += 4;
      if (needSize) {
        c.writeBigUInt64LE(BigInt(e.size), x);
        c.writeBigUInt64LE(BigInt(e.size), x + 8);
        x += 16;
      }
      if (needOff) c.writeBigUInt64LE(BigInt(e.offset), x);
    }
    writeAt(fd, c, pos);
    pos += c.length;
  }
  const cdSize = pos - cdStart;
  const zip64 = cdStart >= U32_MAX || entries.length >= 0xffff || cdSize >= U32_MAX;
  if (zip64) {
    const z = Buffer.alloc(56 + 20);
    z.writeUInt32LE(0x06064b50, 0);
    z.writeBigUInt64LE(44n, 4);
    z.writeUInt16LE(45, 12);
    z.writeUInt16LE(45, 14);
    z.writeUInt32LE(0, 16);
    z.writeUInt32LE(0, 20);
    z.writeBigUInt64LE(BigInt(entries.length), 24);
    z.writeBigUInt64LE(BigInt(entries.length), 32);
    z.writeBigUInt64LE(BigInt(cdSize), 40);
    z.writeBigUInt64LE(BigInt(cdStart), 48);
    z.writeUInt32LE(0x07064b50, 56);
    z.writeUInt32LE(0, 60);
    z.writeBigUInt64LE(BigInt(pos), 64);
    z.writeUInt32LE(1, 72);
    writeAt(fd, z, pos);
    pos += z.length;
  }
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0, 4);
  end.writeUInt16LE(0, 6);
  end.writeUInt16LE(Math.min(entries.length, 0xffff), 8);
  end.writeUInt16LE(Math.min(entries.length, 0xffff), 10);
  end.writeUInt32LE(Math.min(cdSize, U32_MAX), 12);
  end.writeUInt32LE(zip64 ? U32_MAX : cdStart, 16);
  end.writeUInt16LE(0, 20);
  writeAt(fd, end, pos);
  pos += end.length;
  return pos;
}
