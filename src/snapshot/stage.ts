/**
 * `restore --stage WEIGHTS`: the weights an --after-restore hook reads back (a server at sleep level 2), loaded onto the
 * server's GPU in coldstart's own process while CRIU restores the server, and listed in the stage directory. The
 * server's wake-up through coldstart_load (src/python/coldstart_load.py) finds them there by file identity (device,
 * inode, size, modification time) and copies GPU to GPU instead of reading the page cache, so the weights' read and
 * host-to-device copy run beside CRIU's one-thread page restore instead of after it. coldstart frees the copy once the
 * hooks have answered; a server that does not use coldstart_load reads its files as before and the copy is only freed.
 *
 * The directory is a hint, never trusted for more: it must be this user's and writable by nobody else (coldstart_load
 * reads no other), an entry names its holder's pid (an ended holder's entries are skipped) and coldstart_load checks
 * every range against the size of the allocation behind the handle before it copies (native/src/capi.cc).
 */
import { closeSync, lstatSync, mkdirSync, openSync, renameSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatBytes } from '../core/format.js';
import { removeTemp, tempPathFor, trackTemp, untrackTemp } from '../core/atomic.js';
import { fmt } from './report.js';
import { filesBytes } from '../core/files.js';
import type { GpuMemoryResult } from '../native.js';
import { usedBytesSum, uuidHex, type GpuMove } from './gpu-map.js';
import type { Manifest } from './manifest.js';
import type { SnapshotNative, StagedLoad } from './native.js';

type Env = Record<string, string | undefined>;

/** The stage entries' format (coldstart_load.py STAGE_VERSION). */
export const STAGE_VERSION = 1;

/** Where stage entries are listed: COLDSTART_STAGE_DIR, else /dev/shm/coldstart-stage-<uid> (coldstart_load.py stage_dir: the same rule). */
export function stageDir(env: Env, uid = process.geteuid?.() ?? 0): string {
  if (env.COLDSTART_STAGE_DIR) return env.COLDSTART_STAGE_DIR;
  let base = tmpdir();
  try {
    if (statSync('/dev/shm').isDirectory()) base = '/dev/shm';
  } catch {
    /* no /dev/shm: the temp dir */
  }
  return join(base, `coldstart-stage-${uid}`);
}

/** A file's identity as coldstart_load compares it (decimal strings: inodes and nanoseconds pass 2^53). */
export interface FileIdentity {
  dev: string;
  ino: string;
  size: number;
  mtimeNs: string;
}

export function fileIdentity(path: string): FileIdentity {
  const st = statSync(path, { bigint: true });
  return { dev: String(st.dev), ino: String(st.ino), size: Number(st.size), mtimeNs: String(st.mtimeNs) };
}

const sameIdentity = (a: FileIdentity, b: FileIdentity): boolean => a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;


/** What `restore --stage` did (details.stage). */
export interface StageDetail {
  target: string;
  files: number;
  /** Bytes put on the GPU; 0 when nothing was staged. */
  bytes: number;
  /** The load onto the GPU (its context, reads and copies); null: not started. */
  seconds: number | null;
  /** From the restore's start to the staged copy listed; null: never listed. */
  readyAt: number | null;
  /** How long the restore, its server already unlocked, waited for the load to finish (0: it was done first); null: none started. */
  waitedSeconds: number | null;
  /** The GPU (NVML UUID) it went to; null: none chosen. */
  gpu: string | null;
  /** The files' bytes in the page cache as the restore began (mincore); null: not measured (or nothing staged). */
  residentBefore: number | null;
  /** Why nothing was staged, or why it failed (the restore went on without it, the wake-up reading the files); null: staged. */
  skipped: string | null;
}

export function stageLine(s: StageDetail): string {
  if (s.skipped) return `--stage ${s.target}: not staged (${s.skipped}); the wake-up read the files`;
  return `--stage ${s.target}: ${formatBytes(s.bytes)} (${s.files} file(s)) put on ${s.gpu ?? 'the GPU'} beside CRIU in ${fmt(s.seconds ?? 0)}, listed ${fmt(s.readyAt ?? 0)} into the restore (${fmt(s.waitedSeconds ?? 0)} of it waiting for the load), for the wake-up to copy GPU to GPU; unlisted once the hooks answered, freed after the first answer`;
}

