/**
 * What a download fetches, decided before a byte is written: the commit a revision resolves to, the repo listing
 * (the tree cache on disk, else the Hub), the files chosen by names, globs and the default skip, which of them are
 * cached already, and whether the rest fits on disk. `--dry-run` is this plan and nothing more. Nothing here writes.
 */
import { readdirSync, statSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { formatBytes } from '../core/format.js';
import { nowSeconds } from '../core/clock.js';
import { hubCacheDir, hfOffline } from '../hub/env.js';
import { COMMIT_RE, hubClient, listTree, modelInfo, type HubClient, type RepoFile, type RepoType } from '../hub/api.js';
import {
  blobPath,
  cachedCommit,
  checkRevision,
  etagOf,
  fileOfSize,
  filterPaths,
  localBookkeeping,
  localDirPaths,
  parkedPartialPath,
  pointerPath,
  readLocalMetadata,
  readRef,
  readTreeCache,
  sizeOf,
  snapshotFolder,
  storageFolder,
  validateRelativeFilename,
} from './layout.js';
import { listSnapshot } from './scan.js';
import { plainPartial } from './partials.js';
import { duplicateWeightGlobs, selectWeightNames } from '../formats/weights.js';
import type { DownloadOptions, DownloadResult, Env } from './types.js';

/**
 * Whether a repo's weights are pickle only: the weights a load would read (formats/weights.ts, top-level files) are
 * .bin/.pt/.pth/.ckpt, no safetensors beside them — what `--to-safetensors` converts.
 */
export function pickleWeightsOnly(paths: readonly string[]): boolean {
  return selectWeightNames(paths.filter((p) => !p.includes('/'))).format === 'bin';
}

/** The lists this run fetches: explicit names or globs, else everything minus duplicate weight formats. */
export function selectFiles(all: RepoFile[], o: Pick<DownloadOptions, 'include' | 'exclude' | 'defaultExcludes' | 'filenames'>): { selected: RepoFile[]; defaultExcludes?: string[] } {
  if (o.filenames?.length) {
    // huggingface_hub's `hf download REPO NAMES…`: exact names, and `dir/` for everything under dir.
    const names = new Set(o.filenames.filter((n) => !n.endsWith('/')));
    const dirs = o.filenames.filter((n) => n.endsWith('/'));
    return { selected: all.filter((f) => names.has(f.path) || dirs.some((d) => f.path.startsWith(d))) };
  }
  const useDefault = o.defaultExcludes ?? !(o.include?.length || o.exclude?.length);
  const skip = useDefault ? duplicateWeightGlobs(all.map((f) => f.path)) : null;
  if (!skip) return { selected: filterPaths(all, o.include, o.exclude) };
  const selected = filterPaths(all, o.include, [...(o.exclude ?? []), ...skip]);
  const skipped = all.length - filterPaths(all, o.include, o.exclude).length;
  return { selected, ...(selected.length + skipped < all.length ? { defaultExcludes: skip } : {}) };
}

/** One download, decided: where its files go and which files they are. */
export interface DownloadPlan {
  repo: string;
  repoType: RepoType;
  revision: string;
  commit: string;
  cacheDir: string;
  /** The repo's folder in the cache (`models--org--name`). */
  storage: string;
  localDir?: string;
  /** Where the files end up: the snapshot folder, or the --local-dir. */
  snapshotDir: string;
  all: RepoFile[];
  selected: RepoFile[];
  excluded: Array<{ path: string; bytes: number }>;
  defaultExcludes?: string[];
  /** The listing came from the tree cache on disk (it need not be written). */
  listingCached: boolean;
  force: boolean;
}

export type DownloadTarget = Pick<DownloadPlan, 'repo' | 'repoType' | 'revision' | 'cacheDir' | 'storage' | 'localDir' | 'force'>;

/** Where a download's files go, before anything about the repo is known (the revision checked). */
export function downloadTarget(o: DownloadOptions): DownloadTarget {
  const repoType = o.repoType ?? 'model';
  const cacheDir = hubCacheDir(o.env);
  return { repo: o.repo, repoType, revision: checkRevision(o.revision ?? 'main'), cacheDir, storage: storageFolder(cacheDir, o.repo, repoType), ...(o.localDir ? { localDir: o.localDir } : {}), force: !!o.forceDownload };
}

/** Resolves the revision and the listing (the tree cache, else the Hub) and chooses the files. */
export async function planDownload(c: HubClient, t: DownloadTarget, o: DownloadOptions): Promise<DownloadPlan> {
  const commit = COMMIT_RE.test(t.revision) ? t.revision : (await modelInfo(c, t.repo, t.revision, t.repoType)).sha;
  const cachedTree = readTreeCache(t.localDir ? localBookkeeping(t.localDir) : t.storage, commit);
  const all = cachedTree ?? (await listTree(c, t.repo, commit, t.repoType));
  for (const f of all) validateRelativeFilename(f.path);
  return choose({ ...t, commit, snapshotDir: t.localDir ?? snapshotFolder(t.storage, commit), listingCached: !!cachedTree }, all, o);
}

/** The plan's file choice over a listing: names given must exist, and something must be selected. */
export function choose(p: Omit<DownloadPlan, 'all' | 'selected' | 'excluded' | 'defaultExcludes'>, all: RepoFile[], o: DownloadOptions): DownloadPlan {
  const { selected, defaultExcludes } = selectFiles(all, o);
  const known = new Set(all.map((f) => f.path));
  const absent = (o.filenames ?? []).filter((n) => !n.endsWith('/') && !known.has(n));
  if (absent.length) {
    throw new ColdstartError('ENTRY_NOT_FOUND', `${p.repo}@${p.revision}: no file ${absent.map((n) => JSON.stringify(n)).join(', ')} in the repo (${all.length} file(s))`, {
      hint: 'Check the name (paths are relative to the repo root), or use --include with a glob.',
    });
  }
  if (selected.length === 0) {
    throw new ColdstartError('BAD_FLAG', `${p.repo}@${p.revision}: no file matches the --include/--exclude globs (${all.length} file(s) in the repo)`, {
      hint: 'Globs use fnmatch rules on repo paths, e.g. --include "*.safetensors" "*.json".',
    });
  }
  const chosen = new Set(selected.map((f) => f.path));
  const excluded = all.filter((f) => !chosen.has(f.path)).map((f) => ({ path: f.path, bytes: sizeOf(f) }));
  return { ...p, all, selected, excluded, ...(defaultExcludes ? { defaultExcludes } : {}) };
}

/**
 * Whether a run would fetch nothing for `f`: its verified blob is in the cache at its size, or (--local-dir) the file
 * is there at its size with the download metadata of the same etag. Never with --force-download.
 */
export function isCached(p: DownloadPlan, f: RepoFile): boolean {
  if (p.force) return false;
  if (!p.localDir) return fileOfSize(blobPath(p.storage, etagOf(f)), sizeOf(f));
  const lp = localDirPaths(p.localDir, f.path);
  return fileOfSize(lp.file, sizeOf(f)) && readLocalMetadata(lp)?.etag === etagOf(f);
}

/** Where a partial download of `f` is parked between runs. */
function parkedPartialOf(p: DownloadPlan, f: RepoFile): string {
  return p.localDir ? localDirPaths(p.localDir, f.path).incomplete(etagOf(f)) : parkedPartialPath(blobPath(p.storage, etagOf(f)));
}

/**
 * A complete cache (every selected file linked at its size, the ref and the tree listing in place) needs no write
 * at all: it works on a read-only mount, like huggingface_hub.
 */
export function needsNoWrite(p: DownloadPlan): boolean {
  if (p.force || p.localDir || !p.listingCached) return false;
  if (p.revision !== p.commit && readRef(p.storage, p.revision) !== p.commit) return false;
  return p.selected.every((f) => fileOfSize(pointerPath(p.storage, p.commit, f.path), sizeOf(f)));
}

/** The fields every answer about a plan shares; the caller adds what the run measured. */
export function planResult(p: DownloadPlan, files: DownloadResult['files']): Omit<DownloadResult, 'bytesDownloaded' | 'seconds' | 'bytesPerSecond' | 'fromCache'> {
  return {
    repo: p.repo,
    revision: p.revision,
    commit: p.commit,
    cacheDir: p.cacheDir,
    snapshotDir: p.snapshotDir,
    files: [...files].sort((a, b) => (a.path < b.path ? -1 : 1)),
    bytesTotal: files.reduce((a, f) => a + f.bytes, 0),
    mode: p.localDir ? 'local-dir' : 'cache',
    excluded: p.excluded,
    ...(p.defaultExcludes ? { defaultExcludes: p.defaultExcludes } : {}),
  };
}

/** `--dry-run`: every selected file and whether this run would fetch it; nothing written, no file bytes requested. */
export function dryRunResult(p: DownloadPlan, t0: number): DownloadResult {
  const plan = p.selected.map((f) => ({ path: f.path, bytes: sizeOf(f), willDownload: !isCached(p, f) })).sort((a, b) => (a.path < b.path ? -1 : 1));
  return {
    ...planResult(p, plan.map((f) => ({ path: f.path, bytes: f.bytes, seconds: 0, cached: !f.willDownload }))),
    bytesDownloaded: 0,
    seconds: nowSeconds() - t0,
    bytesPerSecond: 0,
    fromCache: plan.every((f) => !f.willDownload),
    offline: false,
    dryRun: plan,
    bytesWire: 0,
    bytesResumed: 0,
    bytesRefetched: 0,
  };
}

/**
 * Fails before the first byte when the files still to fetch cannot fit (parked partials counted as progress),
 * rather than after filling the disk. Filesystems that do not report free space are not checked.
 */
export function checkFreeSpace(p: DownloadPlan): void {
  let need = 0;
  for (const f of p.selected) if (!isCached(p, f)) need += Math.max(0, sizeOf(f) - partialBytes(parkedPartialOf(p, f)));
  if (need === 0) return;
  const dir = p.localDir ?? p.storage;
  let free: number;
  try {
    const st = statfsSync(dir);
    free = st.bavail * st.bsize;
  } catch {
    return;
  }
  if (free < need) {
    throw new ColdstartError('DISK_FULL', `${dir}: ${formatBytes(need)} still to download but only ${formatBytes(free)} free; nothing was downloaded`, {
      hint: 'Free some space, or point HF_HUB_CACHE / --local-dir at a larger volume.',
      details: { needBytes: need, freeBytes: free },
    });
  }
}

function partialBytes(path: string): number {
  return plainPartial(path)?.size ?? 0;
}

/** The snapshot folder of a cached revision (default main), or null when nothing is cached for it. */
export function findCachedSnapshot(repo: string, revision: string | undefined, env: Env): string | null {
  const storage = storageFolder(hubCacheDir(env), repo);
  const commit = cachedCommit(storage, checkRevision(revision ?? 'main'));
  if (!commit) return null;
  const dir = snapshotFolder(storage, commit);
  try {
    return readdirSync(dir).length > 0 ? dir : null;
  } catch {
    return null;
  }
}

/** Files and sizes of the repo at a revision: metadata calls only, no weight bytes (offline: from the cache). */
export async function repoFileSizes(opts: { repo: string; revision?: string; env: Env; signal?: AbortSignal }): Promise<Array<{ path: string; bytes: number }>> {
  const revision = checkRevision(opts.revision ?? 'main');
  if (hfOffline(opts.env)) {
    const storage = storageFolder(hubCacheDir(opts.env), opts.repo);
    const commit = cachedCommit(storage, revision);
    if (!commit) throw offlineMiss(opts.repo, revision);
    const tree = readTreeCache(storage, commit);
    if (tree) return tree.map((f) => ({ path: f.path, bytes: sizeOf(f) }));
    const dir = snapshotFolder(storage, commit);
    return listSnapshot(dir).map((p) => ({ path: p, bytes: statSync(join(dir, p)).size }));
  }
  const c = hubClient(opts.env, { signal: opts.signal });
  const commit = COMMIT_RE.test(revision) ? revision : (await modelInfo(c, opts.repo, revision)).sha;
  return (await listTree(c, opts.repo, commit)).map((f) => ({ path: f.path, bytes: sizeOf(f) }));
}

/** HF_HUB_OFFLINE and nothing cached for the revision. */
export function offlineMiss(repo: string, revision: string): ColdstartError {
  return new ColdstartError('OFFLINE', `HF_HUB_OFFLINE is set and ${repo}@${revision} is not in the cache`, {
    hint: 'Run `coldstart cache` for it with network access first, or unset HF_HUB_OFFLINE.',
  });
}
