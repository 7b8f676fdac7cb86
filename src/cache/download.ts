/**
 * Downloads a Hub repo into the huggingface_hub cache layout (or a --local-dir) with parallel files,
 * HTTP Range resume from `.incomplete` blobs, retries with backoff, and a sha256 (LFS) / git-sha1 (regular
 * file) check of every byte before a file enters the cache. `profile` uses the same code for its
 * `download` phase (downloadRepo + recordDownloadPhase).
 *
 * Why not @huggingface/hub: its `downloadFileToCacheDir` (2.x) re-downloads from byte 0 (no Range resume of
 * `.incomplete`), checks no hash, takes no lock, writes no `refs/`, resolves the snapshot per file and logs
 * to console; a fetch/web-stream body also costs throughput at loopback rates. The Hub protocol needed here
 * is three endpoints, so this is a small node:http client (src/hub/http.ts).
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, existsSync, ftruncateSync, linkSync, openSync, closeSync, fstatSync, readdirSync, renameSync, rmSync, statSync, statfsSync, writev } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { ColdstartError, fromSystemError } from '../core/errors.js';
import { trackResumable, untrackResumable } from '../core/atomic.js';
import { GIT_OID_RE, makeDirs, safeJoin } from '../core/paths.js';
import type { PhaseHandle } from '../core/phases.js';
import { formatBytes, formatRate } from '../core/format.js';
import { hubCacheDir, hfOffline } from '../hub/env.js';
import { COMMIT_RE, encodePath, hubClient, listTree, modelInfo, repoUrl, type HubClient, type RepoFile, type RepoType } from '../hub/api.js';
import { TransientError, bodyError, hubErrorFor, hubRequest, networkError, withRetries } from '../hub/http.js';
import {
  DUPLICATE_WEIGHT_GLOBS,
  blobPath,
  checkRevision,
  ensureCachedirTag,
  etagOf,
  filterPaths,
  linkPointer,
  localDirPaths,
  pointerPath,
  readLocalMetadata,
  readRef,
  readTreeCache,
  repoFolderName,
  sizeOf,
  storageFolder,
  validateRelativeFilename,
  writeLocalMetadata,
  writeRef,
  writeTreeCache,
} from './layout.js';
import { acquireLock, staleSeconds } from './lock.js';
import { walkFiles } from './scan.js';
import { WorkerFetch, sinkParallelism, type FetchOutcome } from './sink.js';
import { abortReason, nowSeconds } from '../core/clock.js';

type Env = Record<string, string | undefined>;

export interface DownloadResult {
  repo: string;
  revision: string;
  commit: string;
  cacheDir: string;
  snapshotDir: string;
  files: Array<{ path: string; bytes: number; seconds: number; cached: boolean }>;
  bytesDownloaded: number;
  bytesTotal: number;
  seconds: number;
  bytesPerSecond: number;
  fromCache: boolean;
  /** 'cache' (HF cache layout) or 'local-dir'. */
  mode?: 'cache' | 'local-dir';
  /** Files of the repo not fetched (filters or the default .bin skip), with their sizes. */
  excluded?: Array<{ path: string; bytes: number }>;
  /** Set when the default skip of duplicate weight formats applied (safetensors present). */
  defaultExcludes?: string[];
  /** HF_HUB_OFFLINE: only the cache was read. */
  offline?: boolean;
  /** --dry-run: every selected file and whether this run would fetch it (nothing was written). */
  dryRun?: Array<{ path: string; bytes: number; willDownload: boolean }>;
  /** Files continued from an `.incomplete` prefix, and from which byte. */
  resumed?: Array<{ path: string; fromByte: number }>;
  /**
   * Exact byte accounting. bytesWire: body bytes that came over the network (every attempt). bytesResumed:
   * bytes taken from partial files and kept. bytesRefetched: bytes fetched again, i.e. a resumed prefix that
   * a server refusing Range (416, or 200 with the whole body) made us throw away. bytesDownloaded === bytesWire.
   */
  bytesWire?: number;
  bytesResumed?: number;
  bytesRefetched?: number;
}

export type DownloadEvent =
  | { type: 'retry'; file: string; attempt: number; waitSeconds: number; reason: string }
  | { type: 'resume'; file: string; fromByte: number }
  | { type: 'waiting-lock'; file: string }
  | { type: 'rejected'; file: string; reason: string };

export interface DownloadOptions {
  repo: string;
  revision?: string;
  include?: string[];
  exclude?: string[];
  localDir?: string;
  concurrency?: number;
  env: Env;
  signal?: AbortSignal;
  onProgress?: (p: { bytesDone: number; bytesTotal: number; file?: string }) => void;
  /** Transient-failure retries per request (default 5) and the first backoff (default 500 ms, doubling). */
  retries?: number;
  retryBaseMs?: number;
  /** Socket idle timeout (default 30 s). */
  timeoutMs?: number;
  /** Skip .bin/.pt/… weights when safetensors exist (default: true unless include/exclude given). */
  defaultExcludes?: boolean;
  onEvent?: (e: DownloadEvent) => void;
  /** huggingface_hub's repo_type (default model): API path, resolve URL and cache folder (`datasets--org--name`). */
  repoType?: RepoType;
  /**
   * `hf download REPO FILENAMES…`: these files only (a name ending in `/` means everything under it); like
   * huggingface_hub they replace --include/--exclude and the default skip. A name not in the repo is an error.
   */
  filenames?: string[];
  /** Fetch again even when cached (huggingface_hub force_download); the fresh verified blob replaces the old one. */
  forceDownload?: boolean;
  /** Resolve and list only: what would be fetched and its size; nothing written, no file bytes requested. */
  dryRun?: boolean;
}

const now = nowSeconds;

