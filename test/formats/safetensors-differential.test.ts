/**
 * Issue #22: the safetensors header reader (src/formats/safetensors.ts parseHeader/readHeader) gives the same verdict
 * as the reference reader — the `safetensors` package's Rust core, in the peers venv (test/differential/
 * safetensors_oracle.py: `deserialize` and `safe_open` must both accept) — on the same bytes: a corpus of the cases
 * where the two parsers can differ (UTF-8, JSON grammar, number forms, duplicates, sizes, padding) and seeded
 * mutations of real headers. Where both accept, the tensors (name, dtype, shape) and `__metadata__` must match.
 *
 * Documented differences (coldstart refuses, the reference accepts; docs/gpu-load.md): dtypes coldstart does not
 * load (sub-byte F4/F6, F8_E8M0, the FNUZ float8s, C64), and zero-element tensors with a dimension above 2^53.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython } from '../helpers/python.js';
import { runCli } from '../helpers/cli.js';
import { rng } from '../differential/mutate.js';
import { readHeader } from '../../src/formats/safetensors.js';
import { ColdstartError } from '../../src/core/errors.js';

const ORACLE = fileURLToPath(new URL('../differential/safetensors_oracle.py', import.meta.url));
const py = peerPython();
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'coldstart-st-diff-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A file: 8-byte LE length, the header bytes as given, then `data` zero bytes. */
function stFile(header: string | Buffer, data: number): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, Buffer.alloc(data)]);
}

const T = '"dtype":"F32","shape":[1],"data_offsets":[0,4]';
const nest = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
const b = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

