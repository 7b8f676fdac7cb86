/**
 * HF_HUB_OFFLINE: the download plan from the disk alone. The commit comes from `refs/` (or, in a --local-dir, its
 * one tree listing), the listing from the tree cache (else the snapshot's own files), and every selected file must
 * be there at its size, or the run fails OFFLINE naming what is missing. Hashes are `cache verify`'s job.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { ColdstartError } from '../core/errors.js';
import { GIT_OID_RE, safeJoin } from '../core/paths.js';
import type { RepoFile } from '../hub/api.js';
import { cachedCommit, localBookkeeping, readTreeCache, sizeOf, snapshotFolder, treesFolder } from './layout.js';
import { choose, offlineMiss, type DownloadPlan, type DownloadTarget } from './plan.js';
import { listSnapshot } from './scan.js';
import type { DownloadOptions } from './types.js';

/** What is on disk for a revision: its commit, its folder, and the listing when one was cached. */
interface OnDisk {
  commit: string;
  dir: string;
  listing: RepoFile[] | null;
}

/** A --local-dir: the commit is the revision when it is a sha, else the folder's only tree listing. */
function inLocalDir(localDir: string, revision: string): OnDisk | null {
  const trees = treesFolder(localBookkeeping(localDir));
  let commit: string | null = GIT_OID_RE.test(revision) ? revision : null;
  if (!commit) {
    const names = existsSync(trees) ? readdirSync(trees).filter((n) => n.endsWith('.json')) : [];
    commit = names.length === 1 && GIT_OID_RE.test(names[0].slice(0, -5)) ? names[0].slice(0, -5) : null;
  }
  const listing = commit ? readTreeCache(localBookkeeping(localDir), commit) : null;
  return commit && listing && existsSync(localDir) ? { commit, dir: localDir, listing } : null;
}

function inCache(storage: string, revision: string): OnDisk | null {
  const commit = cachedCommit(storage, revision);
  return commit ? { commit, dir: snapshotFolder(storage, commit), listing: readTreeCache(storage, commit) } : null;
}

/** The size of a repo file on disk, through its symlink (a dangling one: -1). */
function sizeOnDisk(dir: string, path: string): number {
  try {
    return statSync(safeJoin(dir, path, 'a repo file name')).size;
  } catch {
    return -1;
  }
}

function missingError(o: DownloadOptions, revision: string, missing: string[]): ColdstartError {
  return new ColdstartError('OFFLINE', `HF_HUB_OFFLINE is set and ${missing.length} file(s) of ${o.repo}@${revision} are missing or incomplete in the cache (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''})`, {
    hint: 'Run `coldstart cache` with network access to complete it, or unset HF_HUB_OFFLINE.',
  });
}

/** The plan of an offline run: every selected file is on disk at its listed size, or OFFLINE names those that are not. */
export function offlinePlan(t: DownloadTarget, o: DownloadOptions): DownloadPlan {
  const found = t.localDir ? inLocalDir(t.localDir, t.revision) : inCache(t.storage, t.revision);
  if (!found) throw offlineMiss(t.repo, t.revision);
  const present = new Set(listSnapshot(found.dir).filter((p) => !p.startsWith('.cache/')));
  if (!found.listing) {
    // Without a listing the folder is all that is known: a name asked for and not there is missing, not unknown.
    const absent = (o.filenames ?? []).filter((n) => !n.endsWith('/') && !present.has(n));
    if (absent.length) throw missingError(o, t.revision, absent);
  }
  const all = found.listing ?? [...present].map((p) => ({ path: p, size: Math.max(0, sizeOnDisk(found.dir, p)), oid: '' }));
  const plan = choose({ ...t, commit: found.commit, snapshotDir: found.dir, listingCached: true }, all, o);
  const missing = plan.selected.filter((f) => !present.has(f.path) || sizeOnDisk(found.dir, f.path) !== sizeOf(f));
  if (missing.length) {
    const what = (f: RepoFile) => {
      const n = sizeOnDisk(found.dir, f.path);
      return n < 0 ? f.path : `${f.path} (${n} of ${sizeOf(f)} bytes)`;
    };
    throw missingError(o, t.revision, missing.map(what));
  }
  return plan;
}