/** The lists this run fetches: explicit globs, else everything minus duplicate weight formats when safetensors exist. */
export function selectFiles(all: RepoFile[], o: Pick<DownloadOptions, 'include' | 'exclude' | 'defaultExcludes' | 'filenames'>): { selected: RepoFile[]; defaultExcludes?: string[] } {
  if (o.filenames?.length) {
    // huggingface_hub's `hf download REPO NAMES…`: exact names, and `dir/` for everything under dir.
    const names = new Set(o.filenames.filter((n) => !n.endsWith('/')));
    const dirs = o.filenames.filter((n) => n.endsWith('/'));
    return { selected: all.filter((f) => names.has(f.path) || dirs.some((d) => f.path.startsWith(d))) };
  }
  const explicit = !!(o.include?.length || o.exclude?.length);
  const useDefault = o.defaultExcludes ?? !explicit;
  const hasSafetensors = all.some((f) => f.path.endsWith('.safetensors'));
  if (useDefault && hasSafetensors) {
    const selected = filterPaths(all, o.include, [...(o.exclude ?? []), ...DUPLICATE_WEIGHT_GLOBS]);
    const skipped = all.length - filterPaths(all, o.include, o.exclude).length;
    return { selected, ...(selected.length + skipped < all.length ? { defaultExcludes: DUPLICATE_WEIGHT_GLOBS } : {}) };
  }
  return { selected: filterPaths(all, o.include, o.exclude) };
}

/** The commit a revision resolves to in the cache (refs/<rev>, or the sha itself), or null. */
function cachedCommit(storage: string, revision: string): string | null {
  if (COMMIT_RE.test(revision)) return existsSync(join(storage, 'snapshots', revision)) ? revision : null;
  return readRef(storage, revision);
}

/** The snapshot folder of a cached revision (default main), or null when nothing is cached for it. */
export function findCachedSnapshot(repo: string, revision: string | undefined, env: Env): string | null {
  const storage = storageFolder(hubCacheDir(env), repo);
  const commit = cachedCommit(storage, checkRevision(revision ?? 'main'));
  if (!commit) return null;
  const dir = join(storage, 'snapshots', commit);
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
    return listSnapshot(join(storage, 'snapshots', commit)).map((p) => ({ path: p, bytes: statSync(join(storage, 'snapshots', commit, p)).size }));
  }
  const c = hubClient(opts.env, { signal: opts.signal });
  const commit = COMMIT_RE.test(revision) ? revision : (await modelInfo(c, opts.repo, revision)).sha;
  return (await listTree(c, opts.repo, commit)).map((f) => ({ path: f.path, bytes: sizeOf(f) }));
}

function offlineMiss(repo: string, revision: string): ColdstartError {
  return new ColdstartError('OFFLINE', `HF_HUB_OFFLINE is set and ${repo}@${revision} is not in the cache`, {
    hint: 'Run `coldstart cache` for it with network access first, or unset HF_HUB_OFFLINE.',
  });
}

/** Repo-relative paths of every file in a snapshot folder (symlinks counted as files), sorted. */
export function listSnapshot(dir: string): string[] {
  return walkFiles(dir).sort();
}

/** Incremental content hash matching the blob name: sha256 (LFS) or git's `blob <size>\0` sha1 (regular). */
function newHasher(f: RepoFile): Hash {
  if (f.lfs) return createHash('sha256');
  const h = createHash('sha1');
  h.update(`blob ${f.size}\0`);
  return h;
}

async function hashPrefix(h: Hash, path: string, bytes: number, signal?: AbortSignal): Promise<void> {
  if (bytes === 0) return;
  const rs = createReadStream(path, { start: 0, end: bytes - 1, highWaterMark: 4 << 20, signal });
  for await (const c of rs) h.update(c as Buffer);
}

