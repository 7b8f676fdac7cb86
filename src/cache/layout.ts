/**
 * The on-disk layout huggingface_hub (1.x) uses, reproduced byte for byte so Python, transformers and vLLM
 * read what coldstart writes (and coldstart reuses what they wrote):
 *
 *   $HF_HUB_CACHE/models--org--name/blobs/<etag>            (sha256 for LFS files, git blob sha1 otherwise)
 *   $HF_HUB_CACHE/models--org--name/blobs/<etag>.incomplete  (partial download; resumed with HTTP Range)
 *   $HF_HUB_CACHE/models--org--name/snapshots/<commit>/<path> → ../../blobs/<etag>  (relative symlink)
 *   $HF_HUB_CACHE/models--org--name/refs/<revision>          (commit sha, no newline)
 *   $HF_HUB_CACHE/models--org--name/trees/<commit>.json      (tree listing cache, format_version 1)
 *   $HF_HUB_CACHE/CACHEDIR.TAG
 *   $HF_HUB_CACHE/.locks/models--org--name/<etag>.coldstart.lock  (coldstart's lock on one blob)
 *   <local-dir>/.cache/huggingface/download/<path>.metadata  (commit\netag\ntimestamp\n)
 *   <local-dir>/.cache/huggingface/trees/<commit>.json       (coldstart: the listing, for offline runs)
 */
import { createHash } from 'node:crypto';
import { constants, copyFileSync, existsSync, linkSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { tempPathFor, writeFileAtomic } from '../core/atomic.js';
import { GIT_OID_RE, SHA256_RE, makeDirs, safeJoin } from '../core/paths.js';
import { readInputText } from '../core/files.js';
import { epochSeconds } from '../core/clock.js';
import { checkListingShape, hashField, type RepoFile, type RepoType } from '../hub/api.js';

export function repoFolderName(repo: string, type: 'model' | 'dataset' | 'space' = 'model'): string {
  return [`${type}s`, ...repo.split('/')].join('--');
}

export function storageFolder(cacheDir: string, repo: string, type: 'model' | 'dataset' | 'space' = 'model'): string {
  return join(cacheDir, repoFolderName(repo, type));
}

/**
 * Repo-relative paths from a listing may not escape the target dir: huggingface_hub's `_validate_relative_filename`
 * (no `..` segment under `/` or `\\`, no absolute, drive or UNC path, checked under POSIX and Windows rules) and
 * core/paths.ts safeJoin's (no NUL, backslash, empty or `.` component). Paths are then built with safeJoin.
 */
export function validateRelativeFilename(p: string): void {
  const parts = p.replace(/\\/g, '/').split('/');
  if (!p || parts.includes('..') || p.startsWith('/') || /^[a-zA-Z]:/.test(p) || parts.some((s) => /^[a-zA-Z]:/.test(s)) || p.includes('\0')) {
    throw new ColdstartError('HOSTILE_FILE', `refusing repo file name ${JSON.stringify(p)}: absolute, drive or '..' paths could write outside the target directory`, {
      hint: 'A name from the Hub may only name something inside the snapshot; nothing was written.',
    });
  }
  safeJoin('/', p, 'a repo file name');
}

/**
 * A revision as git and the Hub accept it (git check-ref-format, one level allowed): a branch, tag, `refs/pr/1`
 * or a commit. Refused with BAD_FLAG naming `what` (the option; the cache command passes --revision): empty, a NUL or control character, space, `~ ^ : ? * [ \\`,
 * `..`, `@{`, a leading/trailing or doubled `/`, a component starting with `.` or ending in `.lock`, a trailing
 * `.`, or `@` alone. Such a revision can never leave `refs/` when it names a file there.
 */
export function checkRevision(rev: unknown, what = 'revision'): string {
  const bad = (why: string) => invalidArg(what, `a branch, tag or commit sha (${why})`, rev, 'Pass a branch (main), a tag (v1.0), a pull-request ref (refs/pr/1) or a 40-character commit sha.');
  if (typeof rev !== 'string' || rev === '') throw bad('not empty');
  if (rev.length > 255) throw bad('at most 255 characters');
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(rev)) throw bad('no space, control character or any of ~ ^ : ? * [ \\');
  if (rev.includes('..') || rev.includes('@{') || rev === '@') throw bad('no "..", no "@{", not "@"');
  if (rev.startsWith('/') || rev.endsWith('/') || rev.includes('//') || rev.endsWith('.')) throw bad('no leading, trailing or doubled "/", no trailing "."');
  if (rev.split('/').some((c) => c.startsWith('.') || c.endsWith('.lock'))) throw bad('no component starting with "." or ending in ".lock"');
  return rev;
}

