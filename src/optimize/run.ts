/**
 * `coldstart optimize`: from a slow cold start to a fast one, with the proof and a recipe.
 *
 *  1. refusals first (nothing started): DIR not writable, no CRIU for --snapshot;
 *  2. baseline: the server through wrap mode (server/wrap.ts) with empty compile caches in DIR (what a fresh
 *     container sees; the user's global caches are never touched), the weights dropped from the page cache;
 *  3. remedies chosen from what the baseline measured and wrote: the caches engines filled (fingerprinted),
 *     the Hub repo's files verified, prefetch beside the server when the weights were not resident;
 *  4. proof: a second start, same command, remedies applied (and with --snapshot, a snapshot and a restore),
 *     phase by phase beside the baseline, each phase's saving credited to the remedy that acts on it, the first
 *     answers compared (server/compare.ts), a cache that missed explained from the fingerprint;
 *  5. the recipe (recipe.ts), written atomically into DIR.
 */
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { writeFileAtomic } from '../core/atomic.js';
import { join } from 'node:path';
import { ColdstartError, fromSystemError, type ExitCodeValue } from '../core/errors.js';
import { requireServerCommand } from '../server/lifecycle.js';
import { readInputText } from '../core/files.js';
import { formatDuration } from '../core/format.js';
import { makeDirs } from '../core/paths.js';
import { newReport, summarizeRuns, type Report } from '../core/report.js';
import { parseDtypeName, type Dtype } from '../formats/dtypes.js';
import { hubCacheDir } from '../hub/env.js';
import { resolveRepoId } from '../models/table.js';
import { loadNative } from '../native.js';
import { pageCacheFraction, prefetchAfterStack, type PrefetchResult, type StackPrefetch } from '../load/prefetch.js';
import { wrapFloor, wrapPhases, wrapWeights, type WrapWeights } from '../profile/wrapmode.js';
import type { Engines } from '../profile/engines.js';
import { runWrapped, type WrapResult } from '../server/wrap.js';
import { CACHE_SPECS, CACHES_DIR, cacheEnv, cacheUsage, setAsideCaches, type CacheUsage } from './caches.js';
import { compareAnswers, type AnswerComparison } from '../server/compare.js';
import type { RecordedRequest } from '../server/api.js';
import { fingerprintChanges, probeServerFingerprint, readStoredFingerprint, serverPython, writeStoredFingerprint } from './fingerprint.js';
import { buildRecipe, writeRecipe, type Recipe } from './recipe.js';
import type { OptimizeEvents, OptimizeOptions } from './options.js';
import type { PhaseResult } from '../core/phases.js';

type Env = Record<string, string | undefined>;

/** What an optimize run uses besides its options; tests may pass their own snapshot step. */
export interface OptimizeDeps {
  env: Env;
  cwd: string;
  signal: AbortSignal;
  events?: OptimizeEvents;
  /** --snapshot: make an image of the optimized server and restore it (the command wires src/snapshot/). */
  snapshot?: SnapshotStep;
  /** The profile engines whose rate probes give the floor of the weights-loading stage; absent: not measured. */
  engines?: Engines;
}

export interface SnapshotStep {
  /** Refuses (CRIU missing, not root) before anything is started. */
  check(env: Env): Promise<void>;
  /**
   * Snapshot the server (env with the caches) into `image` after sending it `firstRequest` (the optimized start's
   * first completion, as sent), then restore it, repeat that request, and stop the restored server: the restored
   * start's phases and its answer.
   */
  run(o: { command: string[]; image: string; readyUrl?: string; readyLog?: RegExp; firstRequest: RecordedRequest | null; timeoutSeconds: number; env: Env; cwd: string; signal: AbortSignal }): Promise<{ phases: Array<{ name: string; seconds: number | null }>; total: number | null; answer: string | null; image: { bytes: number | null; residentBytesBefore: number | null; kinds: unknown }; hugePages: unknown; notes: string[] }>;
}

