/** `coldstart cache rm <repo>`: a cached repo removed whole — never under a running download's live lock. */
import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ColdstartError } from '../core/errors.js';
import { repoFolderName, repoLockFolder } from './layout.js';
import { breakLock, inspectLock, staleSeconds, type LockState } from './lock.js';
import { scanRepo } from './scan.js';
import type { Env } from './types.js';

export interface RemoveResult {
  repo: string;
  cacheDir: string;
  removed: string;
  bytesFreed: number;
  snapshots: string[];
  /** Locks left by dead downloads, removed with the repo. */
  staleLocks: Array<{ owner: { pid: number; host: string } | null; why: string }>;
}

/** The coldstart locks in a repo's lock folder, each with what its owner looks like now (lock.ts inspectLock). */
function repoLocks(lockDir: string, env: Env): Array<{ path: string; state: LockState }> {
  let names: string[];
  try {
    names = readdirSync(lockDir).filter((n) => n.endsWith('.coldstart.lock'));
  } catch {
    return [];
  }
  return names.map((n) => ({ path: join(lockDir, n), state: inspectLock(join(lockDir, n), staleSeconds(env)) }));
}

export function removeRepo(cacheDir: string, repo: string, env: Env): RemoveResult {
  const folder = repoFolderName(repo);
  const scan = scanRepo(cacheDir, folder);
  if (!scan || !existsSync(scan.dir)) throw new ColdstartError('NOT_FOUND', `${repo} is not in the cache at ${cacheDir}`, { hint: 'Run `coldstart cache ls` to see what is cached.' });
  const lockDir = repoLockFolder(cacheDir, repo);
  const locks = repoLocks(lockDir, env);
  const live = locks.find((l) => l.state.state === 'live');
  if (live) {
    throw new ColdstartError('AMBIGUOUS', `${repo}: a running coldstart download holds ${locks.filter((l) => l.state.state === 'live').length} lock(s) on it (${live.state.state === 'live' ? live.state.why : ''}); not removing it under a running download`, {
      hint: `Wait for it to finish or stop it. A lock is stale once its heartbeat is older than ${staleSeconds(env)} s (COLDSTART_LOCK_STALE_SECONDS), whatever host wrote it; \`cache rm\` then removes it.`,
    });
  }
  const staleLocks: RemoveResult['staleLocks'] = [];
  for (const l of locks) {
    if (l.state.state !== 'stale') continue;
    staleLocks.push({ owner: l.state.owner ? { pid: l.state.owner.pid, host: l.state.owner.host } : null, why: l.state.why });
    breakLock(l.path);
  }
  const bytesFreed = scan.sizeBytes + scan.incomplete.reduce((a, b) => a + b.bytes, 0);
  // Rename first so a half-finished removal never looks like a usable (but incomplete) snapshot.
  const doomed = join(cacheDir, `.${folder}.coldstart-rm-${process.pid}`);
  renameSync(scan.dir, doomed);
  rmSync(doomed, { recursive: true, force: true });
  rmSync(lockDir, { recursive: true, force: true });
  return { repo, cacheDir, removed: scan.dir, bytesFreed, snapshots: scan.snapshots.map((s) => s.commit), staleLocks };
}