/** The etag huggingface_hub names the blob after: the LFS sha256, else the git blob sha1. */
export function etagOf(f: RepoFile): string {
  return f.lfs ? f.lfs.oid : f.oid;
}
export function sizeOf(f: RepoFile): number {
  return f.lfs ? f.lfs.size : f.size;
}

/** `blobs/`: the verified files of a repo, each named after its hash. */
export function blobsFolder(storage: string): string {
  return join(storage, 'blobs');
}
/** `blobs/<etag>`: the etag must be a 40- or 64-digit hex hash (core/paths.ts checkHashName), so it stays in blobs/. */
export function blobPath(storage: string, etag: string): string {
  return safeJoin(blobsFolder(storage), hashField(etag, etag.length === 64 ? SHA256_RE : GIT_OID_RE, 'a blob name'), 'a blob name');
}
/** `snapshots/<commit>/<path>`: the commit a 40-hex sha, the repo path joined with safeJoin. */
export function pointerPath(storage: string, commit: string, path: string): string {
  return safeJoin(snapshotFolder(storage, commit), path, 'a repo file name');
}
/** `snapshots/<commit>`: the folder a revision's files are linked in. */
export function snapshotFolder(storage: string, commit: string): string {
  return join(storage, 'snapshots', hashField(commit, GIT_OID_RE, 'a snapshot commit'));
}
/** `blobs/<etag>.incomplete`: a blob's parked partial download, resumed by the next run (huggingface_hub < 1.x's name). */
export function parkedPartialPath(blob: string): string {
  return `${blob}.incomplete`;
}
/** `$HF_HUB_CACHE/.locks/<repo folder>/<etag>.coldstart.lock`: coldstart's lock on one blob (beside huggingface_hub's `.lock`). */
export function blobLockPath(cacheDir: string, repo: string, type: RepoType, blob: string): string {
  return join(cacheDir, '.locks', repoFolderName(repo, type), `${basename(blob)}.coldstart.lock`);
}
/** `$HF_HUB_CACHE/.locks/<repo folder>`: where the locks of one repo live. */
export function repoLockFolder(cacheDir: string, repo: string, type: RepoType = 'model'): string {
  return join(cacheDir, '.locks', repoFolderName(repo, type));
}

/** `refs/<revision>` (a revision checked by checkRevision, joined with safeJoin). */
function refPath(storage: string, revision: string): string {
  return safeJoin(join(storage, 'refs'), checkRevision(revision), 'a revision');
}

export function readRef(storage: string, revision: string): string | null {
  const p = refPath(storage, revision);
  try {
    const s = readInputText(p, 'ref', 4096).trim();
    return GIT_OID_RE.test(s) ? s : null;
  } catch {
    return null;
  }
}

/** `refs/<revision>` holds the commit (Python writes it without a trailing newline), only for non-sha revisions. */
export function writeRef(storage: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const p = refPath(storage, revision);
  if (readRef(storage, revision) === commit) return;
  writeFileAtomic(p, hashField(commit, GIT_OID_RE, 'a commit sha'));
}

const CACHEDIR_TAG =
  'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by huggingface_hub.\n# For information about cache directory tags, see:\n#\thttps://bford.info/cachedir/\n';

export function ensureCachedirTag(dir: string): void {
  const p = join(dir, 'CACHEDIR.TAG');
  if (existsSync(p)) return;
  try {
    makeDirs(dir); // fails at once on procfs/sysfs, where Node's recursive mkdir spins forever
    writeFileSync(p, CACHEDIR_TAG, { flag: 'wx' });
  } catch {
    /* another writer won, or read-only: like Python, not an error (the first real write says why) */
  }
}