/** A saving credited to a remedy: the phase, its seconds before and after, and who gets the credit. */
export interface Credit {
  phase: string;
  baseline: number | null;
  optimized: number | null;
  saved: number | null;
  remedy: 'compile-cache' | 'prefetch' | 'weights-cache' | 'snapshot' | 'none';
  note: string;
}

export interface Remedy {
  id: 'compile-cache' | 'weights-cache' | 'prefetch' | 'snapshot';
  applied: boolean;
  why: string;
}

export interface OptimizeOutcome {
  report: Report;
  lines: string[];
  exitCode: ExitCodeValue;
}

/** The file that makes a --persist folder optimize's own: only then are its caches set aside and its recipe replaced. */
export const PERSIST_MARKER = '.coldstart-optimize.json';

/**
 * DIR exists (or is made) as a folder this process can write, and is optimize's own: new, empty, or marked by an
 * earlier run (PERSIST_MARKER). A folder holding anything else (a home directory, someone's project) is refused:
 * optimize moves `caches/` aside, deletes the earlier one and replaces `entrypoint.sh`, `coldstart.env` and
 * `k8s.yaml` there, which must never touch files it did not write.
 */
export function checkPersistDir(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) {
    throw new ColdstartError('BAD_FLAG', `--persist ${dir}: is not a folder`, { hint: 'Name a folder (it is created when missing), e.g. --persist .coldstart/optimize.' });
  }
  let entries: string[] = [];
  try {
    if (existsSync(dir)) entries = readdirSync(dir);
  } catch (e) {
    throw fromSystemError(e, dir, 'read');
  }
  if (entries.length > 0 && !entries.includes(PERSIST_MARKER)) {
    const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? `, … (${entries.length} entries)` : '');
    throw new ColdstartError('OUTPUT_EXISTS', `--persist ${dir}: holds files coldstart did not write (${shown})`, {
      hint: 'optimize keeps its caches and recipe in that folder and replaces them run after run: name a new or empty folder, e.g. --persist .coldstart/optimize.',
    });
  }
  try {
    makeDirs(dir);
    accessSync(dir, constants.W_OK | constants.X_OK);
    if (!entries.includes(PERSIST_MARKER)) writeFileAtomic(join(dir, PERSIST_MARKER), `${JSON.stringify({ schema: 'coldstart/optimize-dir@1', createdAt: new Date().toISOString() })}\n`);
  } catch (e) {
    const err = fromSystemError(e, dir, 'write to');
    throw new ColdstartError(err.code === 'BAD_INPUT' ? 'PERMISSION' : err.code, `--persist ${dir}: cannot write there (${err.message})`, {
      hint: 'Choose a folder you can write with --persist DIR (a volume that outlives the container), or fix its permissions.',
    });
  }
}

function dtypeOf(o: OptimizeOptions, w: WrapWeights | { reason: string }): { dtype: Dtype; source: string } {
  if (o.dtype) return { dtype: o.dtype, source: '--dtype' };
  if ('files' in w && w.files[0]) {
    for (const dir of [join(w.files[0], '..')]) {
      try {
        const cfg = JSON.parse(readInputText(join(dir, 'config.json'), 'model config', 1 << 20)) as { torch_dtype?: string; dtype?: string };
        const d = parseDtypeName(cfg.torch_dtype ?? cfg.dtype);
        if (d) return { dtype: d, source: `${join(dir, 'config.json')} torch_dtype` };
      } catch {
        /* no config: the default below */
      }
    }
  }
  return { dtype: 'BF16', source: 'assumed: the weights\' dtype is not known (pass --dtype)' };
}

async function residency(files: readonly string[]): Promise<number | null> {
  const n = loadNative();
  if (!n.ok || files.length === 0) return null;
  return pageCacheFraction(await n.addon.pageCache({ paths: [...files], action: 'query' }).catch(() => []));
}

/** Drops the weights from the page cache (--cache cold): null when done, else why not. */
async function dropWeights(o: OptimizeOptions, w: WrapWeights | { reason: string }): Promise<string | null> {
  if (o.cache !== 'cold') return 'not dropped: --cache as-is';
  if (!('files' in w) || w.files.length === 0) return `not dropped: ${'reason' in w ? w.reason : 'no weight files'}`;
  const n = loadNative();
  if (!n.ok) return `not dropped: the native addon is unavailable (${n.reason})`;
  const after = await n.addon.pageCache({ paths: [...w.files], action: 'evict' });
  const note = after.find((e) => e.note)?.note;
  return note ? `not fully dropped: ${note}` : null;
}

