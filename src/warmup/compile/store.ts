/**
 * Persisted compile artefacts: one directory per fingerprint under a persist dir, each with a manifest that
 * names what it was built for (GPU, compute capability, driver, CUDA, torch/triton/vLLM versions, model hash,
 * compile options, the engine's own cache keys) and the sha256 of every file in it.
 *
 *   DIR/torch-compile-<key>/manifest.json      schema coldstart/compile-artifact@1
 *   DIR/torch-compile-<key>/inductor/…         TORCHINDUCTOR_CACHE_DIR of the cold run
 *   DIR/torch-compile-<key>/triton/…           TRITON_CACHE_DIR of the cold run
 *   DIR/torch-compile-<key>/artifacts.bin      torch.compiler.save_cache_artifacts() (when torch has it)
 *
 * <key> is the first 16 hex digits of sha256 over the canonical fingerprint, so an entry is only ever looked up
 * for exactly what it was built for; a miss is explained by diffing the current fingerprint against the nearest
 * stored one ("torch 2.11.0 → 2.12.0"). An entry is loaded only after every file re-hashes to its manifest:
 * a corrupted or tampered artefact is refused, never handed to the engine.
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ColdstartError, fromSystemError } from '../../core/errors.js';
import { copyInputFile, readInputText, sha256FileSync } from '../../core/files.js';
import { tempPathFor, trackTemp, untrackTemp, writeFileAtomic } from '../../core/atomic.js';
import { makeDirs, walkFiles } from '../../core/paths.js';

export const MANIFEST_SCHEMA = 'coldstart/compile-artifact@1';
export const MANIFEST_FILE = 'manifest.json';

/**
 * What a compiled artefact depends on, one flat string per component (null: absent on that machine, e.g. no
 * triton on a CPU-only torch). The order here is the order misses are explained in.
 */
export const FINGERPRINT_COMPONENTS = [
  'gpu',
  'compute capability',
  'driver',
  'cuda',
  'cpu isa',
  'python',
  'torch',
  'triton',
  'vllm',
  'model',
  'device',
  'dtype',
  'input shape',
  'backend',
  'mode',
  'dynamic',
] as const;
export type CompileFingerprintComponent = (typeof FINGERPRINT_COMPONENTS)[number];
export type CompileFingerprint = Record<CompileFingerprintComponent, string | null>;

export interface ManifestFile {
  path: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  schema: typeof MANIFEST_SCHEMA;
  kind: 'torch-compile';
  key: string;
  createdAt: string;
  fingerprint: CompileFingerprint;
  /** The engine's own cache keys (Inductor FX-graph / AOTAutograd keys from save_cache_artifacts). */
  engineKeys: Record<string, string[]>;
  /** First forward of the cold run (compile included), seconds. */
  coldSeconds: number;
  files: ManifestFile[];
  totalBytes: number;
  tool: string;
}

/** A fingerprint with every component present (missing ones null), so keys never depend on property order. */
export function normalizeFingerprint(fp: Partial<Record<string, unknown>>): CompileFingerprint {
  const out = {} as CompileFingerprint;
  for (const c of FINGERPRINT_COMPONENTS) {
    const v = fp[c];
    out[c] = v === undefined || v === null || v === '' ? null : String(v);
  }
  return out;
}

export function fingerprintKey(fp: CompileFingerprint): string {
  const canon = JSON.stringify(FINGERPRINT_COMPONENTS.map((c) => [c, fp[c]]));
  return createHash('sha256').update(canon).digest('hex').slice(0, 16);
}

export function entryName(key: string): string {
  return `torch-compile-${key}`;
}

export interface Difference {
  component: CompileFingerprintComponent;
  was: string | null;
  now: string | null;
}

/** Components that differ, in FINGERPRINT_COMPONENTS order. */
export function diffFingerprints(stored: CompileFingerprint, current: CompileFingerprint): Difference[] {
  return FINGERPRINT_COMPONENTS.filter((c) => stored[c] !== current[c]).map((c) => ({ component: c, was: stored[c], now: current[c] }));
}

const short = (c: CompileFingerprintComponent, v: string | null) => (v === null ? 'none' : c === 'model' ? v.slice(0, 12) : v);