function writevAll(fd: number, bufs: Buffer[]): Promise<void> {
  return new Promise((resolve, reject) => {
    writev(fd, bufs, (err, n) => {
      if (err) return reject(err);
      const total = bufs.reduce((a, b) => a + b.length, 0);
      if (n === total) return resolve();
      // Short write: continue with what is left.
      let skip = n;
      const rest: Buffer[] = [];
      for (const b of bufs) {
        if (skip >= b.length) skip -= b.length;
        else {
          rest.push(skip ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      writevAll(fd, rest).then(resolve, reject);
    });
  });
}

interface FileJob {
  file: RepoFile;
  url: string;
  incomplete: string;
  display: string;
}

/** Where a file's bytes go: hashed and appended to the `.incomplete` file, in order. */
interface Sink {
  open(hashExisting: number): Promise<void>;
  reset(): void;
  write(bufs: Buffer[]): Promise<void>;
  digest(): Promise<string>;
  /** Waits until no write is pending, so the descriptor can be closed. */
  close(): Promise<void>;
}

/** Small files: hash on the event loop, write through the libuv pool (one write in flight). */
class InlineSink implements Sink {
  private h: Hash;
  private inflight: Promise<void> = Promise.resolve();
  constructor(
    private readonly fd: number,
    private readonly path: string,
    private readonly file: RepoFile,
    private readonly signal?: AbortSignal,
  ) {
    this.h = newHasher(file);
  }
  async open(hashExisting: number): Promise<void> {
    await hashPrefix(this.h, this.path, hashExisting, this.signal);
  }
  reset(): void {
    this.h = newHasher(this.file);
  }
  async write(bufs: Buffer[]): Promise<void> {
    for (const b of bufs) this.h.update(b);
    await this.inflight;
    this.inflight = writevAll(this.fd, bufs).catch((e) => {
      throw fromSystemError(e, this.path, 'write');
    });
  }
  async digest(): Promise<string> {
    await this.inflight;
    return this.h.digest('hex');
  }
  async close(): Promise<void> {
    await this.inflight.catch(() => {});
  }
}

/** Files from this size on are fetched, hashed and written on worker threads (src/hub/sink.ts). */
const WORKER_SINK_MIN_BYTES = 1 << 20;

/** Where fetchVerified reports bytes: progress (may step back on a restart), wire bytes, a resumed prefix, a discarded prefix. */
interface Accounting {
  progress(n: number): void;
  wire(n: number): void;
  resumed(fromByte: number): void;
  discarded(n: number): void;
}

/**
 * A file whose bytes do not hash to the Hub's value: its partial is deleted (resuming from wrong bytes is
 * pointless), the rejection reported, and the CORRUPT_FILE error returned for the caller to throw.
 */
function hashMismatch(job: FileJob, opts: DownloadOptions, expected: string, got: string): ColdstartError {
  rmSync(job.incomplete, { force: true });
  const algo = job.file.lfs ? 'sha256' : 'git blob sha1';
  opts.onEvent?.({ type: 'rejected', file: job.display, reason: `${algo} mismatch` });
  return new ColdstartError('CORRUPT_FILE', `${job.display}: ${algo} ${got} does not match the Hub's ${expected}; the bytes were discarded and nothing was cached`, {
    hint: 'Run again (a mirror or proxy may have served bad bytes); if it persists, check HF_ENDPOINT.',
    details: { file: job.file.path, expected, got },
  });
}

/**
 * Streams `job.url` into `job.incomplete`, resuming from its current length with HTTP Range, retrying
 * transient failures from the byte reached, and checks size and hash. On a hash mismatch the partial file
 * is deleted (its bytes are wrong, resuming from them is pointless) and CORRUPT_FILE thrown.
 */
async function fetchVerified(c: HubClient, repo: string, job: FileJob, opts: DownloadOptions, acct: Accounting): Promise<void> {
  const size = sizeOf(job.file);
  const expected = etagOf(job.file);
  makeDirs(dirname(job.incomplete));
  let fd = -1;
  try {
    fd = openSync(job.incomplete, 'a+');
  } catch (e) {
    throw fromSystemError(e, job.incomplete, 'write');
  }
  let sink: { digest(): Promise<string>; close(): Promise<void> } | null = null;
  try {
    let offset = fstatSync(fd).size;
    if (offset > size) {
      ftruncateSync(fd, 0);
      offset = 0;
    }
    if (offset === 0 && size >= 2 * partMinBytes(opts.env)) {
      // A big file from byte 0: parallel Range parts on the workers, then the hash in file order.
      if (await fetchParts(c, repo, job, opts, acct, size)) {
        const h = newHasher(job.file);
        await hashPrefix(h, job.incomplete, size, opts.signal);
        const got = h.digest('hex');
        if (got !== expected) {
          closeSync(fd);
          fd = -1;
          throw hashMismatch(job, opts, expected, got);
        }
        return;
      }
      // The server does not serve ranges: one stream from byte 0 (the parts' bytes were discarded).
    }
    const wf = size >= WORKER_SINK_MIN_BYTES ? new WorkerFetch(fd, job.incomplete, job.file.lfs ? 'sha256' : 'sha1', job.file.lfs ? undefined : `blob ${job.file.size}\0`, sinkParallelism(opts.concurrency ?? 8)) : null;
    const inline = wf ? null : new InlineSink(fd, job.incomplete, job.file, opts.signal);
    const s = (wf ?? inline)!;
    sink = s;
    await s.open(offset);
    if (offset > 0) {
      acct.resumed(offset);
      opts.onEvent?.({ type: 'resume', file: job.display, fromByte: offset });
      acct.progress(offset);
    }
    await withRetries(
      async () => {
        if (offset >= size) return;
        if (wf) return workerAttempt(wf);
        const res = await hubRequest(job.url, { endpoint: c.endpoint, token: c.token, signal: c.signal, timeoutMs: c.timeoutMs, headers: offset > 0 ? { range: `bytes=${offset}-` } : {} });
        const status = res.statusCode ?? 0;
        if (status === 416 || (status === 200 && offset > 0)) {
          // The server will not resume this file: start it over (a 200 already carries the whole body).
          ftruncateSync(fd, 0);
          acct.progress(-offset);
          acct.discarded(offset);
          offset = 0;
          inline!.reset();
          if (status === 416) {
            res.resume();
            throw new TransientError('HTTP 416 on resume; restarting the file from byte 0');
          }
          return fetchBody(inline!, res);
        }
        if (status !== 200 && status !== 206) throw hubErrorFor(res, { repo, revision: undefined, path: job.file.path, hasToken: !!c.token });
        if (status === 206) {
          const cr = String(res.headers['content-range'] ?? '');
          const m = /^bytes (\d+)-/.exec(cr);
          if (!m || Number(m[1]) !== offset) {
            res.resume();
            throw new ColdstartError('BAD_INPUT', `${job.display}: server answered Range bytes=${offset}- with ${JSON.stringify(cr)}`);
          }
        }
        return fetchBody(inline!, res);
      },
      {
        retries: c.retries,
        baseMs: c.retryBaseMs,
        signal: opts.signal,
        onRetry: (e, attempt, wait) => opts.onEvent?.({ type: 'retry', file: job.display, attempt, waitSeconds: wait / 1000, reason: e.message }),
      },
    );

    /**
     * One attempt on the worker: it makes the request and handles the 416 / 200-on-resume restart itself; its
     * byte offset is the progress (a restart shows as a negative step), and how it ended becomes the error the
     * inline path would throw (transient ones are retried from the byte reached).
     */
    async function workerAttempt(w: WorkerFetch): Promise<void> {
      let reported = offset;
      const progress = (o: number) => {
        if (o > reported) acct.wire(o - reported);
        else if (o < reported) acct.discarded(reported - o); // the worker restarted the file (416 / 200)
        if (o !== reported) acct.progress(o - reported);
        reported = o;
      };
      const r = await w.fetch({ url: job.url, endpoint: c.endpoint, token: c.token, timeoutMs: c.timeoutMs, size }, progress, opts.signal);
      offset = r.offset;
      progress(r.offset);
      if (opts.signal?.aborted && r.kind !== 'ok') throw abortReason(opts.signal);
      switch (r.kind) {
        case 'ok':
          if (r.offset >= size) return;
          throw new TransientError(`${job.display}: connection closed at byte ${r.offset} of ${size}`);
        case 'short':
          throw new TransientError(`${job.display}: connection closed at byte ${r.offset} of ${size}`);
        case 'aborted':
          throw new ColdstartError('INTERRUPTED', 'interrupted');
        case '416':
          throw new TransientError('HTTP 416 on resume; restarting the file from byte 0');
        case 'net':
        case 'fs':
        case 'status':
        case 'redirects':
          throw workerFailure(r, job, repo, !!c.token);
        case 'range':
          throw new ColdstartError('BAD_INPUT', `${job.display}: server answered Range bytes=${offset}- with ${JSON.stringify(r.contentRange)}`);
        case 'toolong':
          throw new ColdstartError('CORRUPT_FILE', `${job.display}: the server sent more than the ${size} bytes the Hub lists; nothing was cached`);
      }
    }

    async function fetchBody(s: InlineSink, res: import('node:http').IncomingMessage): Promise<void> {
      let batch: Buffer[] = [];
      let batchBytes = 0;
      const flush = async () => {
        if (!batchBytes) return;
        const bufs = batch;
        const n = batchBytes;
        batch = [];
        batchBytes = 0;
        if (offset + n > size) throw new ColdstartError('CORRUPT_FILE', `${job.display}: the server sent more than the ${size} bytes the Hub lists; nothing was cached`);
        offset += n;
        await s.write(bufs);
        acct.wire(n);
        acct.progress(n);
      };
      try {
        for await (const chunk of res) {
          batch.push(chunk as Buffer);
          batchBytes += (chunk as Buffer).length;
          if (batchBytes >= 1 << 20) await flush();
        }
      } catch (e) {
        await flush();
        throw bodyError(e, res, job.url, opts.signal);
      }
      await flush();
      if (offset < size) throw new TransientError(`${job.display}: connection closed at byte ${offset} of ${size}`);
    }

    const done = sink as { digest(): Promise<string>; close(): Promise<void> } | null;
    const got = await done!.digest();
    if (got !== expected) {
      await done!.close();
      sink = null;
      closeSync(fd);
      fd = -1;
      throw hashMismatch(job, opts, expected, got);
    }
  } finally {
    await sink?.close();
    if (fd >= 0) closeSync(fd);
  }
}

/**
 * Files of at least twice COLDSTART_PART_MIN_BYTES are fetched in Range parts, only when that variable is set.
 * Off by default: the parts finish before the in-order hash re-reads the file, where one stream per file hashes
 * as it writes, and parts were slower on both machines measured — 2-core VM 1.24× vs 1.41× Python
 * (bench/cache/RESULTS.md), 16-core H200 host 0.66 GB/s with parts where the single-stream path had reached
 * 2.12 GB/s (BENCHMARKS.md, 2026-11-28).
 */
function partMinBytes(env: Env): number {
  const n = Number(env.COLDSTART_PART_MIN_BYTES);
  if (Number.isSafeInteger(n) && n >= 1 << 16) return n;
  return Number.POSITIVE_INFINITY;
}
const MAX_PARTS = 4;

/**
 * Fetches `job` (from byte 0) as up to MAX_PARTS parallel Range parts, each on a worker writing at its own
 * position through a non-append descriptor, each retried from the byte it reached. Returns true when every
 * byte is on disk (the caller hashes the file in order), false when the server does not serve ranges (the
 * file is emptied; the caller streams it whole). On a failure the file is cut to its contiguous prefix, so
 * what is parked for resume is exactly the bytes [0, n).
 */
/** The error for a worker outcome that means the same for a whole file and for a Range part of it. */
function workerFailure(r: Extract<FetchOutcome, { kind: 'net' | 'fs' | 'status' | 'redirects' }>, job: FileJob, repo: string, hasToken: boolean): Error {
  switch (r.kind) {
    case 'net':
      return networkError(Object.assign(new Error(r.message), { code: r.code }), r.url);
    case 'fs':
      return fromSystemError(Object.assign(new Error(r.message), { code: r.code }), job.incomplete, 'write');
    case 'status': {
      // hubErrorFor reads only the status and the headers the worker passed on (the body was discarded).
      const res = { statusCode: r.status, headers: r.headers, resume() {} } as unknown as import('node:http').IncomingMessage;
      return hubErrorFor(res, { repo, revision: undefined, path: job.file.path, hasToken });
    }
    case 'redirects':
      return new ColdstartError('NETWORK', `${new URL(r.url).origin}: too many redirects`);
  }
}

async function fetchParts(c: HubClient, repo: string, job: FileJob, opts: DownloadOptions, acct: Accounting, size: number): Promise<boolean> {
  const k = Math.min(MAX_PARTS, Math.floor(size / partMinBytes(opts.env)));
  const partLen = Math.ceil(size / k);
  let pfd: number;
  try {
    pfd = openSync(job.incomplete, 'r+');
  } catch (e) {
    throw fromSystemError(e, job.incomplete, 'write');
  }
  const ac = new AbortController();
  const onAbort = () => ac.abort(opts.signal!.reason);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const parts = Array.from({ length: k }, (_, i) => ({ base: i * partLen, len: Math.min(partLen, size - i * partLen), offset: 0 }));
  let norange = false;
  try {
    const results = await Promise.allSettled(
      parts.map(async (p) => {
        const wf = new WorkerFetch(pfd, job.incomplete, job.file.lfs ? 'sha256' : 'sha1', undefined, sinkParallelism(opts.concurrency ?? 8));
        try {
          await wf.open(0);
          await withRetries(
            async () => {
              if (p.offset >= p.len) return;
              let reported = p.offset;
              const progress = (o: number) => {
                if (o > reported) {
                  acct.wire(o - reported);
                  acct.progress(o - reported);
                }
                reported = Math.max(reported, o);
              };
              const r = await wf.fetch({ url: job.url, endpoint: c.endpoint, token: c.token, timeoutMs: c.timeoutMs, size: p.len, base: p.base }, progress, ac.signal);
              progress(r.offset);
              p.offset = r.offset;
              if (ac.signal.aborted && r.kind !== 'ok') throw abortReason(ac.signal);
              switch (r.kind) {
                case 'ok':
                  if (r.offset >= p.len) return;
                  throw new TransientError(`${job.display}: part at byte ${p.base}: connection closed at byte ${p.base + r.offset}`);
                case 'short':
                  throw new TransientError(`${job.display}: part at byte ${p.base}: connection closed at byte ${p.base + r.offset}`);
                case 'norange':
                  norange = true;
                  ac.abort(new ColdstartError('INTERRUPTED', 'no Range support'));
                  throw new ColdstartError('INTERRUPTED', 'no Range support');
                case 'aborted':
                  throw abortReason(ac.signal);
                case 'net':
                case 'fs':
                case 'status':
                case 'redirects':
                  throw workerFailure(r, job, repo, !!c.token);
                case 'range':
                  throw new ColdstartError('BAD_INPUT', `${job.display}: server answered Range bytes=${p.base + p.offset}-${p.base + p.len - 1} with ${JSON.stringify(r.contentRange)}`);
                case 'toolong':
                  throw new ColdstartError('CORRUPT_FILE', `${job.display}: the server sent more than the part's ${p.len} bytes; nothing was cached`);
                default:
                  throw new ColdstartError('INTERNAL', `${job.display}: unexpected worker outcome ${r.kind}`);
              }
            },
            {
              retries: c.retries,
              baseMs: c.retryBaseMs,
              signal: ac.signal,
              onRetry: (e, attempt, wait) => opts.onEvent?.({ type: 'retry', file: job.display, attempt, waitSeconds: wait / 1000, reason: e.message }),
            },
          );
        } finally {
          await wf.close();
        }
      }),
    );
    if (norange && !opts.signal?.aborted) {
      const got = parts.reduce((a, p) => a + p.offset, 0);
      ftruncateSync(pfd, 0);
      acct.progress(-got);
      acct.discarded(got);
      return false;
    }
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      let prefix = 0;
      for (const p of parts) {
        prefix += p.offset;
        if (p.offset < p.len) break;
      }
      ftruncateSync(pfd, prefix);
      throw opts.signal?.aborted ? abortReason(opts.signal) : failed.reason;
    }
    return true;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    closeSync(pfd);
  }
}

/** Runs `fn` over `items` with at most `n` in flight; the first failure stops new work and is rethrown. */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown = null;
  const worker = async () => {
    while (failed === null && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (e) {
        if (failed === null) failed = e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  if (failed !== null) throw failed;
}

export function validateRepoId(repo: string): void {
  // One segment (gpt2, bert-base-uncased: the Hub's legacy canonical repos) or org/name, as huggingface_hub accepts.
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repo) || repo.includes('..') || /^[.-]|[.-]$/.test(repo)) throw new ColdstartError('UNKNOWN_MODEL', `not a Hub repo id: ${JSON.stringify(repo)}`, { hint: 'Use org/name (or a one-segment id such as gpt2) or an alias from `coldstart profile --help`.' });
}

export async function downloadRepo(opts: DownloadOptions): Promise<DownloadResult> {
  validateRepoId(opts.repo);
  const revision = checkRevision(opts.revision ?? 'main');
  const cacheDir = hubCacheDir(opts.env);
  const repoType = opts.repoType ?? 'model';
  const storage = storageFolder(cacheDir, opts.repo, repoType);
  const t0 = now();
  if (hfOffline(opts.env)) return offlineResult(opts, revision, cacheDir, storage, t0);

  const c = hubClient(opts.env, { signal: opts.signal, ...(opts.retries !== undefined ? { retries: opts.retries } : {}), ...(opts.retryBaseMs !== undefined ? { retryBaseMs: opts.retryBaseMs } : {}), ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  const commit = COMMIT_RE.test(revision) ? revision : (await modelInfo(c, opts.repo, revision, repoType)).sha;
  const cachedTree = readTreeCache(opts.localDir ? join(opts.localDir, '.cache', 'huggingface') : storage, commit);
  const all = cachedTree ?? (await listTree(c, opts.repo, commit, repoType));
  for (const f of all) validateRelativeFilename(f.path);
  const { selected, defaultExcludes } = selectFiles(all, opts);
  if (opts.filenames?.length) {
    const known = new Set(all.map((f) => f.path));
    const absent = opts.filenames.filter((n) => !n.endsWith('/') && !known.has(n));
    if (absent.length) throw new ColdstartError('ENTRY_NOT_FOUND', `${opts.repo}@${revision}: no file ${absent.map((n) => JSON.stringify(n)).join(', ')} in the repo (${all.length} file(s))`, { hint: 'Check the name (paths are relative to the repo root), or use --include with a glob.' });
  }
  const selectedSet = new Set(selected.map((f) => f.path));
  const excluded = all.filter((f) => !selectedSet.has(f.path)).map((f) => ({ path: f.path, bytes: sizeOf(f) }));
  if (selected.length === 0) {
    throw new ColdstartError('BAD_FLAG', `${opts.repo}@${revision}: no file matches the --include/--exclude globs (${all.length} file(s) in the repo)`, { hint: 'Globs use fnmatch rules on repo paths, e.g. --include "*.safetensors" "*.json".' });
  }

  const local = opts.localDir;
  // A complete cache (every selected file present at its size, the ref and the tree listing in place) needs
  // no write at all: it works on a read-only mount, like huggingface_hub.
  const complete =
    !opts.forceDownload &&
    !local &&
    !!cachedTree &&
    (revision === commit || readRef(storage, revision) === commit) &&
    selected.every((f) => sizeIs(pointerPath(storage, commit, f.path), sizeOf(f)));
  let snapshotDir: string = local ?? join(storage, 'snapshots', commit);
  if (opts.dryRun) {
    const have = (f: RepoFile) => {
      if (opts.forceDownload) return false;
      if (local) return sizeIs(safeJoin(local, f.path, 'a repo file name'), sizeOf(f)) && readLocalMetadata(localDirPaths(local, f.path))?.etag === etagOf(f);
      return sizeIs(blobPath(storage, etagOf(f)), sizeOf(f));
    };
    const plan = selected.map((f) => ({ path: f.path, bytes: sizeOf(f), willDownload: !have(f) })).sort((a, b) => (a.path < b.path ? -1 : 1));
    const bytesTotal = plan.reduce((a, f) => a + f.bytes, 0);
    return {
      repo: opts.repo,
      revision,
      commit,
      cacheDir,
      snapshotDir,
      files: plan.map((f) => ({ path: f.path, bytes: f.bytes, seconds: 0, cached: !f.willDownload })),
      bytesDownloaded: 0,
      bytesTotal,
      seconds: now() - t0,
      bytesPerSecond: 0,
      fromCache: plan.every((f) => !f.willDownload),
      mode: local ? 'local-dir' : 'cache',
      excluded,
      ...(defaultExcludes ? { defaultExcludes } : {}),
      offline: false,
      dryRun: plan,
      bytesWire: 0,
      bytesResumed: 0,
      bytesRefetched: 0,
    };
  }
  if (!complete) {
    try {
      if (local) {
        makeDirs(local);
        if (!cachedTree) writeTreeCache(join(local, '.cache', 'huggingface'), commit, all);
        snapshotDir = local;
      } else {
        ensureCachedirTag(cacheDir);
        makeDirs(join(storage, 'blobs'));
        if (!cachedTree) writeTreeCache(storage, commit, all);
        writeRef(storage, revision, commit);
        snapshotDir = join(storage, 'snapshots', commit);
        makeDirs(snapshotDir);
      }
    } catch (e) {
      // makeDirs creates one level at a time, so the error is the real cause (EROFS, EACCES, procfs), not ENOENT.
      const err = fromSystemError(e, local ?? storage, 'write');
      if (err.code !== 'PERMISSION') throw err;
      throw new ColdstartError('PERMISSION', err.message, {
        cause: e,
        hint: `The cache at ${cacheDir} is not writable (read-only mount or permissions) and ${opts.repo}@${revision} is not complete in it; point HF_HUB_CACHE at a writable directory, or fill it where it is writable.`,
      });
    }
  }

  const bytesTotal = selected.reduce((a, f) => a + sizeOf(f), 0);
  checkFreeSpace(local ?? storage, selected, (f) => {
    if (local) return sizeIs(safeJoin(local, f.path, 'a repo file name'), sizeOf(f));
    return existsSync(pointerPath(storage, commit, f.path)) || existsSync(blobPath(storage, etagOf(f)));
  }, (f) => (local ? localDirPaths(local, f.path).incomplete(etagOf(f)) : `${blobPath(storage, etagOf(f))}.incomplete`));
  let bytesDone = 0;
  let lastReport = 0;
  const report = (file?: string, force = false) => {
    if (!opts.onProgress) return;
    const t = now() * 1000;
    if (!force && t - lastReport < 100) return;
    lastReport = t;
    opts.onProgress({ bytesDone, bytesTotal, file });
  };
  const files: DownloadResult['files'] = [];
  const resumed: NonNullable<DownloadResult['resumed']> = [];
  const order = [...selected].sort((a, b) => sizeOf(b) - sizeOf(a));
  const lockDir = join(cacheDir, '.locks', repoFolderName(opts.repo, repoType));

  let bytesWire = 0;
  let bytesResumed = 0;
  let bytesRefetched = 0;
  const staleAfter = staleSeconds(opts.env);
  const fetchInto = async (f: RepoFile, url: string, own: string) => {
    const job: FileJob = { file: f, url, incomplete: own, display: f.path };
    let fileResumed = 0;
    await fetchVerified(c, opts.repo, job, opts, {
      progress(n) {
        bytesDone += n;
        report(f.path);
      },
      wire(n) {
        bytesWire += n;
      },
      resumed(from) {
        fileResumed += from;
        bytesResumed += from;
        resumed.push({ path: f.path, fromByte: from });
      },
      discarded(n) {
        // Bytes thrown away are fetched again: from a resumed partial, or from an earlier attempt of this run.
        const fromPartial = Math.min(n, fileResumed);
        fileResumed -= fromPartial;
        bytesResumed -= fromPartial;
        bytesRefetched += n;
      },
    });
  };

  await pool(order, Math.max(1, opts.concurrency ?? 8), (f) => oneFile(f).catch((e) => Promise.reject(namingFile(e, f.path))));
  async function oneFile(f: RepoFile): Promise<void> {
    const start = now();
    const etag = etagOf(f);
    const bytes = sizeOf(f);
    const done = (cached: boolean) => {
      files.push({ path: f.path, bytes, seconds: now() - start, cached });
      if (cached) bytesDone += bytes;
      report(f.path, true);
    };
    const url = `${repoUrl(c.endpoint, opts.repo, repoType)}/resolve/${commit}/${encodePath(f.path)}`;
    const force = !!opts.forceDownload;
    if (local) {
      const p = localDirPaths(local, f.path);
      const meta = readLocalMetadata(p);
      if (!force && meta?.etag === etag && sizeIs(p.file, bytes)) {
        if (meta.commit !== commit) writeLocalMetadata(p, commit, etag);
        return done(true);
      }
      if (!force && !meta && sizeIs(p.file, bytes) && (await fileMatches(p.file, f, opts.signal))) {
        writeLocalMetadata(p, commit, etag);
        return done(true);
      }
      const lock = await takeLock(p.lock, f.path, opts);
      const parked = p.incomplete(etag);
      const own = ownPartial(parked);
      trackPartial(own, parked);
      try {
        adoptPartial(parked, own, staleAfter);
        await fetchInto(f, url, own);
        makeDirs(dirname(p.file));
        // In a --local-dir the file is replaced (that is what the user asked for); the bytes are verified.
        renameSync(own, p.file);
        writeLocalMetadata(p, commit, etag);
      } catch (e) {
        parkPartial(own, parked);
        throw fromSystemError(e, p.file, 'write');
      } finally {
        untrackPartial(own);
        lock.release();
      }
      return done(false);
    }
    const pointer = pointerPath(storage, commit, f.path);
    const blob = blobPath(storage, etag);
    // A pointer or blob of the wrong size (truncated by hand, a full disk) is not "already cached".
    if (!force && sizeIs(blob, bytes)) {
      if (!sizeIs(pointer, bytes)) linkPointer(blob, pointer);
      return done(true);
    }
    // `blob` is built from a checked hash (blobPath), so the lock and the partial beside it stay in their folders.
    const lock = await takeLock(join(lockDir, `${basename(blob)}.coldstart.lock`), f.path, opts);
    const parked = `${blob}.incomplete`;
    const own = ownPartial(parked);
    trackPartial(own, parked);
    try {
      if (!force && sizeIs(blob, bytes)) {
        // Another run finished it while we waited for the lock.
        if (!sizeIs(pointer, bytes)) linkPointer(blob, pointer);
        return done(true);
      }
      if (existsSync(blob)) discardBadBlob(blob);
      adoptPartial(parked, own, staleAfter);
      await fetchInto(f, url, own);
      // --force-download replaces the blob with the fresh verified bytes (rename is atomic); otherwise never overwrite.
      const won = force ? (renameSync(own, blob), true) : commitBlob(own, blob, bytes);
      linkPointer(blob, pointer);
      if (!won) opts.onEvent?.({ type: 'rejected', file: f.path, reason: 'another process cached a verified copy first; ours was dropped' });
    } catch (e) {
      parkPartial(own, parked);
      throw fromSystemError(e, blob, 'write');
    } finally {
      untrackPartial(own);
      lock.release();
    }
    done(false);
  }
  report(undefined, true);

  const seconds = now() - t0;
  files.sort((a, b) => (a.path < b.path ? -1 : 1));
  return {
    repo: opts.repo,
    revision,
    commit,
    cacheDir,
    snapshotDir,
    files,
    bytesDownloaded: bytesWire,
    bytesTotal,
    seconds,
    bytesPerSecond: bytesWire > 0 ? bytesWire / seconds : 0,
    fromCache: bytesWire === 0 && files.every((f) => f.cached),
    bytesWire,
    bytesResumed,
    bytesRefetched,
    mode: local ? 'local-dir' : 'cache',
    excluded,
    ...(defaultExcludes ? { defaultExcludes } : {}),
    offline: false,
    resumed,
  };
}

/**
 * Fails before the first byte when the files still to fetch cannot fit (partials counted as progress), rather
 * than after filling the disk. Filesystems that do not report free space are not checked.
 */
function checkFreeSpace(dir: string, files: RepoFile[], have: (f: RepoFile) => boolean, partial: (f: RepoFile) => string): void {
  let need = 0;
  for (const f of files) {
    if (have(f)) continue;
    let part = 0;
    try {
      part = statSync(partial(f)).size;
    } catch {
      /* none */
    }
    need += Math.max(0, sizeOf(f) - part);
  }
  if (need === 0) return;
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

/** The error a file's download ended with, its message starting with the repo path when it does not name it yet. */
function namingFile(e: unknown, path: string): unknown {
  if (!(e instanceof ColdstartError) || e.code === 'INTERRUPTED' || e.message.includes(path)) return e;
  return new ColdstartError(e.code, `${path}: ${e.message}`, { cause: e, ...(e.hint ? { hint: e.hint } : {}), ...(e.details ? { details: e.details } : {}) });
}

/** True when `path` (followed through symlinks) is a file of exactly `bytes` bytes. */
function sizeIs(path: string, bytes: number): boolean {
  try {
    const st = statSync(path);
    return st.isFile() && st.size === bytes;
  } catch {
    return false;
  }
}

/** This process's own partial file for a blob: no other process ever opens it for writing. */
function ownPartial(parked: string): string {
  return `${parked.slice(0, -'.incomplete'.length)}.cs-${process.pid}-${randomBytes(4).toString('hex')}.incomplete`;
}

/**
 * Own partials in flight. Ctrl-C makes the CLI exit at once (src/cli.ts), before the download's own error path
 * runs, so each is tracked as resumable (core/atomic.ts): the signal handler (or the 'exit' hook) parks it for
 * the next run, synchronously, and the interruption message counts it as kept for resume.
 */
function trackPartial(own: string, parked: string): void {
  trackResumable(own, () => parkPartial(own, parked));
}
function untrackPartial(own: string): void {
  untrackResumable(own);
}

/**
 * Resume: takes over the parked partial (`<etag>.incomplete`) — or one a killed coldstart left under its own
 * name, once idle longer than the lock bound — by renaming it to our own name. rename() is atomic: of two
 * contenders exactly one gets it, the other starts from byte 0. huggingface_hub ≥ 1.x writes its own
 * `<etag>.<8 hex>.incomplete` files, which are never touched here.
 */
function adoptPartial(parked: string, own: string, staleAfter: number): void {
  const dir = dirname(parked);
  const stem = basename(parked).slice(0, -'.incomplete'.length);
  const cands: Array<{ path: string; size: number; mine: boolean }> = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const isParked = n === `${stem}.incomplete`;
    const isAbandoned = n.startsWith(`${stem}.cs-`) && n.endsWith('.incomplete');
    if (!isParked && !isAbandoned) continue;
    try {
      const st = statSync(join(dir, n));
      if (isAbandoned && Date.now() - st.mtimeMs < staleAfter * 1000) continue; // maybe still being written
      cands.push({ path: join(dir, n), size: st.size, mine: isParked });
    } catch {
      /* gone */
    }
  }
  cands.sort((a, b) => b.size - a.size);
  let adopted = false;
  for (const cnd of cands) {
    if (!adopted) {
      try {
        renameSync(cnd.path, own);
        adopted = true;
        continue;
      } catch {
        continue;
      }
    }
    rmSync(cnd.path, { force: true }); // abandoned and smaller than the one adopted
  }
}

/**
 * After a failure or Ctrl-C: our partial becomes the parked `<etag>.incomplete` for the next run to resume,
 * without overwriting a larger one; an empty partial is removed (nothing to resume).
 */
function parkPartial(own: string, parked: string): boolean {
  let size: number;
  try {
    size = statSync(own).size;
  } catch {
    return false;
  }
  try {
    if (size === 0) {
      rmSync(own, { force: true });
      return false;
    }
    try {
      linkSync(own, parked);
      rmSync(own, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (statSync(parked).size < size) renameSync(own, parked);
      else rmSync(own, { force: true });
    }
  } catch {
    /* best effort: the own-named partial stays, and is adopted once idle */
  }
  return true;
}

/**
 * Puts a verified partial in place as the blob without ever overwriting one: link() fails with EEXIST when
 * another process got there first (its blob is verified too, so ours is dropped). Where hard links are not
 * supported, check-then-rename (the same bytes either way). Returns whether ours became the blob.
 */
function commitBlob(own: string, blob: string, bytes: number): boolean {
  try {
    linkSync(own, blob);
    rmSync(own, { force: true });
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && sizeIs(blob, bytes)) {
      rmSync(own, { force: true });
      return false;
    }
    if (code === 'EEXIST') {
      discardBadBlob(blob);
      return commitBlob(own, blob, bytes);
    }
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EMLINK') throw e;
    if (sizeIs(blob, bytes)) {
      rmSync(own, { force: true });
      return false;
    }
    renameSync(own, blob);
    return true;
  }
}

/** A blob of the wrong size is moved aside (one mover wins) and removed, so a verified one can take its name. */
function discardBadBlob(blob: string): void {
  const aside = `${blob}.${randomBytes(4).toString('hex')}.bad`;
  try {
    renameSync(blob, aside);
    rmSync(aside, { force: true });
  } catch {
    /* another process moved it */
  }
}

async function takeLock(path: string, file: string, opts: DownloadOptions) {
  // Released by its holder, or by lock.ts's exit hook when Ctrl-C ends the process first.
  return acquireLock(path, { signal: opts.signal, env: opts.env, onWait: () => opts.onEvent?.({ type: 'waiting-lock', file }) });
}

async function fileMatches(path: string, f: RepoFile, signal?: AbortSignal): Promise<boolean> {
  const h = newHasher(f);
  await hashPrefix(h, path, sizeOf(f), signal);
  return h.digest('hex') === etagOf(f);
}

function offlineResult(opts: DownloadOptions, revision: string, cacheDir: string, storage: string, t0: number): DownloadResult {
  let commit: string | null;
  let dir: string;
  let all: RepoFile[] | null;
  if (opts.localDir) {
    const hfDir = join(opts.localDir, '.cache', 'huggingface');
    commit = COMMIT_RE.test(revision) ? revision : null;
    if (!commit) {
      const trees = existsSync(join(hfDir, 'trees')) ? readdirSync(join(hfDir, 'trees')).filter((n) => n.endsWith('.json')) : [];
      commit = trees.length === 1 && GIT_OID_RE.test(trees[0].slice(0, -5)) ? trees[0].slice(0, -5) : null;
    }
    dir = opts.localDir;
    all = commit ? readTreeCache(hfDir, commit) : null;
    if (!all || !existsSync(dir)) throw offlineMiss(opts.repo, revision);
  } else {
    commit = cachedCommit(storage, revision);
    if (!commit) throw offlineMiss(opts.repo, revision);
    dir = join(storage, 'snapshots', commit);
    all = readTreeCache(storage, commit);
  }
  const present = new Set(listSnapshot(dir).filter((p) => !p.startsWith('.cache/')));
  const sizeOnDisk = (p: string) => {
    try {
      return statSync(safeJoin(dir, p, 'a repo file name')).size; // through the symlink: a dangling one throws
    } catch {
      return -1;
    }
  };
  const listing = all ?? [...present].map((p) => ({ path: p, size: Math.max(0, sizeOnDisk(p)), oid: '' }));
  const { selected, defaultExcludes } = selectFiles(listing, opts);
  // Complete means every selected file is there (its blob too) at the size the listing says; hashes: `cache verify`.
  const missing = selected.filter((f) => !present.has(f.path) || sizeOnDisk(f.path) !== sizeOf(f));
  if (missing.length) {
    const what = (f: RepoFile) => {
      const n = sizeOnDisk(f.path);
      return n < 0 ? f.path : `${f.path} (${n} of ${sizeOf(f)} bytes)`;
    };
    throw new ColdstartError('OFFLINE', `HF_HUB_OFFLINE is set and ${missing.length} file(s) of ${opts.repo}@${revision} are missing or incomplete in the cache (${missing.slice(0, 3).map(what).join(', ')}${missing.length > 3 ? ', …' : ''})`, {
      hint: 'Run `coldstart cache` with network access to complete it, or unset HF_HUB_OFFLINE.',
    });
  }
  const sel = new Set(selected.map((f) => f.path));
  const files = selected.map((f) => ({ path: f.path, bytes: sizeOf(f), seconds: 0, cached: true }));
  return {
    repo: opts.repo,
    revision,
    commit: commit!,
    cacheDir,
    snapshotDir: dir,
    files,
    bytesDownloaded: 0,
    bytesTotal: files.reduce((a, f) => a + f.bytes, 0),
    seconds: now() - t0,
    bytesPerSecond: 0,
    fromCache: true,
    mode: opts.localDir ? 'local-dir' : 'cache',
    excluded: listing.filter((f) => !sel.has(f.path)).map((f) => ({ path: f.path, bytes: sizeOf(f) })),
    ...(defaultExcludes ? { defaultExcludes } : {}),
    offline: true,
    resumed: [],
  };
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