/** [name, header, data bytes]: every case where a JSON.parse-based reader and serde_json can part ways. */
const CORPUS: Array<[string, string | Buffer, number]> = [
  ['plain', `{"a":{${T}}}`, 4],
  ['shape float 1.0', '{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}', 4],
  ['shape float 4.0', '{"a":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}}', 16],
  ['shape exponent 1e0', '{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}', 4],
  ['shape -0', '{"a":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}', 0],
  ['shape -1', '{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}', 0],
  ['shape 0', '{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}', 0],
  ['shape true', '{"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}', 4],
  ['shape null', '{"a":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}', 4],
  ['shape leading zero', '{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}', 4],
  ['offset float', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}', 4],
  ['offset exponent', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4E0]}}', 4],
  ['offset -0', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[-0,4]}}', 4],
  ['offsets of three', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}', 4],
  ['offsets as a map', '{"a":{"dtype":"F32","shape":[1],"data_offsets":{"0":0,"1":4}}}', 4],
  ['offsets reversed', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 4],
  ['offset u64 max', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}', 4],
  ['gap at start', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8],
  ['dims 2^64-1 then 0', '{"a":{"dtype":"F32","shape":[18446744073709551615,0],"data_offsets":[0,0]}}', 0],
  ['dims 2^64 then 0', '{"a":{"dtype":"F32","shape":[18446744073709551616,0],"data_offsets":[0,0]}}', 0],
  ['dims overflow before 0', '{"a":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}', 0],
  ['dims 0 before overflow', '{"a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}}', 0],
  ['bits overflow', '{"a":{"dtype":"F64","shape":[288230376151711744],"data_offsets":[0,0]}}', 0],
  ['scalar', '{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}', 4],
  ['zero-size tensors at the end', `{"a":{${T}},"b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"c":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 4],
  ['empty name', `{"a":{${T}},"":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, 4],
  ['duplicate tensor name (last kept)', `{"a":{${T}},"a":{${T}}}`, 4],
  ['duplicate tensor name, second moves it', `{"a":{${T}},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8],
  ['duplicate tensor name, first has a bad size', `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,5]},"a":{${T}}}`, 4],
  ['duplicate tensor name, first not an object', `{"a":3,"a":{${T}}}`, 4],
  ['duplicate tensor name, first misses a field', `{"a":{"dtype":"F32"},"a":{${T}}}`, 4],
  ['duplicate field dtype', '{"a":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}}', 4],
  ['duplicate field shape', `{"a":{${T},"shape":[1]}}`, 4],
  ['duplicate unknown field', `{"a":{${T},"x":1,"x":2}}`, 4],
  ['duplicate __metadata__', `{"__metadata__":{"x":"1"},"__metadata__":{"x":"2"},"a":{${T}}}`, 4],
  ['duplicate __metadata__ null', `{"__metadata__":null,"__metadata__":null,"a":{${T}}}`, 4],
  ['duplicate metadata key (last kept)', `{"__metadata__":{"x":"1","x":"2"},"a":{${T}}}`, 4],
  ['metadata key __proto__', `{"__metadata__":{"__proto__":"p","format":"pt"},"a":{${T}}}`, 4],
  ['__metadata__ null', `{"__metadata__":null,"a":{${T}}}`, 4],
  ['__metadata__ empty', `{"__metadata__":{},"a":{${T}}}`, 4],
  ['__metadata__ array', `{"__metadata__":[],"a":{${T}}}`, 4],
  ['__metadata__ integer value', `{"__metadata__":{"x":1},"a":{${T}}}`, 4],
  ['__metadata__ null value', `{"__metadata__":{"x":null},"a":{${T}}}`, 4],
  ['__metadata__ first value bad, then string', `{"__metadata__":{"x":1,"x":"2"},"a":{${T}}}`, 4],
  ['__metadata__ escaped key', `{"__metadata\\u005f_":{"x":1},"a":{${T}}}`, 4],
  ['__metadata__ last', `{"a":{${T}},"__metadata__":{"format":"pt"}}`, 4],
  ['unknown field', `{"a":{${T},"extra":1}}`, 4],
  ['unknown field nested', `{"a":{${T},"extra":[[[[{}]]]]}}`, 4],
  ['unknown field 125 deep (127 in all)', `{"a":{${T},"x":${nest(125)}}}`, 4],
  ['unknown field 126 deep (128 in all)', `{"a":{${T},"x":${nest(126)}}}`, 4],
  ['unknown field 1e309', `{"a":{${T},"x":1e309}}`, 4],
  ['unknown field -1e309', `{"a":{${T},"x":-1e309}}`, 4],
  ['unknown field 0e999999', `{"a":{${T},"x":0e999999}}`, 4],
  ['unknown field 1e308', `{"a":{${T},"x":1e308}}`, 4],
  ['unknown field 30-digit integer', `{"a":{${T},"x":123456789012345678901234567890}}`, 4],
  ['unknown field 1.', `{"a":{${T},"x":1.}}`, 4],
  ['unknown field .5', `{"a":{${T},"x":.5}}`, 4],
  ['unknown field 1e', `{"a":{${T},"x":1e}}`, 4],
  ['unknown field -', `{"a":{${T},"x":-}}`, 4],
  ['unknown field tru', `{"a":{${T},"x":tru}}`, 4],
  ['unknown field lone surrogate', `{"a":{${T},"x":"\\ud800"}}`, 4],
  ['unknown field \\x escape', `{"a":{${T},"x":"\\x"}}`, 4],
  ['unknown field short \\u', `{"a":{${T},"x":"\\u00zz"}}`, 4],
  ['escapes \\/ \\b \\f', `{"a":{${T},"x":"\\/\\b\\f"}}`, 4],
  ['name with escaped NUL', `{"a\\u0000":{${T}}}`, 4],
  ['name with raw control char', b('{"a', [0x01], `":{${T}}}`), 4],
  ['name with DEL', b('{"a', [0x7f], `":{${T}}}`), 4],
  ['name lone high surrogate', `{"\\ud800":{${T}}}`, 4],
  ['name lone low surrogate', `{"\\udc00":{${T}}}`, 4],
  ['name high surrogate then non-surrogate', `{"\\ud800\\u0041":{${T}}}`, 4],
  ['name surrogate pair', `{"\\ud83d\\ude00":{${T}}}`, 4],
  ['metadata lone surrogate', `{"a":{${T}},"__metadata__":{"format":"pt","n":"\\ud800"}}`, 4],
  ['non-UTF-8 byte in a name', b('{"', [0xff], `":{${T}}}`), 4],
  ['non-UTF-8 byte in metadata', b('{"__metadata__":{"k":"', [0xc0, 0x80], `"},"a":{${T}}}`), 4],
  ['non-UTF-8 byte in padding', b(`{"a":{${T}}}`, [0xff]), 4],
  ['truncated UTF-8 sequence', b('{"', [0xe2, 0x82], `":{${T}}}`), 4],
  ['UTF-8 encoded surrogate', b('{"', [0xed, 0xa0, 0x80], `":{${T}}}`), 4],
  ['valid multibyte name', `{"é€😀":{${T}}}`, 4],
  ['BOM', b([0xef, 0xbb, 0xbf], `{"a":{${T}}}`), 4],
  ['leading space', ` {"a":{${T}}}`, 4],
  ['space padding', `{"a":{${T}}}    `, 4],
  ['tab/newline padding', `{"a":{${T}}}\n\t\r`, 4],
  ['NUL padding', b(`{"a":{${T}}}`, [0, 0]), 4],
  ['vertical tab padding', `{"a":{${T}}}\u000b`, 4],
  ['NBSP padding', `{"a":{${T}}}\u00a0`, 4],
  ['second document', `{"a":{${T}}} {}`, 4],
  ['trailing comma', `{"a":{${T}},}`, 4],
  ['lowercase dtype', '{"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}', 4],
  ['escaped dtype', '{"a":{"dtype":"F\\u0033\\u0032","shape":[1],"data_offsets":[0,4]}}', 4],
  ['missing dtype', '{"a":{"shape":[1],"data_offsets":[0,4]}}', 4],
  ['dtype I4 (unknown)', '{"a":{"dtype":"I4","shape":[2],"data_offsets":[0,1]}}', 1],
  ['dtype BOOL', '{"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}', 1],
  ['dtype F8_E4M3', '{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', 1],
  ['dtype U16', '{"a":{"dtype":"U16","shape":[1],"data_offsets":[0,2]}}', 2],
  ['dtype F4, whole bytes', '{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}', 1],
  ['dtype F4, half a byte', '{"a":{"dtype":"F4","shape":[1],"data_offsets":[0,1]}}', 1],
  ['dtype C64', '{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', 8],
  ['dtype F8_E8M0', '{"a":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[0,1]}}', 1],
  ['entry not an object', `{"a":{${T}},"b":3}`, 4],
  ['entry null', `{"a":{${T}},"b":null}`, 4],
  ['empty header, no data', '{}', 0],
  ['empty header, trailing data', '{}', 4],
  ['array header', '[]', 0],
  ['trailing data byte', `{"a":{${T}}}`, 5],
  ['truncated data', `{"a":{${T}}}`, 3],
  ['empty header bytes', '', 0],
];