export interface TreeEntry {
  size: number;
  blob_id: string;
  lfs_sha256?: string;
  lfs_size?: number;
}

/** `<folder>/trees/<commit>.json`, the listing cache huggingface_hub ≥ 1.x reads to tell a complete snapshot. */
export function writeTreeCache(folder: string, commit: string, files: RepoFile[]): void {
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const out: Record<string, TreeEntry> = {};
  for (const f of sorted) out[f.path] = { size: f.size, blob_id: f.oid, ...(f.lfs ? { lfs_sha256: f.lfs.oid, lfs_size: f.lfs.size } : {}) };
  writeFileAtomic(treePath(folder, commit), JSON.stringify({ format_version: 1, files: out }, null, 1));
}

/** `<folder>/trees/`: the cached tree listings, one `<commit>.json` each. */
export function treesFolder(folder: string): string {
  return join(folder, 'trees');
}
function treePath(folder: string, commit: string): string {
  return join(treesFolder(folder), `${hashField(commit, GIT_OID_RE, 'a tree listing commit')}.json`);
}

/**
 * The cached listing, or null when there is none or it does not hold up (then the Hub is asked again and the file
 * rewritten): every entry is checked as the Hub's own answer is (api.ts) — its path stays in the snapshot, its
 * hashes are 40/64 hex, its sizes whole — since another process (or tenant of a shared cache) may have written it.
 */
export function readTreeCache(folder: string, commit: string): RepoFile[] | null {
  try {
    const data = JSON.parse(readInputText(treePath(folder, commit), 'tree listing')) as { format_version?: number; files?: Record<string, TreeEntry> };
    if (data.format_version !== 1 || !data.files || typeof data.files !== 'object') return null;
    const whole = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    const files = Object.entries(data.files).map(([path, e]) => {
      validateRelativeFilename(path);
      if (!whole(e?.size) || (e.lfs_size !== undefined && !whole(e.lfs_size))) throw new Error('bad size');
      return {
        path,
        size: e.size,
        oid: hashField(e.blob_id, GIT_OID_RE, 'blob_id'),
        ...(e.lfs_sha256 !== undefined ? { lfs: { oid: hashField(e.lfs_sha256, SHA256_RE, 'lfs_sha256'), size: e.lfs_size ?? e.size } } : {}),
      };
    });
    checkListingShape(files, 'the tree listing cache');
    return files;
  } catch {
    return null;
  }
}

/**
 * Puts `pointer` in place as a relative symlink to `blob` (as huggingface_hub does); where symlinks fail
 * (Windows without developer mode, some network filesystems) a hard link, else a copy. Atomic: temp name + rename.
 */
export function linkPointer(blob: string, pointer: string): 'symlink' | 'hardlink' | 'copy' {
  makeDirs(dirname(pointer));
  const tmp = tempPathFor(pointer);
  const rel = relative(dirname(pointer), blob);
  const attempts: Array<['symlink' | 'hardlink' | 'copy', () => void]> = [
    ['symlink', () => symlinkSync(rel, tmp)],
    ['hardlink', () => linkSync(blob, tmp)],
    ['copy', () => copyFileSync(blob, tmp, constants.COPYFILE_FICLONE)],
  ];
  let last: unknown;
  for (const [kind, make] of attempts) {
    try {
      make();
      renameSync(tmp, pointer);
      return kind;
    } catch (e) {
      last = e;
      rmSync(tmp, { force: true });
      if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
    }
  }
  throw last;
}