interface Start {
  result: WrapResult;
  phases: PhaseResult[];
  residentBefore: number | null;
  cacheDrop: string | null;
  prefetch?: (PrefetchResult & { stack?: StackPrefetch }) | { failed: string };
}

const secondsOf = (phases: readonly PhaseResult[], name: string): number | null => phases.find((p) => p.name === name)?.seconds ?? null;

/** Which remedy acts on a phase (DESIGN's phase table): compile → compile caches, loads → prefetch / the weights cache. */
function creditFor(phase: string, remedies: readonly Remedy[]): Credit['remedy'] {
  const on = (id: Remedy['id']) => remedies.some((r) => r.id === id && r.applied);
  if ((phase === 'compile' || phase === 'warmup' || phase === 'first-completion') && on('compile-cache')) return 'compile-cache';
  if (phase === 'gpu-load' && on('prefetch')) return 'prefetch';
  if (phase === 'download' && on('weights-cache')) return 'weights-cache';
  return 'none';
}

/** Phase by phase: baseline, optimized, saved and who gets the credit. Savings within noise are not credited. */
export function attribute(baseline: readonly PhaseResult[], optimized: readonly PhaseResult[], remedies: readonly Remedy[]): Credit[] {
  const names = ['download', 'gpu-load', 'compile', 'warmup', 'unexplained', 'first-completion'];
  return names.map((phase) => {
    const b = secondsOf(baseline, phase);
    const a = secondsOf(optimized, phase);
    if (b === null || a === null) {
      const why = b === null && a === null ? 'not measured in either start' : `not measured in the ${b === null ? 'baseline' : 'optimized start'}`;
      return { phase, baseline: b, optimized: a, saved: null, remedy: 'none', note: `${why}: no credit` };
    }
    const saved = b - a;
    // Below 10 % of the phase or 100 ms, a difference is noise, not a remedy's work.
    if (Math.abs(saved) < Math.max(0.1, 0.1 * b)) return { phase, baseline: b, optimized: a, saved, remedy: 'none', note: 'unchanged (within noise)' };
    const remedy = saved > 0 ? creditFor(phase, remedies) : 'none';
    const note =
      saved < 0 ? `slower by ${formatDuration(-saved)}`
      : remedy === 'none' ? (phase === 'unexplained' ? 'not credited: no log line says what this time was (imports, process start)' : 'not credited: no remedy acts on this phase')
      : `credited to ${remedy}`;
    return { phase, baseline: b, optimized: a, saved, remedy, note };
  });
}