const DOCUMENTED = [/which coldstart does not load/, /above 2\^53/];

interface OracleVerdict {
  verdict: 'ok' | 'refused' | 'inconsistent';
  error?: string;
  tensors?: Record<string, [string, number[]]>;
  metadata?: Record<string, string>;
}
interface Ours {
  verdict: 'ok' | 'refused';
  error?: string;
  crash?: boolean;
  tensors?: Record<string, [string, number[]]>;
  metadata?: Record<string, string>;
}

function ours(path: string): Ours {
  try {
    const h = readHeader(path);
    return { verdict: 'ok', tensors: Object.fromEntries(h.tensors.map((t) => [t.name, [t.dtype, t.shape]])), metadata: h.metadata };
  } catch (e) {
    return { verdict: 'refused', error: (e as Error).message, crash: !(e instanceof ColdstartError) };
  }
}

/** Every file through the reference reader, in one Python process. */
function oracle(paths: string[]): OracleVerdict[] {
  const r = spawnSync(py!, [ORACLE], { input: `${paths.join('\n')}\n`, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.status !== 0) throw new Error(`oracle failed: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as OracleVerdict);
}

function compare(c: Ours, t: OracleVerdict): 'agree' | 'documented' | string {
  if (c.crash) return `crash: ${c.error}`;
  if (t.verdict === 'inconsistent') return `the reference's two entry points disagree: ${t.error}`;
  if (c.verdict === 'refused' && t.verdict === 'refused') return 'agree';
  if (c.verdict === 'refused') return DOCUMENTED.some((re) => re.test(c.error!)) ? 'documented' : `coldstart refuses what safetensors reads: ${c.error}`;
  if (t.verdict === 'refused') return `coldstart accepts what safetensors refuses: ${t.error}`;
  const a = JSON.stringify(Object.entries(c.tensors!).sort());
  const b2 = JSON.stringify(Object.entries(t.tensors!).sort());
  if (a !== b2) return `different tensors: ${a} vs ${b2}`;
  const ma = JSON.stringify(Object.entries(c.metadata!).sort());
  const mb = JSON.stringify(Object.entries(t.metadata!).sort());
  return ma === mb ? 'agree' : `different metadata: ${ma} vs ${mb}`;
}

// ------------------------------------------------------------------------------------------------ mutations

const VALID_SEEDS: Array<[string, number]> = [
  [`{"__metadata__":{"format":"pt"},"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}  `, 32],
  ['{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"y":{"dtype":"U8","shape":[0],"data_offsets":[8,8]}}', 8],
  ['{"w":{"dtype":"F16","shape":[2,2],"data_offsets":[0,8]}}', 8],
];
const TOKENS = ['1.0', '1e0', '-0', '01', '-1', '18446744073709551615', '18446744073709551616', '9007199254740993', '4294967296', '0', '"F32"', '"F4"', '"C64"', 'null', '[]', '{}', 'true', '"\\ud800"', '"\\udc00"', '"\\ud83d\\ude00"', ',', ':', '"__metadata__"', ' ', '\t', '\u00a0'];
const BYTES = [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xef, 0xbb, 0xbf], [0x00], [0x0b], [0xe2, 0x82]];

/** One seeded edit of a valid header: a number/value swapped for a tricky one, a duplicate, a byte, a deletion. */
function mutateHeader(seed: string, r: () => number): { kind: string; header: Buffer } {
  const pick = <X>(xs: readonly X[]): X => xs[Math.floor(r() * xs.length)]!;
  const s = seed;
  switch (Math.floor(r() * 6)) {
    case 0: {
      // replace one number
      const nums = [...s.matchAll(/\d+/g)];
      const m = pick(nums);
      return { kind: 'number', header: Buffer.from(s.slice(0, m.index) + pick(TOKENS) + s.slice(m.index! + m[0].length)) };
    }
    case 1: {
      // replace one JSON value after a colon
      const at = [...s.matchAll(/:/g)].map((m) => m.index!);
      const i = pick(at) + 1;
      const end = s.slice(i).search(/[,}]/) + i;
      return { kind: 'value', header: Buffer.from(s.slice(0, i) + pick(TOKENS) + s.slice(end)) };
    }
    case 2: {
      // duplicate one "key":value pair inside its object
      const m = pick([...s.matchAll(/"[^"]+":(\{[^{}]*\}|\[[^\]]*\]|"[^"]*"|\d+)/g)]);
      return { kind: 'duplicate', header: Buffer.from(s.slice(0, m.index! + m[0].length) + ',' + m[0] + s.slice(m.index! + m[0].length)) };
    }
    case 3: {
      // insert raw bytes
      const i = Math.floor(r() * (s.length + 1));
      return { kind: 'bytes', header: Buffer.concat([Buffer.from(s.slice(0, i)), Buffer.from(pick(BYTES)), Buffer.from(s.slice(i))]) };
    }
    case 4: {
      // delete one character
      const i = Math.floor(r() * s.length);
      return { kind: 'delete', header: Buffer.from(s.slice(0, i) + s.slice(i + 1)) };
    }
    default: {
      // insert a token anywhere
      const i = Math.floor(r() * (s.length + 1));
      return { kind: 'insert', header: Buffer.from(s.slice(0, i) + pick(TOKENS) + s.slice(i)) };
    }
  }
}

