/**
 * `coldstart cache <repo>` as one call: the download timed as the `download` phase, then — when asked and the repo
 * has only pickle weights — the conversion to safetensors in place. The converter is passed in (the command wires
 * convert/), so this capability imports no other.
 */
import { readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { Stopwatch } from '../core/clock.js';
import { removeTemp, trackTemp } from '../core/atomic.js';
import { guardOutput } from '../core/outputs.js';
import { runPhase, type PhaseResult } from '../core/phases.js';
import { resolveRepoId } from '../models/table.js';
import { recordDownloadPhase, validateRepoId } from './download.js';
import { pickleWeightsOnly } from './plan.js';
import type { DownloadEvent, DownloadOptions, DownloadResult } from './types.js';

/** A model alias or Hub repo id as `cache` takes it (org/name, or one segment such as gpt2). */
export function cacheRepoId(arg: string): { repo: string; alias?: string } {
  const r = resolveRepoId(arg) ?? { repo: arg };
  validateRepoId(r.repo);
  return r;
}

/**
 * `--local-dir` through the one output guard (core/outputs.ts): never a symbolic link, never the HF cache nor a
 * folder inside or above it (the model folders other processes read), and an existing path only when it is a
 * folder. Everything `cache` writes there is recognisable as its own: each file has its
 * `.cache/huggingface/download/<path>.metadata` (commit, etag), the record `cache verify --local-dir` checks.
 */
export function guardLocalDir(dir: string, cacheDir: string): string {
  guardOutput(dir, [cacheDir], { flag: '--local-dir', force: true, isOwn: (_p, st) => (st.isDirectory() ? null : 'is not a folder') });
  return dir;
}

/** The typed options of `coldstart cache <repo>`, parsed once by the command. */
export interface CacheRequest {
  /** What to download; the signal and the progress hooks are added by cacheRepo. */
  download: Omit<DownloadOptions, 'signal' | 'onProgress' | 'onEvent'>;
  alias?: string;
  toSafetensors: boolean;
}

/** The engines cacheRepo drives, passed in so tests (and the command) choose them. */
export interface CacheEngines {
  downloadRepo: (o: DownloadOptions) => Promise<DownloadResult>;
  convertCheckpoint: (o: { input: string; output: string; verify: boolean; signal?: AbortSignal; warn?: (m: string) => void }) => Promise<unknown>;
}

export interface CacheHooks {
  signal: AbortSignal;
  onProgress?: DownloadOptions['onProgress'];
  onEvent?: (e: DownloadEvent) => void;
  warn: (message: string) => void;
}

/** What `cache <repo>` did: the download, its phase, and what became of --to-safetensors. */
export interface CacheRun {
  request: CacheRequest;
  result: DownloadResult;
  phase: PhaseResult & { cause?: unknown };
  /** The repo has only pickle (.bin) weights: --to-safetensors would convert them. */
  pickleOnly: boolean;
  conversion?: { converted: boolean; reason: string };
  /** Seconds the --to-safetensors conversion took, when one ran (part of the run's total). */
  conversionSeconds?: number;
}

export async function cacheRepo(req: CacheRequest, engines: CacheEngines, hooks: CacheHooks): Promise<CacheRun> {
  let result: DownloadResult | undefined;
  const phase = await runPhase('download', async (h) => {
    result = await engines.downloadRepo({ ...req.download, signal: hooks.signal, onProgress: hooks.onProgress, onEvent: hooks.onEvent });
    recordDownloadPhase(h, result);
  });
  if (phase.status === 'failed' || !result) throw phase.cause ?? new ColdstartError('INTERNAL', 'download failed');
  const pickleOnly = pickleWeightsOnly(result.files.map((f) => f.path));
  if (result.dryRun || !req.toSafetensors) return { request: req, result, phase, pickleOnly };
  if (!pickleOnly) return { request: req, result, phase, pickleOnly, conversion: { converted: false, reason: 'the repo already has safetensors weights (or no .bin weights)' } };
  const sw = new Stopwatch();
  await convertInPlace(result, engines.convertCheckpoint, hooks);
  return { request: req, result, phase, pickleOnly, conversion: { converted: true, reason: 'converted .bin weights to safetensors in place' }, conversionSeconds: sw.elapsed() };
}

/**
 * The converter refuses to write into its input, so it writes a drop-in folder beside the snapshot (same
 * filesystem) and only the new weight files (shards + index) are renamed into the snapshot; the rest is dropped.
 * The snapshot's symlinked .bin files are read through the links.
 */
async function convertInPlace(r: DownloadResult, convert: CacheEngines['convertCheckpoint'], hooks: CacheHooks): Promise<void> {
  const staging = join(r.snapshotDir, '..', `.${r.commit}.coldstart-convert-${process.pid}`);
  trackTemp(staging);
  try {
    await convert({ input: r.snapshotDir, output: staging, verify: true, signal: hooks.signal, warn: hooks.warn });
    const made = readdirSync(staging).filter((f) => f.endsWith('.safetensors') || f === 'model.safetensors.index.json');
    // Shards first, the index last: a reader that sees the index finds every shard it names.
    made.sort((a, b) => Number(a.endsWith('.json')) - Number(b.endsWith('.json')));
    for (const f of made) renameSync(join(staging, f), join(r.snapshotDir, f));
  } finally {
    removeTemp(staging);
  }
}
