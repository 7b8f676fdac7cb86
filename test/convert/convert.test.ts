import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { jsonError, runCli } from '../helpers/cli.js';
import { PyDict, PyFloat, PyGlobal, PyTuple, unpickle } from '../../src/formats/pickle.js';
import { openZip } from '../../src/formats/zip.js';
import { openTorchCheckpoint } from '../../src/formats/torch.js';
import { convertCheckpoint, dedupeAliases } from '../../src/convert/convert.js';
import { sizeFlag } from '../../src/core/flags.js';
import { readHeader } from '../../src/formats/safetensors.js';
import { ColdstartError } from '../../src/core/errors.js';
import type { NativeAddon } from '../../src/native.js';
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { peerPython, runPython } from '../helpers/python.js';

const FIX = fileURLToPath(new URL('../../fixtures/torch/', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));
const good = (f: string) => join(FIX, 'good', f);
let work: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'coldstart-convert-'));
});
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function fresh(name: string): string {
  const d = join(work, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
}

const pwned = () => readdirSync('/tmp').filter((f) => f.startsWith('coldstart_pwned_'));

// ------------------------------------------------------------------------------------------------ pickle
describe('pickle interpreter', () => {
  const deny = (m: string, n: string): PyGlobal => {
    throw new ColdstartError('HOSTILE_FILE', `refused ${m}.${n}`);
  };
  const opts = { where: 't', resolveGlobal: deny };

  it('reads protocol 3 containers, ints, floats, strings, bytes and memo references', () => {
    // pickle.dumps({'a': [1, -2, 300, 70000, 2**70], 'b': (1.5, 'x'), 'c': b'\x00\x01'}, protocol=3)
    const py = Buffer.from(
      '80037d71002858010000006171015d7102284b014afeffffff4d2c014a701101008a09000000000000000040655801000000627103473ff800000000000058010000007871048671055801000000637106430200017107752e',
      'hex',
    );
    const { value, end } = unpickle(py, opts);
    expect(end).toBe(py.length);
    const d = value as PyDict;
    expect(d.map.get('a')).toEqual([1, -2, 300, 70000, 2n ** 70n]);
    expect((d.map.get('b') as PyTuple).items).toEqual([new PyFloat(1.5), 'x']);
    expect(Array.from(d.map.get('c') as Uint8Array)).toEqual([0, 1]);
  });

  it('reads protocol 0 text opcodes and protocol 4 frames/memoize', () => {
    // pickle.dumps([1, 'ab', 2.5, None, True], protocol=0)
    const p0 = Buffer.from("(lp0\nI1\naVab\np1\naF2.5\naNaI01\na.", 'latin1');
    expect(unpickle(p0, opts).value).toEqual([1, 'ab', new PyFloat(2.5), null, true]);
    // pickle.dumps({'k': [1, 2]}, protocol=4)
    const p4 = Buffer.from('80049510000000000000007d948c016b945d94284b014b0265732e', 'hex');
    const v = unpickle(p4, opts).value as PyDict;
    expect(v.map.get('k')).toEqual([1, 2]);
  });

  it('refuses globals by name before anything else happens', () => {
    const p = Buffer.from('\x80\x02cposix\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.', 'latin1');
    expect(() => unpickle(p, opts)).toThrow(/posix\.system/);
  });

  it('enforces nesting, opcode and memo limits and reports truncation', () => {
    expect(() => unpickle(Buffer.from('\x80\x02' + '('.repeat(2000) + '.', 'latin1'), opts)).toThrow(/nesting limit/);
    expect(() => unpickle(Buffer.from('\x80\x02]' + '2'.repeat(100) + '.', 'latin1'), { ...opts, maxOps: 50 })).toThrow(/opcode limit/);
    expect(() => unpickle(Buffer.from('\x80\x02]q\x00q\x01q\x02.', 'latin1'), { ...opts, maxMemo: 2 })).toThrow(/memo limit/);
    expect(() => unpickle(Buffer.from('\x80\x02]q', 'latin1'), opts)).toThrow(/truncated/);
    expect(() => unpickle(Buffer.from('\x80\x02h\x05.', 'latin1'), opts)).toThrow(/memo key 5/);
    expect(() => unpickle(Buffer.from('\x80\x02\xff.', 'latin1'), opts)).toThrow(/unknown opcode 0xff/);
    expect(() => unpickle(Buffer.from('\x80\x02\x82\x01.', 'latin1'), opts)).toThrow(/extension registry/);
  });
});

// ------------------------------------------------------------------------------------------------ zip
/** A minimal stored-zip writer for crafting broken archives (optionally in ZIP64 form throughout). */
function makeZip(entries: Array<{ name: string; data: Buffer }>, tweak: { overlapSecond?: boolean; lieLocalName?: boolean; zip64?: boolean } = {}): Buffer {
  const z64 = !!tweak.zip64;
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let off = 0;
  const offsets: number[] = [];
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    return b;
  };
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const extra = z64 ? Buffer.concat([Buffer.from([1, 0, 16, 0]), u64(e.data.length), u64(e.data.length)]) : Buffer.alloc(0);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt32LE(z64 ? 0xffffffff : e.data.length, 18);
    lh.writeUInt32LE(z64 ? 0xffffffff : e.data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(extra.length, 28);
    const lname = tweak.lieLocalName ? Buffer.from(e.name.replace(/.$/, 'X')) : name;
    offsets.push(off);
    locals.push(lh, lname, extra, e.data);
    off += 30 + name.length + extra.length + e.data.length;
  }
  entries.forEach((e, i) => {
    const name = Buffer.from(e.name);
    const lho = tweak.overlapSecond && i === 1 ? offsets[0]! : offsets[i]!;
    const extra = z64 ? Buffer.concat([Buffer.from([1, 0, 24, 0]), u64(e.data.length), u64(e.data.length), u64(lho)]) : Buffer.alloc(0);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt32LE(z64 ? 0xffffffff : e.data.length, 20);
    ch.writeUInt32LE(z64 ? 0xffffffff : e.data.length, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt16LE(extra.length, 30);
    ch.writeUInt32LE(z64 ? 0xffffffff : lho, 42);
    central.push(ch, name, extra);
  });
  const cd = Buffer.concat(central);
  const tail: Buffer[] = [];
  if (z64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(BigInt(entries.length), 24);
    rec.writeBigUInt64LE(BigInt(entries.length), 32);
    rec.writeBigUInt64LE(BigInt(cd.length), 40);
    rec.writeBigUInt64LE(BigInt(off), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(off + cd.length), 8);
    loc.writeUInt32LE(1, 16);
    tail.push(rec, loc);
  }
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(z64 ? 0xffff : entries.length, 8);
  eocd.writeUInt16LE(z64 ? 0xffff : entries.length, 10);
  eocd.writeUInt32LE(z64 ? 0xffffffff : cd.length, 12);
  eocd.writeUInt32LE(z64 ? 0xffffffff : off, 16);
  return Buffer.concat([...locals, cd, ...tail, eocd]);
}

function zipOf(buf: Buffer) {
  const p = join(work, `zip-${Math.random().toString(16).slice(2)}.zip`);
  writeFileSync(p, buf);
  const fd = openSync(p, 'r');
  try {
    return openZip(fd, buf.length, p);
  } finally {
    closeSync(fd);
  }
}

describe('zip reader', () => {
  const a = { name: 'archive/data.pkl', data: Buffer.from('abc') };
  const b = { name: 'archive/data/0', data: Buffer.from('0123') };
  it('locates entries and their data offsets', () => {
    const z = zipOf(makeZip([a, b]))!;
    expect([...z.entries.keys()]).toEqual(['archive/data.pkl', 'archive/data/0']);
    expect(z.entries.get('archive/data/0')!.dataOffset).toBe(30 + 16 + 3 + 30 + 14);
  });
  it('reads ZIP64 end records and extra fields (sizes and offsets all 0xFFFFFFFF)', () => {
    const z = zipOf(makeZip([a, b], { zip64: true }))!;
    const e = z.entries.get('archive/data/0')!;
    expect(e.size).toBe(4);
    expect(e.dataOffset).toBe(30 + 16 + 20 + 3 + 30 + 14 + 20);
    expect(() => zipOf(makeZip([a, b], { zip64: true, overlapSecond: true }))).toThrow(/overlaps/);
  });
  it('refuses overlapping entries, lying local headers and traversal', () => {
    expect(() => zipOf(makeZip([a, b], { overlapSecond: true }))).toThrow(/overlaps/);
    expect(() => zipOf(makeZip([a, b], { lieLocalName: true }))).toThrow(/names a different file/);
    expect(() => zipOf(makeZip([a, { name: '../x', data: Buffer.from('') }]))).toThrow(/path traversal/);
    expect(() => zipOf(makeZip([a, { name: '/etc/passwd', data: Buffer.from('') }]))).toThrow(/absolute path/);
  });
  it('finds the archive behind leading bytes and reports a missing directory', () => {
    const z = zipOf(Buffer.concat([Buffer.from('#!prefix\n'), makeZip([a])]))!;
    expect(z.prefixBytes).toBe(9);
    expect(z.entries.get('archive/data.pkl')!.dataOffset).toBe(9 + 30 + 16);
    expect(zipOf(makeZip([a]).subarray(0, 40))).toBeNull();
  });
});

// ------------------------------------------------------------------------------------------------ reader
describe('openTorchCheckpoint', () => {
  it('describes tensors without reading data: dtype, shape, strides, offsets, storage', () => {
    const cp = openTorchCheckpoint(good('views.pt'));
    expect(cp.format).toBe('zip');
    expect(cp.prefix).toBe('views/');
    const t = Object.fromEntries(cp.tensors.map((x) => [x.name, x]));
    expect(t.transposed).toMatchObject({ dtype: 'F32', shape: [8, 6], strides: [1, 8], storageOffset: 0, contiguous: false });
    expect(t.sliced).toMatchObject({ shape: [3, 6], strides: [8, 1], storageOffset: 17 });
    expect(t.expanded).toMatchObject({ shape: [3, 4], strides: [0, 1] });
    expect(t.k).toMatchObject({ storageOffset: 16, contiguous: true, storageKey: t.q!.storageKey });
    expect(t.k!.storage.nbytes).toBe(12 * 4 * 4);
  });
  it('reads the legacy format, and the byteorder record', () => {
    expect(openTorchCheckpoint(good('legacy.pt'))).toMatchObject({ format: 'legacy', byteorder: 'little', prefix: '' });
    expect(openTorchCheckpoint(good('bigendian.pt')).byteorder).toBe('big');
  });
  it('picks the wrapped weights when unambiguous and refuses listing candidates otherwise', () => {
    expect(openTorchCheckpoint(good('lightning.ckpt')).key).toBe('state_dict');
    expect(openTorchCheckpoint(good('wrapped_model.pt')).key).toBe('model');
    expect(openTorchCheckpoint(good('nested.pt')).key).toBe('module.state_dict');
    expect(() => openTorchCheckpoint(good('ambiguous.pt'))).toThrow(/several entries hold tensors: model, ema/);
    expect(openTorchCheckpoint(good('ambiguous.pt'), { key: 'ema' }).tensors.map((t) => t.name)).toEqual(['w', 'b']);
    expect(() => openTorchCheckpoint(good('ambiguous.pt'), { key: 'nope' })).toThrow(/--key: "nope" is not in/);
  });
});

describe('planning helpers', () => {
  it('parses shard sizes in decimal and binary units', () => {
    const size = (v: string) => sizeFlag('--shard-size', v);
    expect(size('5GB')).toBe(5e9);
    expect(size('500MiB')).toBe(500 * 2 ** 20);
    expect(size('1000')).toBe(1000);
    expect(size('2kb')).toBe(2000);
    for (const bad of ['lots', '0']) expect(() => size(bad)).toThrow(expect.objectContaining({ code: 'BAD_FLAG', message: expect.stringMatching(/^--shard-size: /) }));
  });
  it('drops identical aliases, preferring names outside the tied list', () => {
    const cp = openTorchCheckpoint(good('views.pt'));
    const { kept, dropped, overlapping } = dedupeAliases(cp.tensors.map((t) => ({ name: t.name, source: 0, t })));
    expect(dropped).toEqual({ 'lm_head.weight': 'embed.weight' });
    expect(kept).toHaveLength(cp.tensors.length - 1);
    expect(overlapping.flat()).toContain('row');
    // with an empty tied list the first name in sort order is kept
    expect(dedupeAliases(cp.tensors.map((t) => ({ name: t.name, source: 0, t })), []).dropped).toEqual({ 'lm_head.weight': 'embed.weight' });
    expect(dedupeAliases(cp.tensors.map((t) => ({ name: t.name, source: 0, t })), ['embed.weight']).dropped).toEqual({ 'embed.weight': 'lm_head.weight' });
  });
});

// ------------------------------------------------------------------------------------------------ CLI: good paths
describe('coldstart convert', () => {
  it('writes a valid safetensors file beside the input by default, with format pt metadata', async () => {
    const d = fresh('default-out');
    copyFileSync(good('views.pt'), join(d, 'views.pt'));
    const r = await runCli(['convert', join(d, 'views.pt')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/converted .*views\.pt → .*views\.safetensors: 11 tensors/);
    expect(r.stdout).toContain('lm_head.weight → embed.weight');
    const h = readHeader(join(d, 'views.safetensors'));
    expect(h.metadata).toEqual({ format: 'pt', 'lm_head.weight': 'embed.weight' });
    expect(h.tensors.map((t) => t.name).sort()).toContain('transposed');
    expect(readdirSync(d).sort()).toEqual(['views.pt', 'views.safetensors']);
  });

  it('--json prints one coldstart/convert@1 document with tensors, bytes, aliases, time and throughput', async () => {
    const d = fresh('json');
    const r = await runCli(['--json', 'convert', good('every_dtype.pt'), '-o', join(d, 'x.safetensors')]);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.schema).toBe('coldstart/convert@1');
    expect(doc.details).toMatchObject({ tensors: 21, droppedAliases: {}, verified: false, format: 'zip' });
    expect(doc.details.bytes).toBeGreaterThan(0);
    expect(typeof doc.details.seconds.write).toBe('number');
    expect(doc.details.throughputBytesPerSecond).toBeGreaterThan(0);
    expect(doc.phases.map((p: { name: string }) => p.name)).toEqual(['read', 'write', 'verify', 'unexplained']);
    // Without --verify the check is left out by choice: outside the total, which is the conversion's wall clock.
    expect(doc.phases[2]).toMatchObject({ status: 'skipped', notApplicable: true });
    expect(doc.total).toMatchObject({ complete: true, leftOut: ['verify'] });
    expect(doc.total.seconds).toBeCloseTo(doc.details.seconds.total, 9);
    expect(doc.exitCode).toBe(0);
  });

  it('--budget total: met without --verify (the check left out is outside the total), and the verdict is printed', async () => {
    const d = fresh('budget');
    const r = await runCli(['convert', good('views.pt'), '-o', join(d, 'a.safetensors'), '--budget', 'total=120s']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^✓ budget met: total took .*, limit 2 min 0 s/m);
    const j = await runCli(['--json', 'convert', good('views.pt'), '-o', join(d, 'b.safetensors'), '--budget', 'total=120s', '--verify']);
    expect(j.code, j.stderr).toBe(0);
    const doc = JSON.parse(j.stdout);
    expect(doc.budgets).toEqual([expect.objectContaining({ phase: 'total', status: 'ok', measured: doc.total.seconds })]);
    expect(doc.total.leftOut).toBeUndefined();
    // Exceeded, and a budget on a phase convert does not measure: exit 1, each verdict printed.
    const bad = await runCli(['convert', good('views.pt'), '-o', join(d, 'c.safetensors'), '--budget', 'total=1ms,gpu-load=1s']);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/^✗ budget gpu-load=1\.00 s: not measured: this run has no gpu-load phase/m);
  });

  it('refuses an existing output without --force; --force replaces only its own earlier output (issue 22)', async () => {
    const d = fresh('exists');
    const out = join(d, 'x.safetensors');
    writeFileSync(out, 'old');
    const r = await runCli(['--json', 'convert', good('views.pt'), '-o', out]);
    expect(r.code).toBe(2);
    expect(jsonError(r).code).toBe('OUTPUT_EXISTS');
    expect(readFileSync(out, 'utf8')).toBe('old');
    // a file that is not a safetensors file is not coldstart's output: --force refuses it too
    const notOurs = await runCli(['--json', 'convert', good('views.pt'), '-o', out, '--force']);
    expect(notOurs.code).toBe(2);
    expect(JSON.parse(notOurs.stdout).error).toMatchObject({ code: 'OUTPUT_EXISTS' });
    expect(readFileSync(out, 'utf8')).toBe('old');
    rmSync(out);
    expect((await runCli(['convert', good('every_dtype.pt'), '-o', out])).code).toBe(0);
    const f = await runCli(['convert', good('views.pt'), '-o', out, '--force']);
    expect(f.code, f.stderr).toBe(0);
    expect(readHeader(out).tensors).toHaveLength(11);
  });

  it('an output path with a file in the way: one clear line naming it (exit 2), nothing written', async () => {
    const d = fresh('in-the-way');
    const file = join(d, 'not-a-dir');
    writeFileSync(file, 'x');
    for (const input of [good('views.pt'), join(FIX, 'models', 'tiny-llama')]) {
      const r = await runCli(['convert', input, '-o', join(file, 'out')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`coldstart: error: --output: ${file} cannot be a directory: a file is in the way; Choose another --output\n`);
      expect(readdirSync(d)).toEqual(['not-a-dir']);
    }
  });

  it('writes sharded output with an index whose weight_map and total_size match the shards', async () => {
    const d = fresh('sharded');
    const r = await runCli(['--json', 'convert', join(FIX, 'models', 'tiny-llama'), '-o', join(d, 'm'), '--shard-size', '40KB']);
    expect(r.code, r.stderr).toBe(0);
    const idx = JSON.parse(readFileSync(join(d, 'm', 'model.safetensors.index.json'), 'utf8'));
    const shards = readdirSync(join(d, 'm')).filter((f) => f.endsWith('.safetensors')).sort();
    expect(shards.length).toBeGreaterThan(1);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    let total = 0;
    const names: string[] = [];
    for (const s of shards) {
      const h = readHeader(join(d, 'm', s));
      total += h.dataSize;
      for (const t of h.tensors) {
        expect(idx.weight_map[t.name]).toBe(s);
        names.push(t.name);
      }
    }
    expect(idx.metadata.total_size).toBe(total);
    expect(Object.keys(idx.weight_map).sort()).toEqual(names.sort());
  });

  it('an --output inside the input directory is refused (exit 2), and the input is untouched (issue 22)', async () => {
    const d = fresh('inside');
    for (const f of readdirSync(join(FIX, 'models', 'tiny-bert'))) copyFileSync(join(FIX, 'models', 'tiny-bert', f), join(d, f));
    const before = readdirSync(d).sort();
    const r = await runCli(['--json', 'convert', d, '-o', join(d, 'st')]);
    expect(r.code, r.stderr).toBe(2);
    expect(JSON.parse(r.stdout).error).toMatchObject({ code: 'BAD_FLAG' });
    expect(r.stderr).toMatch(/is inside the input/);
    expect(readdirSync(d).sort()).toEqual(before);
  });

  it('writes shared tensors once and says so (tiny-bert: the decoder is tied to the embeddings)', async () => {
    const d = fresh('tied');
    const r = await runCli(['convert', join(FIX, 'models', 'tiny-bert'), '-o', join(d, 'st')]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(join(d, 'st')).sort()).toEqual(['.coldstart-output.json', 'config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer_config.json']);
    expect(r.stdout).toContain('cls.predictions.decoder.weight → bert.embeddings.word_embeddings.weight');
  });

  it('shows a progress line on a TTY only (Output.progress: drawn, then cleared), none in a log for a quick run', async () => {
    const d = fresh('tty');
    const r = await runCli(['convert', good('views.pt'), '-o', join(d, 'a.safetensors')], { tty: true });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('\r\u001b[2Kconverting: ');
    expect(r.stderr).toMatch(/\(100%\)[^\r]*\r\u001b\[2K/); // the line is cleared when the conversion ends
    const n = await runCli(['convert', good('views.pt'), '-o', join(d, 'b.safetensors')]);
    expect(n.stderr).not.toContain('converting');
  });

  it('rejects bad flags with exit 2', async () => {
    const dt = jsonError(await runCli(['--json', 'convert', good('views.pt'), '--dtype', 'int4']));
    expect(dt.code).toBe('BAD_FLAG');
    expect(dt.message.startsWith('--dtype:')).toBe(true);
    expect((await runCli(['convert', good('views.pt'), '--shard-size', 'big'])).code).toBe(2);
    const amb = await runCli(['--json', 'convert', good('ambiguous.pt'), '-o', join(work, 'amb.safetensors')]);
    expect(amb.code).toBe(2);
    expect(jsonError(amb).code).toBe('AMBIGUOUS');
    expect(amb.stderr).toMatch(/--key model/); // the candidates, as the flag that picks one
    expect(existsSync(join(work, 'amb.safetensors'))).toBe(false);
  });
});

// ------------------------------------------------------------------------------------------------ CLI: hostile and refused
describe('hostile and unsupported checkpoints', () => {
  const hostile = readdirSync(join(FIX, 'hostile')).sort();
  it('has the hostile fixtures', () => {
    expect(hostile).toEqual(
      expect.arrayContaining(['os_system.pt', 'exec.pt', 'getattr_chain.pt', 'subprocess_in_dict.pt', 'legacy_system.pt', 'zip_slip.pt', 'truncated.pt', 'lying_storage_size.pt', 'billion_laughs.pt', 'deep_nesting.pt']),
    );
  });
  const expectations: Record<string, RegExp> = {
    'os_system.pt': /refused: the pickle references posix\.system.*nothing was executed/,
    'exec.pt': /builtins\.exec/,
    'getattr_chain.pt': /builtins\.getattr/,
    'subprocess_in_dict.pt': /subprocess\.Popen/,
    'legacy_system.pt': /posix\.system/,
    'stack_global_p4.pt': /posix\.system/,
    'zip_slip.pt': /escapes the archive/,
    'duplicate_entry.pt': /two entries named/,
    'truncated.pt': /truncated/,
    'truncated_legacy.pt': /past the end of the file|truncated/,
    'lying_storage_size.pt': /declares 1000 × 4-byte float32 elements .* holds 16 bytes/,
    'view_out_of_bounds.pt': /view out of bounds/,
    'huge_stride.pt': /view out of bounds/,
    'deep_nesting.pt': /nesting limit/,
    'billion_laughs.pt': /no dict of tensors/,
    'empty.bin': /empty \(0 bytes\)/,
    'not_a_checkpoint.bin': /not a PyTorch checkpoint/,
    // a zip behind a stub: torch decides the format from byte 0 (not PK\x03\x04) and reads a pickle, so do we
    'leading_bytes.pt': /not a PyTorch checkpoint/,
  };
  for (const f of Object.keys(expectations)) {
    it(`${f}: refused with exit 2 and one clear line, nothing run, nothing written`, async () => {
      const d = fresh(`hostile-${f}`);
      const before = pwned();
      const r = await runCli(['convert', join(FIX, 'hostile', f), '-o', join(d, 'out.safetensors')], { cwd: d });
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toMatch(/^coldstart: error: /);
      expect(lines[0]).toMatch(expectations[f]!);
      expect(lines).toHaveLength(1);
      expect(readdirSync(d)).toEqual([]);
      expect(pwned()).toEqual(before);
    });
  }

  const refused: Record<string, RegExp> = {
    'torchscript.pt': /TorchScript.*; .*torch\.jit\.load/,
    'whole_module.pt': /torch\.nn\.modules\.linear\.Linear.*; .*state_dict/,
    'quantized.pt': /"q" is a quantized tensor.*; .*dequantize/,
    'sparse.pt': /sparse tensor.*; .*to_dense/,
    'nested_tensor.pt': /nested tensor.*; .*unbind/,
    'complex.pt': /complex64.*; .*view_as_real/,
  };
  for (const f of Object.keys(refused)) {
    it(`${f}: refused with what to do instead`, async () => {
      const d = fresh(`refused-${f}`);
      const r = await runCli(['convert', join(FIX, 'refused', f), '-o', join(d, 'o.safetensors')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(refused[f]!);
      expect(readdirSync(d)).toEqual([]);
    });
  }

  const py = peerPython();
  it.skipIf(!py)('the hostile payloads are real: torch.load(weights_only=False) of os_system.pt would run it', () => {
    // Proves the fixture is live (inside a throwaway Python, payload redirected to a file we then delete).
    const out = runPython(
      py!,
      `import torch, os, sys\np='/tmp/coldstart_pwned_system'\ntry:\n  torch.load(sys.argv[1], weights_only=False)\nexcept Exception: pass\nprint(os.path.exists(p))\nos.path.exists(p) and os.remove(p)`,
      [join(FIX, 'hostile', 'os_system.pt')],
    );
    expect(out.trim()).toBe('True');
  });
});

// ------------------------------------------------------------------------------------------------ environment failures
const isRoot = process.getuid?.() === 0;
function runAs(uid: number, args: string[], cwd?: string) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', uid, gid: uid, cwd: cwd ?? '/tmp', env: { PATH: process.env.PATH } });
}

describe('--verify', () => {
  it('a byte changed after writing is caught: VERIFY_MISMATCH (exit 1), output not kept', async () => {
    const { requireNative } = await import('../../src/native.js');
    const real = requireNative('test');
    const d = fresh('verify-mismatch');
    const corrupting: NativeAddon = {
      ...real,
      fileioRun: async (job) => {
        const r = await real.fileioRun(job);
        if (job.mode === 'write') {
          // flip one byte of the last tensor, as a bad disk or a racing writer would
          const op = job.ops[job.ops.length - 1]!;
          const fd = openSync(job.output, 'r+');
          const b = Buffer.alloc(1);
          readSync(fd, b, 0, 1, op.dst);
          b[0] = b[0]! ^ 0xff;
          writeSync(fd, b, 0, 1, op.dst);
          closeSync(fd);
        }
        return r;
      },
    };
    const err = await convertCheckpoint({ input: good('views.pt'), output: join(d, 'v.safetensors'), verify: true, native: corrupting }).catch((e) => e);
    expect(err).toBeInstanceOf(ColdstartError);
    expect(err.code).toBe('VERIFY_MISMATCH');
    expect(err.exitCode).toBe(1);
    expect(err.message).toMatch(/verification failed: 1 tensor\(s\) differ from the source/);
    expect(readdirSync(d)).toEqual([]);
    // and without the corruption the same run verifies
    const ok = await convertCheckpoint({ input: good('views.pt'), output: join(d, 'v.safetensors'), verify: true });
    expect(ok.verified).toBe(true);
  });
});

describe('environment failures leave nothing behind', () => {
  it('missing input: exit 2, one line', async () => {
    const r = await runCli(['--json', 'convert', join(work, 'nope.bin')]);
    expect(r.code).toBe(2);
    const err = jsonError(r);
    expect(err.code).toBe('NOT_FOUND');
    expect(err.message).toContain('nope.bin');
  });

  it('simulated ENOSPC from the byte mover: exit 3, temp file removed', async () => {
    const d = fresh('enospc-sim');
    const fake: NativeAddon = {
      abiVersion: 1,
      cudaProbe: async () => ({ available: false, timings: { init: 0, enumerate: 0, context: 0 }, devices: [], nvml: { available: false } }),
      fileioRun: async () => {
        throw Object.assign(new Error('write x: No space left on device'), { code: 'ENOSPC' });
      },
    };
    const err = await convertCheckpoint({ input: good('views.pt'), output: join(d, 'v.safetensors'), native: fake }).catch((e) => e);
    expect(err).toBeInstanceOf(ColdstartError);
    expect(err.code).toBe('DISK_FULL');
    expect(err.exitCode).toBe(3);
    expect(err.message).toMatch(/no space left on device/);
    expect(readdirSync(d)).toEqual([]);
  });

  it.skipIf(!isRoot)('disk full on a real 64 KiB tmpfs: exit 3, one line, nothing left on the volume', () => {
    const mnt = fresh('tmpfs');
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    if (m.status !== 0) throw new Error(`mount failed: ${m.stderr}`);
    try {
      const r = spawnSync(process.execPath, [BIN, 'convert', join(FIX, 'models', 'tiny-gpt2'), '-o', join(mnt, 'out')], { encoding: 'utf8' });
      expect(r.status).toBe(3);
      expect(r.stderr.split('\n')[0]).toMatch(/no space left on device/);
      expect(readdirSync(mnt)).toEqual([]);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });

  it.skipIf(!isRoot)('permission denied on the input and an unwritable output directory: exit 3', () => {
    const d = fresh('perm');
    chmodSync(d, 0o755);
    const locked = join(d, 'locked.pt');
    copyFileSync(good('views.pt'), locked);
    chmodSync(locked, 0o600);
    const r = runAs(65534, ['convert', locked, '-o', '/tmp/coldstart-nobody-out.safetensors']);
    expect(r.status).toBe(3);
    expect(r.stderr.split('\n')[0]).toMatch(/locked\.pt: permission denied/);
    const ro = fresh('ro');
    chmodSync(ro, 0o755);
    const w = runAs(65534, ['convert', good('views.pt'), '-o', join(ro, 'x.safetensors')]);
    expect(w.status).toBe(3);
    expect(w.stderr.split('\n')[0]).toMatch(/permission denied/);
    expect(readdirSync(ro)).toEqual([]);
    expect(existsSync('/tmp/coldstart-nobody-out.safetensors')).toBe(false);
  });

  const py = peerPython();
  it.skipIf(!py)('Ctrl-C mid-run: exit 130, one line, no temp file left', async () => {
    const d = fresh('sigint');
    const big = join(d, 'big.pt');
    runPython(py!, 'import torch, sys\ntorch.save({"w": torch.ones(48 * 2**20)}, sys.argv[1])', [big]);
    const out = join(d, 'out');
    mkdirSync(out);
    const child = spawn(process.execPath, [BIN, 'convert', big, '-o', join(out, 'big.safetensors'), '--dtype', 'bf16', '--verify'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    // wait until the temporary output exists, then interrupt
    const t0 = Date.now();
    while (!readdirSync(out).some((f) => f.includes('.coldstart-')) && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code).toBe(130); // 128 + SIGINT, as a shell reports it
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/interrupted \(SIGINT\); partial output removed/);
    expect(readdirSync(out)).toEqual([]);
    expect(statSync(big).size).toBeGreaterThan(190_000_000);
  }, 60_000);
});