export async function runOptimize(o: OptimizeOptions, deps: OptimizeDeps): Promise<OptimizeOutcome> {
  const { env, cwd, signal } = deps;
  const step = deps.events?.step ?? (() => {});
  const server = o.server;
  // ---- 1. refusals, before anything long starts
  requireServerCommand('optimize', server);
  checkPersistDir(o.persistDir);
  if (o.snapshot) {
    if (!deps.snapshot) throw new ColdstartError('INTERNAL', 'optimize --snapshot: no snapshot step wired');
    await deps.snapshot.check(env);
  }
  const cachesRoot = join(o.persistDir, CACHES_DIR);
  const runEnv: Env = { ...env, ...cacheEnv(cachesRoot) };
  const onLine = deps.events?.serverLine ? (l: { t: number; text: string }) => deps.events!.serverLine!(l.t, l.text) : undefined;

  // ---- what the server reads, and what its caches are keyed by
  const found = await wrapWeights(o.model, server.command, { env, cwd, signal }, o.revision);
  const weights: WrapWeights | { reason: string } = 'files' in found ? found : { reason: 'no weights found in the server command (name them before --: coldstart optimize MODEL -- CMD)' };
  const repo = 'files' in weights ? (resolveRepoId(weights.from)?.repo ?? null) : null;
  const { dtype, source: dtypeSource } = dtypeOf(o, weights);
  step('fingerprinting the server\'s environment (Python packages, GPU)');
  // An assumed dtype is not a fact about the caches: it stays out of the fingerprint.
  const fp = await probeServerFingerprint(server.command, cwd, env, { dtype: dtypeSource.startsWith('assumed') ? null : dtype, engine: null });
  const earlier = readStoredFingerprint(o.persistDir);
  const changes = earlier.stored ? fingerprintChanges(earlier.stored, fp) : [];
  const notes: string[] = [...fp.notes];
  if (earlier.why) notes.push(`earlier fingerprint ignored: ${earlier.why}`);
  if (changes.length) notes.push(`the caches in ${cachesRoot} were built for another environment and would have missed (${changes.join(', ')}); they are rebuilt now`);

  const files = 'files' in weights ? weights.files : [];
  // The server's Python, when it is one: the prefetched start reads its stack first, as the entrypoint will.
  const stackPython = serverPython(server.command, cwd, env);
  const start = async (label: string, withPrefetch: boolean): Promise<Start> => {
    const cacheDrop = await dropWeights(o, weights);
    const residentBefore = await residency(files);
    step(`${label}: starting ${server.command.join(' ')}`);
    let prefetch: Start['prefetch'];
    const pf = withPrefetch
      ? prefetchAfterStack({ files, signal }, stackPython, env).then(
          (r) => void (prefetch = r),
          (e: Error) => void (prefetch = { failed: e.message.split('\n')[0]! }),
        )
      : null;
    const result = await runWrapped({ ...server, env: runEnv, cwd, signal, onLine });
    await pf;
    const readyNote = result.readyNote ? `${label}: ${result.readyNote}` : null;
    if (readyNote && !notes.includes(readyNote)) notes.push(readyNote);
    step(`${label}: ready in ${formatDuration(result.readySeconds)}`);
    return { result, phases: wrapPhases(result, server.completionUrl === false), residentBefore, cacheDrop, ...(prefetch ? { prefetch } : {}) };
  };

  // ---- 2. baseline: empty caches in DIR (an earlier run's set aside, put back if the baseline fails)
  const aside = setAsideCaches(cachesRoot);
  let baseline: Start;
  try {
    baseline = await start('baseline (empty compile caches)', false);
  } catch (e) {
    aside.restore();
    throw e;
  }
  aside.drop();
  const filled = cacheUsage(cachesRoot);
  const stored = writeStoredFingerprint(o.persistDir, fp, server.command);

  // ---- 3. remedies, from what the baseline measured and wrote
  const used = filled.filter((u) => u.files > 0);
  const compileSeconds = secondsOf(baseline.phases, 'compile');
  const remedies: Remedy[] = [];
  remedies.push({
    id: 'compile-cache',
    applied: used.length > 0,
    why: used.length > 0
      ? `the baseline wrote ${used.map((u) => `${u.engine} (${u.files} file(s))`).join(', ')}${compileSeconds !== null ? `; its compile phase took ${formatDuration(compileSeconds)}` : ''}`
      : 'no engine wrote a compile/JIT cache in the baseline: nothing to persist',
  });
  let verified: { ok: boolean; files: number; bytes: number } | { failed: string } | null = null;
  if (repo && 'files' in weights && weights.files.length) {
    step(`verifying ${repo} in the HF cache`);
    try {
      const { verifyRepo } = await import('../cache/verify.js');
      const v = await verifyRepo({ repo, revision: o.revision, cacheDir: hubCacheDir(env), concurrency: 4, signal });
      verified = { ok: v.ok, files: v.files.length, bytes: v.bytes };
    } catch (e) {
      verified = { failed: (e as Error).message.split('\n')[0]! };
    }
    remedies.push({ id: 'weights-cache', applied: true, why: verified && 'ok' in verified ? `${repo} is in the HF cache (${verified.files} file(s) ${verified.ok ? 'verified' : 'NOT all verified'}); the recipe pre-caches it in an init container` : `${repo} is in the HF cache; verifying it failed (${(verified as { failed: string }).failed})` });
  } else {
    remedies.push({ id: 'weights-cache', applied: false, why: `skipped: ${'reason' in weights ? weights.reason : `the server reads local files (${weights.from}), not a Hub repo`}` });
  }
  const res = baseline.residentBefore;
  const wantPrefetch = o.prefetch && files.length > 0 && res !== null && res < 0.5;
  remedies.push({
    id: 'prefetch',
    applied: wantPrefetch,
    why: !o.prefetch ? 'skipped: --no-prefetch'
      : files.length === 0 ? `skipped: ${'reason' in weights ? weights.reason : 'no weight files'}`
      : res === null ? 'skipped: page-cache residency unknown (native addon unavailable)'
      : res >= 0.5 ? `skipped: ${Math.round(res * 100)} % of the weights were already in the page cache`
      : `${Math.round((1 - res) * 100)} % of the weights were not in the page cache at start: read ahead beside the server`,
  });

  // ---- 4. proof: the same command with the remedies applied
  const before = cacheUsage(cachesRoot);
  const optimized = await start('optimized (caches in DIR)', wantPrefetch);
  const after = cacheUsage(cachesRoot);
  const misses = cacheMisses(before, after, changes);
  let restored: Awaited<ReturnType<SnapshotStep['run']>> | null = null;
  if (o.snapshot && deps.snapshot) {
    step('snapshot: checkpointing the optimized server, then restoring it');
    const fc = optimized.result.firstCompletion;
    const image = join(o.persistDir, 'snapshot');
    restored = await deps.snapshot.run({ command: server.command, image, readyUrl: server.readyUrl, readyLog: server.readyLog, firstRequest: 'request' in fc ? fc.request : null, timeoutSeconds: server.readyTimeoutSeconds, env: runEnv, cwd, signal });
    remedies.push({ id: 'snapshot', applied: true, why: `image in ${image}; restore it with coldstart restore ${image} --huge-pages (2 MiB pages for CRIU and the GPU restore: 1.6-2.1x faster at 8B)` });
  }
  // ---- the floor of the weights-loading stage, for each start's page-cache state: probed last, when no server runs
  // and nothing after it reads the weights (the probe's cold read drops them from the page cache).
  const floors = await startFloors(deps, weights, [baseline.residentBefore, optimized.residentBefore], step);
  const credits = attribute(baseline.phases, optimized.phases, remedies);
  const answers = compareAnswers(answerOf(baseline.result), answerOf(optimized.result), dtype, dtypeSource);
  // The restored server's answer to the same request, against the baseline's (the cold truth), same tolerance.
  const restoredAnswers = restored ? compareAnswers(answerOf(baseline.result), restored.answer, dtype, dtypeSource) : null;
  const pfHelped = wantPrefetch && (credits.find((c) => c.phase === 'gpu-load')?.remedy === 'prefetch' || secondsOf(baseline.phases, 'gpu-load') === null);

  // ---- 5. the recipe
  const usedSpecs = CACHE_SPECS.filter((s) => used.some((u) => u.engine === s.engine));
  const sum = (p: readonly PhaseResult[]) => summarizeRuns([p]).total;
  const bt = sum(baseline.phases);
  const ot = sum(optimized.phases);
  const measured = `baseline ready in ${formatDuration(baseline.result.readySeconds)}, optimized ${formatDuration(optimized.result.readySeconds)}`;
  const recipe: Recipe = buildRecipe({
    persistDir: o.persistDir,
    command: server.command,
    env: cacheEnv(cachesRoot, usedSpecs),
    covers: usedSpecs.map((s) => `${s.engine}: ${s.what}`),
    prefetch: pfHelped ? (o.model ?? ('files' in weights ? weights.from : null)) : null,
    prefetchStack: stackPython,
    repo,
    readyUrl: server.readyUrl ?? null,
    coldstartCommand: o.coldstartCommand,
    measured,
  });
  writeRecipe(recipe);

  // ---- the report: the optimized start's phases (budgets judge what the user will deploy), the baseline beside
  const report = newReport('optimize');
  const s = summarizeRuns([optimized.phases]);
  report.phases = s.phases;
  const load = report.phases.find((p) => p.name === 'gpu-load');
  if (load && 'seconds' in floors && floors.seconds[1] !== undefined) load.floor = { seconds: floors.seconds[1], source: floors.source };
  report.total = s.total;
  report.target = { name: server.command.join(' '), kind: 'server', command: server.command, engine: optimized.result.engine };
  report.warnings.push(...notes);
  if (answers.verdict === 'differs') report.warnings.push(`the first answers differ: ${answers.detail ?? describeLargest(answers)}`);
  if (restoredAnswers?.verdict === 'differs') report.warnings.push(`the restored server's first answer differs from the baseline's: ${restoredAnswers.detail ?? describeLargest(restoredAnswers)}`);
  for (const m of misses) report.warnings.push(m);
  report.findings = credits.filter((c) => c.saved !== null && c.saved > 0 && c.remedy !== 'none').map((c) => ({ id: c.remedy, savesSeconds: c.saved, message: `${c.phase}: ${formatDuration(c.baseline!)} → ${formatDuration(c.optimized!)} (${c.note})` }));
  const startOf = (st: Start) => ({
    readySeconds: st.result.readySeconds,
    total: sum(st.phases),
    phases: st.phases.map((p) => ({ name: p.name, seconds: p.seconds, ...(p.reason ? { reason: p.reason } : {}) })),
    stages: st.result.stages,
    engine: st.result.engine,
    pageCache: { residentBefore: st.residentBefore, dropped: st.cacheDrop === null, ...(st.cacheDrop ? { note: st.cacheDrop } : {}) },
    ...(st.prefetch ? { prefetch: 'failed' in st.prefetch ? st.prefetch : { seconds: st.prefetch.seconds, bytes: st.prefetch.bytes, residency: st.prefetch.residency, ...(st.prefetch.stack ? { stack: { python: st.prefetch.stack.python, files: st.prefetch.stack.files, bytes: st.prefetch.stack.bytes, seconds: st.prefetch.stack.seconds } } : {}) } } : {}),
  });
  report.details = {
    persistDir: o.persistDir,
    baseline: startOf(baseline),
    optimized: startOf(optimized),
    ...(restored ? { restored: { phases: restored.phases, total: restored.total, image: restored.image, hugePages: restored.hugePages, notes: restored.notes, answers: restoredAnswers } } : {}),
    saved: bt.seconds !== null && ot.seconds !== null ? bt.seconds - ot.seconds : null,
    credits,
    remedies,
    answers,
    fingerprint: { key: stored.key, fingerprint: stored.fingerprint, packages: stored.packages, python: fp.python, changedSinceLastRun: changes },
    caches: { root: cachesRoot, filled, afterOptimized: after, misses },
    weights: 'files' in weights ? { from: weights.from, files: weights.files.length, bytes: weights.bytes, repo, verified } : { reason: weights.reason },
    floor:
      'seconds' in floors
        ? { measured: true, baselineSeconds: floors.seconds[0]!, optimizedSeconds: floors.seconds[1]!, source: floors.source, rates: floors.rates, assumptions: floors.assumptions }
        : { measured: false, reason: floors.reason },
    recipe: { env: recipe.env, entrypoint: recipe.entrypoint, k8s: recipe.k8s },
  };
  const exitCode: ExitCodeValue = answers.verdict === 'differs' || restoredAnswers?.verdict === 'differs' ? 1 : 0;
  const floorLine = 'seconds' in floors ? `floor of gpu-load: baseline ${formatDuration(floors.seconds[0]!)}, optimized ${formatDuration(floors.seconds[1]!)} (${floors.source})` : `floor of gpu-load: ${floors.reason}`;
  return { report, lines: [...optimizeLines(credits, remedies, answers, recipe, bt.seconds, ot.seconds, restored, restoredAnswers), floorLine], exitCode };
}

