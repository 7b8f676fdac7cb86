/**
 * Downloads a Hub repo into the huggingface_hub cache layout (or a --local-dir) with parallel files, HTTP Range
 * resume from `.incomplete` partials, retries with backoff, and a sha256 (LFS) / git-sha1 (regular file) check of
 * every byte before a file enters the cache. `profile` uses the same code for its `download` phase (downloadRepo +
 * recordDownloadPhase). The steps, each in its own module:
 *
 *   plan.ts      what to fetch: the commit, the listing, names and globs, what is cached, free space (offline.ts:
 *                the same from the disk alone); `--dry-run` stops here
 *   commit.ts    the folders, listing and ref first; per file the hash check, the blob linked without overwriting
 *                one, the snapshot pointer (or the --local-dir file and its metadata)
 *   partials.ts  each run's own `.incomplete` file: adopted from the parked one, parked again on a failure or Ctrl-C
 *   fetch.ts     one file's bytes: streamed or on a worker (hub/sink.ts), Range resume, retries, parts (parts.ts, their
 *                journal journal.ts); how
 *                each attempt ended becomes an error in one place (outcome.ts)
 *
 * Why not @huggingface/hub: its `downloadFileToCacheDir` (2.x) re-downloads from byte 0 (no Range resume of
 * `.incomplete`), checks no hash, takes no lock, writes no `refs/`, resolves the snapshot per file and logs
 * to console; a fetch/web-stream body also costs throughput at loopback rates. The Hub protocol needed here
 * is three endpoints, so this is a small node:http client (src/hub/http.ts).
 */
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { nowSeconds } from '../core/clock.js';
import { pool } from '../core/pool.js';
import { formatBytes, formatRate } from '../core/format.js';
import type { PhaseHandle } from '../core/phases.js';
import { hfOffline } from '../hub/env.js';
import { encodePath, hubClient, repoUrl, type HubClient, type RepoFile } from '../hub/api.js';
import { commitBlob, commitLocalFile, discardBadBlob, ensurePointer, fileMatches, prepareTarget } from './commit.js';
import { fetchVerified } from './fetch.js';
import { blobLockPath, blobPath, etagOf, fileOfSize, linkPointer, localDirPaths, parkedPartialPath, pointerPath, readLocalMetadata, sizeOf, writeLocalMetadata, type LocalDirPaths } from './layout.js';
import { acquireLock, staleSeconds } from './lock.js';
import { offlinePlan } from './offline.js';
import type { Accounting } from './outcome.js';
import { withPartial } from './partials.js';
import { checkFreeSpace, downloadTarget, dryRunResult, isCached, needsNoWrite, planDownload, planResult, type DownloadPlan } from './plan.js';
import type { DownloadOptions, DownloadResult } from './types.js';

export type { DownloadEvent, DownloadOptions, DownloadResult } from './types.js';
export { findCachedSnapshot, repoFileSizes } from './plan.js';

export function validateRepoId(repo: string): void {
  // One segment (gpt2, bert-base-uncased: the Hub's legacy canonical repos) or org/name, as huggingface_hub accepts.
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo) || repo.includes('..') || /^[.-]|[.-]$/.test(repo)) throw new ColdstartError('UNKNOWN_MODEL', `not a Hub repo id: ${JSON.stringify(repo)}`, { hint: 'Use org/name (or a one-segment id such as gpt2) or an alias from `coldstart profile --help`.' });
}

