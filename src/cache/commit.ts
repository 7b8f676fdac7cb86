/**
 * How verified bytes enter the cache: the hash the blob is named after (sha256 for LFS files, git's blob sha1
 * otherwise) checked over every byte; the blob linked into `blobs/` without ever overwriting one; the snapshot
 * pointer; `refs/` and the tree listing; in a --local-dir, the file and its download metadata.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, existsSync, linkSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { makeDirs } from '../core/paths.js';
import type { RepoFile } from '../hub/api.js';
import {
  blobsFolder,
  ensureCachedirTag,
  ensureLocalBookkeeping,
  etagOf,
  fileOfSize,
  linkPointer,
  localBookkeeping,
  sizeOf,
  writeLocalMetadata,
  writeRef,
  writeTreeCache,
  type LocalDirPaths,
} from './layout.js';
import type { DownloadPlan } from './plan.js';

/** Incremental content hash matching a blob name: sha256 (LFS), or git's sha1 of `blob <size>\0` + the bytes. */
export function blobHasher(algorithm: 'sha256' | 'git-sha1', size: number): Hash {
  if (algorithm === 'sha256') return createHash('sha256');
  return createHash('sha1').update(`blob ${size}\0`);
}

/** The hasher of a repo file: sha256 for an LFS file, the git blob sha1 of a regular one. */
export function newHasher(f: RepoFile): Hash {
  return blobHasher(f.lfs ? 'sha256' : 'git-sha1', f.size);
}

/** Feeds the first `bytes` bytes of `path` into `h` (a resumed prefix, or a whole file). */
export async function hashPrefix(h: Hash, path: string, bytes: number, signal?: AbortSignal): Promise<void> {
  if (bytes === 0) return;
  const rs = createReadStream(path, { start: 0, end: bytes - 1, highWaterMark: 4 << 20, signal });
  for await (const c of rs) h.update(c as Buffer);
}

/** Whether the file at `path` hashes to `f`'s etag. */
export async function fileMatches(path: string, f: RepoFile, signal?: AbortSignal): Promise<boolean> {
  const h = newHasher(f);
  await hashPrefix(h, path, sizeOf(f), signal);
  return h.digest('hex') === etagOf(f);
}

/**
 * Bytes that do not hash to the Hub's value: the partial is deleted (resuming from wrong bytes is pointless) and the
 * CORRUPT_FILE error returned for the caller to throw.
 */
export function hashMismatch(f: RepoFile, partial: string, display: string, got: string): ColdstartError {
  rmSync(partial, { force: true });
  const algo = f.lfs ? 'sha256' : 'git blob sha1';
  const expected = etagOf(f);
  return new ColdstartError('CORRUPT_FILE', `${display}: ${algo} ${got} does not match the Hub's ${expected}; the bytes were discarded and nothing was cached`, {
    hint: 'Run again (a mirror or proxy may have served bad bytes); if it persists, check HF_ENDPOINT.',
    details: { file: f.path, expected, got },
  });
}

/**
 * The folders, tree listing and ref a run writes before its files: in the cache CACHEDIR.TAG, `blobs/`, the listing,
 * `refs/<revision>` and the snapshot folder; in a --local-dir its bookkeeping and the listing. A cache that cannot be
 * written fails PERMISSION saying so.
 */
export function prepareTarget(p: DownloadPlan): void {
  try {
    if (p.localDir) {
      makeDirs(p.localDir);
      ensureLocalBookkeeping(p.localDir);
      if (!p.listingCached) writeTreeCache(localBookkeeping(p.localDir), p.commit, p.all);
      return;
    }
    ensureCachedirTag(p.cacheDir);
    makeDirs(blobsFolder(p.storage));
    if (!p.listingCached) writeTreeCache(p.storage, p.commit, p.all);
    writeRef(p.storage, p.revision, p.commit);
    makeDirs(p.snapshotDir);
  } catch (e) {
    // makeDirs creates one level at a time, so the error is the real cause (EROFS, EACCES, procfs), not ENOENT.
    const err = fromSystemError(e, p.localDir ?? p.storage, 'write');
    if (err.code !== 'PERMISSION') throw err;
    throw new ColdstartError('PERMISSION', err.message, {
      cause: e,
      hint: `The cache at ${p.cacheDir} is not writable (read-only mount or permissions) and ${p.repo}@${p.revision} is not complete in it; point HF_HUB_CACHE at a writable directory, or fill it where it is writable.`,
    });
  }
}

/** The snapshot pointer of a cached blob, put in place unless it is already there at its size. */
export function ensurePointer(blob: string, pointer: string, bytes: number): void {
  if (!fileOfSize(pointer, bytes)) linkPointer(blob, pointer);
}

/**
 * Puts a verified partial in place as the blob without ever overwriting one: link() fails with EEXIST when another
 * process got there first (its blob is verified too, so ours is dropped). Where hard links are not supported,
 * check-then-rename (the same bytes either way). With `replace` (--force-download) the fresh bytes replace the blob
 * (rename is atomic). Returns whether ours became the blob.
 */
export function commitBlob(own: string, blob: string, bytes: number, replace = false): boolean {
  if (replace) {
    renameSync(own, blob);
    return true;
  }
  try {
    linkSync(own, blob);
    rmSync(own, { force: true });
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && fileOfSize(blob, bytes)) {
      rmSync(own, { force: true });
      return false;
    }
    if (code === 'EEXIST') {
      discardBadBlob(blob);
      return commitBlob(own, blob, bytes);
    }
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw e;
    if (fileOfSize(blob, bytes)) {
      rmSync(own, { force: true });
      return false;
    }
    renameSync(own, blob);
    return true;
  }
}

/** A blob of the wrong size is moved aside (one mover wins) and removed, so a verified one can take its name. */
export function discardBadBlob(blob: string): void {
  if (!existsSync(blob)) return;
  const aside = `${blob}.${randomBytes(4).toString('hex')}.bad`;
  try {
    renameSync(blob, aside);
    rmSync(aside, { force: true });
  } catch {
    /* another process moved it */
  }
}

/** In a --local-dir the file is replaced by the verified bytes (that is what the user asked for), then its metadata. */
export function commitLocalFile(own: string, p: LocalDirPaths, commit: string, etag: string): void {
  makeDirs(dirname(p.file));
  renameSync(own, p.file);
  writeLocalMetadata(p, commit, etag);
}
