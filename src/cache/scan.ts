import { existsSync, lstatSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readInputText } from '../core/files.js';
import { walkFiles } from '../core/paths.js';
import { duplicateWeightGlobs } from '../formats/weights.js';
import { blobsFolder, filterPaths, readTreeCache } from './layout.js';

export interface CacheScan {
  dir: string;
  exists: boolean;
  repos: number;
  /** Sum of blob sizes (each blob counted once, symlinks not followed). */
  sizeBytes: number;
}

function dirSize(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of entries) {
    const p = join(dir, name);
    try {
      const st = lstatSync(p);
      if (st.isDirectory()) total += dirSize(p);
      else if (st.isFile()) total += st.size;
    } catch {
      /* vanished */
    }
  }
  return total;
}

/** Repos (`models--*`, `datasets--*`, `spaces--*`) and blob bytes in a huggingface_hub cache directory. */
export function scanHubCache(dir: string): CacheScan {
  if (!existsSync(dir)) return { dir, exists: false, repos: 0, sizeBytes: 0 };
  let repos = 0;
  let sizeBytes = 0;
  for (const name of readdirSync(dir)) {
    if (!/^(models|datasets|spaces)--/.test(name)) continue;
    repos++;
    sizeBytes += dirSize(blobsFolder(join(dir, name)));
  }
  return { dir, exists: true, repos, sizeBytes };
}

/** One cached revision (snapshot) of a repo, as `coldstart cache ls` shows it. */
export interface SnapshotScan {
  commit: string;
  /** Branch/tag names in refs/ that point at this commit. */
  refs: string[];
  files: number;
  /** Sum of the sizes of the files the snapshot links to (shared blobs counted per snapshot). */
  bytes: number;
  /**
   * Files listed in the cached tree listing (trees/<commit>.json) but absent here, and not skipped on purpose;
   * null without a listing.
   */
  missing: string[] | null;
  /** Listed files absent because a download skips them by default (duplicate weight formats next to safetensors). */
  skipped: string[];
  /** Snapshot entries whose blob is gone (dangling symlink). */
  broken: string[];
}

export interface RepoScan {
  repo: string;
  type: 'model' | 'dataset' | 'space';
  dir: string;
  /** Blob bytes on disk (each blob once), `.incomplete` partials excluded. */
  sizeBytes: number;
  /** Partial downloads (`blobs/*.incomplete`) and their bytes: resumable. */
  incomplete: Array<{ blob: string; bytes: number }>;
  snapshots: SnapshotScan[];
  refs: Record<string, string>;
}

/** Every entry below `dir` that is not a folder (symlinks included, not followed); an unreadable folder is skipped. */
const cacheFiles = (dir: string): string[] => walkFiles(dir, { links: true, skipUnreadable: true });

/** Repo-relative paths of every file in a snapshot folder (symlinks counted as files), sorted. */
export function listSnapshot(dir: string): string[] {
  return cacheFiles(dir).sort();
}

function readRefs(repoDir: string): Record<string, string> {
  const refs: Record<string, string> = {};
  for (const name of cacheFiles(join(repoDir, 'refs'))) {
    try {
      // Regular files only, size-capped: a FIFO or a huge file planted in a shared cache never blocks `cache ls`.
      refs[name] = readInputText(join(repoDir, 'refs', name), 'ref', 4096).trim();
    } catch {
      /* vanished, or not a ref */
    }
  }
  return refs;
}

/** Details of one `models--org--name` folder: snapshots, refs, sizes, partial and broken entries. */
export function scanRepo(cacheDir: string, folder: string): RepoScan | null {
  const m = /^(models|datasets|spaces)--(.+)$/.exec(folder);
  if (!m) return null;
  const dir = join(cacheDir, folder);
  const type = m[1].slice(0, -1) as RepoScan['type'];
  const incomplete: RepoScan['incomplete'] = [];
  let sizeBytes = 0;
  let blobs: string[] = [];
  try {
    blobs = readdirSync(blobsFolder(dir));
  } catch {
    /* none yet */
  }
  for (const b of blobs) {
    try {
      const st = lstatSync(join(blobsFolder(dir), b));
      if (!st.isFile()) continue;
      // `<etag>.incomplete` (parked by coldstart, huggingface_hub < 1.x), `<etag>.<8 hex>.incomplete` (huggingface_hub ≥ 1.x) `<etag>.cs-<pid>-<8 hex>.incomplete` (coldstart, in flight or killed) or `<etag>.parts.incomplete` (coldstart, parked Range parts).
      if (/\.parts-\d+\.json$/.test(b)) continue; // a part journal (journal.ts), not a blob
      if (b.endsWith('.incomplete')) incomplete.push({ blob: b.slice(0, -'.incomplete'.length).replace(/\.(?:(?:cs-\d+-)?[0-9a-f]{8}|parts)$/, ''), bytes: st.size });
      else sizeBytes += st.size;
    } catch {
      /* vanished */
    }
  }
  const refs = readRefs(dir);
  const snapshots: SnapshotScan[] = [];
  let commits: string[] = [];
  try {
    commits = readdirSync(join(dir, 'snapshots'));
  } catch {
    /* none */
  }
  for (const commit of commits.sort()) {
    const snapDir = join(dir, 'snapshots', commit);
    const present = cacheFiles(snapDir);
    let bytes = 0;
    const broken: string[] = [];
    for (const p of present) {
      try {
        bytes += statSync(join(snapDir, p)).size;
      } catch {
        broken.push(p);
      }
    }
    const listed = readTreeCache(dir, commit)?.map((f) => f.path) ?? null;
    const have = new Set(present);
    const absent = (listed ?? []).filter((p) => !have.has(p)).map((path) => ({ path }));
    const dup = listed ? duplicateWeightGlobs(listed) : null;
    const skipped = dup ? absent.filter((f) => !filterPaths([f], undefined, dup).length).map((f) => f.path) : [];
    snapshots.push({
      commit,
      refs: Object.entries(refs)
        .filter(([, c]) => c === commit)
        .map(([r]) => r),
      files: present.length - broken.length,
      bytes,
      missing: listed ? absent.map((f) => f.path).filter((p) => !skipped.includes(p)) : null,
      skipped,
      broken,
    });
  }
  return { repo: m[2].split('--').join('/'), type, dir, sizeBytes, incomplete, snapshots, refs };
}

/** Every repo folder of a cache directory, detailed (for `coldstart cache ls`). */
export function scanHubCacheRepos(dir: string): RepoScan[] {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .sort()
    .map((n) => scanRepo(dir, n))
    .filter((r): r is RepoScan => r !== null);
}

/** `coldstart cache ls`: every repo of the cache at `dir`, and the bytes they hold. */
export function listCache(dir: string): { cacheDir: string; exists: boolean; sizeBytes: number; repos: RepoScan[] } {
  const repos = scanHubCacheRepos(dir);
  return { cacheDir: dir, exists: existsSync(dir), sizeBytes: repos.reduce((a, r) => a + r.sizeBytes, 0), repos };
}