/** The stage directory, made this user's (0700) where it is not there; a reason when it cannot be used. */
function ownDir(dir: string): string | null {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    const uid = process.geteuid?.() ?? 0;
    if (!st.isDirectory()) return `${dir} is not a directory`;
    if (st.uid !== uid) return `${dir} belongs to uid ${st.uid}, not ${uid}`;
    if (st.mode & 0o022) return `${dir} is writable by others (mode ${(st.mode & 0o777).toString(8)}): coldstart_load would not read it`;
    return null;
  } catch (e) {
    return `${dir}: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/**
 * Lists a staged load for coldstart_load, for the processes `pids` only (the restored server's tree: a second restore
 * on the node staging the same files never hands its copy to this one's server, whose holder may free it meanwhile):
 * one entry file, mode 0600, written whole and renamed into place, removed on
 * exit if the restore is interrupted. Files whose identity changed while they were loaded are left out (what is on the
 * card may then be neither version). Returns the entry's path, or a reason nothing was listed.
 */
export function listStage(dir: string, loaded: StagedLoad, before: Map<string, FileIdentity>, gpu: string, pids: readonly number[]): { entry: string } | { skipped: string } {
  const bad = ownDir(dir);
  if (bad) return { skipped: bad };
  const files: Array<FileIdentity & { path: string; begin: number; end: number; handle: string }> = [];
  for (const f of loaded.files) {
    const id = before.get(f.path);
    let now: FileIdentity | null = null;
    try {
      now = fileIdentity(f.path);
    } catch {
      /* gone */
    }
    if (id && now && sameIdentity(id, now)) files.push({ path: f.path, ...id, begin: 0, end: id.size, handle: f.handle });
  }
  if (!files.length) return { skipped: 'every file changed while it was loaded' };
  const entry = join(dir, `${process.pid}-${loaded.id}.json`);
  const tmp = tempPathFor(entry);
  try {
    trackTemp(tmp);
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, JSON.stringify({ version: STAGE_VERSION, pid: process.pid, pids, gpu, files }));
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, entry);
    untrackTemp(tmp);
    trackTemp(entry); // removed on exit should the restore be interrupted before it lets go
    return { entry };
  } catch (e) {
    removeTemp(tmp);
    return { skipped: `${entry}: ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Removes a stage entry (before its copy is freed, so coldstart_load never opens a freed handle it just listed). */
export function unlistStage(entry: string): void {
  removeTemp(entry);
}

/** What --stage needs beyond the weights: more GPU memory than these left free is not used for a copy. */
export const STAGE_MARGIN_BYTES = 2 * 2 ** 30;

/**
 * Where --stage puts the weights: the one GPU the image's server comes back on, if it has room for the copy beside the
 * server's GPU state and the weights the wake-up allocates again (NVML's free memory now + what the server held);
 * otherwise a reason nothing is staged (the wake-up reads the files).
 */
export function planStage(stage: { files: string[] }, m: Manifest, moves: GpuMove[], mem: GpuMemoryResult | null, native: SnapshotNative): { gpu: string | null; skipped: string | null; bytes: number } {
  const bytes = filesBytes(stage.files);
  const skip = (why: string) => ({ gpu: null, skipped: why, bytes });
  if (!m.gpuPids.length) return skip('the image holds no GPU state: its server has no GPU to copy them to');
  if (native.unavailable()) return skip('the native addon is unavailable');
  const to = [...new Set(moves.map((mv) => mv.to.uuid))];
  if (to.length !== 1) return skip(to.length ? `the server comes back on ${to.length} GPUs; --stage puts weights on one` : 'which GPU the server comes back on is not recorded in the image');
  const gpu = uuidHex(to[0]!);
  if (!gpu) return skip(`${to[0]} is not a whole-GPU UUID`);
  const free = mem?.devices.find((d) => d.uuid === to[0])?.freeBytes ?? null;
  const held = usedBytesSum(m.gpuUsed) ?? m.kinds?.gpuStateBytes ?? null;
  if (free === null || held === null) return skip("the GPU's free memory or what the server held there was not measured");
  const need = 2 * bytes + held + STAGE_MARGIN_BYTES;
  if (free < need) return skip(`${formatBytes(free)} free on the GPU; a copy of ${formatBytes(bytes)} beside the server (${formatBytes(held)}) and its weights again needs ${formatBytes(need)}`);
  return { gpu, skipped: null, bytes };
}
