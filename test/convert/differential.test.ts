/**
 * Differential parity with torch (issue #11): every corpus file and every fuzz mutant goes through coldstart and
 * through torch.load(weights_only=True) in the peers venv; any disagreement fails (see test/differential/harness.ts
 * for what counts as one, and STRICTER for the documented differences).
 *
 * Corpus: fixtures/torch/{good,hostile,refused,attacks}, fixtures/torch/differential/{wo,bypass,found}.
 * Fuzz: seeded mutations of fixtures/torch/differential/seeds/*.pt for COLDSTART_FUZZ_SECONDS (default 4) with
 * COLDSTART_FUZZ_SEED (default 11); COLDSTART_FUZZ_SAVE=1 writes each disagreeing mutant to differential/found/.
 * COLDSTART_DIFF_REPORT=<file> writes the counts as JSON.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython } from '../helpers/python.js';
import { Oracle, coldstartVerdict, compare, type Comparison } from '../differential/harness.js';
import { mutate, rng } from '../differential/mutate.js';

const FIX = fileURLToPath(new URL('../../fixtures/torch/', import.meta.url));
const DIFF = join(FIX, 'differential');
/** Not given to torch: it would build 25 M dicts / a 1 GiB tensor (their torch outcome is in attacks/expected.json). */
const ORACLE_SKIP = new Set(['04_empty_dict_bomb.pt', '04_memo_dict_bomb.pt', '09_stride0_1gib.pt']);
/**
 * Disagreements the fuzzer found that are committed (differential/found/) but not yet resolved: the corpus test
 * requires exactly these, so fixing one (or a new one appearing) fails until this list is updated.
 */
const KNOWN_OPEN: Record<string, string> = {};
const py = peerPython();
let work: string;
let oracle: Oracle;
const pwned = () => readdirSync('/tmp').filter((f) => f.startsWith('coldstart_pwned_'));
const report: Record<string, unknown> = {};

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'coldstart-diff-'));
  if (py) oracle = new Oracle(py);
});
afterAll(() => {
  oracle?.close();
  rmSync(work, { recursive: true, force: true });
  if (process.env.COLDSTART_DIFF_REPORT) writeFileSync(process.env.COLDSTART_DIFF_REPORT, `${JSON.stringify(report, null, 1)}\n`);
});

function corpus(): string[] {
  const files: string[] = [];
  for (const d of ['good', 'hostile', 'refused', 'attacks']) for (const f of readdirSync(join(FIX, d)).sort()) if (/\.(pt|bin|ckpt)$/.test(f) && !ORACLE_SKIP.has(f)) files.push(join(FIX, d, f));
  for (const d of ['wo', 'bypass', 'found']) if (existsSync(join(DIFF, d))) for (const f of readdirSync(join(DIFF, d)).sort()) files.push(join(DIFF, d, f));
  return files;
}

function tally(rs: Array<{ name: string; c: Comparison }>) {
  const by = { agree: 0, documented: 0, disagree: 0 };
  const reasons: Record<string, number> = {};
  for (const { c } of rs) {
    by[c.kind]++;
    if (c.kind === 'documented') reasons[c.why] = (reasons[c.why] ?? 0) + 1;
  }
  return { cases: rs.length, ...by, documentedReasons: reasons };
}

describe.skipIf(!py)('coldstart convert ≡ torch.load(weights_only=True)', () => {
  it('the corpus: pytorch weights_only cases, published bypasses, attack fixtures, good/hostile/refused', async () => {
    const before = pwned();
    const files = corpus();
    expect(files.length).toBeGreaterThan(100);
    const rs: Array<{ name: string; c: Comparison }> = [];
    for (const f of files) {
      const t = await oracle.ask(f);
      const c = await coldstartVerdict(f, join(work, 'o'));
      rs.push({ name: f.slice(FIX.length), c: compare(c, t) });
    }
    const bad = rs.filter((r) => r.c.kind === 'disagree').map((r) => `${r.name}: ${r.c.why}`);
    report.corpus = { ...tally(rs), disagreements: bad };
    console.log('differential corpus:', JSON.stringify(report.corpus));
    expect(rs.filter((r) => r.c.kind === 'disagree').map((r) => r.name).sort()).toEqual(Object.keys(KNOWN_OPEN).sort());
    // the documented differences are each exercised, and most of the corpus agrees outright
    expect(rs.filter((r) => r.c.kind === 'agree').length).toBeGreaterThan(rs.length / 2);
    expect(pwned()).toEqual(before);
  }, 300_000);

  it('seeded mutation fuzzing of real torch.save outputs (bit flips, opcodes, frames, zip edits)', async () => {
    const seconds = Number(process.env.COLDSTART_FUZZ_SECONDS ?? 4);
    const seed = Number(process.env.COLDSTART_FUZZ_SEED ?? 11);
    const r = rng(seed);
    const seeds = readdirSync(join(DIFF, 'seeds')).sort().map((f) => readFileSync(join(DIFF, 'seeds', f)));
    const before = pwned();
    const rs: Array<{ name: string; c: Comparison }> = [];
    const kinds: Record<string, number> = {};
    const found: string[] = [];
    const t0 = Date.now();
    const m = join(work, 'mutant.pt');
    while (Date.now() - t0 < seconds * 1000) {
      const { kind, bytes } = mutate(seeds[Math.floor(r() * seeds.length)]!, r);
      kinds[kind] = (kinds[kind] ?? 0) + 1;
      writeFileSync(m, bytes);
      const t = await oracle.ask(m);
      const c = compare(await coldstartVerdict(m, join(work, 'o')), t);
      rs.push({ name: `${kind}#${rs.length}`, c });
      if (c.kind === 'disagree') {
        const id = createHash('sha256').update(bytes).digest('hex').slice(0, 12);
        found.push(`${kind} ${id}: ${c.why}`);
        if (process.env.COLDSTART_FUZZ_SAVE === '1') {
          mkdirSync(join(DIFF, 'found'), { recursive: true });
          writeFileSync(join(DIFF, 'found', `${kind}_${id}.pt`), bytes);
        }
      }
    }
    report.fuzz = { seed, seconds, mutants: rs.length, kinds, ...tally(rs), disagreements: found };
    console.log('differential fuzz:', JSON.stringify(report.fuzz));
    expect(rs.length).toBeGreaterThan(20);
    expect(found).toEqual([]);
    expect(pwned()).toEqual(before);
  }, 900_000);
});
