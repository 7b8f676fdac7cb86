/**
 * The pieces of `optimize` on their own: the first answers compared (identical, within the dtype's tolerance,
 * beyond it, text), each phase's saving credited to the remedy that acts on it, a cache miss explained from the
 * fingerprint, the server's Python found from its command or its #! line, and the recipe's shell quoting.
 */
import { describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compareAnswers } from '../../src/server/compare.js';
import { attribute, cacheMisses, type Remedy } from '../../src/optimize/run.js';
import { fingerprintChanges, serverPython, type ServerFingerprint, type StoredFingerprint } from '../../src/optimize/fingerprint.js';
import { buildRecipe, shellQuote } from '../../src/optimize/recipe.js';
import { cacheEnv, CACHE_SPECS } from '../../src/optimize/caches.js';
import { fingerprintKey, normalizeFingerprint } from '../../src/warmup/compile/store.js';
import type { PhaseResult } from '../../src/core/phases.js';

const completion = (lp: number[], text = ' w1 w2') => JSON.stringify({ id: `cmpl-${Math.random()}`, created: Date.now(), choices: [{ text, logprobs: { token_logprobs: lp } }] });

describe('compareAnswers', () => {
  it('identical JSON (ids and timestamps aside) is identical', () => {
    const a = compareAnswers(completion([-1.5, -2]), completion([-1.5, -2]), 'F32', 'test');
    expect(a.verdict).toBe('identical');
    expect(a.kind).toBe('json');
  });
  it('logprobs apart by less than bf16 allows are within tolerance, with the largest difference named', () => {
    const a = compareAnswers(completion([-1.5, -2]), completion([-1.5, -2.01]), 'BF16', 'test');
    expect(a.verdict).toBe('within-tolerance');
    expect(a.largestDifference!.path).toBe('.choices[0].logprobs.token_logprobs[1]');
    expect(a.largestDifference!.abs).toBeCloseTo(0.01, 6);
  });
  it('the same difference in fp32 differs', () => {
    expect(compareAnswers(completion([-1.5, -2]), completion([-1.5, -2.01]), 'F32', 'test').verdict).toBe('differs');
  });
  it('a different token is a difference, whatever the numbers', () => {
    const a = compareAnswers(completion([-1.5]), completion([-1.5], ' w9 w2'), 'BF16', 'test');
    expect(a.verdict).toBe('differs');
    expect(a.detail).toContain('.choices[0].text');
  });
  it('text answers: identical or not (never "close")', () => {
    expect(compareAnswers('hello', 'hello', 'BF16', 't').verdict).toBe('identical');
    const d = compareAnswers('hello', 'hellp', 'BF16', 't');
    expect([d.verdict, d.kind]).toEqual(['differs', 'text']);
  });
  it('a streamed answer (SSE) is compared event by event', () => {
    const sse = (x: string) => `data: {"id":"1","choices":[{"text":"${x}"}]}\n\ndata: [DONE]\n`;
    expect(compareAnswers(sse('a'), sse('a'), 'BF16', 't').verdict).toBe('identical');
    expect(compareAnswers(sse('a'), sse('b'), 'BF16', 't').verdict).toBe('differs');
  });
  it('no first request: not compared, said why', () => {
    const a = compareAnswers(null, 'x', 'BF16', 't');
    expect(a.verdict).toBe('not-compared');
    expect(a.detail).toMatch(/baseline/);
  });
});

const ph = (name: string, seconds: number | null): PhaseResult => ({ name, status: seconds === null ? 'skipped' : 'ok', seconds, steps: [], metrics: {} });
const remedies: Remedy[] = [
  { id: 'compile-cache', applied: true, why: '' },
  { id: 'prefetch', applied: true, why: '' },
  { id: 'weights-cache', applied: false, why: '' },
];

describe('attribute', () => {
  it('compile → compile cache, gpu-load → prefetch; unexplained is never credited; noise is not a saving', () => {
    const c = attribute([ph('compile', 40), ph('gpu-load', 10), ph('unexplained', 5), ph('first-completion', 0.2)], [ph('compile', 4), ph('gpu-load', 6), ph('unexplained', 3), ph('first-completion', 0.19)], remedies);
    const by = Object.fromEntries(c.map((x) => [x.phase, x]));
    expect(by.compile!.remedy).toBe('compile-cache');
    expect(by.compile!.saved).toBe(36);
    expect(by['gpu-load']!.remedy).toBe('prefetch');
    expect(by.unexplained!.remedy).toBe('none');
    expect(by['first-completion']!.note).toMatch(/noise/);
  });
  it('a phase measured in one start only gets no credit, and says why', () => {
    const c = attribute([ph('compile', 40)], [ph('compile', null)], remedies).find((x) => x.phase === 'compile')!;
    expect([c.saved, c.remedy]).toEqual([null, 'none']);
    expect(c.note).toMatch(/optimized start/);
  });
  it('a remedy not applied is not credited', () => {
    const c = attribute([ph('download', 30)], [ph('download', 1)], remedies).find((x) => x.phase === 'download')!;
    expect(c.remedy).toBe('none');
  });
});