/** Python's `_short_hash`: urlsafe base64 of the sha1 of a name (used for local-dir `.incomplete` names). */
export function shortHash(name: string): string {
  return createHash('sha1').update(name).digest('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

export interface LocalDirPaths {
  file: string;
  metadata: string;
  lock: string;
  incomplete(etag: string): string;
}

/** `<local-dir>/.cache/huggingface`: the bookkeeping folder of a --local-dir (tree listings, download metadata). */
export function localBookkeeping(localDir: string): string {
  return join(localDir, '.cache', 'huggingface');
}

/**
 * Makes the bookkeeping folder of a --local-dir as huggingface_hub does (a `.gitignore` of `*` and a CACHEDIR.TAG,
 * so git and backups leave it alone). Called only by a run that writes into the folder.
 */
export function ensureLocalBookkeeping(localDir: string): string {
  const d = localBookkeeping(localDir);
  makeDirs(d);
  ensureCachedirTag(d);
  const gi = join(d, '.gitignore');
  if (!existsSync(gi)) {
    try {
      writeFileSync(gi, '*', { flag: 'wx' });
    } catch {
      /* raced */
    }
  }
  return d;
}

/**
 * Where a repo file and its bookkeeping go in a --local-dir: every path built with safeJoin from the repo path.
 * Pure: nothing is created (a --dry-run and `cache verify --local-dir` write nothing).
 */
export function localDirPaths(localDir: string, path: string): LocalDirPaths {
  validateRelativeFilename(path);
  const file = safeJoin(localDir, path, 'a repo file name');
  const metadata = safeJoin(join(localBookkeeping(localDir), 'download'), `${path}.metadata`, 'a repo file name');
  return {
    file,
    metadata,
    lock: metadata.replace(/\.metadata$/, '.coldstart.lock'),
    incomplete: (etag) => join(dirname(metadata), `${shortHash(basename(metadata))}.${hashField(etag, etag.length === 64 ? SHA256_RE : GIT_OID_RE, 'an etag')}.incomplete`),
  };
}

export function readLocalMetadata(p: LocalDirPaths): { commit: string; etag: string; timestamp: number } | null {
  try {
    const [commit, etag, ts] = readInputText(p.metadata, 'download metadata', 4096).split('\n');
    const timestamp = Number(ts);
    if (!commit || !etag || !Number.isFinite(timestamp)) return null;
    return { commit: commit.trim(), etag: etag.trim(), timestamp };
  } catch {
    return null;
  }
}

/** Same three lines huggingface_hub writes: commit, etag, time.time() as a float. */
export function writeLocalMetadata(p: LocalDirPaths, commit: string, etag: string): void {
  const t = epochSeconds();
  writeFileAtomic(p.metadata, `${commit}\n${etag}\n${t.toFixed(6)}\n`);
}

/**
 * fnmatch semantics as huggingface_hub's `filter_repo_objects` uses them: `*` matches across `/`,
 * `?` one character, `[...]` a class; a pattern ending in `/` matches everything below that folder.
 */
export function globToRegExp(glob: string): RegExp {
  const g = glob.endsWith('/') ? `${glob}*` : glob;
  let re = '';
  for (let i = 0; i < g.length; i++) {
    const ch = g[i];
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else if (ch === '[') {
      const j = g.indexOf(']', i + 2);
      if (j < 0) re += '\\[';
      else {
        let body = g.slice(i + 1, j).replace(/\\/g, '\\\\');
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        re += `[${body}]`;
        i = j;
      }
    } else re += ch.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

export function filterPaths<T extends { path: string }>(items: T[], include?: string[], exclude?: string[]): T[] {
  const inc = include?.length ? include.map(globToRegExp) : null;
  const exc = exclude?.length ? exclude.map(globToRegExp) : [];
  return items.filter((f) => (!inc || inc.some((r) => r.test(f.path))) && !exc.some((r) => r.test(f.path)));
}

export function toPosix(p: string): string {
  return sep === '/' ? p : p.split(sep).join('/');
}

/**
 * True when `path` (followed through symlinks) is a regular file of exactly `bytes` bytes: a blob, pointer or
 * local file counts as cached only at the size the listing gives (one truncated by hand or a full disk does not).
 */
export function fileOfSize(path: string, bytes: number): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && st.size === bytes;
  } catch {
    return false;
  }
}

/** The commit a revision resolves to in the cache (`refs/<rev>`, or the sha itself when its snapshot exists), or null. */
export function cachedCommit(storage: string, revision: string): string | null {
  if (GIT_OID_RE.test(revision)) return existsSync(join(storage, 'snapshots', revision)) ? revision : null;
  return readRef(storage, revision);
}