export async function downloadRepo(opts: DownloadOptions): Promise<DownloadResult> {
  validateRepoId(opts.repo);
  const target = downloadTarget(opts);
  const t0 = nowSeconds();
  if (hfOffline(opts.env)) return offlineResult(offlinePlan(target, opts), t0);
  const c = hubClient(opts.env, { signal: opts.signal, ...(opts.retries !== undefined ? { retries: opts.retries } : {}), ...(opts.retryBaseMs !== undefined ? { retryBaseMs: opts.retryBaseMs } : {}), ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  const plan = await planDownload(c, target, opts);
  if (opts.dryRun) return dryRunResult(plan, t0);
  if (!needsNoWrite(plan)) prepareTarget(plan);
  checkFreeSpace(plan);
  const run = new DownloadRun(c, plan, opts);
  const largestFirst = [...plan.selected].sort((a, b) => sizeOf(b) - sizeOf(a));
  await pool(largestFirst, Math.max(1, opts.concurrency ?? 8), (f) => run.file(f).catch((e) => Promise.reject(namingFile(e, f.path))));
  return run.result(t0);
}

function offlineResult(p: DownloadPlan, t0: number): DownloadResult {
  const files = p.selected.map((f) => ({ path: f.path, bytes: sizeOf(f), seconds: 0, cached: true }));
  return { ...planResult(p, files), bytesDownloaded: 0, seconds: nowSeconds() - t0, bytesPerSecond: 0, fromCache: true, offline: true, resumed: [] };
}

/** One run over the plan's files: each file's flow, and the byte accounting and progress of all of them. */
class DownloadRun {
  private readonly files: DownloadResult['files'] = [];
  private readonly resumed: NonNullable<DownloadResult['resumed']> = [];
  private readonly bytesTotal: number;
  private readonly staleAfter: number;
  private readonly filesAtOnce: number;
  private bytesDone = 0;
  private bytesWire = 0;
  private bytesResumed = 0;
  private bytesRefetched = 0;
  private lastReport = 0;

  constructor(
    private readonly c: HubClient,
    private readonly plan: DownloadPlan,
    private readonly opts: DownloadOptions,
  ) {
    this.bytesTotal = plan.selected.reduce((a, f) => a + sizeOf(f), 0);
    this.staleAfter = staleSeconds(opts.env);
    const big = plan.selected.filter((f) => sizeOf(f) >= 1 << 20 && !isCached(plan, f)).length;
    this.filesAtOnce = Math.max(1, Math.min(big, opts.concurrency ?? 8));
  }

  /** One file, cached or fetched, recorded with its time. */
  async file(f: RepoFile): Promise<void> {
    const start = nowSeconds();
    const cached = (await (this.plan.localDir ? this.localFile(f, localDirPaths(this.plan.localDir, f.path)) : this.cacheFile(f))) === 'cached';
    this.files.push({ path: f.path, bytes: sizeOf(f), seconds: nowSeconds() - start, cached });
    if (cached) this.bytesDone += sizeOf(f);
    this.report(f.path, true);
  }

  /** Into the HF cache: the blob (verified, never overwriting one) under its lock, then the snapshot pointer. */
  private async cacheFile(f: RepoFile): Promise<'cached' | 'fetched'> {
    const p = this.plan;
    const bytes = sizeOf(f);
    const blob = blobPath(p.storage, etagOf(f));
    const pointer = pointerPath(p.storage, p.commit, f.path);
    if (isCached(p, f)) return (ensurePointer(blob, pointer, bytes), 'cached');
    // `blob` is built from a checked hash (blobPath), so the lock and the partial beside it stay in their folders.
    const lock = await this.lock(blobLockPath(p.cacheDir, p.repo, p.repoType, blob), f);
    try {
      if (isCached(p, f)) return (ensurePointer(blob, pointer, bytes), 'cached'); // another run finished it meanwhile
      if (!p.force) discardBadBlob(blob);
      const won = await withPartial(parkedPartialPath(blob), this.staleAfter, async (own) => {
        await this.fetch(f, own);
        return commitBlob(own, blob, bytes, p.force);
      });
      linkPointer(blob, pointer);
      if (!won) this.opts.onEvent?.({ type: 'rejected', file: f.path, reason: 'another process cached a verified copy first; ours was dropped' });
      return 'fetched';
    } catch (e) {
      throw fromSystemError(e, blob, 'write');
    } finally {
      lock.release();
    }
  }

  /** Into a --local-dir: the file and its metadata; a file already there with the right bytes is adopted. */
  private async localFile(f: RepoFile, lp: LocalDirPaths): Promise<'cached' | 'fetched'> {
    const p = this.plan;
    const etag = etagOf(f);
    if (isCached(p, f)) {
      if (readLocalMetadata(lp)?.commit !== p.commit) writeLocalMetadata(lp, p.commit, etag);
      return 'cached';
    }
    if (!p.force && !readLocalMetadata(lp) && (await this.matchesOnDisk(lp, f))) {
      writeLocalMetadata(lp, p.commit, etag);
      return 'cached';
    }
    const lock = await this.lock(lp.lock, f);
    try {
      await withPartial(lp.incomplete(etag), this.staleAfter, async (own) => {
        await this.fetch(f, own);
        commitLocalFile(own, lp, p.commit, etag);
      });
      return 'fetched';
    } catch (e) {
      throw fromSystemError(e, lp.file, 'write');
    } finally {
      lock.release();
    }
  }

  private async matchesOnDisk(lp: LocalDirPaths, f: RepoFile): Promise<boolean> {
    return fileOfSize(lp.file, sizeOf(f)) && (await fileMatches(lp.file, f, this.opts.signal));
  }

  /** Released by its holder, or by lock.ts's exit hook when Ctrl-C ends the process first. */
  private lock(path: string, f: RepoFile) {
    return acquireLock(path, { signal: this.opts.signal, env: this.opts.env, onWait: () => this.opts.onEvent?.({ type: 'waiting-lock', file: f.path }) });
  }

  private fetch(f: RepoFile, partial: string): Promise<void> {
    const p = this.plan;
    const url = `${repoUrl(this.c.endpoint, p.repo, p.repoType)}/resolve/${p.commit}/${encodePath(f.path)}`;
    return fetchVerified({ c: this.c, repo: p.repo, opts: this.opts, filesAtOnce: this.filesAtOnce }, { file: f, url, partial, display: f.path }, this.accounting(f));
  }

  /** Exact byte accounting of one file (see DownloadResult: bytesWire, bytesResumed, bytesRefetched). */
  private accounting(f: RepoFile): Accounting {
    let fileResumed = 0;
    return {
      progress: (n) => {
        this.bytesDone += n;
        this.report(f.path);
      },
      wire: (n) => {
        this.bytesWire += n;
      },
      resumed: (from) => {
        fileResumed += from;
        this.bytesResumed += from;
        this.resumed.push({ path: f.path, fromByte: from });
      },
      discarded: (n) => {
        // Bytes thrown away are fetched again: from a resumed partial, or from an earlier attempt of this run.
        const fromPartial = Math.min(n, fileResumed);
        fileResumed -= fromPartial;
        this.bytesResumed -= fromPartial;
        this.bytesRefetched += n;
      },
    };
  }

  /** Progress to the caller at most every 100 ms (always when `force`). */
  private report(file?: string, force = false): void {
    if (!this.opts.onProgress) return;
    const t = nowSeconds() * 1000;
    if (!force && t - this.lastReport < 100) return;
    this.lastReport = t;
    this.opts.onProgress({ bytesDone: this.bytesDone, bytesTotal: this.bytesTotal, file });
  }

  result(t0: number): DownloadResult {
    this.report(undefined, true);
    const seconds = nowSeconds() - t0;
    return {
      ...planResult(this.plan, this.files),
      bytesDownloaded: this.bytesWire,
      seconds,
      bytesPerSecond: this.bytesWire > 0 ? this.bytesWire / seconds : 0,
      fromCache: this.bytesWire === 0 && this.files.every((f) => f.cached),
      bytesWire: this.bytesWire,
      bytesResumed: this.bytesResumed,
      bytesRefetched: this.bytesRefetched,
      offline: false,
      resumed: this.resumed,
    };
  }
}

/** The error a file's download ended with, its message starting with the repo path when it does not name it yet. */
function namingFile(e: unknown, path: string): unknown {
  if (!(e instanceof ColdstartError) || e.code === 'INTERRUPTED' || e.message.includes(path)) return e;
  return new ColdstartError(e.code, `${path}: ${e.message}`, { cause: e, ...(e.hint ? { hint: e.hint } : {}), ...(e.details ? { details: e.details } : {}) });
}

/** The download phase as profile and cache report it: one step per file, bytes/rate metrics, a note when cached. */
export function recordDownloadPhase(h: PhaseHandle, r: DownloadResult): void {
  for (const f of r.files) h.addStep(f.path, f.seconds, f.cached ? 'cached' : undefined, { bytes: f.bytes });
  h.metric('files', r.files.length);
  h.metric('bytesTotal', r.bytesTotal);
  h.metric('bytesDownloaded', r.bytesDownloaded);
  h.metric('bytesPerSecond', r.bytesDownloaded > 0 ? r.bytesPerSecond : null);
  h.metric('commit', r.commit);
  h.setSeconds(r.seconds);
  if (r.bytesDownloaded === 0) h.note = `cached at ${r.snapshotDir} (${formatBytes(r.bytesTotal)}, nothing downloaded)`;
  else h.note = `${formatBytes(r.bytesDownloaded)} at ${formatRate(r.bytesPerSecond)}`;
}
