/**
 * native/src/fileio.cc bounds (issue #11): doubles from JS are validated before they become integers, and every
 * size/offset product and sum is overflow-checked, so a crafted plan is refused instead of wrapping around.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireNative, type FileOp } from '../../src/native.js';

const native = requireNative('test');
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'coldstart-fileio-'));
  writeFileSync(join(dir, 'src.bin'), Buffer.alloc(64, 7));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base: FileOp = { src: 0, srcOffset: 0, srcBytes: 64, dst: 0, srcDtype: 'F32', dstDtype: 'F32', shape: [16], strides: [1], storageOffset: 0, byteswap: false };
const run = (op: Partial<FileOp>, extra: Record<string, unknown> = {}) => {
  writeFileSync(join(dir, 'out.bin'), ''); // the caller creates the output; fileioRun opens it
  return native.fileioRun({ output: join(dir, 'out.bin'), sources: [join(dir, 'src.bin')], ops: [{ ...base, ...op }], fsync: false, ...extra } as never);
};

describe('fileioRun argument and overflow checks', () => {
  it('copies a valid op (the baseline the refusals below differ from)', async () => {
    await run({});
    expect(statSync(join(dir, 'out.bin')).size).toBe(64);
  });
  for (const [what, op] of [
    ['NaN offset', { srcOffset: Number.NaN }],
    ['Infinity bytes', { srcBytes: Number.POSITIVE_INFINITY }],
    ['negative offset', { srcOffset: -8 }],
    ['fractional dst', { dst: 1.5 }],
    ['offset beyond 2^53', { srcOffset: 2 ** 60 }],
    ['negative storage offset', { storageOffset: -1 }],
    ['NaN in the shape', { shape: [Number.NaN] }],
    ['fractional stride', { strides: [0.5] }],
  ] as Array<[string, Partial<FileOp>]>) {
    it(`refuses ${what} before using it`, async () => {
      await expect(Promise.resolve().then(() => run(op))).rejects.toThrow(/fileioRun/);
    });
  }
  it('refuses products that would overflow 64 bits (huge shape × stride) as a view past its storage', async () => {
    await expect(run({ shape: [2 ** 40, 2 ** 40], strides: [2 ** 40, 1] })).rejects.toThrow(/past its storage|fileioRun/);
    await expect(run({ shape: [2 ** 52, 2 ** 52, 2 ** 52], strides: [0, 0, 0] })).rejects.toThrow(/past its storage|fileioRun/);
  });
  it('refuses a storage whose offset + length wraps or passes the end of the file', async () => {
    await expect(run({ srcOffset: 2 ** 53 - 1, srcBytes: 2 ** 53 - 1 })).rejects.toThrow(/past the end of the file/);
    expect(existsSync(join(dir, 'src.bin'))).toBe(true);
  });
  it('refuses an op that writes past the preallocated output', async () => {
    await expect(run({ dst: 32 }, { preallocate: 64 })).rejects.toThrow(/writes past the end of its output/);
  });
});