/** "torch 2.11.0 → 2.12.0", "compute capability 9.0 → 8.9", "triton none → 3.5.0". */
export function describeDifference(d: Difference): string {
  return `${d.component} ${short(d.component, d.was)} → ${short(d.component, d.now)}`;
}

export interface StoredEntry {
  name: string;
  dir: string;
  manifest?: Manifest;
  /** Why the manifest could not be used (unreadable, wrong schema, key not matching its fingerprint). */
  invalid?: string;
}

function readManifest(dir: string): Manifest {
  const p = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    // Regular file, size-capped before reading: a FIFO or a huge manifest.json is refused, never blocked on.
    text = readInputText(p, 'compile-cache manifest', 16 << 20);
  } catch (e) {
    throw new Error(existsSync(p) ? `manifest.json cannot be read (${(e as Error).message})` : 'no manifest.json');
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`manifest.json is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const m = j as Partial<Manifest>;
  if (!m || typeof m !== 'object' || m.schema !== MANIFEST_SCHEMA) throw new Error(`manifest.json is not ${MANIFEST_SCHEMA}`);
  if (!m.fingerprint || typeof m.fingerprint !== 'object' || !Array.isArray(m.files) || typeof m.key !== 'string') throw new Error('manifest.json lacks fingerprint, key or files');
  for (const f of m.files) {
    if (!f || typeof f.path !== 'string' || typeof f.sha256 !== 'string' || !Number.isSafeInteger(f.size) || f.size < 0) throw new Error('manifest.json has a malformed file entry');
    if (f.path.startsWith('/') || f.path.split('/').includes('..') || f.path === MANIFEST_FILE) throw new Error(`manifest.json names a path outside its entry: ${f.path}`);
  }
  const fp = normalizeFingerprint(m.fingerprint as Record<string, unknown>);
  if (fingerprintKey(fp) !== m.key) throw new Error(`manifest key ${m.key} does not match its fingerprint (${fingerprintKey(fp)}): edited by hand?`);
  return { ...(m as Manifest), fingerprint: fp };
}

/** Every torch-compile entry under a persist dir (none when the dir does not exist). */
export function listEntries(persistDir: string): StoredEntry[] {
  if (!existsSync(persistDir)) return [];
  const out: StoredEntry[] = [];
  for (const name of readdirSync(persistDir).sort()) {
    if (!name.startsWith('torch-compile-')) continue;
    const dir = join(persistDir, name);
    if (!statSync(dir).isDirectory()) continue;
    try {
      const manifest = readManifest(dir);
      if (entryName(manifest.key) !== name) out.push({ name, dir, invalid: `directory name does not match manifest key ${manifest.key}` });
      else out.push({ name, dir, manifest });
    } catch (e) {
      out.push({ name, dir, invalid: (e as Error).message });
    }
  }
  return out;
}

export interface VerifyResult {
  ok: boolean;
  /** One line per problem: "inductor/ab/c.so: sha256 3f2a… ≠ manifest 9b1c…". */
  problems: string[];
  /** Files present but not in the manifest (never loaded). */
  unlisted: string[];
  bytes: number;
}

/** Re-hashes every file an entry's manifest names. */
/**
 * The first part of `rel` under `dir` that is a symbolic link (the file itself or a folder on the way), or null. An
 * entry's files are read only inside it: a link planted in a shared persist folder would have the verification and
 * the copy read a file elsewhere — with a matching digest, a file the entry does not hold.
 */
function linkOnTheWay(dir: string, rel: string): string | null {
  let at = dir;
  for (const part of rel.split('/')) {
    at = join(at, part);
    try {
      if (lstatSync(at).isSymbolicLink()) return at;
    } catch {
      return null; // missing: said by the caller's own check
    }
  }
  return null;
}

const throughLink = (rel: string, link: string): string => `${rel}: reached through a symbolic link (${link}); an entry's files are read only inside it`;

export function verifyEntry(dir: string, manifest: Manifest): VerifyResult {
  const problems: string[] = [];
  let bytes = 0;
  for (const f of manifest.files) {
    const p = join(dir, f.path);
    const link = linkOnTheWay(dir, f.path);
    if (link) {
      problems.push(throughLink(f.path, link));
      continue;
    }
    if (!existsSync(p)) {
      problems.push(`${f.path}: missing`);
      continue;
    }
    const size = statSync(p).size;
    bytes += size;
    if (size !== f.size) {
      problems.push(`${f.path}: ${size} bytes, manifest says ${f.size}`);
      continue;
    }
    const got = sha256FileSync(p);
    if (got !== f.sha256) problems.push(`${f.path}: sha256 ${got.slice(0, 12)}… ≠ manifest ${f.sha256.slice(0, 12)}…`);
  }
  const listed = new Set(manifest.files.map((f) => f.path));
  const unlisted = walkFiles(dir).filter((p) => p !== MANIFEST_FILE && !listed.has(p));
  return { ok: problems.length === 0, problems, unlisted, bytes };
}

export type CompileCacheState = 'cached' | 'not-cached' | 'missed' | 'refused';

export interface CompileCacheStatus {
  status: CompileCacheState;
  persistDir: string;
  key: string;
  /** The matching entry (cached, refused) or the nearest one (missed). */
  entry?: string;
  manifest?: Manifest;
  /** missed: what changed against the nearest entry ("torch 2.11.0 → 2.12.0"); refused: what failed verification. */
  reasons: string[];
  /** One line for a report: "cached (torch-compile-…, 1.5 MB)", "missed because torch 2.11.0 → 2.12.0", … */
  summary: string;
}

/**
 * Is there a usable compile cache for `fingerprint` under `persistDir`? The one answer `warmup --persist` and
 * `profile`'s compile phase share:
 *  - cached: an entry built for exactly this fingerprint (and, with verify, every file re-hashes to its manifest);
 *  - missed: entries exist, none for this fingerprint; `reasons` diffs the nearest one;
 *  - not-cached: nothing stored (or the dir does not exist);
 *  - refused: the matching entry is corrupted or its manifest unusable; it must not be loaded.
 */
export function compileCacheStatus(persistDir: string, fingerprint: CompileFingerprint, opts: { verify?: boolean } = {}): CompileCacheStatus {
  const fp = normalizeFingerprint(fingerprint);
  const key = fingerprintKey(fp);
  const name = entryName(key);
  const entries = listEntries(persistDir);
  const base = { persistDir, key };
  const same = entries.find((e) => e.name === name);
  if (same) {
    if (!same.manifest) return { ...base, status: 'refused', entry: same.name, reasons: [same.invalid ?? 'unusable manifest'], summary: `refused: ${same.name}: ${same.invalid}` };
    if (opts.verify) {
      const v = verifyEntry(same.dir, same.manifest);
      if (!v.ok) return { ...base, status: 'refused', entry: same.name, manifest: same.manifest, reasons: v.problems, summary: `refused: ${same.name} is corrupted (${v.problems[0]}${v.problems.length > 1 ? `, +${v.problems.length - 1} more` : ''})` };
    }
    return { ...base, status: 'cached', entry: same.name, manifest: same.manifest, reasons: [], summary: `cached (${same.name}, built ${same.manifest.createdAt})` };
  }
  const usable = entries.filter((e): e is StoredEntry & { manifest: Manifest } => !!e.manifest);
  if (usable.length === 0) {
    const bad = entries.length ? ` (${entries.length} unusable entr${entries.length > 1 ? 'ies' : 'y'} ignored)` : '';
    return { ...base, status: 'not-cached', reasons: [], summary: `not cached: nothing persisted in ${persistDir}${bad}` };
  }
  // Nearest: same model first (a different model is rarely what the user meant), then fewest differences.
  const scored = usable
    .map((e) => ({ e, d: diffFingerprints(e.manifest.fingerprint, fp) }))
    .sort((a, b) => Number(a.d.some((x) => x.component === 'model')) - Number(b.d.some((x) => x.component === 'model')) || a.d.length - b.d.length || a.e.name.localeCompare(b.e.name));
  const best = scored[0]!;
  const reasons = best.d.map(describeDifference);
  return { ...base, status: 'missed', entry: best.e.name, manifest: best.e.manifest, reasons, summary: `missed because ${reasons.join(', ')} (nearest: ${best.e.name})` };
}

/**
 * Moves a finished cold run's cache dirs into place as a new entry: hashes every file, writes the manifest, then
 * renames the staging dir to its final name (atomic on one filesystem). An entry that already exists is replaced
 * only after the new one is complete.
 */
export function commitEntry(
  persistDir: string,
  stagingDir: string,
  info: { fingerprint: CompileFingerprint; engineKeys: Record<string, string[]>; coldSeconds: number; tool: string },
): { dir: string; manifest: Manifest } {
  const fp = normalizeFingerprint(info.fingerprint);
  const key = fingerprintKey(fp);
  const files = walkFiles(stagingDir)
    .filter((p) => p !== MANIFEST_FILE)
    .map((p) => {
      const abs = join(stagingDir, p);
      return { path: p, size: statSync(abs).size, sha256: sha256FileSync(abs) };
    });
  const manifest: Manifest = {
    schema: MANIFEST_SCHEMA,
    kind: 'torch-compile',
    key,
    createdAt: new Date().toISOString(),
    fingerprint: fp,
    engineKeys: info.engineKeys,
    coldSeconds: info.coldSeconds,
    files,
    totalBytes: files.reduce((a, f) => a + f.size, 0),
    tool: info.tool,
  };
  writeFileAtomic(join(stagingDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  const final = join(persistDir, entryName(key));
  try {
    if (existsSync(final)) {
      // only coldstart's own entry (it has a manifest) is replaced; a folder of the user's that happens to bear
      // the name is not removed
      if (!existsSync(join(final, MANIFEST_FILE))) {
        throw new ColdstartError('OUTPUT_EXISTS', `${final}: already exists and is not a coldstart compile-cache entry (no ${MANIFEST_FILE}); not replaced`, { hint: 'Move it away or choose another --persist folder.' });
      }
      const old = tempPathFor(final);
      renameSync(final, old);
      renameSync(stagingDir, final);
      rmSync(old, { recursive: true, force: true });
    } else renameSync(stagingDir, final);
  } catch (e) {
    throw fromSystemError(e, final, 'write');
  }
  return { dir: final, manifest };
}

/** A fresh staging dir inside the persist dir (same filesystem, so commitEntry's rename is atomic); removed on exit unless committed. */
export function makeStaging(persistDir: string, label: string): string {
  makeDirs(persistDir);
  const dir = tempPathFor(join(persistDir, label));
  mkdirSync(dir);
  trackTemp(dir);
  return dir;
}

export function releaseStaging(dir: string): void {
  untrackTemp(dir);
}

/**
 * Copies a verified entry's listed files into `dest`, hashing the bytes as they are copied (what the engine loads is
 * exactly what was verified: no window between check and use). Throws CORRUPT_FILE naming the first bad file.
 */
export function materializeEntry(dir: string, manifest: Manifest, dest: string): void {
  const problems: string[] = [];
  for (const f of manifest.files) {
    const src = join(dir, f.path);
    const to = join(dest, f.path);
    mkdirSync(join(to, '..'), { recursive: true });
    const link = linkOnTheWay(dir, f.path);
    if (link) {
      problems.push(throughLink(f.path, link));
      continue;
    }
    if (!existsSync(src)) {
      problems.push(`${f.path}: missing`);
      continue;
    }
    let got: string;
    try {
      got = copyInputFile(src, to); // the digest of the bytes the copy holds; a FIFO swapped in is refused, not waited on
    } catch (e) {
      if (!(e instanceof ColdstartError) || e.exitCode !== 2) throw e;
      problems.push(`${f.path}: ${e.message}`);
      continue;
    }
    if (got !== f.sha256) problems.push(`${f.path}: sha256 ${got.slice(0, 12)}… ≠ manifest ${f.sha256.slice(0, 12)}…`);
  }
  if (problems.length) throw corruptEntry(dir, problems);
}

export function corruptEntry(dir: string, problems: string[]): ColdstartError {
  return new ColdstartError('CORRUPT_FILE', `refused ${dir}: it does not match its manifest (${problems[0]}${problems.length > 1 ? `; +${problems.length - 1} more` : ''}); nothing from it was loaded`, {
    hint: `Remove it (coldstart cache artifacts rm ${dir}) and run warmup --persist again to rebuild it.`,
    details: { problems },
  });
}