const fp = (o: Record<string, string | null>, packages: Record<string, string | null> = {}): ServerFingerprint => {
  const f = normalizeFingerprint({ gpu: 'NVIDIA H100', python: '3.11.7', torch: '2.11.0', ...o });
  return { fingerprint: f, key: fingerprintKey(f), packages, python: { executable: null, from: 't' }, notes: [] };
};
const stored = (f: ServerFingerprint): StoredFingerprint => ({ schema: 'coldstart/optimize-caches@1', createdAt: '', key: f.key, fingerprint: f.fingerprint, packages: f.packages, command: [] });

describe('a miss explained from the fingerprint', () => {
  it('names what changed, torch and the engines\' own packages', () => {
    const was = stored(fp({}, { flashinfer: '0.2.1' }));
    expect(fingerprintChanges(was, fp({ torch: '2.12.0' }, { flashinfer: '0.2.3' }))).toEqual(['torch 2.11.0 → 2.12.0', 'flashinfer 0.2.1 → 0.2.3']);
    expect(fingerprintChanges(was, fp({}, { flashinfer: '0.2.1' }))).toEqual([]);
  });
  it('an engine that wrote new files in the optimized start missed; the change is named', () => {
    const u = (files: number) => [{ engine: 'flashinfer' as const, dir: '/d/flashinfer', files, bytes: 0 }];
    expect(cacheMisses(u(3), u(3), [])).toEqual([]);
    const m = cacheMisses(u(3), u(5), ['torch 2.11.0 → 2.12.0']);
    expect(m[0]).toMatch(/flashinfer cache missed.*2 new file.*torch 2\.11\.0 → 2\.12\.0/);
  });
});

describe('serverPython', () => {
  it('the command itself, a #! interpreter, or none for a non-Python server', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-opt-py-'));
    try {
      expect(serverPython(['python3', 'serve.py'], d, {})).toBe('python3');
      writeFileSync(join(d, 'vllm'), '#!/opt/venv/bin/python3.12\nimport sys\n');
      writeFileSync(join(d, 'tool'), '#!/usr/bin/env -S python3 -u\n');
      writeFileSync(join(d, 'node-server'), '#!/usr/bin/env node\n');
      for (const f of ['vllm', 'tool', 'node-server']) chmodSync(join(d, f), 0o755);
      expect(serverPython(['vllm', 'serve', 'm'], d, { PATH: d })).toBe('/opt/venv/bin/python3.12');
      expect(serverPython(['./tool'], d, {})).toBe('python3');
      expect(serverPython(['node-server'], d, { PATH: d })).toBeNull();
      expect(serverPython(['not-there'], d, { PATH: d })).toBeNull();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

describe('the recipe', () => {
  it('quotes what the shell would split, and sets only the caches that were used', () => {
    expect(shellQuote('--model=/a/b')).toBe('--model=/a/b');
    expect(shellQuote("it's here")).toBe(`'it'\\''s here'`);
    const env = cacheEnv('/p/caches', CACHE_SPECS.filter((s) => s.engine === 'inductor'));
    const r = buildRecipe({ persistDir: '/p', command: ['python3', 'serve.py', '--name', 'a b'], env, covers: ['inductor'], prefetch: '/models/x', prefetchStack: null, repo: 'org/x', readyUrl: 'http://127.0.0.1:8000/health', coldstartCommand: 'coldstart', measured: 'm' });
    expect(r.env.text).toContain('TORCHINDUCTOR_CACHE_DIR=/p/caches/inductor');
    expect(r.env.text).not.toContain('TRITON_CACHE_DIR');
    expect(r.entrypoint.text).toContain("exec python3 serve.py --name 'a b'");
    expect(r.entrypoint.text).toContain('coldstart prefetch /models/x >/dev/null 2>&1 &');
    expect(r.k8s.text).toContain('["coldstart","cache","org/x"]');
    expect(r.k8s.text).toContain('path: "/health"');
    // A Python server: its stack is read ahead first (on a cold node the weights alone slowed its imports).
    const py = buildRecipe({ persistDir: '/p', command: ['/opt/venv/bin/python', 'serve.py'], env, covers: [], prefetch: '/models/x', prefetchStack: '/opt/venv/bin/python', repo: null, readyUrl: null, coldstartCommand: 'coldstart', measured: 'm' });
    expect(py.entrypoint.text).toContain('coldstart prefetch /models/x --stack /opt/venv/bin/python >/dev/null 2>&1 &');
    expect(py.entrypoint.text).toContain('read the Python stack of the server, then the weights');
  });
});