/**
 * The floor of gpu-load for each start (the weights' bytes ÷ the rates profile's probes measure, mixed by the
 * fraction of them the page cache held when that start began): one probe, one floor per page-cache state.
 */
async function startFloors(deps: OptimizeDeps, weights: WrapWeights | { reason: string }, resident: ReadonlyArray<number | null>, step: (s: string) => void): Promise<{ seconds: number[]; source: string; rates: unknown; assumptions: string[] } | { reason: string }> {
  if (!('files' in weights)) return { reason: `not measured: ${weights.reason}` };
  if (!deps.engines) return { reason: 'not measured: no rate probes wired (library use without engines)' };
  step('floor: measuring the disk, page-cache and host→device rates on the weights');
  const f = await wrapFloor({ engines: deps.engines, env: deps.env, cwd: deps.cwd, signal: deps.signal }, weights, resident, {});
  if (!('floors' in f)) return f;
  return { seconds: f.floors.map((x) => x.seconds), source: f.floors.at(-1)!.source, rates: f.rates, assumptions: f.assumptions };
}

const answerOf = (r: WrapResult): string | null => ('answer' in r.firstCompletion ? r.firstCompletion.answer : null);

function describeLargest(a: AnswerComparison): string {
  const l = a.largestDifference;
  return l ? `largest difference ${l.abs.toExponential(2)} at ${l.path} (allowed ${l.allowed.toExponential(2)} in ${a.tolerance?.dtype})` : 'no numeric difference';
}