describe.skipIf(!py)('safetensors header ≡ the safetensors (Rust) reader', () => {
  it('the corpus: same bytes, same verdict; same tensors and metadata where both read it', () => {
    const paths = CORPUS.map(([, h, n], i) => {
      const p = join(work, `c${i}.safetensors`);
      writeFileSync(p, stFile(h, n));
      return p;
    });
    const ref = oracle(paths);
    const outcomes = CORPUS.map(([name], i) => ({ name, c: compare(ours(paths[i]!), ref[i]!), ref: ref[i]!.verdict }));
    const bad = outcomes.filter((o) => o.c !== 'agree' && o.c !== 'documented').map((o) => `${o.name}: ${o.c}`);
    expect(bad).toEqual([]);
    // the cases of the issue, by name: refused by both
    for (const n of ['shape float 4.0', 'non-UTF-8 byte in a name', 'shape -0', 'offset float', 'duplicate __metadata__', 'duplicate field dtype', 'name lone high surrogate', 'NUL padding']) {
      expect(outcomes.find((o) => o.name === n), n).toMatchObject({ c: 'agree', ref: 'refused' });
    }
    // and read alike by both
    for (const n of ['__metadata__ null', 'duplicate tensor name (last kept)', 'duplicate tensor name, first has a bad size', 'leading space', 'unknown field', 'unknown field 125 deep (127 in all)']) {
      expect(outcomes.find((o) => o.name === n), n).toMatchObject({ c: 'agree', ref: 'ok' });
    }
    expect(outcomes.filter((o) => o.c === 'documented').map((o) => o.name).sort()).toEqual(['dims 2^64-1 then 0', 'dtype C64', 'dtype F4, whole bytes', 'dtype F8_E8M0'].sort());
  });

  it('seeded mutations of real headers (numbers, values, duplicates, raw bytes, deletions, insertions)', () => {
    const r = rng(Number(process.env.COLDSTART_FUZZ_SEED ?? 22));
    const n = Number(process.env.COLDSTART_ST_MUTANTS ?? 600);
    const mutants: Array<{ kind: string; path: string }> = [];
    for (let i = 0; i < n; i++) {
      const [seed, data] = VALID_SEEDS[i % VALID_SEEDS.length]!;
      const { kind, header } = mutateHeader(seed, r);
      const p = join(work, `m${i}.safetensors`);
      writeFileSync(p, stFile(header, data));
      mutants.push({ kind, path: p });
    }
    const ref = oracle(mutants.map((m) => m.path));
    const bad: string[] = [];
    const tally: Record<string, number> = {};
    mutants.forEach((m, i) => {
      const c = compare(ours(m.path), ref[i]!);
      tally[`${m.kind}:${ref[i]!.verdict}`] = (tally[`${m.kind}:${ref[i]!.verdict}`] ?? 0) + 1;
      if (c !== 'agree' && c !== 'documented') bad.push(`${m.kind} ${JSON.stringify(readHeaderText(m.path))}: ${c}`);
    });
    console.log('safetensors header mutants:', JSON.stringify(tally));
    expect(bad).toEqual([]);
    // both verdicts are exercised
    expect(Object.entries(tally).filter(([k]) => k.endsWith(':ok')).length).toBeGreaterThan(0);
    expect(Object.entries(tally).filter(([k]) => k.endsWith(':refused')).length).toBeGreaterThan(0);
  });

  it('through the CLI: profile of a file whose header says "shape":[4.0] or holds a non-UTF-8 byte exits 2 (CORRUPT_FILE)', async () => {
    for (const [name, h, n] of [
      ['float-shape', '{"a":{"dtype":"F32","shape":[4.0],"data_offsets":[0,16]}}', 16],
      ['bad-utf8', b('{"', [0xff], `":{${T}}}`), 4],
    ] as Array<[string, string | Buffer, number]>) {
      const p = join(work, `${name}.safetensors`);
      writeFileSync(p, stFile(h, n));
      const r = await runCli(['--json', 'profile', p]);
      expect(r.code, r.stderr).toBe(2);
      expect(JSON.parse(r.stdout)).toMatchObject({ schema: 'coldstart/error@1', error: { code: 'CORRUPT_FILE', exitCode: 2 } });
    }
  });
});

function readHeaderText(p: string): string {
  const buf = readFileSync(p);
  return buf.subarray(8, 8 + Number(buf.readBigUInt64LE(0))).toString('latin1');
}
