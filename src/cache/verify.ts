/**
 * Re-hashes cached files against what the Hub said they are. In the HF cache the blob name is the
 * manifest: 64 hex = the LFS sha256, 40 hex = the git blob sha1 of the content; the tree listing cache
 * (trees/<commit>.json), when present, is checked too. In a --local-dir the `.metadata` etags are used.
 */
import { existsSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { listSnapshot } from './scan.js';
import { poolMap } from '../core/pool.js';
import { blobHasher, hashPrefix } from './commit.js';
import { cachedCommit, checkRevision, localBookkeeping, localDirPaths, readLocalMetadata, readTreeCache, snapshotFolder, storageFolder } from './layout.js';
import type { RepoFile } from '../hub/api.js';
import { nowSeconds } from '../core/clock.js';

export interface VerifiedFile {
  path: string;
  bytes: number;
  expected: string | null;
  algorithm: 'sha256' | 'git-sha1' | null;
  status: 'ok' | 'mismatch' | 'missing-blob' | 'unverifiable';
  got?: string;
}

export interface VerifyResult {
  repo: string;
  commit: string;
  dir: string;
  files: VerifiedFile[];
  /** In the tree listing but not in the snapshot (never fetched: filtered out or not downloaded yet). */
  notFetched: string[];
  ok: boolean;
  bytes: number;
  seconds: number;
}

async function hashFile(path: string, algorithm: 'sha256' | 'git-sha1', size: number, signal?: AbortSignal): Promise<string> {
  const h = blobHasher(algorithm, size);
  await hashPrefix(h, path, size, signal);
  return h.digest('hex');
}

function expectation(etag: string | null, entry: RepoFile | undefined): { expected: string | null; algorithm: VerifiedFile['algorithm'] } {
  if (entry) return entry.lfs ? { expected: entry.lfs.oid, algorithm: 'sha256' } : { expected: entry.oid, algorithm: 'git-sha1' };
  if (etag && /^[0-9a-f]{64}$/.test(etag)) return { expected: etag, algorithm: 'sha256' };
  if (etag && /^[0-9a-f]{40}$/.test(etag)) return { expected: etag, algorithm: 'git-sha1' };
  return { expected: null, algorithm: null };
}

async function checkOne(path: string, abs: string, etag: string | null, entry: RepoFile | undefined, signal?: AbortSignal): Promise<VerifiedFile> {
  const { expected, algorithm } = expectation(etag, entry);
  let size: number;
  try {
    size = statSync(abs).size;
  } catch {
    return { path, bytes: 0, expected, algorithm, status: 'missing-blob' };
  }
  if (!expected || !algorithm) return { path, bytes: size, expected, algorithm, status: 'unverifiable' };
  const got = await hashFile(abs, algorithm, size, signal);
  return { path, bytes: size, expected, algorithm, status: got === expected ? 'ok' : 'mismatch', ...(got === expected ? {} : { got }) };
}

/** Verifies the cached snapshot of `repo` at `revision` (default main; a sha or a ref). */
export async function verifyCached(cacheDir: string, repo: string, revision: string | undefined, opts: { concurrency?: number; signal?: AbortSignal } = {}): Promise<VerifyResult> {
  const t0 = nowSeconds();
  const storage = storageFolder(cacheDir, repo);
  if (!existsSync(storage)) throw new ColdstartError('NOT_FOUND', `${repo} is not in the cache at ${cacheDir}`, { hint: 'Run `coldstart cache ls` to see what is cached.' });
  const rev = checkRevision(revision ?? 'main');
  const commit = cachedCommit(storage, rev);
  const dir = commit ? snapshotFolder(storage, commit) : '';
  if (!commit || !existsSync(dir)) throw new ColdstartError('NOT_FOUND', `${repo}: revision ${JSON.stringify(rev)} is not cached`, { hint: 'Pass --revision with a cached branch or commit (`coldstart cache ls` lists them).' });
  const tree = readTreeCache(storage, commit);
  const byPath = new Map((tree ?? []).map((f) => [f.path, f]));
  const present = listSnapshot(dir);
  const files = await poolMap(present, opts.concurrency ?? 4, async (p) => {
    const abs = join(dir, ...p.split('/'));
    let etag: string | null = null;
    try {
      etag = basename(readlinkSync(abs));
    } catch {
      /* a copy, not a symlink: the listing says what it should be */
    }
    try {
      if (!etag) etag = basename(realpathSync(abs));
    } catch {
      /* dangling */
    }
    return checkOne(p, abs, etag, byPath.get(p), opts.signal);
  });
  const have = new Set(present);
  const notFetched = tree ? tree.map((f) => f.path).filter((p) => !have.has(p)) : [];
  return finish(repo, commit, dir, files, notFetched, t0);
}

/** Verifies a --local-dir against its `.cache/huggingface/download/*.metadata` etags (and tree listing). */
export async function verifyLocalDir(localDir: string, repo: string, opts: { concurrency?: number; signal?: AbortSignal } = {}): Promise<VerifyResult> {
  const t0 = nowSeconds();
  const hfDir = localBookkeeping(localDir);
  if (!existsSync(hfDir)) throw new ColdstartError('NOT_FOUND', `${localDir}: no .cache/huggingface bookkeeping (not written by coldstart or huggingface_hub)`);
  const metas = listSnapshot(join(hfDir, 'download')).filter((p) => p.endsWith('.metadata'));
  const paths = metas.map((m) => m.slice(0, -'.metadata'.length));
  let commit = '';
  const files = await poolMap(paths, opts.concurrency ?? 4, async (p) => {
    const lp = localDirPaths(localDir, p);
    const meta = readLocalMetadata(lp);
    if (meta) commit ||= meta.commit;
    const tree = meta ? readTreeCache(hfDir, meta.commit) : null;
    return checkOne(p, lp.file, meta?.etag ?? null, tree?.find((f) => f.path === p), opts.signal);
  });
  const tree = commit ? readTreeCache(hfDir, commit) : null;
  const have = new Set(paths);
  return finish(repo, commit, localDir, files, tree ? tree.map((f) => f.path).filter((p) => !have.has(p)) : [], t0);
}

function finish(repo: string, commit: string, dir: string, files: VerifiedFile[], notFetched: string[], t0: number): VerifyResult {
  const ok = files.every((f) => f.status === 'ok' || f.status === 'unverifiable');
  return { repo, commit, dir, files, notFetched, ok, bytes: files.reduce((a, f) => a + f.bytes, 0), seconds: nowSeconds() - t0 };
}

/** `coldstart cache verify`: a --local-dir against its metadata, else the cached snapshot of the revision. */
export function verifyRepo(o: { repo: string; revision?: string; localDir?: string; cacheDir: string; concurrency: number; signal?: AbortSignal }): Promise<VerifyResult> {
  const opts = { concurrency: o.concurrency, signal: o.signal };
  return o.localDir !== undefined ? verifyLocalDir(o.localDir, o.repo, opts) : verifyCached(o.cacheDir, o.repo, o.revision, opts);
}