/** An engine that wrote new files during the optimized start compiled again: a (partial) miss, explained when the fingerprint says why. */
export function cacheMisses(before: readonly CacheUsage[], after: readonly CacheUsage[], changes: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of after) {
    const b = before.find((x) => x.engine === a.engine);
    const added = a.files - (b?.files ?? 0);
    if (b && b.files > 0 && added > 0) {
      out.push(`${a.engine} cache missed in part: the optimized start wrote ${added} new file(s) to ${a.dir}${changes.length ? ` (environment changed: ${changes.join(', ')})` : ' (the engine keys more than the fingerprint: shapes, config or code)'}`);
    }
  }
  return out;
}

function optimizeLines(credits: readonly Credit[], remedies: readonly Remedy[], answers: AnswerComparison, recipe: Recipe, bt: number | null, ot: number | null, restored: { total: number | null } | null, restoredAnswers: AnswerComparison | null): string[] {
  const f = (s: number | null) => (s === null ? '—' : formatDuration(s));
  const rows = credits.map((c) => [c.phase, f(c.baseline), f(c.optimized), c.saved === null ? '—' : formatDuration(c.saved), c.note]);
  const head = ['phase', 'baseline', 'optimized', 'saved', ''];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmtRow = (r: string[]) => `  ${r[0]!.padEnd(w[0]!)}  ${r[1]!.padStart(w[1]!)}  ${r[2]!.padStart(w[2]!)}  ${r[3]!.padStart(w[3]!)}  ${r[4]}`;
  const verdict = (a: AnswerComparison) =>
    a.verdict === 'identical' ? 'identical'
    : a.verdict === 'within-tolerance' ? `within ${a.tolerance!.dtype} tolerance (${describeLargest(a)})`
    : a.verdict === 'differs' ? `DIFFER: ${a.detail ?? describeLargest(a)}`
    : a.detail ?? 'not compared';
  return [
    '',
    `cold start: ${f(bt)} → ${f(ot)}${bt !== null && ot !== null ? ` (saved ${formatDuration(bt - ot)})` : ''}${restored ? `; restored from the snapshot: ${f(restored.total)}` : ''}`,
    fmtRow(head),
    ...rows.map(fmtRow),
    '',
    'remedies:',
    ...remedies.map((r) => `  ${r.applied ? '✓' : '·'} ${r.id}: ${r.why}`),
    `first answer: ${verdict(answers)}`,
    ...(restoredAnswers ? [`restored server's first answer, against the baseline's: ${verdict(restoredAnswers)}`] : []),
    '',
    'recipe:',
    `  ${recipe.env.path}`,
    `  ${recipe.entrypoint.path}   (run it as it is: sh ${recipe.entrypoint.path})`,
    `  ${recipe.k8s.path}`,
  ];
}
