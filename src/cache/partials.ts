/**
 * The incomplete files of a download. Each run writes its own partial (`<etag>.cs-<pid>-<8 hex>.incomplete`), so no
 * two processes ever write one file; between runs a partial is parked as `<etag>.incomplete` (huggingface_hub < 1.x's
 * name) for the next run to adopt and resume with HTTP Range. huggingface_hub ≥ 1.x writes its own
 * `<etag>.<8 hex>.incomplete` files, which are never touched here. A partial fetched in Range parts has holes and a
 * part journal (journal.ts); it is parked as `<etag>.parts.incomplete`, a name no prefix-resuming tool reads.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, linkSync, lstatSync, openSync, readdirSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { basename, dirname, join } from 'node:path';
import { trackResumable, untrackResumable } from '../core/atomic.js';
import { epochSeconds } from '../core/clock.js';
import { dropJournal, hasJournal, partsParkedPath } from './journal.js';

const SUFFIX = '.incomplete';

/**
 * What sits under a partial's name, when it is a plain file (lstat: never through a symbolic link); null for anything
 * else — a link (to a file outside the cache), a FIFO, a folder, nothing. Only such a file is adopted, resumed or
 * counted as progress: what another process planted there is never opened, read or appended to.
 */
export function plainPartial(path: string): Stats | null {
  try {
    const st = lstatSync(path);
    return st.isFile() ? st : null;
  } catch {
    return null;
  }
}

/**
 * Opens this process's own partial for writing (`create`: made when absent) — never through a link, never anything
 * but a plain file: what a race put under the name instead is refused (HOSTILE_FILE), not written to.
 */
export function openOwnPartial(path: string, create: boolean): number {
  const flags = constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK | (create ? constants.O_APPEND | constants.O_CREAT : 0);
  let fd: number;
  try {
    fd = openSync(path, flags, 0o666);
  } catch (e) {
    throw fromSystemError(e, path, 'write');
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new ColdstartError('HOSTILE_FILE', `${path}: not a plain file; coldstart writes a download only into a file it created`, { hint: 'Remove it and run again.' });
  }
  return fd;
}

/** This process's own partial for a parked name: no other process ever opens it for writing. */
function ownPartial(parked: string): string {
  return `${parked.slice(0, -SUFFIX.length)}.cs-${process.pid}-${randomBytes(4).toString('hex')}${SUFFIX}`;
}

/**
 * Runs `work` on this process's own partial for `parked`, adopted first from the parked one (or an abandoned one)
 * when there is one. On a failure — and on Ctrl-C, which ends the CLI before this error path runs (the partial is
 * tracked as resumable, core/atomic.ts) — the partial is parked for the next run.
 */
export async function withPartial<T>(parked: string, staleAfterSeconds: number, work: (own: string) => Promise<T>): Promise<T> {
  const own = ownPartial(parked);
  trackResumable(own, () => parkPartial(own, parked));
  try {
    adoptPartial(parked, own, staleAfterSeconds);
    return await work(own);
  } catch (e) {
    parkPartial(own, parked);
    throw e;
  } finally {
    untrackResumable(own);
  }
}

/** A partial in `dir` that may be adopted: the parked one (prefix or parts), or one a killed coldstart left under its own name. */
function candidates(parked: string, staleAfterSeconds: number): Array<{ path: string; size: number }> {
  const dir = dirname(parked);
  const stem = basename(parked).slice(0, -SUFFIX.length);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: Array<{ path: string; size: number }> = [];
  for (const n of names) {
    const isParked = n === `${stem}${SUFFIX}` || n === `${stem}.parts${SUFFIX}`;
    const isAbandoned = n.startsWith(`${stem}.cs-`) && n.endsWith(SUFFIX);
    if (!isParked && !isAbandoned) continue;
    const st = plainPartial(join(dir, n));
    if (!st) continue; // gone, or not a plain file: left where it is, never adopted
    if (isAbandoned && epochSeconds() * 1000 - st.mtimeMs < staleAfterSeconds * 1000) continue; // maybe still being written
    out.push({ path: join(dir, n), size: st.size });
  }
  return out.sort((a, b) => b.size - a.size);
}

/**
 * Resume: takes over the largest candidate by renaming it to our own name. rename() is atomic: of two contenders
 * exactly one gets it, the other starts from byte 0. Smaller abandoned candidates are removed.
 */
function adoptPartial(parked: string, own: string, staleAfterSeconds: number): void {
  let adopted = false;
  for (const c of candidates(parked, staleAfterSeconds)) {
    if (adopted) {
      dropJournal(c.path);
      rmSync(c.path, { force: true });
      continue;
    }
    try {
      renameSync(c.path, own);
      adopted = true;
    } catch {
      /* another process took it */
    }
  }
}

/**
 * Our partial becomes the parked one for the next run, without replacing a larger one; an empty partial is removed
 * (nothing to resume). Returns whether anything was kept.
 */
function parkPartial(own: string, prefixParked: string): boolean {
  let size: number;
  try {
    size = statSync(own).size;
  } catch {
    return false;
  }
  try {
    if (size === 0) {
      dropJournal(own);
      rmSync(own, { force: true });
      return false;
    }
    const parked = hasJournal(own) ? partsParkedPath(prefixParked) : prefixParked;
    try {
      linkSync(own, parked);
      rmSync(own, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const other = plainPartial(parked); // a link or FIFO planted there is replaced, never measured through
      if (!other || other.size < size) {
        dropJournal(parked);
        renameSync(own, parked);
      } else {
        dropJournal(own);
        rmSync(own, { force: true });
      }
    }
  } catch {
    /* best effort: the own-named partial stays, and is adopted once idle */
  }
  return true;
}
