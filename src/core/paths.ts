/**
 * Paths built from names that came from outside (a Hub listing, a manifest, a file inside a checkpoint): the one
 * rule that such a name never leaves its root, and the one folder-maker that fails instead of spinning on a
 * filesystem that refuses folders (procfs, sysfs).
 */
import { mkdirSync, readdirSync, realpathSync, statSync, statfsSync, type Dirent } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { ColdstartError, fromSystemError } from './errors.js';

/**
 * `root/name` for a relative `name` from an untrusted source, refused (HOSTILE_FILE, exit 2) when it is empty,
 * absolute, holds a NUL or a backslash, or has a `.`/`..`/empty component: it can never point outside `root`.
 * `what` says where the name came from ("the Hub's tree listing", "the image manifest").
 */
export function safeJoin(root: string, name: unknown, what: string): string {
  if (typeof name !== 'string' || name === '') throw hostileName(name, what, 'is not a non-empty string');
  if (name.includes('\0')) throw hostileName(name, what, 'holds a NUL byte');
  if (name.includes('\\')) throw hostileName(name, what, 'holds a backslash');
  if (isAbsolute(name)) throw hostileName(name, what, 'is an absolute path');
  for (const part of name.split('/')) {
    if (part === '' || part === '.' || part === '..') throw hostileName(name, what, `has a "${part}" path component`);
  }
  const p = join(root, name);
  const rel = relative(resolve(root), resolve(p));
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) throw hostileName(name, what, 'leaves its folder');
  return p;
}

function hostileName(name: unknown, what: string, why: string): ColdstartError {
  const shown = typeof name === 'string' ? JSON.stringify(name.length > 120 ? `${name.slice(0, 120)}…` : name) : String(name);
  return new ColdstartError('HOSTILE_FILE', `${what}: refused the name ${shown}: it ${why}`, {
    hint: 'A name from a file or a server may only name something inside its own folder; nothing was written.',
  });
}

export const GIT_OID_RE = /^[0-9a-f]{40}$/;
export const SHA256_RE = /^[0-9a-f]{64}$/;

/** A hash field used as a file name (git blob oid, LFS sha256): exactly 40 or 64 lowercase hex digits, else refused. */
export function checkHashName(value: unknown, what: string): string {
  if (typeof value === 'string' && (GIT_OID_RE.test(value) || SHA256_RE.test(value))) return value;
  throw hostileName(value, what, 'is not a 40- or 64-digit hex hash');
}

/** Whether `child` is `parent` or lies inside it, comparing resolved paths (symlinks resolved where they exist). */
export function isInside(child: string, parent: string): boolean {
  const rel = relative(realish(parent), realish(child));
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** The real path of `p`, or of its nearest existing ancestor with the rest appended (for outputs not yet made). */
export function realish(p: string): string {
  const abs = resolve(p);
  const rest: string[] = [];
  let cur = abs;
  for (;;) {
    try {
      return join(realpathSync(cur), ...rest.reverse());
    } catch {
      const up = dirname(cur);
      if (up === cur) return abs;
      rest.push(cur.slice(up.length).replace(/^\//, ''));
      cur = up;
    }
  }
}

/** Filesystems where a folder cannot be made by a user: mkdir there gives ENOENT forever, never a folder. */
const PSEUDO_FS: Record<number, string> = { 0x9fa0: 'procfs', 0x62656572: 'sysfs', 0x64626720: 'debugfs', 0x27e0eb: 'cgroupfs', 0x63677270: 'cgroup2fs', 0x73636673: 'securityfs' };

/**
 * `mkdir -p` that ends: each missing component is made in turn from the nearest existing ancestor, so a
 * filesystem that answers ENOENT under an existing folder (procfs, sysfs) fails at once with exit 3 instead of
 * Node's recursive mkdir spinning forever. Errors are ColdstartErrors naming `dir`.
 */
export function makeDirs(dir: string): void {
  const abs = resolve(dir);
  const missing: string[] = [];
  let cur = abs;
  for (;;) {
    let st;
    try {
      st = statSync(cur);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw fromSystemError(e, cur, 'create a folder in');
      const up = dirname(cur);
      if (up === cur) throw fromSystemError(e, cur, 'create a folder in');
      missing.push(cur);
      cur = up;
      continue;
    }
    if (!st.isDirectory()) throw new ColdstartError('BAD_INPUT', `${cur}: not a folder, so ${abs} cannot be created`, { hint: 'Choose a path whose parents are folders.' });
    break;
  }
  if (missing.length === 0) return;
  const fs = pseudoFs(cur);
  if (fs) throw new ColdstartError('PERMISSION', `${abs}: cannot create a folder on ${fs} (${cur})`, { hint: 'Write to a folder on a real filesystem.' });
  for (const m of missing.reverse()) {
    try {
      mkdirSync(m);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST' && statSync(m, { throwIfNoEntry: false })?.isDirectory()) continue;
      if (code === 'ENOENT') throw new ColdstartError('PERMISSION', `${abs}: cannot create ${m}: its filesystem refuses new folders`, { cause: e, hint: 'Write to a folder on a real filesystem.' });
      throw fromSystemError(e, m, 'create a folder');
    }
  }
}

function pseudoFs(p: string): string | undefined {
  try {
    return PSEUDO_FS[Number(statfsSync(p).type)];
  } catch {
    return undefined;
  }
}

/**
 * The files under `root` as forward-slash paths relative to it, folder by folder in name order; links are never
 * followed. `links`: also list what is neither a folder nor a regular file (symlinks: a Hugging Face snapshot is made
 * of them); else regular files only. A missing root holds no files. A folder that cannot be read is skipped with
 * `skipUnreadable` (a scan of a shared cache that other processes change under it), else its error is thrown.
 */
export function walkFiles(root: string, opts: { links?: boolean; skipUnreadable?: boolean } = {}): string[] {
  const out: string[] = [];
  const visit = (prefix: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(prefix ? join(root, prefix) : root, { withFileTypes: true });
    } catch (e) {
      if (opts.skipUnreadable || (!prefix && (e as NodeJS.ErrnoException).code === 'ENOENT')) return;
      throw e;
    }
    for (const d of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const rel = prefix ? `${prefix}/${d.name}` : d.name;
      if (d.isDirectory()) visit(rel);
      else if (opts.links || d.isFile()) out.push(rel);
    }
  };
  visit('');
  return out;
}
